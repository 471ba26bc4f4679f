"""MySQL recording and masking through the real gateway and the real MariaDB: agents see
masked values (text protocol via pymysql, binary rows via Node mysql2 ``.execute()``), the
dba group sees clear text, rows with nothing sensitive are identical, and the session's
recording holds the statements, the denial and only masked values, and verifies."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from gateway_harness import ROOT, RunningGateway

pytestmark = pytest.mark.e2e

TARGET = "demo_mysql"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
SSN = "123-45-6789"
BOB_EMAIL = "bob@example.org"
BOB_CARD = "5555-5555-5555-4444"
BIG_CARD = 4111111111111111
SECRETS = (EMAIL, CARD, SSN, BOB_EMAIL, BOB_CARD, "987-65-4321", "4111111111111111")

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "mysql2").is_dir(),
    reason="needs node and node_modules/mysql2 (npm ci in the repository root)",
)


def admin() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host="127.0.0.1", port=3306, user="root", database="test", autocommit=True
    )


@pytest.fixture(scope="module")
def tables() -> Iterator[tuple[str, str]]:
    people = "wg_mask_" + uuid.uuid4().hex[:10]
    plain = "wg_plain_" + uuid.uuid4().hex[:10]
    with admin() as c, c.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {people} (id INT PRIMARY KEY, name VARCHAR(40), email VARCHAR(80), "
            "card_number VARCHAR(40), ssn VARCHAR(20), note TEXT, order_no VARCHAR(40), "
            "big_card BIGINT, small INT, born DATE, ratio DOUBLE)"
        )
        cur.execute(
            f"INSERT INTO {people} VALUES "
            "(1, 'Jane', %s, %s, %s, %s, '1234567812345678', %s, 7, '1990-05-06', 0.5), "
            "(2, 'Bob', %s, %s, '987-65-4321', 'order 4111-1111-1111-1112 shipped', "
            "'2024-01-02T03:04:05Z', 42, -3, NULL, NULL)",
            (EMAIL, CARD, SSN, f"reach me at {EMAIL}", BIG_CARD, BOB_EMAIL, BOB_CARD),
        )
        cur.execute(
            f"CREATE TABLE {plain} (id INT PRIMARY KEY, label VARCHAR(60), v DECIMAL(10,2), "
            "n BIGINT, at DATETIME)"
        )
        cur.executemany(
            f"INSERT INTO {plain} VALUES (%s, %s, %s, %s, '2024-02-29 12:00:00')",
            [(i, f"item {i} v1.2.3.{i}", i * 1.5, i * 1000) for i in range(1, 201)],
        )
    yield people, plain
    with admin() as c, c.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {people}")
        cur.execute(f"DROP TABLE IF EXISTS {plain}")


def connect(gw: RunningGateway, user: str, *groups: str) -> Any:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return pymysql.connect(
        host="127.0.0.1",
        port=gw.mysql_port,
        user=user,
        password=gw.token(user, *groups),
        database=TARGET,
        connect_timeout=10,
        autocommit=True,
        ssl=ctx,
    )


def text_rows(gw: RunningGateway, user: str, group: str, sql: str) -> list[tuple[Any, ...]]:
    with connect(gw, user, group) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


NODE = r"""
const mysql = require('mysql2/promise');
const a = JSON.parse(process.argv[2]);
async function main() {
  const c = await mysql.createConnection({
    host: '127.0.0.1', port: a.port, user: a.user, password: a.token, database: 'demo_mysql',
    ssl: {rejectUnauthorized: false}, enableCleartextPlugin: true, dateStrings: true,
    supportBigNumbers: true, bigNumberStrings: true,
  });
  const out = [];
  for (const [sql, params] of a.queries) {
    const [rows] = await c.execute(sql, params);
    out.push(rows.map((r) => Object.values(r).map((v) => v === null ? null : String(v))));
  }
  await c.end();
  return out;
}
// exit only once stdout is flushed: a pipe takes 64 KiB before node would cut it short
main().then((o) => { process.stdout.write(JSON.stringify({ok: o}) + '\n', () => process.exit(0)); })
      .catch((e) => { console.log(JSON.stringify({fatal: String(e.sqlMessage || e)})); process.exit(1); });
