"""The gateway's own login to targets: SCRAM (with and without channel binding), MD5,
cleartext, TLS modes including verify-full, and wrong credentials — against a second,
real PostgreSQL server that demands passwords."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway_harness import RunningGateway, base_config, start_gateway
from pg_cluster import Cluster, password_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with password_cluster() as c:
        yield c


def _target(port: int, user: str, password: str | None, tls: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "postgres",
        "host": "127.0.0.1",
        "port": port,
        "database": "postgres",
        "credential": {"username": user, "password": password},
        "tls": tls,
    }


@pytest.fixture(scope="module")
def gw(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    state = tmp_path_factory.mktemp("gw-auth")
    cfg = base_config(state, 0, 0, 0)
    p, ca = cluster.port, str(cluster.ca_file)
    cfg["policy"]["roles"]["dba-full"]["targets"] = ["*"]
    cfg["targets"] = {
        "scram": _target(p, "scram_user", "scram-pw", {"mode": "disable"}),
        "scram_plus": _target(
            p,
            "scram_tls_user",
            "scram-tls-pw",
            {"mode": "verify-full", "ca_file": ca, "server_name": "localhost"},
        ),
        "md5": _target(p, "md5_user", "md5-pw", {"mode": "prefer"}),
        "clear": _target(p, "clear_user", "clear-pw", {"mode": "require"}),
        "verify_ca": _target(p, "scram_user", "scram-pw", {"mode": "verify-ca", "ca_file": ca}),
        "wrong_pw": _target(p, "scram_user", "not-the-password", {"mode": "prefer"}),
        "no_pw": _target(p, "md5_user", None, {"mode": "prefer"}),
        # verify-full against a certificate issued to "localhost" but checked as "db.example":
        "bad_name": _target(
            p,
            "scram_tls_user",
            "scram-tls-pw",
            {"mode": "verify-full", "ca_file": ca, "server_name": "db.example"},
        ),
        # verify-ca with a CA that did not sign the server certificate:
        "bad_ca": _target(
            p,
            "scram_user",
            "scram-pw",
            {"mode": "verify-ca", "ca_file": str(Path(state) / "tls" / "gateway.crt")},
        ),
    }
    with start_gateway(state, cfg) as g:
        yield g


@pytest.mark.parametrize(
    ("target", "user", "ssl"),
    [
        ("scram", "scram_user", False),
        ("scram_plus", "scram_tls_user", True),
        ("md5", "md5_user", True),
        ("clear", "clear_user", True),
        ("verify_ca", "scram_user", True),
    ],
)
def test_upstream_auth_methods(gw: RunningGateway, target: str, user: str, ssl: bool) -> None:
    tok = gw.token("op", "dba")
    with psycopg.connect(gw.dsn("op", tok, dbname=target)) as conn:
        row = conn.execute(
            "select current_user, coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)"
        ).fetchone()
    assert row == (user, ssl)


def test_scram_plus_uses_channel_binding(gw: RunningGateway) -> None:
    tok = gw.token("op", "dba")
    with psycopg.connect(gw.dsn("op", tok, dbname="scram_plus")) as conn:
        conn.execute("select 1")
    with psycopg.connect(gw.dsn("op", tok, dbname="scram")) as conn:
        conn.execute("select 1")
    log = gw.log()
    assert "target scram_plus (upstream auth SCRAM-SHA-256-PLUS, upstream tls True" in log
    assert "target scram (upstream auth SCRAM-SHA-256, upstream tls False" in log


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("wrong_pw", "could not authenticate to target 'wrong_pw'"),
        ("no_pw", "holds no password"),
        ("bad_name", "could not establish TLS with target 'bad_name'"),
        ("bad_ca", "could not establish TLS with target 'bad_ca'"),
    ],
)
def test_upstream_failures_are_clear_and_leak_nothing(
    gw: RunningGateway, target: str, needle: str
) -> None:
    tok = gw.token("op", "dba")
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(gw.dsn("op", tok, dbname=target))
    msg = str(e.value)
    assert needle in msg
    for secret in ("scram-pw", "not-the-password", "md5-pw", "scram-tls-pw"):
        assert secret not in msg
