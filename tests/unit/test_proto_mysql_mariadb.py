"""The codec against the real MariaDB 10.11 on 127.0.0.1:3306 — no client library involved.

Two kinds of test:

* ``CodecClient`` logs in and runs commands using only ``wardgate.proto.mysql`` over a
  plain socket: root without a password, a ``mysql_native_password`` user and an
  ``ed25519`` user (created with pymysql, dropped afterwards), text and binary results,
  cursors, multi-results, LOAD DATA LOCAL.
* ``CodecProxy`` is a throw-away threaded relay built from the codec (DownstreamLogin
  toward the client, UpstreamLogin toward MariaDB, ResultSetTracker delimiting every
  response); real clients — pymysql and the ``mariadb`` CLI, with and without TLS — go
  through it, so a mis-delimited response would hang or desynchronise them.

Skipped (with the reason) when no MariaDB listens on 127.0.0.1:3306.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pymysql  # type: ignore[import-untyped,unused-ignore]
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wardgate.proto.mysql import (
    CODEC_CAPABILITIES,
    Capability,
    Command,
    CredentialsPresented,
    CursorType,
    DateTimeValue,
    DownstreamLogin,
    FieldType,
    HandshakeV10,
    LoginRefused,
    LoginRejected,
    LoginSucceeded,
    Packet,
    PacketFramer,
    Query,
    ResponseKind,
    ResultSetTracker,
    Send,
    StartTls,
    StatementCommand,
    StmtExecute,
    StmtFetch,
    StmtPrepare,
    TimeValue,
    UpstreamLogin,
    ValueType,
    access_denied,
    encode_packet,
    encode_text_row,
    expects_response,
    parse_binary_row,
    parse_text_row,
)
from wardgate.proto.mysql.login import UPSTREAM_CAPABILITIES

HOST, PORT = "127.0.0.1", 3306
K = ResponseKind


def _mariadb_up() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=2):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _mariadb_up(), reason="no MariaDB on 127.0.0.1:3306 (.ci/run starts it)"
)


def recv_packet(sock: socket.socket, framer: PacketFramer) -> Packet:
    while True:
        packet = framer.next_packet()
        if packet is not None:
            return packet
        data = sock.recv(65536)
        if not data:
            raise EOFError("peer closed the connection")
        framer.feed(data)


def recv_packet_exact(sock: socket.socket) -> Packet:
    """Read exactly one packet, never past it (TLS may start right after)."""

    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("peer closed the connection")
            buf += chunk
        return buf

    head = exact(4)
    framer = PacketFramer()
    framer.feed(head + exact(int.from_bytes(head[:3], "little")))
    packet = framer.next_packet()
    assert packet is not None
    return packet


class CodecClient:
    """A MySQL client made of nothing but the codec."""

    def __init__(self, login: UpstreamLogin) -> None:
        self.sock = socket.create_connection((HOST, PORT), timeout=10)
        self.framer = PacketFramer()
        self.login = login
        step: object = None
        while True:
            step = login.receive(recv_packet(self.sock, self.framer))
            if isinstance(step, Send):
                self.sock.sendall(step.data)
            elif step is None:
                continue
            else:
                break
        self.outcome = step
        self.tracker: ResultSetTracker | None = None
        if isinstance(step, LoginSucceeded):
            self.tracker = ResultSetTracker(step.capabilities)

    def run(self, payload: bytes, infile: bytes | None = None) -> list[tuple[ResponseKind, bytes]]:
        """Send one command; return every server packet's kind and payload. Rows are decoded
        as they arrive (into ``last_rows``), with the column definitions of their result."""
        tracker = self.tracker
        assert tracker is not None
        command = Packet.of(0, payload)
        tracker.start(command)
        self.sock.sendall(bytes(command.wire))
        out: list[tuple[ResponseKind, bytes]] = []
        self.last_rows: list[list[object]] = []
        while not tracker.idle:
            packet = recv_packet(self.sock, self.framer)
            kind = tracker.feed(packet)
            out.append((kind, bytes(packet.payload)))
            if kind is K.ROW:
                if tracker.binary_rows:
                    self.last_rows.append(list(parse_binary_row(packet.payload,
                                                                tracker.columns)))
                else:
                    self.last_rows.append(list(parse_text_row(packet.payload,
                                                              len(tracker.columns))))
            if tracker.awaiting_client:
                seq = packet.next_seq
                for chunk in ([infile] if infile else []) + [b""]:
                    data = Packet.of(seq, chunk)
                    tracker.feed_client(data)
                    self.sock.sendall(bytes(data.wire))
                    seq = data.next_seq
        return out

    def rows(self, payload: bytes) -> list[list[object]]:
        self.run(payload)
        return self.last_rows

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(bytes(Packet.of(0, bytes((Command.QUIT,))).wire))
        self.sock.close()


@pytest.fixture
def root() -> Iterator[CodecClient]:
    client = CodecClient(UpstreamLogin(username="root", password=b"", database="test"))
    assert isinstance(client.outcome, LoginSucceeded), client.outcome
    yield client
    client.close()


def _admin() -> pymysql.connections.Connection:  # type: ignore[type-arg,unused-ignore]
    return pymysql.connect(host=HOST, port=PORT, user="root", password="", autocommit=True)


@pytest.fixture(scope="module")
def accounts() -> Iterator[dict[str, bool]]:
    """wg_native (mysql_native_password, 'pw1') and, where loadable, wg_ed25519 ('pw2')."""
    conn = _admin()
    installed_here = False
    with conn.cursor() as cur:
        cur.execute(
            "CREATE USER IF NOT EXISTS 'wg_native'@'127.0.0.1' "
            "IDENTIFIED VIA mysql_native_password USING PASSWORD('pw1')"
        )
        cur.execute("SELECT COUNT(*) FROM information_schema.PLUGINS "
                    "WHERE PLUGIN_NAME = 'ed25519' AND PLUGIN_STATUS = 'ACTIVE'")
        row = cur.fetchone()
        ed25519 = bool(row and row[0])
        if not ed25519:
            try:
                cur.execute("INSTALL SONAME 'auth_ed25519'")
                ed25519 = installed_here = True
            except pymysql.MySQLError:
                ed25519 = False
        if ed25519:
            cur.execute(
                "CREATE USER IF NOT EXISTS 'wg_ed25519'@'127.0.0.1' "
                "IDENTIFIED VIA ed25519 USING PASSWORD('pw2')"
            )
    try:
        yield {"ed25519": ed25519}
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS 'wg_native'@'127.0.0.1'")
            cur.execute("DROP USER IF EXISTS 'wg_ed25519'@'127.0.0.1'")
            if installed_here:
                cur.execute("UNINSTALL SONAME 'auth_ed25519'")
        conn.close()


# -- the codec as a client --------------------------------------------------------------------


def test_live_greeting_parses_and_re_encodes() -> None:
    with socket.create_connection((HOST, PORT), timeout=5) as sock:
        packet = recv_packet(sock, PacketFramer())
    hello = HandshakeV10.parse(packet.payload)
    assert packet.seq == 0
    assert "MariaDB" in hello.server_version and hello.is_mariadb
    assert len(hello.auth_plugin_data) == 20
    assert hello.capabilities & Capability.DEPRECATE_EOF
    assert hello.capabilities & Capability.MARIADB_EXTENDED_METADATA
    assert hello.encode() == bytes(packet.payload)


def test_root_without_password_selects(root: CodecClient) -> None:
    assert isinstance(root.outcome, LoginSucceeded)
    assert root.outcome.plugin == "mysql_native_password"
    assert root.rows(Query(b"SELECT 1, 'a', NULL").encode()) == [[b"1", b"a", None]]
    assert root.tracker is not None
    assert [c.name for c in root.tracker.columns] == ["1", "a", "NULL"]
    assert root.tracker.columns[2].type == FieldType.NULL


def test_native_password_user(accounts: dict[str, bool]) -> None:
    ok = CodecClient(UpstreamLogin(username="wg_native", password=b"pw1"))
    assert isinstance(ok.outcome, LoginSucceeded)
    assert ok.rows(Query(b"SELECT CURRENT_USER()").encode()) == [[b"wg_native@127.0.0.1"]]
    ok.close()
    bad = CodecClient(UpstreamLogin(username="wg_native", password=b"wrong"))
    assert isinstance(bad.outcome, LoginRejected)
    assert (bad.outcome.error.code, bad.outcome.error.sqlstate) == (1045, "28000")
    bad.close()


def test_ed25519_user(accounts: dict[str, bool]) -> None:
    if not accounts["ed25519"]:
        pytest.skip("MariaDB's auth_ed25519 plugin cannot be loaded here")
    ok = CodecClient(UpstreamLogin(username="wg_ed25519", password=b"pw2"))
    assert isinstance(ok.outcome, LoginSucceeded)
    assert ok.outcome.plugin == "client_ed25519"  # reached through an auth switch
    assert ok.rows(Query(b"SELECT CURRENT_USER()").encode()) == [[b"wg_ed25519@127.0.0.1"]]
    ok.close()
    bad = CodecClient(UpstreamLogin(username="wg_ed25519", password=b"pw1"))
    assert isinstance(bad.outcome, LoginRejected) and bad.outcome.error.code == 1045
    bad.close()


@pytest.mark.parametrize("deprecate_eof", [True, False])
def test_prepare_execute_binary_rows(deprecate_eof: bool) -> None:
    caps = UPSTREAM_CAPABILITIES
    if not deprecate_eof:
        caps &= ~Capability.DEPRECATE_EOF
    client = CodecClient(UpstreamLogin(username="root", password=b"", capabilities=caps))
    assert client.tracker is not None
    client.run(StmtPrepare(b"SELECT ? + 1 AS x, CAST(? AS CHAR) AS s, ? AS n").encode())
    prepared = client.tracker.prepared
    assert prepared is not None
    assert (prepared.num_params, prepared.num_columns) == (3, 3)
    execute = StmtExecute(
        prepared.statement_id,
        types=(ValueType(FieldType.LONGLONG), ValueType(FieldType.VAR_STRING),
               ValueType(FieldType.NULL)),
        values=(41, b"hello", None),
    )
    assert client.rows(execute.encode()) == [[42, b"hello", None]]
    assert [c.name for c in client.tracker.columns] == ["x", "s", "n"]
    # rebinding nothing: the server reuses the earlier types
    again = StmtExecute(prepared.statement_id, types=execute.types, values=(1, b"a", None),
                        new_params_bound=False)
    assert client.rows(again.encode()) == [[2, b"a", None]]
    client.run(StatementCommand(Command.STMT_CLOSE, prepared.statement_id).encode())
    client.close()


def test_binary_rows_of_every_common_type(root: CodecClient) -> None:
    root.run(Query(
        b"CREATE TEMPORARY TABLE wg_types (a TINYINT, b SMALLINT UNSIGNED, c MEDIUMINT, "
        b"d INT, e BIGINT UNSIGNED, f FLOAT, g DOUBLE, h DECIMAL(10,2), i DATE, "
        b"j DATETIME(6), k TIMESTAMP NULL, l TIME(3), m YEAR, n VARCHAR(10), o BLOB, "
        b"p BIT(8), q ENUM('x','y'), r INT, s JSON)"
    ).encode())
    root.run(Query(
        "INSERT INTO wg_types VALUES (-5, 65535, -8388608, 2147483647, 18446744073709551615,"
        " 1.5, -2.25, 12345.67, '2024-02-29', '2024-02-29 13:14:15.123456',"
        " '2020-01-01 00:00:00', '-838:59:58.999', 2155, 'héllo', x'00ff', b'10100101',"
        " 'y', NULL, '{\"k\": 1}')".encode()
    ).encode())
    text = root.rows(Query(b"SELECT * FROM wg_types").encode())
    root.run(StmtPrepare(b"SELECT * FROM wg_types").encode())
    assert root.tracker is not None and root.tracker.prepared is not None
    binary = root.rows(StmtExecute(root.tracker.prepared.statement_id).encode())
    assert binary == [[
        -5, 65535, -8388608, 2147483647, 18446744073709551615, 1.5, -2.25, b"12345.67",
        DateTimeValue(2024, 2, 29), DateTimeValue(2024, 2, 29, 13, 14, 15, 123456),
        DateTimeValue(2020, 1, 1), TimeValue(True, 34, 22, 59, 58, 999000), 2155,
        "héllo".encode(), b"\x00\xff", b"\xa5", b"y", None, b'{"k": 1}',
    ]]
    assert text[0][0] == b"-5" and text[0][17] is None
    # MariaDB reports JSON as LONGTEXT; the extended metadata says what it is
    json_col = root.tracker.columns[18]
    assert json_col.type == FieldType.BLOB and json_col.extended.get(1) == b"json"


@pytest.mark.parametrize("deprecate_eof", [True, False])
def test_cursor_fetch(deprecate_eof: bool) -> None:
    caps = UPSTREAM_CAPABILITIES
    if not deprecate_eof:
        caps &= ~Capability.DEPRECATE_EOF
    client = CodecClient(UpstreamLogin(username="root", password=b"", capabilities=caps))
    assert client.tracker is not None
    client.run(StmtPrepare(b"SELECT 1 UNION SELECT 2 UNION SELECT 3").encode())
    prepared = client.tracker.prepared
    assert prepared is not None
    kinds = [k for k, _ in client.run(
        StmtExecute(prepared.statement_id, CursorType.READ_ONLY).encode()
    )]
    assert K.ROW not in kinds and kinds[-1] is K.END_OF_METADATA
    assert client.rows(StmtFetch(prepared.statement_id, 2).encode()) == [[1], [2]]
    assert client.rows(StmtFetch(prepared.statement_id, 5).encode()) == [[3]]
    assert client.tracker.cursor_columns(prepared.statement_id) is None
    client.close()


def test_multi_statements_and_procedure_results(root: CodecClient) -> None:
    assert root.rows(Query(b"SELECT 1; SELECT 2; DO 3").encode()) == [[b"1"], [b"2"]]
    assert root.tracker is not None and root.tracker.result_count == 2
    root.run(Query(b"CREATE OR REPLACE PROCEDURE test.wg_proc(OUT o INT) "
                   b"BEGIN SELECT 1; SELECT 2, 3; SET o = 7; END").encode())
    try:
        assert root.rows(Query(b"CALL test.wg_proc(@o)").encode()) == [[b"1"], [b"2", b"3"]]
        root.run(StmtPrepare(b"CALL test.wg_proc(?)").encode())
        assert root.tracker.prepared is not None
        execute = StmtExecute(root.tracker.prepared.statement_id,
                              types=(ValueType(FieldType.NULL),), values=(None,))
        # the last result is the OUT parameter (SERVER_PS_OUT_PARAMS)
        assert root.rows(execute.encode()) == [[1], [2, 3], [7]]
    finally:
        root.run(Query(b"DROP PROCEDURE test.wg_proc").encode())


def test_errors_and_simple_commands(root: CodecClient) -> None:
    out = root.run(Query(b"SELECT nosuch").encode())
    assert out[-1][0] is K.ERROR
    assert root.tracker is not None and root.tracker.error is not None
    assert root.tracker.error.sqlstate == "42S22"
    assert root.run(bytes((Command.PING,)))[0][0] is K.OK
    assert root.run(b"\x02nosuchdb")[0][0] is K.ERROR
    assert root.tracker.error.code == 1049
    assert root.run(bytes((Command.STATISTICS,)))[0][0] is K.STATISTICS
    assert root.run(b"\x1b\x01\x00")[0][0] is K.OK  # COM_SET_OPTION multi-statements off
    assert root.run(bytes((Command.RESET_CONNECTION,)))[0][0] is K.OK


def test_load_data_local(root: CodecClient) -> None:
    # Without CLIENT_LOCAL_FILES (wardgate's default) the server itself refuses.
    out = root.run(Query(b"LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE nosuch").encode())
    assert out[-1][0] is K.ERROR and root.tracker is not None
    assert root.tracker.error is not None and root.tracker.error.code == 4166
    client = CodecClient(UpstreamLogin(username="root", password=b"", database="test",
                                       capabilities=UPSTREAM_CAPABILITIES
                                       | Capability.LOCAL_FILES))
    assert client.tracker is not None
    client.run(Query(b"CREATE TEMPORARY TABLE wg_li (a INT)").encode())
    out = client.run(Query(b"LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE wg_li").encode(),
                     infile=b"1\n2\n")
    assert [k for k, _ in out] == [K.LOCAL_INFILE_REQUEST, K.OK]
    assert client.tracker.local_infile is not None
    assert client.tracker.local_infile.filename == b"x.csv"
    assert client.rows(Query(b"SELECT COUNT(*) FROM wg_li").encode()) == [[b"2"]]
    client.close()


def test_without_extended_metadata_and_deprecate_eof() -> None:
    caps = UPSTREAM_CAPABILITIES & ~(Capability.DEPRECATE_EOF
                                     | Capability.MARIADB_EXTENDED_METADATA)
    client = CodecClient(UpstreamLogin(username="root", password=b"", capabilities=caps))
    out = client.run(Query(b"SELECT 1, 'a', NULL").encode())
    assert [k for k, _ in out] == [K.COLUMN_COUNT, K.COLUMN_DEFINITION, K.COLUMN_DEFINITION,
                                   K.COLUMN_DEFINITION, K.END_OF_METADATA, K.ROW,
                                   K.END_OF_ROWS]
    client.close()


# -- real clients through a proxy made of the codec ---------------------------------------------

TOKEN = "wg-token-" + "x" * 300  # longer than any scramble, like a real wardgate token


class CodecProxy:
    """client ⇄ [DownstreamLogin | relay with ResultSetTracker] ⇄ MariaDB, one thread each."""

    def __init__(self, tls: ssl.SSLContext | None = None,
                 mask_columns: frozenset[str] = frozenset()) -> None:
        self.tls = tls
        self.mask_columns = mask_columns
        self.columns_seen: list[str] = []
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.kinds: list[ResponseKind] = []
        self.presented: list[CredentialsPresented] = []
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_safely, args=(conn,), daemon=True).start()

    def _serve_safely(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        except EOFError:
            pass
        except BaseException as exc:  # surfaced by the test via self.errors
            self.errors.append(exc)
        finally:
            conn.close()

    def _serve(self, client: socket.socket) -> None:
        login = DownstreamLogin(connection_id=4242, tls_available=self.tls is not None,
                                allow_cleartext_without_tls=self.tls is None)
        client.sendall(login.greeting())
        while True:
            step = login.receive(recv_packet_exact(client))
            if isinstance(step, StartTls):
                assert self.tls is not None
                client = self.tls.wrap_socket(client, server_side=True)
                login.tls_started()
            elif isinstance(step, Send):
                client.sendall(step.data)
            elif isinstance(step, LoginRefused):
                client.sendall(step.data)
                return
            else:
                creds = step
                break
        self.presented.append(creds)
        if creds.token != TOKEN.encode():
            client.sendall(login.reject(access_denied(creds.username)))
            return
        # Ask the target for exactly the format-relevant capabilities the client agreed to.
        caps = creds.capabilities & CODEC_CAPABILITIES & ~(Capability.SSL
                                                            | Capability.LOCAL_FILES)
        upstream = socket.create_connection((HOST, PORT), timeout=10)
        up_framer = PacketFramer()
        up = UpstreamLogin(username="root", password=b"", database=creds.database,
                           capabilities=caps | Capability.PROTOCOL_41,
                           character_set=creds.character_set)
        while True:
            up_step = up.receive(recv_packet(upstream, up_framer))
            if isinstance(up_step, Send):
                upstream.sendall(up_step.data)
            elif isinstance(up_step, LoginSucceeded):
                break
            elif up_step is not None:
                raise AssertionError(f"upstream login failed: {up_step}")
        client.sendall(login.accept(up_step.ok))
        tracker = ResultSetTracker(up_step.capabilities)
        down_framer = PacketFramer()
        while True:
            command = recv_packet(client, down_framer)
            if command.payload[0] == Command.QUIT:
                upstream.close()
                return
            tracker.start(command)
            upstream.sendall(bytes(command.wire))
            if not expects_response(command.payload[0]):
                continue
            while not tracker.idle:
                packet = recv_packet(upstream, up_framer)
                kind = tracker.feed(packet)
                self.kinds.append(kind)
                if kind is K.COLUMN_DEFINITION:
                    self.columns_seen.append(tracker.columns[-1].name)
                if kind is K.ROW and not tracker.binary_rows and self.mask_columns:
                    values = parse_text_row(packet.payload, len(tracker.columns))
                    masked = [b"****" if col.name in self.mask_columns and v is not None
                              else v for col, v in zip(tracker.columns, values, strict=True)]
                    client.sendall(encode_packet(packet.seq, encode_text_row(masked)))
                    continue
                client.sendall(bytes(packet.wire))
                while tracker.awaiting_client:
                    data = recv_packet(client, down_framer)
                    tracker.feed_client(data)
                    upstream.sendall(bytes(data.wire))

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wardgate test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
        ), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    cert_path, key_path = d / "cert.pem", d / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_proxy(tls_files: tuple[Path, Path]) -> Iterator[CodecProxy]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*tls_files)
    proxy = CodecProxy(ctx)
    yield proxy
    proxy.close()
    assert not proxy.errors, proxy.errors


@pytest.fixture
def plain_proxy() -> Iterator[CodecProxy]:
    proxy = CodecProxy()
    yield proxy
    proxy.close()
    assert not proxy.errors, proxy.errors


def test_pymysql_over_tls_through_the_codec(
    tls_proxy: CodecProxy, tls_files: tuple[Path, Path]
) -> None:
    conn = pymysql.connect(host=HOST, port=tls_proxy.port, user="alice", password=TOKEN,
                           database="test", ssl_ca=str(tls_files[0]), ssl_verify_cert=True,
                           client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with conn.cursor() as cur:
        cur.execute("SELECT 1, 'a', NULL")
        assert cur.fetchall() == ((1, "a", None),)
        cur.execute("SELECT 1; SELECT 2")
        assert cur.fetchall() == ((1,),)
        assert cur.nextset() and cur.fetchall() == ((2,),)
        cur.execute("SELECT %s, %s", ("x", 3))
        assert cur.fetchall() == (("x", 3),)
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        # the gateway→target leg is plain here; TLS is between pymysql and the codec
        assert cur.fetchall()[0][1] == ""
    conn.ping()
    conn.select_db("mysql")
    conn.close()
    (creds,) = tls_proxy.presented
    assert creds.tls and creds.username == "alice" and creds.database == "test"
    assert creds.token == TOKEN.encode()
    assert K.ROW in tls_proxy.kinds


def test_pymysql_wrong_token_gets_1045(plain_proxy: CodecProxy) -> None:
    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql.connect(host=HOST, port=plain_proxy.port, user="alice", password="nope")
    assert info.value.args[0] == 1045
    assert "fresh" in info.value.args[1]


def test_plaintext_tokens_refused_when_tls_is_available(tls_proxy: CodecProxy) -> None:
    # pymysql >= 1.2 would use TLS unasked when offered ("preferred"); force it off
    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql.connect(host=HOST, port=tls_proxy.port, user="alice", password=TOKEN,
                        ssl_disabled=True)
    assert info.value.args[0] == 1045 and "TLS" in info.value.args[1]
    assert tls_proxy.presented == []  # the token never reached the verifier


@pytest.mark.skipif(shutil.which("mariadb") is None, reason="mariadb CLI not installed")
def test_mariadb_cli_over_tls_through_the_codec(
    tls_proxy: CodecProxy, tls_files: tuple[Path, Path]
) -> None:
    result = subprocess.run(
        ["mariadb", f"--host={HOST}", f"--port={tls_proxy.port}", "--user=alice",
         f"--password={TOKEN}", "--ssl", f"--ssl-ca={tls_files[0]}", "--batch",
         "--skip-column-names", "test", "-e",
         "SELECT 1, 'a', NULL; SELECT DATABASE(); USE mysql; SELECT DATABASE()"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1\ta\tNULL", "test", "mysql"]
    assert tls_proxy.presented[0].tls


def test_relay_can_mask_text_rows_by_column_name() -> None:
    proxy = CodecProxy(mask_columns=frozenset({"card_number"}))
    try:
        conn = pymysql.connect(host=HOST, port=proxy.port, user="alice", password=TOKEN)
        with conn.cursor() as cur:
            cur.execute("SELECT '4111111111111111' AS card_number, 'ok' AS note, "
                        "NULL AS card_number")
            assert cur.fetchall() == (("****", "ok", None),)
        conn.close()
    finally:
        proxy.close()
    assert not proxy.errors, proxy.errors
    assert proxy.columns_seen == ["card_number", "note", "card_number"]
