"""Where a command's response ends: a sans-I/O state machine over server packets.

Owns the response grammar of the command phase. The proxy calls
:meth:`ResultSetTracker.start` with each command packet it forwards and
:meth:`ResultSetTracker.feed` with each server packet; every packet is classified
(:class:`ResponseKind`) and the tracker says when the response — including every result
of a multi-statement / ``CALL`` — is complete, when the server waits for the client
(LOAD DATA LOCAL file contents, COM_CHANGE_USER auth round trips), and exposes the
current result set's column definitions so masking and recording can decode rows
(text rows for COM_QUERY, binary rows for COM_STMT_EXECUTE / COM_STMT_FETCH).

Commands may be pipelined (MariaDB Connector/J sends PREPARE and EXECUTE back to back);
their responses are tracked in order. Rows are only classified, never decoded here, so
forwarding a large result set costs two comparisons per row.

The grammar, per command (``[…]`` absent under ``CLIENT_DEPRECATE_EOF``, where the final
EOF becomes an OK packet with a 0xFE header):

* COM_QUERY / COM_STMT_EXECUTE / COM_PROCESS_INFO, per result:
  ``OK | ERR | 0xFB LOCAL INFILE → client data → OK/ERR |
  column-count, n column-defs, [EOF], row*, (EOF | OK-0xFE | ERR)``;
  another result follows while ``SERVER_MORE_RESULTS_EXISTS`` is set. A COM_STMT_EXECUTE
  that opens a cursor ends after the column EOF (``SERVER_STATUS_CURSOR_EXISTS``).
* COM_STMT_PREPARE: ``ERR | PREPARE_OK, p param-defs, [EOF], c column-defs, [EOF]``.
* COM_STMT_FETCH: ``row*, (EOF | OK-0xFE) | ERR``.
* COM_FIELD_LIST: ``column-def*, (EOF | OK-0xFE) | ERR``.
* COM_STATISTICS: one string packet. COM_CHANGE_USER: an auth exchange.
* COM_QUIT / COM_STMT_CLOSE / COM_STMT_SEND_LONG_DATA: no response at all.
* every other supported command: ``OK | ERR`` (COM_SET_OPTION may answer EOF).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Final

from wardgate.core.errors import ProtocolViolationError

from .constants import (
    AUTH_MORE_DATA_HEADER,
    AUTH_SWITCH_HEADER,
    EOF_HEADER,
    ERR_HEADER,
    LOCAL_INFILE_HEADER,
    OK_HEADER,
    Capability,
    Command,
    ServerStatus,
)
from .messages import (
    MAX_EOF_LENGTH,
    ColumnDefinition,
    EofPacket,
    ErrPacket,
    LocalInfileRequest,
    OkPacket,
    StmtPrepareOk,
    command_name,
    is_end_of_rows,
    is_progress_report,
    parse_column_count,
)
from .packets import Packet

#: Length of a classic EOF packet (0xFE, warnings, status); an OK-0xFE is at least 7.
EOF_PACKET_LENGTH = 5


class ResponseKind(Enum):
    """What one server packet was, in the context of the command it answers."""

    OK = auto()  # an OK (or, for COM_SET_OPTION, EOF) ending a result
    ERROR = auto()  # an ERR packet: ends the whole response
    PROGRESS = auto()  # MariaDB progress report: informational
    COLUMN_COUNT = auto()
    COLUMN_DEFINITION = auto()
    PARAM_DEFINITION = auto()
    END_OF_METADATA = auto()  # the EOF after parameter or column definitions
    ROW = auto()
    END_OF_ROWS = auto()  # EOF or OK-0xFE after the rows of a result set
    LOCAL_INFILE_REQUEST = auto()  # the server waits for the client's file
    PREPARE_OK = auto()
    STATISTICS = auto()
    AUTH_SWITCH = auto()  # COM_CHANGE_USER: the server waits for the client's answer
    AUTH_MORE_DATA = auto()


# Plain ints for the per-packet paths: ``int & IntFlag`` goes through IntFlag.__rand__,
# which builds a flag object every time.
_DEPRECATE_EOF: Final = int(Capability.DEPRECATE_EOF)
_LAST_ROW_SENT: Final = int(ServerStatus.LAST_ROW_SENT)
_CURSOR_EXISTS: Final = int(ServerStatus.CURSOR_EXISTS)
_MORE_RESULTS_EXISTS: Final = int(ServerStatus.MORE_RESULTS_EXISTS)


class _State(Enum):
    RESULT = auto()  # expecting the first packet of a result
    COLUMNS = auto()
    COLUMNS_EOF = auto()
    ROWS = auto()
    PREPARE = auto()
    PREPARE_PARAMS = auto()
    PREPARE_PARAMS_EOF = auto()
    PREPARE_COLUMNS = auto()
    PREPARE_COLUMNS_EOF = auto()
    FETCH_ROWS = auto()
    FIELD_LIST = auto()
    SIMPLE = auto()
    STATISTICS = auto()
    AUTH = auto()
    CLIENT_INFILE = auto()  # waiting for the client's file contents
    CLIENT_AUTH = auto()  # waiting for the client's auth answer


_RESULT_COMMANDS = frozenset({Command.QUERY, Command.STMT_EXECUTE, Command.PROCESS_INFO})
_NO_RESPONSE = frozenset({Command.QUIT, Command.STMT_CLOSE, Command.STMT_SEND_LONG_DATA})
_SIMPLE = frozenset(
    {
        Command.PING,
        Command.INIT_DB,
        Command.RESET_CONNECTION,
        Command.STMT_RESET,
        Command.PROCESS_KILL,
        Command.REFRESH,
        Command.DEBUG,
        Command.SET_OPTION,
        Command.CREATE_DB,
        Command.DROP_DB,
        Command.SHUTDOWN,
        Command.SLEEP,
    }
)


def expects_response(command: int) -> bool:
    """False for the commands the server never answers (QUIT, STMT_CLOSE, SEND_LONG_DATA)."""
    return command not in _NO_RESPONSE


def is_trackable(command: int) -> bool:
    """True if the tracker knows the response grammar of ``command``.

    Replication, COM_MULTI, bulk execute and the like are not: deny them before they reach
    the target rather than forward a response nobody can delimit.
    """
    return (
        command in _RESULT_COMMANDS
        or command in _NO_RESPONSE
        or command in _SIMPLE
        or command
        in (
            Command.STMT_PREPARE,
            Command.STMT_FETCH,
            Command.FIELD_LIST,
            Command.STATISTICS,
            Command.CHANGE_USER,
        )
    )


@dataclass(slots=True)
class _Pending:
    command: int
    seq: int
    statement_id: int | None


@dataclass(slots=True)
class ResultSetTracker:
    """Follow server responses command by command; see the module docstring for the grammar.

    ``capabilities`` are the ones agreed on the connection the packets travel (the
    upstream side's; they decide DEPRECATE_EOF and MariaDB's extended column metadata).
    """

    capabilities: int
    #: Column definitions of the current result set (or of the prepared statement).
    columns: list[ColumnDefinition] = field(default_factory=list, init=False)
    #: Parameter definitions of the statement a COM_STMT_PREPARE just prepared.
    params: list[ColumnDefinition] = field(default_factory=list, init=False)
    prepared: StmtPrepareOk | None = field(default=None, init=False)
    last_ok: OkPacket | None = field(default=None, init=False)
    last_eof: EofPacket | None = field(default=None, init=False)
    error: ErrPacket | None = field(default=None, init=False)
    local_infile: LocalInfileRequest | None = field(default=None, init=False)
    #: Status flags from the last OK/EOF the server sent (IN_TRANS, AUTOCOMMIT, …).
    status_flags: int = field(default=ServerStatus.AUTOCOMMIT, init=False)
    #: Rows seen in the current command's response, and result sets started.
    row_count: int = field(default=0, init=False)
    result_count: int = field(default=0, init=False)
    #: The command whose response the last :meth:`feed` completed, else None.
    completed_command: int | None = field(default=None, init=False)
    _queue: deque[_Pending] = field(default_factory=deque, init=False)
    _state: _State = field(default=_State.SIMPLE, init=False)
    _seq: int = field(default=0, init=False)
    _remaining: int = field(default=0, init=False)
    _binary: bool = field(default=False, init=False)
    _cursor_columns: dict[int, list[ColumnDefinition]] = field(default_factory=dict, init=False)
    _column_cache: dict[bytes, ColumnDefinition] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        # A plain int: every ``capabilities & X`` on an IntFlag builds a flag object, and
        # the hot path tests it per packet.
        self.capabilities = int(self.capabilities)
        unsupported = self.capabilities & (
            Capability.MARIADB_CACHE_METADATA
            | Capability.OPTIONAL_RESULTSET_METADATA
            | Capability.COMPRESS
            | Capability.QUERY_ATTRIBUTES
            | Capability.MARIADB_COM_MULTI
            | Capability.MARIADB_STMT_BULK_OPERATIONS
        )
        if unsupported:
            raise ValueError(
                f"capabilities {Capability(unsupported)!r} change the response layout and are "
                "not supported; mask them out with CODEC_CAPABILITIES when negotiating"
            )

    # -- inspection ---------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No response is outstanding: every forwarded command has been fully answered."""
        return not self._queue

    @property
    def pending(self) -> int:
        """Commands forwarded whose responses have not finished."""
        return len(self._queue)

    @property
    def awaiting_client(self) -> bool:
        """The server waits for client packets (LOCAL INFILE data, an auth answer)."""
        return self._state in (_State.CLIENT_INFILE, _State.CLIENT_AUTH) and bool(self._queue)

    @property
    def binary_rows(self) -> bool:
        """Rows of the current result set are binary-protocol rows."""
        return self._binary

    @property
    def expected_seq(self) -> int:
        """The sequence id the next packet of the current exchange must carry."""
        return self._seq

    def row_run_seq(self) -> int:
        """While a result's rows stream (COM_QUERY / COM_STMT_EXECUTE, not a cursor
        fetch): the sequence id the next row packet must carry; else -1. What a compiled
        walk over row packets starts from (``rows_walked`` reports back)."""
        if self._state is _State.ROWS and self._queue:
            return self._seq
        return -1

    def rows_walked(self, rows: int, next_seq: int) -> None:
        """``rows`` row packets were taken outside ``feed`` (each one ``feed`` would have
        classified ROW); ``next_seq`` is the id the packet after them must carry."""
        self.completed_command = None
        self.row_count += rows
        self._seq = next_seq & 0xFF

    @property
    def current_command(self) -> int | None:
        return self._queue[0].command if self._queue else None

    def cursor_columns(self, statement_id: int) -> list[ColumnDefinition] | None:
        """Columns of the open cursor of ``statement_id`` (for COM_STMT_FETCH rows)."""
        return self._cursor_columns.get(statement_id)

    # -- driving ---------------------------------------------------------------------------

    def start(self, command: Packet) -> None:
        """Note a command packet forwarded to the server (call before forwarding it)."""
        payload = command.payload
        if not len(payload):
            raise ProtocolViolationError("empty command packet")
        cmd = payload[0]
        if not is_trackable(cmd):
            raise ValueError(
                f"{command_name(cmd)} has no response grammar in the tracker; deny it before "
                "forwarding it to the target"
            )
        stmt_id = None
        if cmd in (
            Command.STMT_EXECUTE,
            Command.STMT_FETCH,
            Command.STMT_CLOSE,
            Command.STMT_RESET,
        ):
            if len(payload) < 5:
                raise ProtocolViolationError(f"{command_name(cmd)} without a statement id")
            stmt_id = int.from_bytes(bytes(payload[1:5]), "little")
            if cmd != Command.STMT_FETCH:
                self._cursor_columns.pop(stmt_id, None)
        if cmd in (Command.RESET_CONNECTION, Command.CHANGE_USER):
            self._cursor_columns.clear()  # both close every statement of the session
        if cmd in _NO_RESPONSE:
            self.completed_command = cmd
            return
        self._queue.append(_Pending(cmd, command.next_seq, stmt_id))
        if len(self._queue) == 1:
            self._begin()

    def _begin(self) -> None:
        head = self._queue[0]
        cmd = head.command
        self._seq = head.seq
        self.row_count = 0
        self.result_count = 0
        self.error = None
        self.local_infile = None
        self._binary = cmd in (Command.STMT_EXECUTE, Command.STMT_FETCH)
        if cmd in _RESULT_COMMANDS:
            self._state = _State.RESULT
        elif cmd == Command.STMT_PREPARE:
            self.columns, self.params, self.prepared = [], [], None
            self._state = _State.PREPARE
        elif cmd == Command.STMT_FETCH:
            assert head.statement_id is not None
            self.columns = self._cursor_columns.get(head.statement_id, [])
            self._state = _State.FETCH_ROWS
        elif cmd == Command.FIELD_LIST:
            self.columns = []
            self._state = _State.FIELD_LIST
        elif cmd == Command.STATISTICS:
            self._state = _State.STATISTICS
        elif cmd == Command.CHANGE_USER:
            self._state = _State.AUTH
        else:
            self._state = _State.SIMPLE

    def _finish(self) -> None:
        done = self._queue.popleft()
        self.completed_command = done.command
        if self._queue:
            self._begin()

    def _check_seq(self, packet: Packet, side: str) -> None:
        if packet.seq != self._seq:
            raise ProtocolViolationError(
                f"{side} packet has sequence id {packet.seq}, expected {self._seq} while "
                f"answering {command_name(self._queue[0].command)}; the stream is out of sync"
            )
        self._seq = packet.next_seq

    def feed_client(self, packet: Packet) -> None:
        """Note a client packet sent while :attr:`awaiting_client` (file data, auth answer)."""
        if not self.awaiting_client:
            raise ProtocolViolationError(
                "the client sent a packet while the server was still answering; the MySQL "
                "protocol does not allow that except for LOCAL INFILE data and auth answers"
            )
        self._check_seq(packet, "client")
        if self._state is _State.CLIENT_AUTH:
            self._state = _State.AUTH
        elif not len(packet.payload):  # an empty packet ends the file
            self._state = _State.RESULT

    def _column(self, payload: memoryview | bytes) -> ColumnDefinition:
        """A column definition, remembered by its bytes: a statement run again gets the
        same ones, and parsing them was a large part of a small query's cost. (The parsed
        definition is immutable and shared.)"""
        key = bytes(payload)
        col = self._column_cache.get(key)
        if col is None:
            col = ColumnDefinition.parse(key, self.capabilities)
            if len(self._column_cache) >= 1024:
                self._column_cache.clear()
            self._column_cache[key] = col
        return col

    def feed(self, packet: Packet) -> ResponseKind:
        """Classify one server packet and advance; raises on packets the grammar forbids."""
        self.completed_command = None
        state = self._state
        p = packet.payload
        if state is _State.ROWS and packet.seq == self._seq and len(p) and self._queue:
            # Hot path: one more row of a result set.
            self._seq = packet.next_seq
            first = p[0]
            if first != EOF_HEADER and first != ERR_HEADER:  # noqa: PLR1714 - speed
                self.row_count += 1
                return ResponseKind.ROW
        else:
            if not self._queue or self.awaiting_client:
                raise ProtocolViolationError(
                    "the server sent a packet when no response was expected"
                    if not self._queue
                    else "the server sent a packet while waiting for the client"
                )
            self._check_seq(packet, "server")
            if not len(p):
                raise ProtocolViolationError("the server sent an empty packet")
            first = p[0]

        if state is _State.ROWS or state is _State.FETCH_ROWS:
            if first == ERR_HEADER:
                return self._err(p)
            if first == EOF_HEADER and is_end_of_rows(p, self.capabilities):
                status = self._end_status(p)
                head = self._queue[0]
                if state is _State.FETCH_ROWS:
                    if status & _LAST_ROW_SENT and head.statement_id is not None:
                        self._cursor_columns.pop(head.statement_id, None)
                    self._finish()
                    return ResponseKind.END_OF_ROWS
                if status & _CURSOR_EXISTS and self._binary and not self.row_count:
                    # Under DEPRECATE_EOF a cursor-opening execute ends its metadata with
                    # an OK-0xFE carrying CURSOR_EXISTS; the rows come with COM_STMT_FETCH.
                    self._open_cursor()
                    return ResponseKind.END_OF_METADATA
                if status & _MORE_RESULTS_EXISTS:
                    self._state = _State.RESULT
                else:
                    self._finish()
                return ResponseKind.END_OF_ROWS
            self.row_count += 1
            return ResponseKind.ROW

        if state is _State.RESULT:
            if first == ERR_HEADER:
                return self._err(p)
            if first == OK_HEADER:
                ok = self._ok(p)
                if not ok.more_results:
                    self._finish()
                return ResponseKind.OK
            if first == LOCAL_INFILE_HEADER:
                self.local_infile = LocalInfileRequest.parse(p)
                self._state = _State.CLIENT_INFILE
                return ResponseKind.LOCAL_INFILE_REQUEST
            if first == EOF_HEADER and len(p) < MAX_EOF_LENGTH:
                raise ProtocolViolationError("EOF packet where a result set or OK was expected")
            self._remaining = parse_column_count(p)
            self.columns = []
            self.result_count += 1
            self._state = _State.COLUMNS
            return ResponseKind.COLUMN_COUNT

        if state is _State.COLUMNS:
            self.columns.append(self._column(p))
            self._remaining -= 1
            if not self._remaining:
                self._state = (
                    _State.ROWS
                    if self.capabilities & _DEPRECATE_EOF
                    else _State.COLUMNS_EOF
                )
            return ResponseKind.COLUMN_DEFINITION

        if state is _State.COLUMNS_EOF:
            eof = self._eof(p)
            if eof.status_flags & _CURSOR_EXISTS and self._binary:
                self._open_cursor()
            else:
                self._state = _State.ROWS
            return ResponseKind.END_OF_METADATA

        if state is _State.PREPARE:
            if first == ERR_HEADER:
                return self._err(p)
            self.prepared = prepared = StmtPrepareOk.parse(p)
            if prepared.num_params:
                self._remaining = prepared.num_params
                self._state = _State.PREPARE_PARAMS
            else:
                self._prepare_columns_or_finish()
            return ResponseKind.PREPARE_OK

        if state is _State.PREPARE_PARAMS:
            self.params.append(self._column(p))
            self._remaining -= 1
            if not self._remaining:
                if self.capabilities & _DEPRECATE_EOF:
                    self._prepare_columns_or_finish()
                else:
                    self._state = _State.PREPARE_PARAMS_EOF
            return ResponseKind.PARAM_DEFINITION

        if state is _State.PREPARE_PARAMS_EOF:
            self._eof(p)
            self._prepare_columns_or_finish()
            return ResponseKind.END_OF_METADATA

        if state is _State.PREPARE_COLUMNS:
            self.columns.append(self._column(p))
            self._remaining -= 1
            if not self._remaining:
                if self.capabilities & _DEPRECATE_EOF:
                    self._finish()
                else:
                    self._state = _State.PREPARE_COLUMNS_EOF
            return ResponseKind.COLUMN_DEFINITION

        if state is _State.PREPARE_COLUMNS_EOF:
            self._eof(p)
            self._finish()
            return ResponseKind.END_OF_METADATA

        if state is _State.FIELD_LIST:
            if first == ERR_HEADER:
                return self._err(p)
            if first == EOF_HEADER and is_end_of_rows(p, self.capabilities):
                self._end_status(p)
                self._finish()
                return ResponseKind.END_OF_ROWS
            self.columns.append(self._column(p))
            return ResponseKind.COLUMN_DEFINITION

        if state is _State.SIMPLE:
            if first == ERR_HEADER:
                return self._err(p)
            if first == OK_HEADER:
                self._ok(p)
            elif first == EOF_HEADER and is_end_of_rows(p, self.capabilities):
                self._end_status(p)  # COM_SET_OPTION answers EOF (OK-0xFE under DEPRECATE_EOF)
            else:
                raise ProtocolViolationError(
                    f"unexpected packet 0x{first:02x} in answer to "
                    f"{command_name(self._queue[0].command)}; OK or ERR expected"
                )
            self._finish()
            return ResponseKind.OK

        if state is _State.STATISTICS:
            if first == ERR_HEADER:
                return self._err(p)
            self._finish()
            return ResponseKind.STATISTICS

        if state is _State.AUTH:
            if first == ERR_HEADER:
                return self._err(p)
            if first == OK_HEADER:
                self._ok(p)
                self._finish()
                return ResponseKind.OK
            if first == AUTH_SWITCH_HEADER:
                self._state = _State.CLIENT_AUTH
                return ResponseKind.AUTH_SWITCH
            if first == AUTH_MORE_DATA_HEADER:
                # caching_sha2's "fast auth succeeded" (0x01 0x03) is followed by the OK,
                # not by a client answer.
                if bytes(p[1:]) != b"\x03":
                    self._state = _State.CLIENT_AUTH
                return ResponseKind.AUTH_MORE_DATA
            raise ProtocolViolationError(
                f"unexpected packet 0x{first:02x} during COM_CHANGE_USER authentication"
            )

        raise AssertionError(f"unhandled tracker state {state}")  # pragma: no cover

    # -- helpers -------------------------------------------------------------------------

    def _prepare_columns_or_finish(self) -> None:
        prepared = self.prepared
        assert prepared is not None
        if prepared.num_columns:
            self._remaining = prepared.num_columns
            self._state = _State.PREPARE_COLUMNS
        else:
            self._finish()

    def _open_cursor(self) -> None:
        stmt_id = self._queue[0].statement_id
        if stmt_id is not None:
            self._cursor_columns[stmt_id] = self.columns
        self._finish()

    def _err(self, p: memoryview) -> ResponseKind:
        if is_progress_report(p):
            return ResponseKind.PROGRESS
        self.error = ErrPacket.parse(p)
        self._finish()
        return ResponseKind.ERROR

    def _ok(self, p: memoryview) -> OkPacket:
        ok = OkPacket.parse(p, self.capabilities)
        self.last_ok = ok
        self.status_flags = ok.status_flags
        return ok

    def _eof(self, p: memoryview) -> EofPacket:
        if not (len(p) and p[0] == EOF_HEADER and len(p) < MAX_EOF_LENGTH):
            raise ProtocolViolationError("expected an EOF packet after the definitions")
        eof = EofPacket.parse(p)
        self.last_eof = eof
        self.status_flags = eof.status_flags
        return eof

    def _end_status(self, p: memoryview) -> int:
        """Status of a 0xFE packet ending a list: EOF (5 bytes) or, under DEPRECATE_EOF, OK."""
        if len(p) == EOF_PACKET_LENGTH or not self.capabilities & _DEPRECATE_EOF:
            return self._eof(p).status_flags
        return self._ok(p).status_flags
