"""End to end: an engineer's destructive MySQL statement waits inside the live session
until a DBA approves or denies it with the ``wardgate approvals`` CLI."""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from gateway_harness import RunningGateway

pytestmark = pytest.mark.e2e


def admin() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host="127.0.0.1", port=3306, user="root", database="test", autocommit=True
    )


def table_exists(name: str) -> bool:
    with admin() as c, c.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables "
            "WHERE table_schema = 'test' AND table_name = %s",
            (name,),
        )
        row = cur.fetchone()
        return bool(row and row[0])


@pytest.fixture
def table() -> Iterator[str]:
    name = "wg_apr_" + uuid.uuid4().hex[:10]
    with admin() as c, c.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (id INT)")
    yield name
    with admin() as c, c.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")


def connect(gw: RunningGateway, user: str, token: str) -> Any:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return pymysql.connect(
        host="127.0.0.1",
        port=gw.mysql_port,
        user=user,
        password=token,
        database="demo_mysql",
        ssl=ctx,
        autocommit=True,
        read_timeout=120,
    )


def pending_request(gw: RunningGateway, requester: str, within: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        rows = json.loads(gw.cli("approvals", "list", "--json").stdout)
        mine = [r for r in rows if r["requester_name"] == requester]
        if mine:
            return dict(mine[0])
        time.sleep(0.3)
    raise AssertionError(f"no pending approval request from {requester}")


def held(conn: Any, sql: str) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
            result["ok"] = True
        except Exception as e:
            result["error"] = e

    th = threading.Thread(target=run)
    th.start()
    return th, result


def test_destructive_statement_runs_after_approval(gateway: RunningGateway, table: str) -> None:
    eng = gateway.token("eng-my", "engineers")
    dba = gateway.token("dba-my", "dba")
    conn = connect(gateway, "eng-my", eng)
    try:
        th, result = held(conn, f"DROP TABLE {table}")
        req = pending_request(gateway, "eng-my")
        assert req["target"] == "demo_mysql" and req["approver_groups"] == ["dba"]
        assert "destructive" in req["classes"]
        time.sleep(0.5)
        assert th.is_alive() and table_exists(table)  # held: nothing reached MariaDB
        # The requester cannot approve their own statement.
        own = gateway.cli(
            "approvals", "approve", req["id"], "--reason", "mine", "--token", eng, check=False
        )
        assert own.returncode != 0
        gateway.cli("approvals", "approve", req["id"], "--reason", "ticket 42", "--token", dba)
        th.join(30)
        assert result == {"ok": True}
        assert not table_exists(table)
        with conn.cursor() as cur:  # the session carries on
            cur.execute("SELECT 1")
            assert cur.fetchall() == ((1,),)
    finally:
        conn.close()


def test_denied_approval_names_the_request(gateway: RunningGateway, table: str) -> None:
    eng = gateway.token("eng-my2", "engineers")
    dba = gateway.token("dba-my2", "dba")
    conn = connect(gateway, "eng-my2", eng)
    try:
        th, result = held(conn, f"DROP TABLE {table}")
        req = pending_request(gateway, "eng-my2")
        gateway.cli("approvals", "deny", req["id"], "--reason", "not today", "--token", dba)
        th.join(30)
        err = result["error"]
        assert isinstance(err, pymysql.err.OperationalError)
        code, msg = err.args
        assert code == 1142 and req["id"] in msg and "not today" in msg
        assert table_exists(table)
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            assert cur.fetchall() == ((0,),)
    finally:
        conn.close()