"""


def binary_rows(
    gw: RunningGateway, tmp_path: Path, user: str, group: str, *queries: tuple[str, list[Any]]
) -> list[list[list[str | None]]]:
    script = tmp_path / f"q_{uuid.uuid4().hex[:8]}.js"
    script.write_text(NODE)
    args = {
        "port": gw.mysql_port,
        "user": user,
        "token": gw.token(user, group),
        "queries": [list(q) for q in queries],
    }
    r = subprocess.run(
        ["node", str(script), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(ROOT / "node_modules")},
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, r.stdout + r.stderr
    out = json.loads(lines[-1])
    assert "ok" in out, out
    return list(out["ok"])


def assert_masked(rows: Any) -> None:
    flat = json.dumps(rows, default=str)
    for secret in SECRETS:
        assert secret not in flat, secret


def session_of(gw: RunningGateway, who: str) -> str:
    rows = json.loads(gw.cli("sessions", "list", "--json").stdout)
    return str(next(r["id"] for r in rows if r["principal"] == who))


def wait_sealed(gw: RunningGateway, sid: str, within: float = 10) -> str:
    deadline = time.monotonic() + within
    status = ""
    while time.monotonic() < deadline:
        with sqlite3.connect(gw.state_dir / "state.db") as c:
            row = c.execute("select status from rec_sessions where id = ?", (sid,)).fetchone()
        status = row[0] if row else ""
        if status and status != "open":
            return status
        time.sleep(0.1)
    return status


# ---------------------------------------------------------------------------- masking
def test_text_protocol_agents_masked_dba_clear(
    gateway: RunningGateway, tables: tuple[str, str]
) -> None:
    people, _ = tables
    sql = (
        "SELECT id, name, email, card_number, ssn, note, order_no, big_card, small, born, ratio "
        f"FROM {people} ORDER BY id"
    )
    clear = text_rows(gateway, "my-dba", "dba", sql)
    masked = text_rows(gateway, "my-agent", "agents", sql)
    assert clear[0][2] == EMAIL and clear[0][3] == CARD and clear[0][4] == SSN
    assert clear[0][7] == BIG_CARD
    assert_masked(masked)
    j, b = masked
    assert j[1] == "Jane" and b[1] == "Bob"  # not sensitive
    assert j[2] != EMAIL and "@" in j[2]  # pseudonym, still an address
    assert j[3].endswith("1111") and j[4] != SSN  # card last4; ssn by column rule
    assert EMAIL not in j[5] and j[5].startswith("reach me at ")
    assert j[6] == "1234567812345678"  # 16 digits failing Luhn: a decoy, left alone
    assert b[5] == "order 4111-1111-1111-1112 shipped"  # fails Luhn: left alone
    assert b[6] == "2024-01-02T03:04:05Z"
    assert isinstance(j[7], int) and j[7] != BIG_CARD and str(j[7]).endswith("1111")
    assert b[7] == 42 and j[8] == 7 and b[8] == -3
    assert (j[9], j[10], b[9], b[10]) == (clear[0][9], clear[0][10], None, None)
    # an alias does not hide a column rule; an expression is still scanned
    aliased = text_rows(
        gateway, "my-agent", "agents", f"SELECT ssn AS x, upper(email) AS e FROM {people}"
    )
    assert_masked(aliased)
    assert all(r[0] != SSN and EMAIL.upper() not in r[1] for r in aliased)


def test_rows_without_sensitive_data_are_identical(
    gateway: RunningGateway, tables: tuple[str, str], tmp_path: Path
) -> None:
    _, plain = tables
    sql = f"SELECT * FROM {plain} ORDER BY id"
    agent = text_rows(gateway, "my-agent", "agents", sql)
    assert len(agent) == 200 and agent == text_rows(gateway, "my-dba", "dba", sql)
    if shutil.which("node") is not None and (ROOT / "node_modules" / "mysql2").is_dir():
        q = (f"SELECT * FROM {plain} WHERE id >= ? ORDER BY id", [1])
        a = binary_rows(gateway, tmp_path, "my-agent", "agents", q)
        assert a == binary_rows(gateway, tmp_path, "my-dba", "dba", q) and len(a[0]) == 200


@needs_node
def test_binary_protocol_agents_masked_dba_clear(
    gateway: RunningGateway, tables: tuple[str, str], tmp_path: Path
) -> None:
    people, _ = tables
    q = (
        "SELECT id, name, email, card_number, ssn, note, order_no, big_card, small, born, ratio "
        f"FROM {people} WHERE id >= ? ORDER BY id",
        [1],
    )
    (clear,) = binary_rows(gateway, tmp_path, "my-dba", "dba", q)
    (masked,) = binary_rows(gateway, tmp_path, "my-agent", "agents", q)
    assert clear[0][2] == EMAIL and clear[0][3] == CARD and clear[0][7] == str(BIG_CARD)
    assert_masked(masked)
    j, b = masked
    assert j[1] == "Jane" and b[1] == "Bob"
    assert j[3] is not None and j[3].endswith("1111") and j[4] != SSN
    assert j[6] == "1234567812345678" and b[5] == "order 4111-1111-1111-1112 shipped"
    # the BIGINT card is still a valid BIGINT: last4 as an integer
    assert j[7] == "1111" and b[7] == "42"
    assert (j[8], b[8]) == ("7", "-3") and j[9] == clear[0][9] and j[10] == clear[0][10]
    assert (b[9], b[10]) == (None, None)


# -------------------------------------------------------------------------- recording
def test_agent_session_is_recorded_masked_with_its_denial(
    gateway: RunningGateway, tables: tuple[str, str], tmp_path: Path
) -> None:
    people, plain = tables
    who = "my-rec-" + uuid.uuid4().hex[:6]
    with connect(gateway, who, "agents") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, email, card_number, ssn, big_card FROM {people} ORDER BY id")
        seen = cur.fetchall()
        with pytest.raises(pymysql.err.MySQLError) as denied:
            cur.execute(f"DROP TABLE {people}")
        cur.execute("SELECT 6 * 7 AS answer")
        assert cur.fetchone() == (42,)
        with pytest.raises(pymysql.err.MySQLError) as failed:
            cur.execute("SELECT * FROM wg_no_such_table_here")
        cur.execute(f"UPDATE {plain} SET n = n + 1 WHERE id <= 3")
    assert "denied" in str(denied.value)
    assert failed.value.args[0] == 1146
    assert_masked(seen)
    sid = session_of(gateway, who)
    assert wait_sealed(gateway, sid) == "sealed"
    show = gateway.cli("sessions", "show", sid).stdout
    assert f"SELECT id, email, card_number, ssn, big_card FROM {people}" in show
    assert f"DROP TABLE {people}" in show and "deny" in show and "role:agent-demo" in show
    assert "SELECT 6 * 7 AS answer" in show and "42" in show
    assert "42S02" in show  # the failed statement, with its SQLSTATE
    for secret in SECRETS:
        assert secret not in show, secret
    assert str(seen[0][2]) in show  # the masked card, exactly as the client saw it
    events = [
        json.loads(x) for x in gateway.cli("sessions", "replay", sid, "--jsonl").stdout.splitlines()
    ]
    assert events[0]["type"] == "session.start" and events[-1]["type"] == "session.end"
    dump = json.dumps(events)
    for secret in SECRETS:
        assert secret not in dump, secret
    assert '"mysql"' in dump
    stmts = [e for e in events if e["type"] == "statement"]
    update = next(e for e in stmts if "UPDATE" in e["payload"]["text"])
    assert update["payload"]["rows"] == 3  # rows affected
    select = next(e for e in stmts if "big_card FROM" in e["payload"]["text"])
    assert select["payload"]["rows"] == 2 and select["payload"]["path"] == "simple"
    drop = next(e for e in stmts if "DROP TABLE" in e["payload"]["text"])
    assert drop["payload"]["error_sqlstate"] == "42000"
    verify = gateway.cli("audit", "verify", sid, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


@needs_node
def test_prepared_executions_are_recorded_with_params(
    gateway: RunningGateway, tables: tuple[str, str], tmp_path: Path
) -> None:
    people, _ = tables
    who = "my-prep-" + uuid.uuid4().hex[:6]
    (rows,) = binary_rows(
        gateway,
        tmp_path,
        who,
        "agents",
        (f"SELECT id, email, big_card FROM {people} WHERE name = ?", ["Jane"]),
    )
    assert rows and rows[0][0] == "1"
    assert_masked(rows)
    sid = session_of(gateway, who)
    assert wait_sealed(gateway, sid) == "sealed"
    events = [
        json.loads(x) for x in gateway.cli("sessions", "replay", sid, "--jsonl").stdout.splitlines()
    ]
    dump = json.dumps(events)
    for secret in SECRETS:
        assert secret not in dump, secret
    stmt = next(e for e in events if e["type"] == "statement" and "WHERE name = ?" in json.dumps(e))
    text = json.dumps(stmt)
    assert "extended" in text and "Jane" in text
    # One event per allowed statement: its decision and results ride inside it.
    assert stmt["payload"]["decision"]["verdict"] == "allow"
    result = stmt["payload"]["results"][0]
    assert "1111" in json.dumps(result)
    assert not [e for e in events if e["type"] in ("result", "decision")]
    verify = gateway.cli("audit", "verify", sid, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_long_results_past_the_recording_capture_stay_masked_and_counted(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    """Past the recording's 1,000-row capture, rows go by in the compiled row walk (or,
    within a chunk, as counted rows) unless the masking gate cannot rule them out. Sensitive
    values scattered far past the capture must still be masked, clean rows identical, and
    the recording must count every row -- over both protocols, many socket reads long."""
    table = "wg_long_" + uuid.uuid4().hex[:10]
    n = 6000
    with admin() as c, c.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, note VARCHAR(120))")
        cur.executemany(
            f"INSERT INTO {table} VALUES (%s, %s)",
            [
                (i, f"mail {EMAIL} row {i}" if i % 389 == 0 else f"plain text row {i} v1.{i}")
                for i in range(1, n + 1)
            ],
        )
    try:
        sql = f"SELECT id, note FROM {table} ORDER BY id"
        who = "my-long-" + uuid.uuid4().hex[:6]
        clear = text_rows(gateway, "my-dba", "dba", sql)
        masked = text_rows(gateway, who, "agents", sql)
        assert len(masked) == len(clear) == n
        assert_masked(masked)
        for got, want in zip(masked, clear, strict=True):
            if EMAIL in want[1]:
                assert got[0] == want[0] and got[1].startswith("mail ") and "@" in got[1]
                assert got[1] != want[1]
            else:
                assert got == want
        if shutil.which("node") is not None and (ROOT / "node_modules" / "mysql2").is_dir():
            q = (f"SELECT id, note FROM {table} WHERE id >= ? ORDER BY id", [1])
            (bmasked,) = binary_rows(gateway, tmp_path, who, "agents", q)
            assert len(bmasked) == n
            assert_masked(bmasked)
            assert [r[1] for r in bmasked] == [r[1] for r in masked]
        sid = session_of(gateway, who)
        # the session is still open for the node client; the pymysql one has ended
        sessions = json.loads(gateway.cli("sessions", "list", "--json").stdout)
        sids = [r["id"] for r in sessions if r["principal"] == who]
        for s in sids:
            assert wait_sealed(gateway, s) == "sealed"
        for s in sids:
            events = [
                json.loads(x)
                for x in gateway.cli("sessions", "replay", s, "--jsonl").stdout.splitlines()
            ]
            assert EMAIL not in json.dumps(events)
            stmt = next(e for e in events if e["type"] == "statement" and table in json.dumps(e))
            assert stmt["payload"]["rows"] == n
            result = stmt["payload"]["results"][0]
            assert result["total_rows"] == n and result["truncated"] is True
            assert len(result["rows"]) == 1000
            # kept exactly as the client saw them, text rows and binary rows alike
            assert result["rows"] == [[str(i), note] for i, note in masked[:1000]]
        assert sid in sids
    finally:
        with admin() as c, c.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
