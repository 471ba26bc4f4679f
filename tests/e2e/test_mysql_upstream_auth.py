"""The gateway logs in to MariaDB targets with the credential it holds, whatever plugin the
target account uses: mysql_native_password with a password, and MariaDB's ed25519.
(caching_sha2_password is MySQL's; the local server is MariaDB, so it is covered by the
codec's byte-level tests only.)"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from gateway_harness import RunningGateway, base_config, start_gateway

pytestmark = pytest.mark.e2e

ACCOUNTS = {
    "demo_native": ("wg_native", "IDENTIFIED BY 'native-Pw-1'", "native-Pw-1"),
    "demo_ed25519": ("wg_ed", "IDENTIFIED VIA ed25519 USING PASSWORD('ed-Pw-2')", "ed-Pw-2"),
}


def admin() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with admin() as c, c.cursor() as cur:
        cur.execute("INSTALL PLUGIN IF NOT EXISTS ed25519 SONAME 'auth_ed25519'")
        for user, how, _ in ACCOUNTS.values():
            cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
            cur.execute(f"CREATE USER '{user}'@'127.0.0.1' {how}")
            cur.execute(f"GRANT ALL ON test.* TO '{user}'@'127.0.0.1'")
    state: Path = tmp_path_factory.mktemp("gw-mysql-auth")
    cfg = base_config(state, 0, 0, 0)
    for target, (user, _, password) in ACCOUNTS.items():
        cfg["targets"][target] = {
            "kind": "mysql",
            "host": "127.0.0.1",
            "port": 3306,
            "database": "test",
            "credential": {"username": user, "password": password},
        }
    try:
        with start_gateway(state, cfg) as running:
            yield running
    finally:
        with admin() as c, c.cursor() as cur:
            for user, _, _ in ACCOUNTS.values():
                cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


@pytest.mark.parametrize(
    ("target", "plugin"),
    [("demo_native", "mysql_native_password"), ("demo_ed25519", "client_ed25519")],
)
def test_upstream_auth_plugins(gw: RunningGateway, target: str, plugin: str) -> None:
    tok = gw.token("alice", "dba")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = pymysql.connect(
        host="127.0.0.1", port=gw.mysql_port, user="alice", password=tok, database=target, ssl=ctx
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), DATABASE()")
            assert cur.fetchone() == (f"{ACCOUNTS[target][0]}@127.0.0.1", "test")
    finally:
        conn.close()
    assert f"-> target {target} (upstream auth {plugin}" in gw.log()
    assert ACCOUNTS[target][2] not in gw.log()
