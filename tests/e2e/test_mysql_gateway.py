"""End to end: real gateway process, real MariaDB, real clients (pymysql, mysqlclient, the
``mariadb`` CLI) and a raw client built on wardgate's own codec for the byte sequences
drivers never send (pipelined denials, MariaDB's "last prepared" statement id)."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

from gateway_harness import RunningGateway, base_config, free_port, start_gateway
from wardgate.proto.mysql import (
    Capability,
    ErrPacket,
    HandshakeResponse41,
    HandshakeV10,
    Packet,
    PacketFramer,
    encode_packet,
)

pytestmark = pytest.mark.e2e

TARGET = "demo_mysql"


# ------------------------------------------------------------------------------ helpers
def admin() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    """Straight to MariaDB, bypassing the gateway: the ground truth for table state."""
    return pymysql.connect(
        host="127.0.0.1", port=3306, user="root", database="test", autocommit=True
    )


@pytest.fixture
def table() -> Iterator[str]:
    name = "wg_" + uuid.uuid4().hex[:12]
    with admin() as c, c.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(40))")
        cur.execute(f"INSERT INTO {name} VALUES (1, 'one'), (2, 'two')")
    yield name
    with admin() as c, c.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")


def table_exists(name: str) -> bool:
    with admin() as c, c.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables "
            "WHERE table_schema = 'test' AND table_name = %s",
            (name,),
        )
        row = cur.fetchone()
        return bool(row and row[0])


def row_count(name: str) -> int:
    with admin() as c, c.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {name}")
        row = cur.fetchone()
        return int(row[0]) if row else -1


def tls_ctx(gw: RunningGateway | None = None) -> ssl.SSLContext:
    """Verified against the gateway's certificate when ``gw`` is given."""
    if gw is not None:
        ctx = ssl.create_default_context(cafile=str(gw.state_dir / "tls" / "gateway.crt"))
        return ctx
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(
    gw: RunningGateway, user: str, token: str, database: str | None = TARGET, **kw: Any
) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    kw.setdefault("ssl", tls_ctx())
    return pymysql.connect(
        host="127.0.0.1",
        port=gw.mysql_port,
        user=user,
        password=token,
        database=database,
        connect_timeout=10,
        autocommit=True,
        **kw,
    )


