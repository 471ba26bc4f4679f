"""End to end with Node's mysql2: text queries and ``.execute()`` prepared statements
(COM_STMT_PREPARE / EXECUTE / CLOSE with binary rows) through the real gateway.

Needs ``node`` and ``node_modules/mysql2`` in the repository root (``npm ci``; .ci/run does
it when package.json exists); skipped cleanly otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from gateway_harness import ROOT, RunningGateway

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("node") is None or not (ROOT / "node_modules" / "mysql2").is_dir(),
        reason="needs node and node_modules/mysql2 (run `npm ci` in the repository root)",
    ),
]

# Each script gets {port, user, token, table} as JSON in argv[2] and prints one JSON line.
PRELUDE = r"""
const mysql = require('mysql2/promise');
const args = JSON.parse(process.argv[2]);
const hex = (v) => Buffer.isBuffer(v) ? {hex: v.toString('hex')} : v;
const plain = (rows) => rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, hex(v)])));
const err = (e) => ({code: e.code, errno: e.errno, sqlState: e.sqlState, message: e.sqlMessage || e.message});
async function connect(extra = {}) {
  return mysql.createConnection({
    host: '127.0.0.1', port: args.port, user: args.user, password: args.token,
    database: 'demo_mysql', ssl: {rejectUnauthorized: false}, enableCleartextPlugin: true,
    dateStrings: true, supportBigNumbers: true, bigNumberStrings: true, ...extra,
  });
}
async function main() {
"""
POSTLUDE = r"""
}
main().then((out) => { console.log(JSON.stringify(out)); process.exit(0); })
      .catch((e) => { console.log(JSON.stringify({fatal: err(e)})); process.exit(1); });
"""


def run_node(tmp_path: Path, body: str, **args: Any) -> Any:
    script = tmp_path / f"t_{uuid.uuid4().hex[:8]}.js"
    script.write_text(PRELUDE + body + POSTLUDE)
    r = subprocess.run(
        ["node", str(script), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(ROOT / "node_modules")},
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"node printed nothing useful:\n{r.stdout}\n{r.stderr}"
    return json.loads(lines[-1])


def admin() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host="127.0.0.1", port=3306, user="root", database="test", autocommit=True
    )


@pytest.fixture
def typed_table() -> Iterator[str]:
    name = "wg_node_" + uuid.uuid4().hex[:10]
    with admin() as c, c.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {name} (id INT PRIMARY KEY, big BIGINT, neg SMALLINT, "
            "price DECIMAL(12,3), ratio DOUBLE, day DATE, at DATETIME(3), span TIME, "
            "name VARCHAR(40), data BLOB, maybe INT NULL)"
        )
    yield name
    with admin() as c, c.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")


def test_execute_binary_rows_round_trip(
    gateway: RunningGateway, typed_table: str, tmp_path: Path
) -> None:
    tok = gateway.token("node-dba", "dba")
    out = run_node(
        tmp_path,
        r"""
  const c = await connect();
  const t = args.table;
  const ins = `INSERT INTO ${t} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
  await c.execute(ins, [1, '9007199254740993', -32768, '12345.678', 0.25, '2024-02-29',
                        '2024-02-29 23:59:58.123', '-838:59:59', 'héllo', Buffer.from([0, 1, 254, 255]), null]);
  await c.execute(ins, [2, null, 7, '-0.001', -1e300, '1999-12-31', '2000-01-01 00:00:00.000',
                        '00:00:01', '', Buffer.alloc(0), 42]);
  const [rows, fields] = await c.execute(`SELECT * FROM ${t} WHERE id >= ? ORDER BY id`, [1]);
  const [again] = await c.execute(`SELECT * FROM ${t} WHERE id >= ? ORDER BY id`, [2]);  // cached statement
  const [text] = await c.query(`SELECT id, price, data FROM ${t} ORDER BY id`);
  c.unprepare(`SELECT * FROM ${t} WHERE id >= ? ORDER BY id`);                       // COM_STMT_CLOSE
  const [after] = await c.execute('SELECT ? AS x, ? AS y', [3, 'z']);
  await c.end();
  return {rows: plain(rows), again: plain(again), text: plain(text), after, types: fields.map((f) => f.columnType)};
""",
        port=gateway.mysql_port,
        user="node-dba",
        token=tok,
        table=typed_table,
    )
    assert "fatal" not in out, out
    first, second = out["rows"]
    assert first == {
        "id": 1,
        "big": "9007199254740993",
        "neg": -32768,
        "price": "12345.678",
        "ratio": 0.25,
        "day": "2024-02-29",
        "at": "2024-02-29 23:59:58.123",
        "span": "-838:59:59",
        "name": "héllo",
        "data": {"hex": "0001feff"},
        "maybe": None,
    }
    assert second["big"] is None and second["maybe"] == 42 and second["ratio"] == -1e300
    assert second["price"] == "-0.001" and second["data"] == {"hex": ""}
    assert second["span"] == "00:00:01"
    assert out["again"] == [second]
    assert out["text"][0] == {"id": 1, "price": "12345.678", "data": {"hex": "0001feff"}}
    assert out["after"] == [{"x": 3, "y": "z"}]
    with admin() as c, c.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {typed_table}")
        assert cur.fetchone() == (2,)


def test_denied_prepared_statement_never_reaches_the_target(
    gateway: RunningGateway, typed_table: str, tmp_path: Path
) -> None:
    with admin() as c, c.cursor() as cur:
        cur.execute(f"INSERT INTO {typed_table} (id, name) VALUES (1, 'keep')")
    tok = gateway.token("node-agent", "agents")
    out = run_node(
        tmp_path,
        r"""
  const c = await connect();
  const t = args.table;
  const res = {};
  for (const [key, sql] of [['delete', `DELETE FROM ${t}`], ['drop', `/*! DROP TABLE ${t} */`],
                            ['grant', "GRANT ALL ON *.* TO 'x'@'%'"]]) {
    try { await c.execute(sql); res[key] = 'ran'; } catch (e) { res[key] = err(e); }
  }
  const [rows] = await c.execute(`SELECT name FROM ${t} WHERE id = ?`, [1]);
  res.after = rows;
  await c.end();
  return res;
""",
        port=gateway.mysql_port,
        user="node-agent",
        token=tok,
        table=typed_table,
    )
    assert "fatal" not in out, out
    for key in ("delete", "drop"):
        assert out[key]["errno"] == 1142 and out[key]["sqlState"] == "42000", out
        assert out[key]["message"].startswith("wardgate: statement denied by")
    assert out["grant"]["errno"] == 1227
    assert out["after"] == [{"name": "keep"}]
    with admin() as c, c.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {typed_table}")
        assert cur.fetchone() == (1,)


def test_mysql2_needs_the_cleartext_plugin_enabled(gateway: RunningGateway, tmp_path: Path) -> None:
    tok = gateway.token("node-dba", "dba")
    out = run_node(
        tmp_path,
        r"""
  try { const c = await connect({enableCleartextPlugin: false}); await c.end(); return {connected: true}; }
  catch (e) { return {error: err(e)}; }
""",
        port=gateway.mysql_port,
        user="node-dba",
        token=tok,
    )
    assert out["error"]["code"] == "MYSQL_CLEAR_PASSWORD_NOT_ENABLED", out
