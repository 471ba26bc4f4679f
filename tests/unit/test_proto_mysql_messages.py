"""OK / ERR / EOF, column definitions, text rows and commands against captured bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.core.errors import ProtocolViolationError
from wardgate.proto.mysql.constants import Capability, Command, FieldType, ServerStatus
from wardgate.proto.mysql.messages import (
    ChangeUser,
    ColumnDefinition,
    EofPacket,
    ErrPacket,
    FieldList,
    InitDb,
    LocalInfileRequest,
    OkPacket,
    ProcessKill,
    ProgressReport,
    Query,
    SetOption,
    SimpleCommand,
    StatementCommand,
    StmtFetch,
    StmtPrepare,
    StmtPrepareOk,
    StmtSendLongData,
    command_name,
    encode_text_row,
    is_end_of_rows,
    is_eof_packet,
    is_progress_report,
    parse_column_count,
    parse_command,
    parse_text_row,
)

P41 = Capability.PROTOCOL_41
TRACK = Capability.PROTOCOL_41 | Capability.SESSION_TRACK

# Captured from MariaDB 10.11 answering SELECT 1, 'a', NULL (no extended metadata).
COLDEF_1 = bytes.fromhex("036465660000000131000c3f0001000000038100000000")
COLDEF_A = bytes.fromhex("036465660000000161000c2d0004000000fd0100270000")
COLDEF_NULL = bytes.fromhex("03646566000000044e554c4c000c3f0000000000068000000000")
ROW = bytes.fromhex("01310161fb")
# With MARIADB_CLIENT_EXTENDED_METADATA: a JSON column (format "json") and a UUID (type "uuid").
COLDEF_JSON_EXT = bytes.fromhex(
    "03646566047465737401740174016a016a0601046a736f6e0c2d00fffffffffc9000000000"
)
COLDEF_UUID_EXT = bytes.fromhex(
    "0364656604746573740174017401750175060004757569640c2d0090000000fea000000000"
)


def test_ok_packet_vectors() -> None:
    ok = OkPacket.parse(b"\x00\x00\x00\x02\x00\x00\x00", TRACK)
    assert ok == OkPacket(0, 0, ServerStatus.AUTOCOMMIT, 0)
    assert ok.encode(TRACK) == b"\x00\x00\x00\x02\x00\x00\x00"
    # COM_INIT_DB's OK carries a session-state change (the new schema)
    raw = b"\x00\x00\x00\x02@\x00\x00\x00\x08\x01\x06\x05mysql"
    ok = OkPacket.parse(raw, TRACK)
    assert ok.status_flags & ServerStatus.SESSION_STATE_CHANGED
    assert ok.session_state_changes == b"\x01\x06\x05mysql"
    assert ok.encode(TRACK) == raw
    # LOAD DATA's OK carries info text
    raw = b"\x00\x00\x00\n\x00\x00\x00/Records: 0  Deleted: 0  Skipped: 0  Warnings: 0"
    ok = OkPacket.parse(raw, TRACK)
    assert ok.info.startswith(b"Records: 0")
    assert ok.more_results
    assert ok.encode(TRACK) == raw


def test_ok_without_session_track_info_is_rest_of_packet() -> None:
    ok = OkPacket(affected_rows=3, last_insert_id=300, info=b"Rows matched: 3")
    raw = ok.encode(P41)
    assert raw == b"\x00\x03\xfc\x2c\x01\x02\x00\x00\x00Rows matched: 3"
    assert OkPacket.parse(raw, P41) == ok


def test_err_packet_vectors() -> None:
    raw = b"\xff\x19\x04#42000Unknown database 'nosuchdb'"
    err = ErrPacket.parse(raw)
    assert err == ErrPacket(1049, "Unknown database 'nosuchdb'", "42000")
    assert err.encode() == raw
    # before capabilities are agreed there is no SQLSTATE marker
    early = ErrPacket.parse(b"\xff\x10\x04Too many connections")
    assert early == ErrPacket(1040, "Too many connections", "HY000")
    assert ErrPacket(1040, "Too many connections").encode(0) == b"\xff\x10\x04Too many connections"


def test_err_message_is_cut_at_client_buffer_size_on_a_character_boundary() -> None:
    raw = ErrPacket(1142, "é" * 400, "42000").encode()
    assert len(raw) <= 9 + 512
    ErrPacket.parse(raw).message.encode("utf-8")  # still valid UTF-8
    with pytest.raises(ValueError, match="SQLSTATE"):
        ErrPacket(1, "x", "4200").encode()


def test_progress_report_is_not_an_error() -> None:
    report = ProgressReport(stage=1, max_stage=2, progress=50000, info=b"copy to tmp table")
    raw = report.encode()
    assert is_progress_report(raw)
    assert not is_progress_report(b"\xff\x19\x04#42000x")
    assert ProgressReport.parse(raw) == report


def test_eof_and_end_of_rows_detection() -> None:
    eof = b"\xfe\x00\x00\x22\x00"
    assert is_eof_packet(eof)
    assert EofPacket.parse(eof) == EofPacket(0, 0x22)
    assert EofPacket(0, 0x22).encode() == eof
    ok_fe = b"\xfe\x00\x00\x02\x00\x00\x00"
    assert is_end_of_rows(ok_fe, Capability.DEPRECATE_EOF)
    assert is_end_of_rows(eof, 0)
    # a text row whose first value is >= 16 MiB starts with 0xFE too, but is long
    row_fe = b"\xfe" + (1 << 24).to_bytes(8, "little") + b"x"
    assert not is_end_of_rows(row_fe, 0)
    assert not is_eof_packet(row_fe)
    assert not is_end_of_rows(b"\xfe" + b"x" * 0xFFFFFF, Capability.DEPRECATE_EOF)


@given(st.binary(min_size=5, max_size=5), st.sampled_from([bytes, bytearray, memoryview]))
def test_eof_packets_read_alike_from_memory_and_afresh(raw: bytes, kind: type) -> None:
    """The 5-byte EOF packets a session has seen are remembered; a remembered one is the
    packet a fresh read gives, and anything not starting 0xFE is still refused."""
    from wardgate.proto.mysql import messages

    messages._EOFS.clear()
    payload = kind(raw)
    if raw[0] != 0xFE:
        with pytest.raises(ProtocolViolationError):
            EofPacket.parse(payload)
        assert not messages._EOFS
        return
    fresh = EofPacket.parse(payload)
    assert fresh == EofPacket(int.from_bytes(raw[1:3], "little"), int.from_bytes(raw[3:], "little"))
    assert EofPacket.parse(kind(raw)) is fresh  # remembered
    assert EofPacket.parse(raw[:1]) == EofPacket(0, 0)  # pre-4.1, not from memory


def test_column_definitions_from_mariadb() -> None:
    one = ColumnDefinition.parse(COLDEF_1)
    assert (one.name, one.type, one.character_set, one.column_length) == ("1", 3, 63, 1)
    assert one.catalog == "def" and one.schema == "" and one.table == ""
    a = ColumnDefinition.parse(COLDEF_A)
    assert (a.name, a.type, a.character_set) == ("a", FieldType.VAR_STRING, 45)
    null = ColumnDefinition.parse(COLDEF_NULL)
    assert null.type == FieldType.NULL
    for raw in (COLDEF_1, COLDEF_A, COLDEF_NULL):
        assert ColumnDefinition.parse(raw).encode() == raw


def test_mariadb_extended_metadata() -> None:
    ext = Capability.MARIADB_EXTENDED_METADATA
    js = ColumnDefinition.parse(COLDEF_JSON_EXT, ext)
    assert (js.schema, js.table, js.name, js.type) == ("test", "t", "j", FieldType.BLOB)
    assert js.extended == {1: b"json"}
    uuid = ColumnDefinition.parse(COLDEF_UUID_EXT, ext)
    assert uuid.extended == {0: b"uuid"}
    assert js.encode(ext) == COLDEF_JSON_EXT
    assert uuid.encode(ext) == COLDEF_UUID_EXT
    # Parsed without the capability the extension block is misread: callers must pass it.
    with pytest.raises(ProtocolViolationError):
        ColumnDefinition.parse(COLDEF_JSON_EXT)


def test_field_list_column_definition_carries_default() -> None:
    # COM_FIELD_LIST on mysql.db (captured with extended metadata negotiated)
    raw = (
        b"\x03def\x05mysql\x02db\x02db\x0bSelect_priv\x0bSelect_priv\x00"
        b"\x0c-\x00\x04\x00\x00\x00\xfe\x01\x01\x00\x00\x00\x01N"
    )
    caps = Capability.MARIADB_EXTENDED_METADATA
    col = ColumnDefinition.parse(raw, caps)
    assert (col.schema, col.table, col.name) == ("mysql", "db", "Select_priv")
    assert col.default_value == b"N"
    assert col.encode(caps) == raw


def test_text_row() -> None:
    assert parse_text_row(ROW, 3) == [b"1", b"a", None]
    assert encode_text_row([b"1", b"a", None]) == ROW
    with pytest.raises(ProtocolViolationError, match="trailing"):
        parse_text_row(ROW, 2)
    with pytest.raises(ProtocolViolationError):
        parse_text_row(ROW, 4)


def _reader_text_row(payload: bytes, count: int) -> list[bytes | None]:
    """The reference: the PayloadReader spelling parse_text_row falls back to."""
    from wardgate.proto.mysql.wire import PayloadReader

    r = PayloadReader(payload, "text row")
    values = [r.lenenc_bytes_or_null("column value") for _ in range(count)]
    r.expect_end()
    return values


@given(
    st.lists(
        st.none()
        | st.binary(max_size=300)
        | st.sampled_from([b"x" * 251, b"y" * 65535, b"z" * 65536, b"\xfb\xfe\xff"]),
        min_size=1,
        max_size=6,
    )
)
def test_text_rows_round_trip_through_the_one_loop_parser(values: list[bytes | None]) -> None:
    row = encode_text_row(values)
    assert parse_text_row(row, len(values)) == values
    assert parse_text_row(memoryview(row), len(values)) == values


@given(st.binary(max_size=40), st.integers(1, 6))
def test_text_row_parsers_agree_on_any_bytes(payload: bytes, count: int) -> None:
    """The one-loop parser and the reader take the same rows and refuse the same ones."""
    try:
        expected: list[bytes | None] | None = _reader_text_row(payload, count)
    except ProtocolViolationError:
        expected = None
    if expected is None:
        with pytest.raises(ProtocolViolationError):
            parse_text_row(payload, count)
    else:
        assert parse_text_row(payload, count) == expected


def test_long_lenenc_prefixes_parse_in_the_one_loop_parser() -> None:
    wide = b"\xfe" + (3).to_bytes(8, "little") + b"abc"  # 8-byte length of a short value
    assert parse_text_row(wide + b"\xfc\x01\x00q", 2) == [b"abc", b"q"]
    assert parse_text_row(b"\xfd\x02\x00\x00hi", 1) == [b"hi"]
    with pytest.raises(ProtocolViolationError):
        parse_text_row(b"\xff", 1)  # 0xFF is not a length


def test_column_count() -> None:
    assert parse_column_count(b"\x03") == 3
    with pytest.raises(ProtocolViolationError):
        parse_column_count(b"\x03\x01")  # a metadata-follows byte we never negotiate
    with pytest.raises(ProtocolViolationError):
        parse_column_count(b"\x00")


def test_prepare_ok_vector() -> None:
    raw = b"\x00\x01\x00\x00\x00\x05\x00\x02\x00\x00\x00\x00"
    prepared = StmtPrepareOk.parse(raw)
    assert prepared == StmtPrepareOk(statement_id=1, num_columns=5, num_params=2)
    assert prepared.encode() == raw


def test_local_infile_request() -> None:
    req = LocalInfileRequest.parse(b"\xfb/etc/passwd")
    assert req.filename == b"/etc/passwd"
    assert req.encode() == b"\xfb/etc/passwd"


@pytest.mark.parametrize(
    "command",
    [
        Query(b"SELECT 1"),
        InitDb(b"test"),
        StmtPrepare(b"SELECT ?"),
        StatementCommand(Command.STMT_CLOSE, 7),
        StatementCommand(Command.STMT_RESET, 8),
        StmtFetch(3, 100),
        StmtSendLongData(3, 1, b"chunk"),
        ProcessKill(42),
        SetOption(1),
        FieldList(b"user", b"%"),
        SimpleCommand(Command.PING),
        SimpleCommand(Command.QUIT),
        SimpleCommand(Command.RESET_CONNECTION),
    ],
)
def test_commands_round_trip(command: object) -> None:
    raw = command.encode()  # type: ignore[attr-defined]
    assert parse_command(raw, P41) == command


def test_command_vectors() -> None:
    assert Query.parse(b"\x03SELECT 1").sql == b"SELECT 1"
    assert ProcessKill.parse(b"\x0c\x2a\x00\x00\x00").connection_id == 42
    assert StmtFetch.parse(b"\x1c\x01\x00\x00\x00\x05\x00\x00\x00") == StmtFetch(1, 5)
    assert Query(b"SELECT 'h\xc3\xa9'").text() == "SELECT 'hé'"
    with pytest.raises(UnicodeDecodeError):
        Query(b"SELECT '\xff'").text()  # fail closed: undecodable SQL is not guessed at
    with pytest.raises(ProtocolViolationError, match="empty command"):
        parse_command(b"", P41)
    with pytest.raises(ProtocolViolationError, match="trailing"):
        parse_command(b"\x0c\x01\x00\x00\x00\x00", P41)
    assert command_name(Command.QUERY) == "COM_QUERY"
    assert command_name(0x99) == "unknown command 0x99"


def test_change_user_round_trip() -> None:
    caps = (
        Capability.PROTOCOL_41
        | Capability.SECURE_CONNECTION
        | Capability.PLUGIN_AUTH
        | Capability.CONNECT_ATTRS
    )
    cmd = ChangeUser(
        username="bob",
        auth_response=b"\x01" * 20,
        database="test",
        character_set=45,
        auth_plugin_name="mysql_native_password",
        connect_attrs={"_client_name": "libmariadb"},
    )
    raw = cmd.encode(caps)
    assert raw.startswith(b"\x11bob\x00\x14" + b"\x01" * 20 + b"test\x00\x2d\x00")
    assert ChangeUser.parse(raw, caps) == cmd
    assert parse_command(raw, caps) == cmd


text = st.binary(max_size=40)


@given(st.lists(st.none() | st.binary(max_size=300), min_size=1, max_size=20))
def test_text_rows_round_trip(values: list[bytes | None]) -> None:
    assert parse_text_row(encode_text_row(values), len(values)) == values


@given(
    affected=st.integers(0, 2**64 - 1),
    insert_id=st.integers(0, 2**64 - 1),
    status=st.integers(0, 0xFFFF),
    warnings=st.integers(0, 0xFFFF),
    info=text,
    state=st.none() | text,
)
def test_ok_round_trip_with_session_track(
    affected: int, insert_id: int, status: int, warnings: int, info: bytes, state: bytes | None
) -> None:
    if state is not None:
        status |= ServerStatus.SESSION_STATE_CHANGED
    else:
        status &= ~ServerStatus.SESSION_STATE_CHANGED
    ok = OkPacket(affected, insert_id, status, warnings, info, state)
    assert OkPacket.parse(ok.encode(TRACK), TRACK) == ok


@given(
    name=st.text(max_size=30),
    table=st.text(max_size=30),
    col_type=st.sampled_from(list(FieldType)),
    flags=st.integers(0, 0xFFFF),
    length=st.integers(0, 0xFFFFFFFF),
    charset=st.integers(0, 0xFFFF),
    decimals=st.integers(0, 0xFF),
    extended=st.dictionaries(st.integers(0, 1), st.binary(max_size=10)),
)
def test_column_definition_round_trip(
    name: str,
    table: str,
    col_type: FieldType,
    flags: int,
    length: int,
    charset: int,
    decimals: int,
    extended: dict[int, bytes],
) -> None:
    caps = Capability.MARIADB_EXTENDED_METADATA
    col = ColumnDefinition(
        name=name,
        type=col_type,
        table=table,
        org_table=table,
        org_name=name,
        character_set=charset,
        column_length=length,
        flags=flags,
        decimals=decimals,
        extended=extended,
    )
    assert ColumnDefinition.parse(col.encode(caps), caps) == col


@given(st.binary(max_size=20), st.sampled_from([0, 0x200, 0x2200, 0x802200, 0x1802200]))
def test_short_oks_parse_from_the_cache_exactly_as_from_the_bytes(
    payload: bytes, caps: int
) -> None:
    """OkPacket.parse remembers short OKs by (bytes, capabilities): twice the same answer,
    the answer of the reader itself, and a malformed one raises every time."""
    from wardgate.proto.mysql import messages

    try:
        want = messages.OkPacket._parse(payload, caps)
    except ProtocolViolationError:
        for _ in range(2):
            with pytest.raises(ProtocolViolationError):
                OkPacket.parse(payload, caps)
        return
    assert OkPacket.parse(payload, caps) == want
    assert OkPacket.parse(bytearray(payload), caps) == want  # from the cache
    if len(payload) <= messages._OK_CACHED_LENGTH:
        assert (payload, caps) in messages._OKS


def test_the_same_ok_bytes_under_other_capabilities_are_read_anew() -> None:
    ok = b"\x00\x01\x00\x02\x00\x00\x00"
    with_41 = OkPacket.parse(ok, int(Capability.PROTOCOL_41))
    without = OkPacket.parse(ok, 0)
    assert with_41.status_flags == 2 and with_41.info == b""
    assert without.status_flags == 0 and without.info == b"\x02\x00\x00\x00"


@given(st.binary(min_size=1, max_size=10))
def test_column_count_fast_path_answers_as_the_reader(payload: bytes) -> None:
    from wardgate.proto.mysql.wire import PayloadReader

    def reference(p: bytes) -> int:
        r = PayloadReader(p, "column count")
        n = r.lenenc_int("column count")
        r.expect_end()
        if n == 0:
            raise ProtocolViolationError("zero")
        return n

    try:
        want: int | None = reference(payload)
    except ProtocolViolationError:
        want = None
    if want is None:
        with pytest.raises(ProtocolViolationError):
            parse_column_count(payload)
    else:
        assert parse_column_count(payload) == want
