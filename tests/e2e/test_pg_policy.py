"""Policy, guardrails and just-in-time approval through the real gateway (quickstart policy).

Every denial test checks the target's own state afterwards: the statement never ran.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest
from psycopg import errors as pgerr

from conftest import TEST_DB
from gateway_harness import RunningGateway, base_config, start_gateway

pytestmark = pytest.mark.e2e
DIRECT = f"host=127.0.0.1 port=5432 user=postgres dbname={TEST_DB}"


def direct(sql: str) -> Any:
    with psycopg.connect(DIRECT, autocommit=True) as c:
        cur = c.execute(sql)
        return cur.fetchall() if cur.description else None


def table_exists(name: str) -> bool:
    return bool(direct(f"select to_regclass('public.{name}') is not null")[0][0])


@pytest.fixture
def victim() -> Iterator[str]:
    direct("drop table if exists wg_victim; create table wg_victim (id int primary key, v text)")
    direct("insert into wg_victim select g, 'v' || g from generate_series(1, 10) g")
    yield "wg_victim"
    direct("drop table if exists wg_victim")


@pytest.fixture(scope="module")
def agent(gateway: RunningGateway) -> str:
    return gateway.token("agent-007", "agents")


def count() -> int:
    return int(direct("select count(*) from wg_victim")[0][0])


DENIED_FOR_AGENTS = [
    "DROP TABLE wg_victim",
    "drop/**/table wg_victim",
    'DrOp TaBlE "wg_victim"',
    "TRUNCATE wg_victim",
    "DELETE FROM wg_victim",
    "DELETE FROM wg_victim WHERE 1=1",
    "UPDATE wg_victim SET v = 'x' WHERE true OR id = 1",
    "SELECT 1; DROP TABLE wg_victim",
    "INSERT INTO wg_victim VALUES (99, 'x'); DELETE FROM wg_victim",
    "WITH d AS (DELETE FROM wg_victim RETURNING *) SELECT count(*) FROM d",
    "DO $x$ BEGIN EXECUTE 'DROP TABLE wg_victim'; END $x$",
    "COPY wg_victim TO PROGRAM 'cat > /tmp/wg_exfil'",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_stat_activity WHERE false",
    "SET ROLE postgres",
    "GRANT ALL ON wg_victim TO PUBLIC",
    "ALTER TABLE wg_victim DROP COLUMN v",
    "DR/**/OP TABLE wg_victim",
    "PREPARE p AS DELETE FROM wg_victim",
]


@pytest.mark.parametrize("sql", DENIED_FOR_AGENTS)
def test_agents_guardrails_never_reach_the_target(
    gateway: RunningGateway, agent: str, victim: str, sql: str
) -> None:
    with psycopg.connect(gateway.dsn("agent-007", agent), autocommit=True) as conn:
        with pytest.raises(pgerr.InsufficientPrivilege) as e:
            conn.execute(sql)
        msg = str(e.value)
        assert e.value.sqlstate == "42501"
        assert "wardgate: statement denied by" in msg
        assert "wg_victim" not in msg  # reasons never echo the statement
        assert conn.execute("select count(*) from wg_victim").fetchone() == (10,)  # still usable
    assert table_exists(victim) and count() == 10
    assert (
        direct("select count(*) from information_schema.columns where table_name = 'wg_victim'")[0][
            0
        ]
        == 2
    )
    assert not direct("select has_table_privilege('public', 'wg_victim', 'select')")[0][0]


ALLOWED_FOR_AGENTS = [
    "SELECT 'DROP TABLE wg_victim'",
    "SELECT 1 -- DROP TABLE wg_victim",
    "SELECT /* DELETE FROM wg_victim */ count(*) FROM wg_victim",
    "SELECT $$DROP TABLE wg_victim$$",
    "UPDATE wg_victim SET v = 'x' WHERE id = 3",
    "DELETE FROM wg_victim WHERE id IN (SELECT id FROM wg_victim WHERE id > 100)",
    "CREATE TABLE IF NOT EXISTS wg_agent_scratch (id int)",
    "SET application_name = 'agent'",
    "BEGIN; SELECT 1; COMMIT",
]


@pytest.mark.parametrize("sql", ALLOWED_FOR_AGENTS)
def test_agents_lookalikes_run(gateway: RunningGateway, agent: str, victim: str, sql: str) -> None:
    with psycopg.connect(gateway.dsn("agent-007", agent), autocommit=True) as conn:
        conn.execute(sql)
    assert count() == 10


def test_extended_protocol_denial_keeps_server_semantics(
    gateway: RunningGateway, agent: str, victim: str
) -> None:
    with psycopg.connect(gateway.dsn("agent-007", agent)) as conn:
        conn.execute("insert into wg_victim values (%s, %s)", (50, "in-txn"))
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute("delete from wg_victim where %s", (True,), prepare=True)
        # Exactly like a server-side permission error: the transaction is aborted.
        with pytest.raises(pgerr.InFailedSqlTransaction):
            conn.execute("select 1")
        conn.rollback()
        assert conn.execute("select count(*) from wg_victim").fetchone() == (10,)
    with psycopg.connect(gateway.dsn("agent-007", agent), autocommit=True) as conn:
        with pytest.raises(pgerr.InsufficientPrivilege), conn.pipeline():
            conn.execute("update wg_victim set v = 'p' where id = %s", (1,))
            conn.execute("delete from wg_victim")  # denied at Parse inside the pipeline
            conn.execute("update wg_victim set v = 'q' where id = %s", (2,))
        assert conn.execute("select count(*) from wg_victim").fetchone() == (10,)
        assert conn.execute("select 7").fetchone() == (7,)


def test_asyncpg_prepared_denial(gateway: RunningGateway, agent: str, victim: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=gateway.pg_port,
            user="agent-007",
            password=agent,
            database="demo",
        )
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="denied by"):
                await conn.prepare("TRUNCATE wg_victim")
            assert await conn.fetchval("select count(*) from wg_victim") == 10
        finally:
            await conn.close()

    asyncio.run(go())
    assert count() == 10


def test_default_deny_at_connect(gateway: RunningGateway) -> None:
    tok = gateway.token("stranger", "contractors")
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(gateway.dsn("stranger", tok))
    msg = str(e.value)
    assert "contractors" in msg and "'demo'" in msg and "default-deny" in msg


# ------------------------------------------------------------------------------ approvals
class Held:
    """Runs a statement in a background session and collects notices and the outcome."""

    def __init__(self, gw: RunningGateway, user: str, token: str, sql: str) -> None:
        self.notices: list[str] = []
        self.error: BaseException | None = None
        self.result: Any = None
        self.conn = psycopg.connect(gw.dsn(user, token), autocommit=True)
        self.conn.add_notice_handler(lambda d: self.notices.append(d.message_primary))
        self.thread = threading.Thread(target=self._run, args=(sql,), daemon=True)
        self.thread.start()

    def _run(self, sql: str) -> None:
        try:
            cur = self.conn.execute(sql)
            self.result = cur.fetchall() if cur.description else cur.statusmessage
        except BaseException as e:
            self.error = e

    def request_id(self, within: float = 10) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for n in self.notices:
                if "apr_" in n:
                    return "apr_" + n.split("apr_", 1)[1][:6]
            time.sleep(0.05)
        raise AssertionError(f"no approval notice; notices={self.notices} error={self.error}")

    def join(self, timeout: float = 15) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "held statement never finished"


def test_two_identity_approval_flow_via_cli(gateway: RunningGateway, victim: str) -> None:
    eng = gateway.token("erin", "engineers")
    dba = gateway.token("dana", "dba")
    held = Held(gateway, "erin", eng, "DELETE FROM wg_victim")
    rid = held.request_id()
    time.sleep(0.5)
    assert held.thread.is_alive() and count() == 10  # waiting, nothing ran
    listed = json.loads(gateway.cli("approvals", "list", "--json").stdout)
    mine = next(r for r in listed if r["id"] == rid)
    assert mine["requester_name"] == "erin" and mine["approver_groups"] == ["dba"]
    assert (
        "write-unbounded" in mine["classes"] and mine["statement_text"] == "DELETE FROM wg_victim"
    )
    # The requester cannot approve their own request, even holding a valid token.
    r = gateway.cli(
        "approvals", "approve", rid, "--reason", "trust me", "--token", eng, check=False
    )
    assert r.returncode != 0 and "own" in r.stderr
    # Someone outside the approver group cannot either.
    other = gateway.token("oscar", "engineers")
    r = gateway.cli("approvals", "approve", rid, "--reason", "lgtm", "--token", other, check=False)
    assert r.returncode != 0
    assert held.thread.is_alive() and count() == 10
    gateway.cli("approvals", "approve", rid, "--reason", "cleanup ticket 812", "--token", dba)
    held.join()
    assert held.error is None, held.error
    assert held.result == "DELETE 10"
    assert count() == 0
    # The same statement again needs a new approval (scope: this one statement).
    direct("insert into wg_victim values (1, 'again')")
    again = Held(gateway, "erin", eng, "DELETE FROM wg_victim")
    rid2 = again.request_id()
    assert rid2 != rid and count() == 1
    gateway.cli("approvals", "deny", rid2, "--reason", "not twice", "--token", dba)
    again.join()
    assert isinstance(again.error, pgerr.InsufficientPrivilege)
    assert "not twice" in str(again.error) and "dana" in str(again.error)
    assert count() == 1
    again.conn.execute("select 1")  # the session is still usable
    held.conn.close()
    again.conn.close()


def test_approval_via_rest_api(gateway: RunningGateway, victim: str) -> None:
    eng = gateway.token("erin", "engineers")
    dba = gateway.token("dana", "dba")
    held = Held(gateway, "erin", eng, "DROP TABLE wg_victim")
    rid = held.request_id()
    hdr = {"Authorization": f"Bearer {eng}"}
    r = httpx.post(
        f"{gateway.api}/api/v1/approvals/{rid}/approve", json={"reason": "me"}, headers=hdr
    )
    assert r.status_code == 403 and table_exists("wg_victim")
    r = httpx.post(
        f"{gateway.api}/api/v1/approvals/{rid}/approve",
        json={"reason": "approved in change 9"},
        headers={"Authorization": f"Bearer {dba}"},
    )
    assert r.status_code == 200, r.text
    held.join()
    assert held.error is None and not table_exists("wg_victim")
    held.conn.close()


def test_disconnect_while_waiting_cancels_the_request(gateway: RunningGateway, victim: str) -> None:
    eng = gateway.token("erin", "engineers")
    dba = gateway.token("dana", "dba")
    held = Held(gateway, "erin", eng, "TRUNCATE wg_victim")
    rid = held.request_id()
    held.conn.pgconn.finish()  # the client goes away mid-wait
    deadline = time.monotonic() + 10
    status = ""
    while time.monotonic() < deadline:
        status = json.loads(gateway.cli("approvals", "show", rid).stdout)["status"]
        if status == "cancelled":
            break
        time.sleep(0.2)
    assert status == "cancelled"
    r = gateway.cli("approvals", "approve", rid, "--reason", "late", "--token", dba, check=False)
    assert r.returncode != 0
    time.sleep(0.5)
    assert count() == 10


def test_approval_timeout_denies(tmp_path: Path, target_db: str, victim: str) -> None:
    cfg = base_config(tmp_path, 0, 0, 0)
    cfg["policy"]["approvals"]["timeout_seconds"] = 2
    with start_gateway(tmp_path, cfg) as gw:
        eng = gw.token("erin", "engineers")
        held = Held(gw, "erin", eng, "DELETE FROM wg_victim")
        held.request_id()
        held.join(20)
        assert isinstance(held.error, pgerr.InsufficientPrivilege)
        assert "expired" in str(held.error) or "no decision" in str(held.error)
        assert count() == 10
        held.conn.close()
