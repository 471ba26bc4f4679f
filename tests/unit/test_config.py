from __future__ import annotations

from pathlib import Path

import pytest

from wardgate.config import load_config, parse_duration
from wardgate.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_is_valid() -> None:
    cfg = load_config(ROOT / "examples" / "quickstart.yaml")
    assert set(cfg.targets) == {"demo", "demo_mysql"}
    assert cfg.listen.address("postgres") == ("127.0.0.1", 15432)
    assert cfg.listen.address("mysql") == ("127.0.0.1", 13306)
    assert cfg.listen.address("api") == ("127.0.0.1", 8080)
    assert cfg.state.url.startswith("sqlite:////")  # resolved relative to the file
    assert {"agents", "engineers", "dba"} <= set(cfg.policy.bindings)


def test_errors_name_the_key_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(
        "targets:\n"
        "  demo:\n"
        "    host: 127.0.0.1\n"
        "    port: not-a-port\n"
        "    database: x\n"
        "    credential: {username: u}\n"
        "listen:\n"
        "  postgress: 1.2.3.4:5\n"
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "targets.demo.port (line 4)" in msg
    assert "listen.postgress (line 8)" in msg and "Extra inputs are not permitted" in msg


def test_env_expansion_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_TEST_PORT", "6543")
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "c.yaml"
    p.write_text(
        "state: {url: 'sqlite:///state/s.db', directory: state}\n"
        "targets:\n"
        "  t:\n"
        "    port: ${WG_TEST_PORT}\n"
        "    host: ${WG_UNSET_HOST:-db.internal}\n"
        "    database: d\n"
        "    credential: {username: u, source: file, password_file: pw.txt}\n"
    )
    cfg = load_config(p)
    t = cfg.targets["t"]
    assert t.port == 6543 and t.host == "db.internal"
    assert t.credential.password_file == (tmp_path / "sub" / "pw.txt").resolve()
    assert cfg.state.directory == (tmp_path / "sub" / "state").resolve()
    assert cfg.state.url == f"sqlite:///{(tmp_path / 'sub' / 'state' / 's.db').resolve()}"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("90d", 7776000), (5, 5)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration_is_rejected(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("identity: {tokens: {default_ttl: forever}}\n")
    with pytest.raises(ConfigError, match=r"identity.tokens.default_ttl \(line 1\)"):
        load_config(p)