def query(conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def mariadb_cli(
    gw: RunningGateway, user: str, token: str, *args: str, database: str = TARGET
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "mariadb",
            "-h127.0.0.1",
            f"-P{gw.mysql_port}",
            f"-u{user}",
            f"--password={token}",
            f"-D{database}",
            "--batch",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def sessions(gw: RunningGateway) -> list[dict[str, Any]]:
    return list(json.loads(gw.cli("sessions", "list", "--json", "--limit", "500").stdout))


@pytest.fixture(scope="module")
def alice(gateway: RunningGateway) -> str:
    return gateway.token("alice", "dba")


@pytest.fixture(scope="module")
def agent(gateway: RunningGateway) -> str:
    return gateway.token("agent-7", "agents")


class HostileServer:
    """A fake MySQL server that answers every query by asking the client for a file
    (what a compromised server does to read files off the client)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.uploads: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        framer = PacketFramer()

        def read() -> Packet | None:
            while (p := framer.next_packet()) is None:
                data = conn.recv(65536)
                if not data:
                    return None
                framer.feed(data)
            return p

        caps = int(
            Capability.PROTOCOL_41
            | Capability.SECURE_CONNECTION
            | Capability.PLUGIN_AUTH
            | Capability.LOCAL_FILES
            | Capability.CONNECT_WITH_DB
            | Capability.TRANSACTIONS
            | Capability.LONG_PASSWORD
        )
        hello = HandshakeV10("8.0.99-hostile", 7, b"12345678901234567890", caps)
        with conn:
            conn.sendall(encode_packet(0, hello.encode()))
            if read() is None:
                return
            conn.sendall(encode_packet(2, b"\x00\x00\x00\x02\x00\x00\x00"))  # OK
            while (cmd := read()) is not None:
                if cmd.payload[0] == 0x01:  # COM_QUIT
                    return
                conn.sendall(encode_packet(1, b"\xfb/etc/passwd"))
                upload = b""
                while (p := read()) is not None and len(p.payload):
                    upload += bytes(p.payload)
                if p is None:
                    return
                self.uploads.append(upload)
                conn.sendall(encode_packet(p.seq + 1, b"\x00\x00\x00\x02\x00\x00\x00"))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def plain(
    tmp_path_factory: pytest.TempPathFactory, hostile: HostileServer
) -> Iterator[RunningGateway]:
    """A gateway that accepts tokens without TLS from loopback and allows LOAD DATA LOCAL,
    plus three targets that cannot work."""
    state = tmp_path_factory.mktemp("gw-mysql-plain")
    cfg = base_config(state, 0, 0, 0)
    cfg["mysql"] = {"allow_cleartext_without_tls": True, "allow_local_infile": True}
    cfg["targets"]["demo_down"] = {
        "kind": "mysql",
        "host": "127.0.0.1",
        "port": free_port(),
        "database": "test",
        "credential": {"username": "root", "password": ""},
        "connect_timeout": 3,
    }
    cfg["targets"]["demo_badcred"] = {
        "kind": "mysql",
        "host": "127.0.0.1",
        "port": 3306,
        "database": "test",
        "credential": {"username": "root", "password": "s3cret-held-by-wardgate"},
    }
    cfg["targets"]["demo_hostile"] = {
        "kind": "mysql",
        "host": "127.0.0.1",
        "port": hostile.port,
        "database": "test",
        "credential": {"username": "root", "password": ""},
        "tls": {"mode": "disable"},
    }
    cfg["targets"]["demo_tlsreq"] = {
        "kind": "mysql",
        "host": "127.0.0.1",
        "port": 3306,
        "database": "test",
        "credential": {"username": "root", "password": ""},
        "tls": {"mode": "require"},  # the local MariaDB has no TLS
    }
    with start_gateway(state, cfg) as gw:
        yield gw


# ------------------------------------------------------------------------------ identity
def test_pymysql_over_verified_tls(gateway: RunningGateway, alice: str) -> None:
    conn = connect(gateway, "alice", alice, ssl=tls_ctx(gateway))
    try:
        assert conn._sock.version().startswith("TLS")  # type: ignore[attr-defined]
        (row,) = query(conn, "SELECT 6*7, DATABASE(), CONNECTION_ID()")
        assert row[0] == 42 and row[1] == "test"
        # The greeting mirrors the target's version, but the connection id is the
        # gateway's own: KILL through the gateway takes that one.
        with admin() as direct:
            assert conn.get_server_info() == direct.get_server_info()
        assert conn.thread_id() != row[2]
    finally:
        conn.close()


def test_plaintext_login_is_refused_by_default(gateway: RunningGateway, alice: str) -> None:
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(gateway, "alice", alice, ssl=None, ssl_disabled=True)
    assert e.value.args[0] == 1045
    assert "only over TLS" in e.value.args[1]
    r = mariadb_cli(gateway, "alice", alice, "--skip-ssl", "-e", "SELECT 1")
    assert r.returncode != 0 and "ERROR 1045 (28000)" in r.stderr and "TLS" in r.stderr


def test_plaintext_login_when_the_config_allows_it(plain: RunningGateway) -> None:
    tok = plain.token("alice", "dba")
    conn = connect(plain, "alice", tok, ssl=None, ssl_disabled=True)
    try:
        assert conn._sock.__class__ is socket.socket  # type: ignore[attr-defined]
        assert query(conn, "SELECT 1") == [(1,)]
    finally:
        conn.close()
    r = mariadb_cli(plain, "alice", tok, "--skip-ssl", "-e", "SELECT 'plain'")
    assert r.returncode == 0, r.stderr
    assert "plain" in r.stdout


@pytest.mark.parametrize(
    "password",
    ["wg_000000000000_nope", "not-a-token", "", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."],
)
def test_bad_token_is_1045(gateway: RunningGateway, password: str) -> None:
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(gateway, "alice", password)
    code, msg = e.value.args
    assert code == 1045 and "Access denied for user 'alice'" in msg
    assert "nope" not in msg  # nothing about why the token failed


def test_bad_token_sqlstate_in_the_cli(gateway: RunningGateway) -> None:
    r = mariadb_cli(gateway, "alice", "wg_deadbeef0000_guess", "--ssl", "-e", "SELECT 1")
    assert r.returncode == 1
    assert "ERROR 1045 (28000)" in r.stderr and "deadbeef" not in r.stderr


def test_expired_token_and_another_identitys_token(gateway: RunningGateway, alice: str) -> None:
    short = gateway.token("shortlived-my", "dba", ttl="1s")
    time.sleep(1.5)
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(gateway, "shortlived-my", short)
    assert e.value.args[0] == 1045
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(gateway, "mallory", alice)
    assert e.value.args[0] == 1045


def test_unknown_target_names_the_choices(gateway: RunningGateway, alice: str) -> None:
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(gateway, "alice", alice, database="prod")
    code, msg = e.value.args
    assert code == 1049 and '"prod" does not exist' in msg and TARGET in msg
    assert "demo" not in msg.replace(TARGET, "")  # only MySQL targets are offered


def test_no_schema_picks_the_only_target_else_lists_them(
    gateway: RunningGateway, alice: str, plain: RunningGateway
) -> None:
    conn = connect(gateway, "alice", alice, database=None)  # one MySQL target: no ambiguity
    try:
        assert query(conn, "SELECT DATABASE()") == [("test",)]
    finally:
        conn.close()
    tok = plain.token("alice", "dba")  # several MySQL targets there
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(plain, "alice", tok, database=None, ssl=None, ssl_disabled=True)
    code, msg = e.value.args
    assert code == 1049 and "no schema was given" in msg
    assert "demo_down" in msg and TARGET in msg


def test_no_grant_is_1142_with_the_policy_reason(gateway: RunningGateway) -> None:
    tok = gateway.token("outsider", "contractors")
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(gateway, "outsider", tok)
    code, msg = e.value.args
    assert code == 1142 and msg.startswith("wardgate:") and "default-deny" in msg


def test_target_down_and_bad_upstream_credential(plain: RunningGateway) -> None:
    tok = plain.token("alice", "dba")
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(plain, "alice", tok, database="demo_down", ssl=None, ssl_disabled=True)
    code, msg = e.value.args
    assert code == 2003 and "demo_down" in msg and "could not reach" in msg
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(plain, "alice", tok, database="demo_badcred", ssl=None, ssl_disabled=True)
    code, msg = e.value.args
    assert code == 2003 and "could not authenticate to target 'demo_badcred'" in msg
    assert "s3cret" not in msg and "s3cret" not in plain.log()
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(plain, "alice", tok, database="demo_tlsreq", ssl=None, ssl_disabled=True)
    code, msg = e.value.args
    assert code == 2003 and "does not offer TLS" in msg and "'required'" in msg


# --------------------------------------------------------------------------- protocol
def test_multi_statements_and_multi_result_sets(
    gateway: RunningGateway, alice: str, table: str
) -> None:
    conn = connect(gateway, "alice", alice, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT id, v FROM {table} ORDER BY id; SELECT 'x', NULL; "
                f"UPDATE {table} SET v = 'uno' WHERE id = 1"
            )
            assert cur.fetchall() == ((1, "one"), (2, "two"))
            assert cur.nextset() and cur.fetchall() == (("x", None),)
            assert cur.nextset() and cur.rowcount == 1
            assert not cur.nextset()
            proc = f"p_{table}"
            cur.execute(
                f"CREATE PROCEDURE {proc}() BEGIN SELECT 1 AS a; SELECT 2 AS b, 3 AS c; END"
            )
            try:
                cur.execute(f"CALL {proc}()")
                assert cur.fetchall() == ((1,),)
                assert cur.nextset() and cur.fetchall() == ((2, 3),)
            finally:
                while cur.nextset():
                    pass
                cur.execute(f"DROP PROCEDURE {proc}")
        assert query(conn, f"SELECT v FROM {table} WHERE id = 1") == [("uno",)]
    finally:
        conn.close()


def test_large_result_streams(gateway: RunningGateway, alice: str) -> None:
    conn = connect(gateway, "alice", alice)
    try:
        rows = query(conn, "SELECT seq, REPEAT('x', 300) FROM seq_1_to_50000")
        assert len(rows) == 50000 and rows[-1][0] == 50000
        (big,) = query(conn, "SELECT REPEAT('y', 16777212)")  # a row >= 16 MiB-1: continued
        assert len(big[0]) == 16777212
    finally:
        conn.close()


def test_mysqlclient(gateway: RunningGateway, alice: str, table: str) -> None:
    MySQLdb = pytest.importorskip("MySQLdb")
    conn = MySQLdb.connect(
        host="127.0.0.1",
        port=gateway.mysql_port,
        user="alice",
        password=alice,
        database=TARGET,
        ssl_mode="REQUIRED",
    )
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT id, v FROM {table} WHERE id = %s", (2,))
        assert cur.fetchall() == ((2, "two"),)
        assert "MariaDB" in conn.get_server_info()
        cur.execute("SELECT CAST(1.50 AS DECIMAL(5,2)), DATE('2024-02-29'), NULL")
        import datetime
        import decimal

        assert cur.fetchall() == ((decimal.Decimal("1.50"), datetime.date(2024, 2, 29), None),)
    finally:
        conn.close()


def test_mysqlclient_change_user(gateway: RunningGateway) -> None:
    MySQLdb = pytest.importorskip("MySQLdb")
    first = gateway.token("switcher", "dba")
    second = gateway.token("switcher", "dba")
    conn = MySQLdb.connect(
        host="127.0.0.1",
        port=gateway.mysql_port,
        user="switcher",
        password=first,
        database=TARGET,
        ssl_mode="REQUIRED",
    )
    try:
        cur = conn.cursor()
        cur.execute("SET @mark = 1")
        # Same identity, fresh token: the session is reset (user variables gone).
        conn.change_user("switcher", second, TARGET)
        cur = conn.cursor()
        cur.execute("SELECT @mark, DATABASE()")
        assert cur.fetchall() == ((None, "test"),)
        # Another identity's token: refused, and the connection ends (as on a server).
        other = gateway.token("somebody-else", "dba")
        with pytest.raises(MySQLdb.OperationalError) as e:
            conn.change_user("somebody-else", other, TARGET)
        assert "cannot change who a session acts for" in str(e.value)
    finally:
        conn.close()


def test_mariadb_cli_over_tls(gateway: RunningGateway, alice: str, table: str) -> None:
    crt = str(gateway.state_dir / "tls" / "gateway.crt")
    r = mariadb_cli(
        gateway,
        "alice",
        alice,
        "--ssl",
        f"--ssl-ca={crt}",
        "--ssl-verify-server-cert",
        "-e",
        f"SELECT v FROM {table} ORDER BY id; SHOW SESSION STATUS LIKE 'Com_select'",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:3] == ["v", "one", "two"]
    r = mariadb_cli(gateway, "alice", alice, "--ssl", "-e", "\\s")
    assert r.returncode == 0, r.stderr
    assert "Cipher in use" in r.stdout or "SSL:" in r.stdout


# ------------------------------------------------------------------------------ policy
@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE {t}",
        "/*! DROP TABLE {t} */",
        "/*!50000 DROP TABLE {t} */",
        "SELECT 1; DROP TABLE {t}",
        "SELECT 1 # harmless\n; DROP TABLE `{t}`",
        "DELETE FROM {t}",
        "TRUNCATE {t}",
    ],
)
def test_agents_denied_statement_never_reaches_the_target(
    gateway: RunningGateway, agent: str, table: str, sql: str
) -> None:
    conn = connect(gateway, "agent-7", agent, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with pytest.raises(pymysql.err.OperationalError) as e:
            query(conn, sql.format(t=table))
        code, msg = e.value.args
        assert code == 1142
        assert msg.startswith("wardgate: statement denied by ") and "agent-demo" in msg
        assert table_exists(table) and row_count(table) == 2
        # The connection is still in sync and usable.
        assert query(conn, f"SELECT COUNT(*) FROM {table}") == [(2,)]
        assert query(conn, f"UPDATE {table} SET v = 'ok' WHERE id = 2") == []
    finally:
        conn.close()


def test_privilege_denial_is_1227(gateway: RunningGateway, agent: str) -> None:
    conn = connect(gateway, "agent-7", agent)
    try:
        with pytest.raises(pymysql.err.OperationalError) as e:
            query(conn, "GRANT ALL ON *.* TO 'agent'@'%'")
        assert e.value.args[0] == 1227
        assert query(conn, "SELECT 1") == [(1,)]
    finally:
        conn.close()


def test_use_of_another_schema_is_refused(gateway: RunningGateway, alice: str) -> None:
    conn = connect(gateway, "alice", alice)
    try:
        for sql in ("USE mysql", "USE `information_schema`", "/*!USE mysql*/"):
            with pytest.raises(pymysql.err.OperationalError) as e:
                query(conn, sql)
            code, msg = e.value.args
            assert code == 1044 and "target is chosen when you connect" in msg
        query(conn, "USE test")
        with pytest.raises(pymysql.err.OperationalError) as e:
            conn.select_db("mysql")  # COM_INIT_DB
        assert e.value.args[0] == 1044
        conn.select_db(TARGET)  # the name the client knows its schema by
        assert query(conn, "SELECT DATABASE()") == [("test",)]
    finally:
        conn.close()


def test_load_data_local_is_refused(
    gateway: RunningGateway, alice: str, agent: str, table: str, tmp_path: Path
) -> None:
    data = tmp_path / "rows.tsv"
    data.write_text("7\tseven\n")
    sql = f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE {table}"
    conn = connect(gateway, "alice", alice, local_infile=True)
    try:
        with pytest.raises(pymysql.err.OperationalError) as e:
            query(conn, sql)
        assert e.value.args[0] == 1148 and "mysql.allow_local_infile" in e.value.args[1]
        assert query(conn, "SELECT 1") == [(1,)]
    finally:
        conn.close()
    conn = connect(gateway, "agent-7", agent, local_infile=True)
    try:
        with pytest.raises(pymysql.err.OperationalError) as e:
            query(conn, sql)
        assert e.value.args[0] == 1142  # server-escape: policy stops it first
    finally:
        conn.close()
    assert row_count(table) == 2


def test_load_data_local_when_the_config_allows_it(
    plain: RunningGateway, table: str, tmp_path: Path
) -> None:
    data = tmp_path / "rows.tsv"
    data.write_text("7\tseven\n8\teight\n")
    conn = connect(plain, "alice", plain.token("alice", "dba"), local_infile=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE {table}")
            assert cur.rowcount == 2
        assert query(conn, f"SELECT v FROM {table} WHERE id = 8") == [("eight",)]
    finally:
        conn.close()
    assert row_count(table) == 4


def test_target_cannot_read_client_files_unasked(
    plain: RunningGateway, hostile: HostileServer
) -> None:
    # PyMySQL's first statement (SET NAMES) already meets the hostile file request.
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(
            plain, "alice", plain.token("alice", "dba"), database="demo_hostile", local_infile=True
        )
    code, msg = e.value.args
    assert code == 1148 and "asked to read a file from the client, refused" in msg
    deadline = time.monotonic() + 5  # the fake server records the upload in its own thread
    while not hostile.uploads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hostile.uploads == [b""]  # the target got an empty file, not /etc/passwd


# -------------------------------------------------------------------------------- KILL
def test_kill_query_from_a_second_connection(gateway: RunningGateway, agent: str) -> None:
    victim = connect(gateway, "agent-7", agent, read_timeout=60)
    killer = connect(gateway, "agent-7", gateway.token("agent-7", "agents"))
    result: dict[str, Any] = {}

    def run() -> None:
        t0 = time.monotonic()
        try:
            result["rows"] = query(victim, "SELECT SLEEP(30)")
        except Exception as e:
            result["error"] = e
        result["elapsed"] = time.monotonic() - t0

    try:
        th = threading.Thread(target=run)
        th.start()
        time.sleep(1.0)
        assert query(killer, f"KILL QUERY {victim.thread_id()}") == []
        th.join(15)
        assert not th.is_alive()
        assert result["elapsed"] < 10, result
        # MariaDB answers an interrupted SLEEP() with 1 (or an "interrupted" error).
        assert result.get("rows") == [(1,)] or "interrupted" in str(result.get("error"))
        assert query(victim, "SELECT 'still here'") == [("still here",)]
        # KILL <id> (CONNECTION) ends the victim's target connection, and so its session.
        assert query(killer, f"KILL {victim.thread_id()}") == []
        time.sleep(0.5)
        with pytest.raises(pymysql.err.OperationalError) as e:
            query(victim, "SELECT 1")
        assert e.value.args[0] in (1927, 2013), e.value.args
        assert query(killer, "SELECT 'killer unaffected'") == [("killer unaffected",)]
    finally:
        victim.close()
        killer.close()


def test_kill_of_a_connection_that_is_not_yours_is_refused(
    gateway: RunningGateway, alice: str, agent: str
) -> None:
    theirs = connect(gateway, "alice", alice)
    mine = connect(gateway, "agent-7", agent)
    try:
        for sql in (f"KILL QUERY {theirs.thread_id()}", "KILL 1", f"KILL {theirs.thread_id()}"):
            with pytest.raises(pymysql.err.OperationalError) as e:
                query(mine, sql)
            assert e.value.args[0] == 1094
        assert query(theirs, "SELECT 1") == [(1,)]
        with pytest.raises(pymysql.err.OperationalError) as e:
            query(mine, "KILL USER root")
        assert e.value.args[0] in (1094, 1142)
    finally:
        theirs.close()
        mine.close()


# -------------------------------------------------------------------------- bookkeeping
def test_session_is_bookkept_as_mysql(gateway: RunningGateway) -> None:
    tok = gateway.token("ledger-my", "dba", "auditors")
    conn = connect(gateway, "ledger-my", tok)
    for _ in range(3):
        query(conn, "SELECT 1")
    conn.close()
    time.sleep(1.0)
    mine = [r for r in sessions(gateway) if r["principal"] == "ledger-my"]
    assert mine
    r = mine[0]
    assert r["protocol"] == "mysql" and r["target"] == TARGET
    assert r["groups"] == ["auditors", "dba"] and r["token_id"] == tok.split("_")[1]
    assert r["statements"] >= 3 and r["bytes_from_client"] > 0 and r["bytes_to_client"] > 0
    assert r["ended_at"] and r["end_reason"] == "client_terminate"


def test_admin_kill_ends_a_mysql_session(gateway: RunningGateway) -> None:
    tok = gateway.token("victim-my", "dba")
    conn = connect(gateway, "victim-my", tok)
    try:
        query(conn, "SELECT 1")
        time.sleep(0.3)
        live = [r for r in sessions(gateway) if r["principal"] == "victim-my" and not r["ended_at"]]
        gateway.cli("sessions", "kill", live[0]["id"], "--reason", "incident 7")
        deadline = time.monotonic() + 6
        err: Exception | None = None
        while time.monotonic() < deadline and err is None:
            try:
                query(conn, "SELECT 1")
                time.sleep(0.2)
            except pymysql.err.MySQLError as e:
                err = e
        assert err is not None and "incident 7" in str(err)
    finally:
        conn.close()


# --------------------------------------------------------------------- raw protocol
class RawMySql:
    """A minimal plaintext client on wardgate's codec, for what drivers never send."""

    CAPS = (
        Capability.PROTOCOL_41
        | Capability.SECURE_CONNECTION
        | Capability.PLUGIN_AUTH
        | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
        | Capability.CONNECT_WITH_DB
        | Capability.MULTI_RESULTS
        | Capability.TRANSACTIONS
        | Capability.MULTI_STATEMENTS
        | Capability.SESSION_TRACK
        | Capability.LONG_PASSWORD
    )

    def __init__(self, port: int, user: str, token: str, database: str = TARGET) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.framer = PacketFramer()
        self.hello = HandshakeV10.parse(self.read().payload)
        resp = HandshakeResponse41(
            self.CAPS, user, token.encode() + b"\x00", database, "mysql_clear_password"
        )
        self.sock.sendall(encode_packet(1, resp.encode()))
        ok = self.read()
        assert ok.payload[0] == 0, bytes(ok.payload)

    def read(self) -> Packet:
        while (p := self.framer.next_packet()) is None:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.framer.feed(data)
        return p

    def send(self, *payloads: bytes) -> None:
        self.sock.sendall(b"".join(encode_packet(0, p) for p in payloads))

    def until_end(self) -> list[Packet]:
        """Packets of one text result / OK / ERR (classic EOF framing)."""
        first = self.read()
        out = [first]
        if first.payload[0] in (0x00, 0xFF):
            return out
        eofs = 0
        while True:
            p = self.read()
            out.append(p)
            if p.payload[0] == 0xFF:
                return out
            if p.payload[0] == 0xFE and len(p.payload) < 9:
                eofs += 1
                if eofs == 2:
                    return out

    def close(self) -> None:
        self.sock.close()


def _err(p: Packet) -> ErrPacket:
    assert p.payload[0] == 0xFF, bytes(p.payload)
    return ErrPacket.parse(p.payload)


def test_denied_prepare_then_execute_last_prepared(plain: RunningGateway, table: str) -> None:
    """MariaDB runs "the statement prepared last" for id 0xFFFFFFFF: after a denied
    PREPARE that would be the previous one, so the gateway must refuse the EXECUTE too."""
    raw = RawMySql(plain.mysql_port, "agent-raw", plain.token("agent-raw", "agents"))
    try:
        raw.send(b"\x16" + f"SELECT COUNT(*) FROM {table}".encode())
        ok = raw.read()
        assert ok.payload[0] == 0 and ok.seq == 1
        while raw.read().payload[0] != 0xFE:  # column definitions, then EOF/OK
            pass
        execute_last = b"\x17" + b"\xff\xff\xff\xff" + b"\x00" + (1).to_bytes(4, "little")
        raw.send(b"\x16" + f"DELETE FROM {table}".encode(), execute_last)
        denied, refused = raw.read(), raw.read()
        assert denied.seq == 1 and _err(denied).code == 1142
        assert refused.seq == 1 and _err(refused).code == 1243
        assert row_count(table) == 2
        raw.send(b"\x03SELECT 'in sync'")
        assert b"in sync" in b"".join(bytes(p.payload) for p in raw.until_end())
    finally:
        raw.close()


def test_pipelined_denial_is_answered_in_order(plain: RunningGateway, table: str) -> None:
    raw = RawMySql(plain.mysql_port, "agent-raw", plain.token("agent-raw", "agents"))
    try:
        raw.send(
            b"\x03SELECT SLEEP(0.3), 'first'",
            f"\x03DROP TABLE {table}".encode(),
            b"\x03SELECT 'third'",
        )
        first = raw.until_end()
        assert b"first" in b"".join(bytes(p.payload) for p in first)
        assert _err(raw.read()).code == 1142
        assert b"third" in b"".join(bytes(p.payload) for p in raw.until_end())
        assert table_exists(table)
    finally:
        raw.close()


def test_commands_wardgate_does_not_relay(plain: RunningGateway) -> None:
    raw = RawMySql(plain.mysql_port, "alice", plain.token("alice", "dba"))
    try:
        raw.send(b"\x12" + bytes(10))  # COM_BINLOG_DUMP
        err = _err(raw.read())
        assert err.code == 1047 and "COM_BINLOG_DUMP" in err.message
        raw.send(b"\x06test")  # COM_DROP_DB
        assert "DROP DATABASE" in _err(raw.read()).message
        raw.send(b"\x0e")  # COM_PING still works
        assert raw.read().payload[0] == 0
    finally:
        raw.close()


def test_field_list_is_judged_as_a_read(plain: RunningGateway, table: str) -> None:
    raw = RawMySql(plain.mysql_port, "agent-raw", plain.token("agent-raw", "agents"))
    try:
        raw.send(b"\x04" + table.encode() + b"\x00")  # COM_FIELD_LIST
        names = []
        while (p := raw.read()).payload[0] != 0xFE:
            names.append(bytes(p.payload))
        assert len(names) == 2 and b"id" in names[0] and b"v" in names[1]
        raw.send(b"\x04" + b"no_such_table_here\x00")
        assert _err(raw.read()).code == 1146  # the server's own answer: it was forwarded
    finally:
        raw.close()


def test_out_of_order_command_closes_only_that_connection(plain: RunningGateway) -> None:
    tok = plain.token("alice", "dba")
    raw = RawMySql(plain.mysql_port, "alice", tok)
    try:
        raw.sock.sendall(encode_packet(5, b"\x03SELECT 1"))
        err = _err(raw.read())
        assert err.code == 1156
        with pytest.raises((ConnectionError, OSError)):
            raw.read()
    finally:
        raw.close()
    other = RawMySql(plain.mysql_port, "alice", tok)
    other.send(b"\x0e")
    assert other.read().payload[0] == 0
    other.close()


def test_a_port_probe_is_not_an_error(gateway: RunningGateway, alice: str) -> None:
    # Health checks and port scanners connect and leave before the greeting; that must be
    # an ordinary client_eof, not a traceback in the log, and the listener keeps serving.
    seen = len(gateway.log())
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", gateway.mysql_port)):
            pass
    time.sleep(0.5)
    assert "Traceback" not in gateway.log()[seen:]
    conn = connect(gateway, "alice", alice, ssl=tls_ctx(gateway))
    try:
        assert query(conn, "SELECT 6*7")[0][0] == 42
    finally:
        conn.close()
