"""Starts the real gateway (``wardgate serve`` in a subprocess) for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WARDGATE = [sys.executable, "-m", "wardgate.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


@dataclass
class RunningGateway:
    config_path: Path
    pg_port: int
    mysql_port: int
    api_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    state_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def cli(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*WARDGATE, "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            check=check,
            input=input,
            timeout=60,
        )

    def token(self, name: str, *groups: str, ttl: str = "1h") -> str:
        args = ["token", "create", name, "--ttl", ttl]
        for g in groups:
            args += ["--group", g]
        out = self.cli(*args).stdout
        return out.strip()

    def dsn(self, user: str, token: str, dbname: str = "demo", sslmode: str = "prefer") -> str:
        return (
            f"host=127.0.0.1 port={self.pg_port} dbname={dbname} user={user} "
            f"password={token} sslmode={sslmode}"
        )

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def quickstart_section(name: str) -> Any:
    """A section of examples/quickstart.yaml, so tests exercise the reference policy itself."""
    return yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())[name]


def base_config(state_dir: Path, pg_port: int, mysql_port: int, api_port: int) -> dict[str, Any]:
    return {
        "policy": quickstart_section("policy"),
        "masking": quickstart_section("masking"),
        "listen": {
            "postgres": f"127.0.0.1:{pg_port}",
            "mysql": f"127.0.0.1:{mysql_port}",
            "api": f"127.0.0.1:{api_port}",
        },
        "state": {"url": f"sqlite:///{state_dir}/state.db", "directory": str(state_dir)},
        "api": {"admin_groups": ["wardgate-admins", "dba"]},
        "targets": {
            "demo": {
                "kind": "postgres",
                "host": "127.0.0.1",
                "port": 5432,
                "database": "wardgate_test",
                "credential": {"username": "postgres", "password": None},
                "tls": {"mode": "prefer"},
            },
            "demo_mysql": {
                "kind": "mysql",
                "host": "127.0.0.1",
                "port": 3306,
                "database": "test",
                "credential": {"username": "root", "password": ""},
            },
        },
    }


@contextlib.contextmanager
def start_gateway(
    state_dir: Path,
    config: dict[str, Any] | None = None,
    *,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[RunningGateway]:
    state_dir.mkdir(parents=True, exist_ok=True)
    pg_port, mysql_port, api_port = free_port(), free_port(), free_port()
    cfg = config if config is not None else base_config(state_dir, pg_port, mysql_port, api_port)
    cfg.setdefault("listen", {})
    cfg["listen"].update(
        {
            "postgres": f"127.0.0.1:{pg_port}",
            "mysql": f"127.0.0.1:{mysql_port}",
            "api": f"127.0.0.1:{api_port}",
        }
    )
    cfg.setdefault("state", {"url": f"sqlite:///{state_dir}/state.db", "directory": str(state_dir)})
    config_path = state_dir / "wardgate.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    log_path = state_dir / "gateway.log"
    logf = log_path.open("wb")
    proc = subprocess.Popen(
        [*WARDGATE, "--config", str(config_path), "serve", *(extra_args or [])],
        stdout=logf,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    gw = RunningGateway(config_path, pg_port, mysql_port, api_port, proc, log_path, state_dir)
    try:
        deadline = time.monotonic() + 30
        while "wardgate ready" not in gw.log():
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{gw.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway did not start:\n{gw.log()}")
            time.sleep(0.05)
        yield gw
    finally:
        gw.stop()
        logf.close()
