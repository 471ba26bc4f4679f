"""ResultSetTracker playbooks: command in, server packets in, kinds and completion out.

The packet sequences are the ones MariaDB 10.11 sent for the same commands (captured
with and without CLIENT_DEPRECATE_EOF); the grammar corner cases that a quick capture
cannot provoke (progress reports, errors mid-rows, pipelining) are built with the codec.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.core.errors import ProtocolViolationError
from wardgate.proto.mysql.binary import StmtExecute, ValueType
from wardgate.proto.mysql.constants import (
    Capability,
    Command,
    CursorType,
    FieldType,
    ServerStatus,
)
from wardgate.proto.mysql.messages import (
    ColumnDefinition,
    EofPacket,
    ErrPacket,
    OkPacket,
    ProgressReport,
    Query,
    StatementCommand,
    StmtFetch,
    StmtPrepare,
    StmtPrepareOk,
    encode_text_row,
)
from wardgate.proto.mysql.packets import Packet
from wardgate.proto.mysql.tracker import ResponseKind, ResultSetTracker, is_trackable

K = ResponseKind
BASE = (
    Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.SESSION_TRACK
    | Capability.MULTI_RESULTS
    | Capability.PS_MULTI_RESULTS
)
DEPRECATE = BASE | Capability.DEPRECATE_EOF

COL_1 = bytes.fromhex("036465660000000131000c3f0001000000038100000000")
COL_A = bytes.fromhex("036465660000000161000c2d0004000000fd0100270000")
COL_NULL = bytes.fromhex("03646566000000044e554c4c000c3f0000000000068000000000")
COL_2 = COL_1.replace(b"\x011", b"\x012")
EOF_AUTOCOMMIT = b"\xfe\x00\x00\x02\x00"
OK_FE_AUTOCOMMIT = b"\xfe\x00\x00\x02\x00\x00\x00"
OK_AUTOCOMMIT = b"\x00\x00\x00\x02\x00\x00\x00"


def play(
    tracker: ResultSetTracker, command: bytes, server: list[bytes], seq: int = 1
) -> list[ResponseKind]:
    tracker.start(Packet.of(0, command))
    kinds = []
    for payload in server:
        kinds.append(tracker.feed(Packet.of(seq, payload)))
        seq += 1
    return kinds


def test_select_with_deprecate_eof() -> None:
    t = ResultSetTracker(DEPRECATE)
    kinds = play(t, b"\x03SELECT 1, 'a', NULL", [b"\x03", COL_1, COL_A, COL_NULL,
                                                  b"\x011\x01a\xfb", OK_FE_AUTOCOMMIT])
    assert kinds == [K.COLUMN_COUNT, K.COLUMN_DEFINITION, K.COLUMN_DEFINITION,
                     K.COLUMN_DEFINITION, K.ROW, K.END_OF_ROWS]
    assert t.idle and t.completed_command == Command.QUERY
    assert [c.name for c in t.columns] == ["1", "a", "NULL"]
    assert t.row_count == 1 and not t.binary_rows
    assert t.last_ok is not None and t.last_ok.header == 0xFE


def test_select_with_classic_eof() -> None:
    t = ResultSetTracker(BASE)
    kinds = play(t, b"\x03SELECT 1", [b"\x01", COL_1, EOF_AUTOCOMMIT, b"\x011", EOF_AUTOCOMMIT])
    assert kinds == [K.COLUMN_COUNT, K.COLUMN_DEFINITION, K.END_OF_METADATA, K.ROW,
                     K.END_OF_ROWS]
    assert t.idle


def test_not_complete_until_the_last_packet() -> None:
    t = ResultSetTracker(DEPRECATE)
    play(t, b"\x03SELECT 1", [b"\x01", COL_1, b"\x011"])
    assert not t.idle and t.pending == 1
    assert t.completed_command is None


def test_multi_statement_results() -> None:
    # SELECT 1; SELECT 2; DO 1 — each result but the last has MORE_RESULTS_EXISTS (0x08)
    t = ResultSetTracker(DEPRECATE)
    more = b"\xfe\x00\x00\x0a\x00\x00\x00"
    kinds = play(t, b"\x03SELECT 1; SELECT 2; DO 1", [
        b"\x01", COL_1, b"\x011", more,
        b"\x01", COL_2, b"\x012", more,
        OK_AUTOCOMMIT,
    ])
    assert kinds.count(K.END_OF_ROWS) == 2 and kinds[-1] is K.OK
    assert t.idle and t.result_count == 2


def test_error_ends_a_multi_statement_response() -> None:
    t = ResultSetTracker(DEPRECATE)
    err = ErrPacket(1054, "Unknown column 'x' in 'SELECT'", "42S22").encode()
    kinds = play(t, b"\x03SELECT 1; SELECT x", [b"\x01", COL_1, b"\x011",
                                                 b"\xfe\x00\x00\x0a\x00\x00\x00", err])
    assert kinds[-1] is K.ERROR
    assert t.idle and t.error == ErrPacket(1054, "Unknown column 'x' in 'SELECT'", "42S22")


def test_error_in_the_middle_of_rows() -> None:
    t = ResultSetTracker(DEPRECATE)
    err = ErrPacket(1317, "Query execution was interrupted", "70100").encode()
    assert play(t, b"\x03SELECT SLEEP(9)", [b"\x01", COL_1, b"\x011", err])[-1] is K.ERROR
    assert t.idle


def test_progress_reports_do_not_end_the_response() -> None:
    t = ResultSetTracker(DEPRECATE | Capability.MARIADB_PROGRESS)
    progress = ProgressReport(1, 2, 50000, b"copy to tmp table").encode()
    kinds = play(t, b"\x03ALTER TABLE t ENGINE=InnoDB", [progress, progress, OK_AUTOCOMMIT])
    assert kinds == [K.PROGRESS, K.PROGRESS, K.OK]
    assert t.idle and t.error is None


def test_local_infile_waits_for_the_client() -> None:
    t = ResultSetTracker(DEPRECATE | Capability.LOCAL_FILES)
    assert play(t, b"\x03LOAD DATA LOCAL INFILE '/x' INTO TABLE t", [b"\xfb/x"]) == [
        K.LOCAL_INFILE_REQUEST
    ]
    assert t.awaiting_client and t.local_infile is not None
    assert t.local_infile.filename == b"/x"
    with pytest.raises(ProtocolViolationError, match="waiting for the client"):
        t.feed(Packet.of(2, OK_AUTOCOMMIT))
    t.feed_client(Packet.of(2, b"1\n2\n"))
    assert t.awaiting_client
    t.feed_client(Packet.of(3, b""))  # the empty packet ends the file
    assert not t.awaiting_client
    ok = b"\x00\x02\x00\x02\x00\x00\x00\x28Records: 2  Deleted: 0  Skipped: 0  Warnings: 0"
    assert t.feed(Packet.of(4, ok)) is K.OK
    assert t.idle


def test_prepare_response_with_and_without_eof() -> None:
    header = StmtPrepareOk(statement_id=1, num_columns=2, num_params=2).encode()
    param = ColumnDefinition(name="?", type=FieldType.NULL).encode()
    t = ResultSetTracker(DEPRECATE)
    kinds = play(t, StmtPrepare(b"SELECT ?, ?").encode(), [header, param, param, COL_1, COL_A])
    assert kinds == [K.PREPARE_OK, K.PARAM_DEFINITION, K.PARAM_DEFINITION,
                     K.COLUMN_DEFINITION, K.COLUMN_DEFINITION]
    assert t.idle and t.prepared is not None and len(t.params) == 2 and len(t.columns) == 2

    t = ResultSetTracker(BASE)
    kinds = play(t, StmtPrepare(b"SELECT ?, ?").encode(),
                 [header, param, param, EOF_AUTOCOMMIT, COL_1, COL_A, EOF_AUTOCOMMIT])
    assert kinds.count(K.END_OF_METADATA) == 2
    assert t.idle


@pytest.mark.parametrize("caps", [BASE, DEPRECATE])
def test_prepare_shapes_without_params_or_columns(caps: int) -> None:
    eof = [] if caps & Capability.DEPRECATE_EOF else [EOF_AUTOCOMMIT]
    t = ResultSetTracker(caps)
    play(t, b"\x16DO 1", [StmtPrepareOk(3, 0, 0).encode()])
    assert t.idle
    play(t, b"\x16SELECT 1", [StmtPrepareOk(4, 1, 0).encode(), COL_1, *eof])
    assert t.idle and t.params == [] and len(t.columns) == 1
    play(t, b"\x16DO ?", [StmtPrepareOk(5, 0, 1).encode(), COL_NULL, *eof])
    assert t.idle and len(t.params) == 1 and t.columns == []
    assert play(t, b"\x16SELEC", [ErrPacket(1064, "syntax", "42000").encode()]) == [K.ERROR]
    assert t.idle


def test_execute_returns_binary_rows() -> None:
    t = ResultSetTracker(DEPRECATE)
    play(t, StmtExecute(1).encode(), [b"\x01", COL_1, b"\x00\x00\x01\x00\x00\x00",
                                      OK_FE_AUTOCOMMIT])
    assert t.idle and t.binary_rows


@pytest.mark.parametrize("caps", [BASE, DEPRECATE])
def test_cursor_execute_then_fetch(caps: int) -> None:
    # what MariaDB sends: metadata ends with CURSOR_EXISTS (0x40) — an EOF, or under
    # DEPRECATE_EOF an OK-0xFE — and the rows come with COM_STMT_FETCH
    cursor_end = (b"\xfe\x00\x00\x42\x00" if caps == BASE else b"\xfe\x00\x00\x42\x00\x00\x00")
    last_end = (b"\xfe\x00\x00\x82\x00" if caps == BASE else b"\xfe\x00\x00\x82\x00\x00\x00")
    t = ResultSetTracker(caps)
    execute = StmtExecute(7, CursorType.READ_ONLY).encode()
    kinds = play(t, execute, [b"\x01", COL_1, cursor_end])
    assert kinds[-1] is K.END_OF_METADATA
    assert t.idle
    assert t.cursor_columns(7) is not None
    row = b"\x00\x00\x05\x00\x00\x00"
    kinds = play(t, StmtFetch(7, 1).encode(), [row, cursor_end])
    assert kinds == [K.ROW, K.END_OF_ROWS] and t.idle
    assert t.binary_rows and [c.name for c in t.columns] == ["1"]
    kinds = play(t, StmtFetch(7, 5).encode(), [row, last_end])
    assert t.idle and t.cursor_columns(7) is None  # LAST_ROW_SENT closes the cursor


def test_statement_close_forgets_cursor_and_needs_no_response() -> None:
    t = ResultSetTracker(BASE)
    play(t, StmtExecute(7, CursorType.READ_ONLY).encode(), [b"\x01", COL_1,
                                                             b"\xfe\x00\x00\x42\x00"])
    t.start(Packet.of(0, StatementCommand(Command.STMT_CLOSE, 7).encode()))
    assert t.idle and t.completed_command == Command.STMT_CLOSE
    assert t.cursor_columns(7) is None


def test_call_procedure_via_execute_has_several_binary_results() -> None:
    t = ResultSetTracker(DEPRECATE)
    more = b"\xfe\x00\x00\x0a\x00\x00\x00"
    out_params = b"\xfe\x00\x00\x0a\x10\x00\x00"  # MORE_RESULTS | PS_OUT_PARAMS
    kinds = play(t, StmtExecute(2).encode(), [
        b"\x01", COL_1, b"\x00\x00\x01\x00\x00\x00", more,
        b"\x01", COL_1, b"\x00\x00\x07\x00\x00\x00", out_params,
        OK_AUTOCOMMIT,
    ])
    assert kinds[-1] is K.OK and t.idle and t.result_count == 2


def test_simple_commands() -> None:
    t = ResultSetTracker(DEPRECATE)
    assert play(t, b"\x0e", [OK_AUTOCOMMIT]) == [K.OK]  # COM_PING
    assert play(t, b"\x1b\x00\x00", [OK_FE_AUTOCOMMIT]) == [K.OK]  # COM_SET_OPTION
    assert play(t, b"\x02nosuch", [ErrPacket(1049, "Unknown database", "42000").encode()]) == [
        K.ERROR
    ]
    assert play(t, b"\x09", [b"Uptime: 910  Threads: 1"]) == [K.STATISTICS]
    assert play(t, b"\x1f", [OK_AUTOCOMMIT]) == [K.OK]  # COM_RESET_CONNECTION
    assert t.idle
    with pytest.raises(ProtocolViolationError, match="OK or ERR expected"):
        play(t, b"\x0e", [b"\x05junk"])


def test_field_list() -> None:
    t = ResultSetTracker(DEPRECATE)
    kinds = play(t, b"\x04db\x00", [COL_1, COL_A, OK_FE_AUTOCOMMIT])
    assert kinds == [K.COLUMN_DEFINITION, K.COLUMN_DEFINITION, K.END_OF_ROWS] and t.idle


def test_change_user_auth_exchange() -> None:
    t = ResultSetTracker(DEPRECATE)
    switch = b"\xfemysql_native_password\x00" + b"n" * 20 + b"\x00"
    assert play(t, b"\x11bob\x00\x00\x00", [switch]) == [K.AUTH_SWITCH]
    assert t.awaiting_client
    t.feed_client(Packet.of(2, b"\x01" * 20))
    assert t.feed(Packet.of(3, OK_AUTOCOMMIT)) is K.OK
    assert t.idle
    # caching_sha2 "fast auth succeeded" is followed by the OK, not by the client
    play(t, b"\x11bob\x00\x00\x00", [b"\xfecaching_sha2_password\x00" + b"n" * 21])
    t.feed_client(Packet.of(2, b"\x02" * 32))
    assert t.feed(Packet.of(3, b"\x01\x03")) is K.AUTH_MORE_DATA
    assert not t.awaiting_client
    assert t.feed(Packet.of(4, OK_AUTOCOMMIT)) is K.OK


def test_pipelined_commands_are_answered_in_order() -> None:
    t = ResultSetTracker(DEPRECATE)
    t.start(Packet.of(0, StmtPrepare(b"SELECT 1").encode()))
    t.start(Packet.of(0, StmtExecute(0xFFFFFFFF).encode()))  # MariaDB: "last prepared"
    assert t.pending == 2
    assert t.feed(Packet.of(1, StmtPrepareOk(1, 1, 0).encode())) is K.PREPARE_OK
    assert t.feed(Packet.of(2, COL_1)) is K.COLUMN_DEFINITION
    assert t.completed_command == Command.STMT_PREPARE and t.pending == 1
    for seq, payload in enumerate([b"\x01", COL_1, b"\x00\x00\x01\x00\x00\x00",
                                   OK_FE_AUTOCOMMIT], start=1):
        t.feed(Packet.of(seq, payload))
    assert t.idle and t.completed_command == Command.STMT_EXECUTE


def test_sequence_mismatch_is_a_violation() -> None:
    t = ResultSetTracker(DEPRECATE)
    t.start(Packet.of(0, b"\x0e"))
    with pytest.raises(ProtocolViolationError, match="sequence id 5, expected 1"):
        t.feed(Packet.of(5, OK_AUTOCOMMIT))


def test_unexpected_server_packets_are_violations() -> None:
    t = ResultSetTracker(DEPRECATE)
    with pytest.raises(ProtocolViolationError, match="no response was expected"):
        t.feed(Packet.of(1, OK_AUTOCOMMIT))
    with pytest.raises(ProtocolViolationError, match="EOF packet where"):
        play(t, b"\x03SELECT 1", [EOF_AUTOCOMMIT])


def test_untrackable_commands_must_be_denied_first() -> None:
    assert not is_trackable(Command.BINLOG_DUMP)
    assert not is_trackable(Command.MULTI)
    assert is_trackable(Command.QUERY)
    t = ResultSetTracker(DEPRECATE)
    with pytest.raises(ValueError, match="deny it before forwarding"):
        t.start(Packet.of(0, b"\x12\x00"))


def test_unsupported_capabilities_are_refused() -> None:
    with pytest.raises(ValueError, match="CODEC_CAPABILITIES"):
        ResultSetTracker(DEPRECATE | Capability.MARIADB_CACHE_METADATA)


def test_status_flags_follow_the_server() -> None:
    t = ResultSetTracker(DEPRECATE)
    in_trans = OkPacket(status_flags=ServerStatus.IN_TRANS | ServerStatus.AUTOCOMMIT)
    play(t, Query(b"BEGIN").encode(), [in_trans.encode(DEPRECATE)])
    assert t.status_flags & ServerStatus.IN_TRANS


@st.composite
def result_stream(draw: st.DrawFn) -> tuple[int, list[bytes], int]:
    """A random valid COM_QUERY response: several results of OKs and text result sets."""
    deprecate = draw(st.booleans())
    caps = DEPRECATE if deprecate else BASE
    n_results = draw(st.integers(1, 4))
    payloads: list[bytes] = []
    rows_total = 0
    for i in range(n_results):
        status = ServerStatus.AUTOCOMMIT | (
            ServerStatus.MORE_RESULTS_EXISTS if i < n_results - 1 else 0
        )
        if draw(st.booleans()):
            payloads.append(OkPacket(draw(st.integers(0, 10)), status_flags=status).encode(caps))
            continue
        ncols = draw(st.integers(1, 4))
        payloads.append(bytes((ncols,)))
        payloads += [ColumnDefinition(name=f"c{j}", type=FieldType.VAR_STRING).encode()
                     for j in range(ncols)]
        if not deprecate:
            payloads.append(EofPacket(0, ServerStatus.AUTOCOMMIT).encode())
        nrows = draw(st.integers(0, 5))
        rows_total += nrows
        for _ in range(nrows):
            values = draw(st.lists(st.none() | st.binary(max_size=20), min_size=ncols,
                                   max_size=ncols))
            payloads.append(encode_text_row(values))
        end = (OkPacket(status_flags=status, header=0xFE).encode(caps) if deprecate
               else EofPacket(0, status).encode())
        payloads.append(end)
    return caps, payloads, rows_total


@given(result_stream())
def test_any_valid_query_response_completes_exactly_at_its_end(
    stream: tuple[int, list[bytes], int],
) -> None:
    caps, payloads, _rows = stream
    t = ResultSetTracker(caps)
    t.start(Packet.of(0, b"\x03SELECT"))
    for seq, payload in enumerate(payloads, start=1):
        assert not t.idle
        t.feed(Packet.of(seq & 0xFF, payload))
    assert t.idle


def test_row_types_do_not_confuse_the_tracker() -> None:
    # a text row whose first column is NULL starts with 0xFB; one whose first value is
    # empty starts with 0x00: neither is a LOCAL INFILE request or an OK inside rows
    t = ResultSetTracker(DEPRECATE)
    kinds = play(t, b"\x03SELECT", [b"\x02", COL_1, COL_A, b"\xfb\x00", b"\x00\xfb",
                                    OK_FE_AUTOCOMMIT])
    assert kinds[3:5] == [K.ROW, K.ROW]


def test_value_type_helpers() -> None:
    assert ValueType.of_param(0x8008) == ValueType(FieldType.LONGLONG, unsigned=True)


def test_repeated_column_definitions_are_parsed_once_and_never_confused() -> None:
    """Column definitions are remembered by their bytes: a statement run again gets the
    same (immutable) objects; any other bytes get their own parse."""
    t = ResultSetTracker(DEPRECATE)
    play(t, b"\x03SELECT 1, 'a'", [b"\x02", COL_1, COL_A, b"\x011\x01a", OK_FE_AUTOCOMMIT])
    first = list(t.columns)
    play(t, b"\x03SELECT 1, 'a'", [b"\x02", COL_1, COL_A, b"\x011\x01a", OK_FE_AUTOCOMMIT])
    assert t.columns[0] is first[0] and t.columns[1] is first[1]
    play(t, b"\x03SELECT 2, 'a'", [b"\x02", COL_2, COL_A, b"\x012\x01a", OK_FE_AUTOCOMMIT])
    assert [c.name for c in t.columns] == ["2", "a"]
    assert t.columns[0] == ColumnDefinition.parse(COL_2, DEPRECATE)
    assert t.columns[1] is first[1]
