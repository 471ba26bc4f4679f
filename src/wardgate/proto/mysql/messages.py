"""Command-phase messages: OK / ERR / EOF, column definitions, text rows, COM_* commands.

Owns the byte layouts of everything exchanged after authentication except binary-protocol
values (:mod:`.binary`): the generic response packets (with SQLSTATE and session-state
info), ``ColumnDefinition41`` (with MariaDB's extended type info), text resultset rows,
the COM_STMT_PREPARE response header and every client command the gateway inspects.
Each message is a frozen dataclass with ``parse(payload, …)`` and ``encode(…) -> payload``;
:func:`parse_command` dispatches on the command byte.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from wardgate.core.errors import ProtocolViolationError

from .charsets import UTF8MB4_GENERAL_CI, text_codec
from .constants import (
    EOF_HEADER,
    ERR_HEADER,
    LOCAL_INFILE_HEADER,
    OK_HEADER,
    PROGRESS_REPORT_ERRNO,
    Capability,
    Command,
    ServerStatus,
)
from .wire import (
    Buffer,
    PayloadReader,
    lenenc_bytes,
    lenenc_bytes_or_null,
    lenenc_int,
    null_terminated,
)

#: Clients copy error messages into 512-byte buffers (MYSQL_ERRMSG_SIZE); longer ones are
#: cut by the client anyway, so cut them here at a character boundary.
MAX_ERROR_MESSAGE_BYTES = 512
#: An EOF packet is shorter than 9 bytes; a text row starting with 0xFE is not.
MAX_EOF_LENGTH = 9
#: With CLIENT_DEPRECATE_EOF the end-of-rows OK starts with 0xFE; a row starting with 0xFE
#: has an 8-byte length and so is at least 16 MiB long.
MAX_OK_FE_LENGTH = 0xFFFFFF


# -- generic responses ----------------------------------------------------------------------


# Plain ints for the per-packet paths: ``int & IntFlag`` goes through IntFlag.__rand__,
# which builds a flag object every time.
_DEPRECATE_EOF: Final = int(Capability.DEPRECATE_EOF)
_PROTOCOL_41: Final = int(Capability.PROTOCOL_41)
_TRANSACTIONS: Final = int(Capability.TRANSACTIONS)
_SESSION_TRACK: Final = int(Capability.SESSION_TRACK)
_EXTENDED_METADATA: Final = int(Capability.MARIADB_EXTENDED_METADATA)
_SESSION_STATE_CHANGED: Final = int(ServerStatus.SESSION_STATE_CHANGED)
_MORE_RESULTS_EXISTS: Final = int(ServerStatus.MORE_RESULTS_EXISTS)


@dataclass(frozen=True, slots=True)
class OkPacket:
    """``OK_Packet`` (header 0x00, or 0xFE where it replaces EOF under DEPRECATE_EOF)."""

    affected_rows: int = 0
    last_insert_id: int = 0
    status_flags: int = ServerStatus.AUTOCOMMIT
    warnings: int = 0
    info: bytes = b""
    session_state_changes: bytes | None = None
    header: int = OK_HEADER

    @property
    def more_results(self) -> bool:
        return bool(self.status_flags & _MORE_RESULTS_EXISTS)

    @classmethod
    def parse(cls, payload: Buffer, capabilities: int) -> OkPacket:
        if len(payload) <= _OK_CACHED_LENGTH:
            # A session sees few distinct short OKs (the end of every SELECT's rows under
            # DEPRECATE_EOF is one), and they are immutable: parsed once per capabilities.
            key = (bytes(payload), capabilities)
            ok = _OKS.get(key)
            if ok is None:
                ok = cls._parse(payload, capabilities)
                if len(_OKS) >= 256:
                    _OKS.clear()
                _OKS[key] = ok
            return ok
        return cls._parse(payload, capabilities)

    @classmethod
    def _parse(cls, payload: Buffer, capabilities: int) -> OkPacket:
        r = PayloadReader(payload, "OK packet")
        header = r.u8("header")
        if header not in (OK_HEADER, EOF_HEADER):
            raise ProtocolViolationError(f"OK packet must start with 0x00 or 0xFE, not {header:#x}")
        affected = r.lenenc_int("affected rows")
        insert_id = r.lenenc_int("last insert id")
        status = warnings = 0
        if capabilities & _PROTOCOL_41:
            status = r.u16("status flags")
            warnings = r.u16("warnings")
        elif capabilities & _TRANSACTIONS:
            status = r.u16("status flags")
        info = b""
        state: bytes | None = None
        if capabilities & _SESSION_TRACK:
            if not r.at_end:
                info = r.lenenc_bytes("info")
            if status & _SESSION_STATE_CHANGED and not r.at_end:
                state = r.lenenc_bytes("session state info")
        else:
            info = r.rest()
        return cls(affected, insert_id, status, warnings, info, state, header)

    def encode(self, capabilities: int) -> bytes:
        out = [
            bytes((self.header,)),
            lenenc_int(self.affected_rows),
            lenenc_int(self.last_insert_id),
        ]
        if capabilities & Capability.PROTOCOL_41:
            out.append(self.status_flags.to_bytes(2, "little"))
            out.append(self.warnings.to_bytes(2, "little"))
        elif capabilities & Capability.TRANSACTIONS:
            out.append(self.status_flags.to_bytes(2, "little"))
        if capabilities & Capability.SESSION_TRACK:
            if self.info or self.session_state_changes is not None:
                out.append(lenenc_bytes(self.info))
            if self.session_state_changes is not None:
                out.append(lenenc_bytes(self.session_state_changes))
        else:
            out.append(self.info)
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class ErrPacket:
    """``ERR_Packet``: error number, SQLSTATE and a message for the person at the client."""

    code: int
    message: str
    sqlstate: str = "HY000"

    @classmethod
    def parse(cls, payload: Buffer) -> ErrPacket:
        r = PayloadReader(payload, "ERR packet")
        if r.u8("header") != ERR_HEADER:
            raise ProtocolViolationError("ERR packet must start with 0xFF")
        code = r.u16("error code")
        sqlstate = "HY000"
        # Before capabilities are agreed (a refused greeting) the '#' marker is absent,
        # so look for it instead of trusting CLIENT_PROTOCOL_41.
        if r.remaining >= 6 and r.peek_u8() == ord("#"):
            r.skip(1)
            sqlstate = r.fixed(5, "sqlstate").decode("ascii", "replace")
        return cls(code, r.rest().decode("utf-8", "replace"), sqlstate)

    def encode(self, capabilities: int = Capability.PROTOCOL_41) -> bytes:
        msg = self.message.encode("utf-8")
        if len(msg) > MAX_ERROR_MESSAGE_BYTES:
            msg = msg[:MAX_ERROR_MESSAGE_BYTES].decode("utf-8", "ignore").encode("utf-8")
        head = bytes((ERR_HEADER,)) + self.code.to_bytes(2, "little")
        if capabilities & Capability.PROTOCOL_41:
            state = self.sqlstate.encode("ascii")
            if len(state) != 5:
                raise ValueError(f"SQLSTATE must be 5 characters, not {self.sqlstate!r}")
            head += b"#" + state
        return head + msg


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """MariaDB progress report (an ERR packet with error 0xFFFF); not an error."""

    stage: int
    max_stage: int
    progress: int  # thousandths of a percent: 0..100000
    info: bytes

    @classmethod
    def parse(cls, payload: Buffer) -> ProgressReport:
        r = PayloadReader(payload, "progress report")
        if r.u8() != ERR_HEADER or r.u16() != PROGRESS_REPORT_ERRNO:
            raise ProtocolViolationError("progress report must start with 0xFF 0xFFFF")
        r.skip(1, "progress report number of strings")
        return cls(r.u8("stage"), r.u8("max stage"), r.u24("progress"), r.lenenc_bytes("info"))

    def encode(self) -> bytes:
        return (
            b"\xff\xff\xff\x01"
            + bytes((self.stage, self.max_stage))
            + self.progress.to_bytes(3, "little")
            + lenenc_bytes(self.info)
        )


# Short OK packets parsed so far, by (bytes, capabilities) (OkPacket.parse); a malformed
# one raises every time and is never stored.
_OK_CACHED_LENGTH: Final = 16
_OKS: dict[tuple[bytes, int], OkPacket] = {}

# The 5-byte EOF packets parsed so far (EofPacket.parse).
_EOFS: dict[bytes, EofPacket] = {}


def is_progress_report(payload: Buffer) -> bool:
    return len(payload) >= 3 and payload[0] == ERR_HEADER and payload[1] == payload[2] == 0xFF


@dataclass(frozen=True, slots=True)
class EofPacket:
    """``EOF_Packet`` (0xFE, warnings, status) — absent when CLIENT_DEPRECATE_EOF is agreed."""

    warnings: int = 0
    status_flags: int = ServerStatus.AUTOCOMMIT

    @property
    def more_results(self) -> bool:
        return bool(self.status_flags & _MORE_RESULTS_EXISTS)

    @classmethod
    def parse(cls, payload: Buffer) -> EofPacket:
        if len(payload) == 5:  # header, warnings, status flags
            # Every result set ends its columns and its rows with one; a session sees a
            # handful of distinct ones, and they are immutable.
            key = bytes(payload)
            eof = _EOFS.get(key)
            if eof is not None:
                return eof
            if key[0] == EOF_HEADER:
                eof = cls(key[1] | key[2] << 8, key[3] | key[4] << 8)
                if len(_EOFS) >= 256:
                    _EOFS.clear()
                _EOFS[key] = eof
                return eof
        r = PayloadReader(payload, "EOF packet")
        if r.u8("header") != EOF_HEADER:
            raise ProtocolViolationError("EOF packet must start with 0xFE")
        if r.at_end:  # pre-4.1 EOF
            return cls(0, 0)
        return cls(r.u16("warnings"), r.u16("status flags"))

    def encode(self) -> bytes:
        return (
            bytes((EOF_HEADER,))
            + self.warnings.to_bytes(2, "little")
            + self.status_flags.to_bytes(2, "little")
        )


def is_eof_packet(payload: Buffer) -> bool:
    """An EOF packet (not a text row that happens to start with 0xFE)."""
    return len(payload) < MAX_EOF_LENGTH and len(payload) > 0 and payload[0] == EOF_HEADER


def is_end_of_rows(payload: Buffer, capabilities: int) -> bool:
    """True if a packet in the row stream ends it (EOF, or OK-with-0xFE under DEPRECATE_EOF)."""
    if not len(payload) or payload[0] != EOF_HEADER:
        return False
    if capabilities & _DEPRECATE_EOF:
        return len(payload) < MAX_OK_FE_LENGTH
    return len(payload) < MAX_EOF_LENGTH


@dataclass(frozen=True, slots=True)
class LocalInfileRequest:
    """Server asks the client to upload a file (``0xFB`` + file name) for LOAD DATA LOCAL."""

    filename: bytes

    @classmethod
    def parse(cls, payload: Buffer) -> LocalInfileRequest:
        r = PayloadReader(payload, "LOCAL INFILE request")
        if r.u8() != LOCAL_INFILE_HEADER:
            raise ProtocolViolationError("LOCAL INFILE request must start with 0xFB")
        return cls(r.rest())

    def encode(self) -> bytes:
        return bytes((LOCAL_INFILE_HEADER,)) + self.filename


# -- result set metadata ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnDefinition:
    """``ColumnDefinition41``. ``extended`` holds MariaDB's extended type info, when agreed.

    Names are decoded as UTF-8 with ``surrogateescape`` (the usual
    ``character_set_results``), so any bytes survive a parse/encode round trip.
    """

    name: str
    type: int
    schema: str = ""
    table: str = ""
    org_table: str = ""
    org_name: str = ""
    character_set: int = UTF8MB4_GENERAL_CI
    column_length: int = 0
    flags: int = 0
    decimals: int = 0
    catalog: str = "def"
    extended: Mapping[int, bytes] = field(default_factory=dict)
    default_value: bytes | None = None  # only in COM_FIELD_LIST responses

    @classmethod
    def parse(cls, payload: Buffer, capabilities: int = 0) -> ColumnDefinition:
        r = PayloadReader(payload, "column definition")

        def text(what: str) -> str:
            return r.lenenc_bytes(what).decode("utf-8", "surrogateescape")

        catalog = text("catalog")
        schema = text("schema")
        table = text("table")
        org_table = text("org_table")
        name = text("name")
        org_name = text("org_name")
        extended: dict[int, bytes] = {}
        if capabilities & _EXTENDED_METADATA:
            block = PayloadReader(r.lenenc_bytes("extended type info"), "extended type info")
            while not block.at_end:
                kind = block.u8("extended info kind")
                extended[kind] = block.lenenc_bytes("extended info value")
        fixed_len = r.lenenc_int("length of fixed fields")
        if fixed_len < 0x0C:
            raise ProtocolViolationError(
                f"column definition's fixed fields are {fixed_len} bytes; at least 12 expected"
            )
        charset = r.u16("character set")
        length = r.u32("column length")
        col_type = r.u8("column type")
        flags = r.u16("flags")
        decimals = r.u8("decimals")
        r.skip(fixed_len - 10, "filler")
        default = r.lenenc_bytes_or_null("default value") if not r.at_end else None
        return cls(
            name=name,
            type=col_type,
            schema=schema,
            table=table,
            org_table=org_table,
            org_name=org_name,
            character_set=charset,
            column_length=length,
            flags=flags,
            decimals=decimals,
            catalog=catalog,
            extended=extended,
            default_value=default,
        )

    def encode(self, capabilities: int = 0) -> bytes:
        def text(value: str) -> bytes:
            return lenenc_bytes(value.encode("utf-8", "surrogateescape"))

        out = [
            text(self.catalog),
            text(self.schema),
            text(self.table),
            text(self.org_table),
            text(self.name),
            text(self.org_name),
        ]
        if capabilities & _EXTENDED_METADATA:
            block = b"".join(bytes((k,)) + lenenc_bytes(v) for k, v in self.extended.items())
            out.append(lenenc_bytes(block))
        out.append(
            b"\x0c"
            + self.character_set.to_bytes(2, "little")
            + self.column_length.to_bytes(4, "little")
            + bytes((self.type,))
            + self.flags.to_bytes(2, "little")
            + bytes((self.decimals,))
            + b"\x00\x00"
        )
        if self.default_value is not None:
            out.append(lenenc_bytes(self.default_value))
        return b"".join(out)


def parse_column_count(payload: Buffer) -> int:
    """The first packet of a result set: the number of columns (a length-encoded int)."""
    if len(payload) == 1 and 0 < payload[0] < 0xFB:
        return payload[0]  # (what the reader below makes of one byte below 0xFB)
    r = PayloadReader(payload, "column count")
    count = r.lenenc_int("column count")
    # MySQL 8 with CLIENT_OPTIONAL_RESULTSET_METADATA and MariaDB with CACHE_METADATA add a
    # metadata-follows byte; the codec never negotiates either, so anything more is wrong.
    r.expect_end()
    if count == 0:
        raise ProtocolViolationError("a result set with zero columns is not valid")
    return count


def encode_column_count(count: int) -> bytes:
    return lenenc_int(count)


# -- text rows --------------------------------------------------------------------------------


def parse_text_row(payload: Buffer, column_count: int) -> list[bytes | None]:
    """A text-protocol row: one length-encoded string per column, 0xFB for NULL."""
    values = _split_text_row(payload, column_count)
    if values is not None:
        return values
    # Something is off: the reader says exactly what (and where).
    r = PayloadReader(payload, "text row")
    values = [r.lenenc_bytes_or_null("column value") for _ in range(column_count)]
    r.expect_end()
    return values


def _split_text_row(payload: Buffer, column_count: int) -> list[bytes | None] | None:
    """``parse_text_row`` for a well-formed row in one loop (recording decodes up to
    ``max_result_rows`` rows per result with it); None for anything malformed."""
    data = payload if type(payload) is bytes else bytes(payload)
    size = len(data)
    out: list[bytes | None] = []
    pos = 0
    for _ in range(column_count):
        if pos >= size:
            return None
        n = data[pos]
        if n < 0xFB:
            pos += 1
        elif n == 0xFB:
            out.append(None)
            pos += 1
            continue
        elif n == 0xFC and pos + 3 <= size:
            n = data[pos + 1] | data[pos + 2] << 8
            pos += 3
        elif n == 0xFD and pos + 4 <= size:
            n = data[pos + 1] | data[pos + 2] << 8 | data[pos + 3] << 16
            pos += 4
        elif n == 0xFE and pos + 9 <= size:
            n = int.from_bytes(data[pos + 1 : pos + 9], "little")
            pos += 9
        else:
            return None
        end = pos + n
        if end > size:
            return None
        out.append(data[pos:end])
        pos = end
    return out if pos == size else None


def encode_text_row(values: Sequence[Buffer | None]) -> bytes:
    return b"".join(lenenc_bytes_or_null(v) for v in values)


# -- prepared statement response -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StmtPrepareOk:
    """``COM_STMT_PREPARE_OK``: the statement id and how many params and columns follow."""

    statement_id: int
    num_columns: int
    num_params: int
    warnings: int = 0
    metadata_follows: int | None = None  # MySQL 8 optional metadata; never negotiated here

    @classmethod
    def parse(cls, payload: Buffer) -> StmtPrepareOk:
        r = PayloadReader(payload, "COM_STMT_PREPARE response")
        if r.u8("status") != OK_HEADER:
            raise ProtocolViolationError("COM_STMT_PREPARE_OK must start with 0x00")
        stmt_id = r.u32("statement id")
        cols = r.u16("number of columns")
        params = r.u16("number of params")
        warnings = 0
        follows = None
        if not r.at_end:
            r.skip(1, "reserved")
            warnings = r.u16("warning count")
            if not r.at_end:
                follows = r.u8("metadata follows")
        return cls(stmt_id, cols, params, warnings, follows)

    def encode(self) -> bytes:
        out = (
            b"\x00"
            + self.statement_id.to_bytes(4, "little")
            + self.num_columns.to_bytes(2, "little")
            + self.num_params.to_bytes(2, "little")
            + b"\x00"
            + self.warnings.to_bytes(2, "little")
        )
        if self.metadata_follows is not None:
            out += bytes((self.metadata_follows,))
        return out


# -- client commands --------------------------------------------------------------------------


def _expect_command(r: PayloadReader, command: Command) -> None:
    got = r.u8("command byte")
    if got != command:
        raise ProtocolViolationError(f"expected {command.name} (0x{command:02x}), got 0x{got:02x}")


@dataclass(frozen=True, slots=True)
class Query:
    """COM_QUERY. ``sql`` is the raw statement bytes in the connection's character set."""

    sql: bytes

    COMMAND = Command.QUERY

    @classmethod
    def parse(cls, payload: Buffer) -> Query:
        r = PayloadReader(payload, "COM_QUERY")
        _expect_command(r, Command.QUERY)
        return cls(r.rest())

    def text(self, collation_id: int = UTF8MB4_GENERAL_CI) -> str:
        """The statement as text; undecodable bytes raise (classifiers must fail closed)."""
        return self.sql.decode(text_codec(collation_id))

    def encode(self) -> bytes:
        return bytes((Command.QUERY,)) + self.sql


@dataclass(frozen=True, slots=True)
class InitDb:
    """COM_INIT_DB: switch the default schema (what ``USE db`` sends)."""

    schema: bytes

    COMMAND = Command.INIT_DB

    @classmethod
    def parse(cls, payload: Buffer) -> InitDb:
        r = PayloadReader(payload, "COM_INIT_DB")
        _expect_command(r, Command.INIT_DB)
        return cls(r.rest())

    def text(self, collation_id: int = UTF8MB4_GENERAL_CI) -> str:
        return self.schema.decode(text_codec(collation_id))

    def encode(self) -> bytes:
        return bytes((Command.INIT_DB,)) + self.schema


@dataclass(frozen=True, slots=True)
class StmtPrepare:
    """COM_STMT_PREPARE: the statement text to prepare."""

    sql: bytes

    COMMAND = Command.STMT_PREPARE

    @classmethod
    def parse(cls, payload: Buffer) -> StmtPrepare:
        r = PayloadReader(payload, "COM_STMT_PREPARE")
        _expect_command(r, Command.STMT_PREPARE)
        return cls(r.rest())

    def text(self, collation_id: int = UTF8MB4_GENERAL_CI) -> str:
        return self.sql.decode(text_codec(collation_id))

    def encode(self) -> bytes:
        return bytes((Command.STMT_PREPARE,)) + self.sql


@dataclass(frozen=True, slots=True)
class StatementCommand:
    """COM_STMT_CLOSE or COM_STMT_RESET: a command byte and a statement id."""

    command: Command
    statement_id: int

    @classmethod
    def parse(cls, payload: Buffer) -> StatementCommand:
        r = PayloadReader(payload, "statement command")
        cmd = r.u8("command byte")
        if cmd not in (Command.STMT_CLOSE, Command.STMT_RESET):
            raise ProtocolViolationError(f"0x{cmd:02x} is not COM_STMT_CLOSE or COM_STMT_RESET")
        stmt = r.u32("statement id")
        r.expect_end()
        return cls(Command(cmd), stmt)

    def encode(self) -> bytes:
        return bytes((self.command,)) + self.statement_id.to_bytes(4, "little")


@dataclass(frozen=True, slots=True)
class StmtFetch:
    """COM_STMT_FETCH: fetch ``num_rows`` more rows from a cursor."""

    statement_id: int
    num_rows: int

    COMMAND = Command.STMT_FETCH

    @classmethod
    def parse(cls, payload: Buffer) -> StmtFetch:
        r = PayloadReader(payload, "COM_STMT_FETCH")
        _expect_command(r, Command.STMT_FETCH)
        fetch = cls(r.u32("statement id"), r.u32("number of rows"))
        r.expect_end()
        return fetch

    def encode(self) -> bytes:
        return (
            bytes((Command.STMT_FETCH,))
            + self.statement_id.to_bytes(4, "little")
            + self.num_rows.to_bytes(4, "little")
        )


@dataclass(frozen=True, slots=True)
class StmtSendLongData:
    """COM_STMT_SEND_LONG_DATA: a chunk of one parameter's value (no response)."""

    statement_id: int
    param_id: int
    data: bytes

    COMMAND = Command.STMT_SEND_LONG_DATA

    @classmethod
    def parse(cls, payload: Buffer) -> StmtSendLongData:
        r = PayloadReader(payload, "COM_STMT_SEND_LONG_DATA")
        _expect_command(r, Command.STMT_SEND_LONG_DATA)
        return cls(r.u32("statement id"), r.u16("param id"), r.rest())

    def encode(self) -> bytes:
        return (
            bytes((Command.STMT_SEND_LONG_DATA,))
            + self.statement_id.to_bytes(4, "little")
            + self.param_id.to_bytes(2, "little")
            + self.data
        )


@dataclass(frozen=True, slots=True)
class ProcessKill:
    """COM_PROCESS_KILL: kill a connection by id (the deprecated form of KILL <id>)."""

    connection_id: int

    COMMAND = Command.PROCESS_KILL

    @classmethod
    def parse(cls, payload: Buffer) -> ProcessKill:
        r = PayloadReader(payload, "COM_PROCESS_KILL")
        _expect_command(r, Command.PROCESS_KILL)
        kill = cls(r.u32("connection id"))
        r.expect_end()
        return kill

    def encode(self) -> bytes:
        return bytes((Command.PROCESS_KILL,)) + self.connection_id.to_bytes(4, "little")


@dataclass(frozen=True, slots=True)
class SetOption:
    """COM_SET_OPTION: turn multi-statements on (0) or off (1)."""

    option: int

    COMMAND = Command.SET_OPTION

    @classmethod
    def parse(cls, payload: Buffer) -> SetOption:
        r = PayloadReader(payload, "COM_SET_OPTION")
        _expect_command(r, Command.SET_OPTION)
        opt = cls(r.u16("option"))
        r.expect_end()
        return opt

    def encode(self) -> bytes:
        return bytes((Command.SET_OPTION,)) + self.option.to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class FieldList:
    """COM_FIELD_LIST (deprecated): column definitions of a table, filtered by a wildcard."""

    table: bytes
    wildcard: bytes = b""

    COMMAND = Command.FIELD_LIST

    @classmethod
    def parse(cls, payload: Buffer) -> FieldList:
        r = PayloadReader(payload, "COM_FIELD_LIST")
        _expect_command(r, Command.FIELD_LIST)
        return cls(r.null_terminated_or_rest("table"), r.rest())

    def encode(self) -> bytes:
        return bytes((Command.FIELD_LIST,)) + null_terminated(self.table, "table") + self.wildcard


@dataclass(frozen=True, slots=True)
class ChangeUser:
    """COM_CHANGE_USER: re-authenticate the connection as another user (and reset it)."""

    username: str
    auth_response: bytes = b""
    database: str | None = None
    character_set: int = UTF8MB4_GENERAL_CI
    auth_plugin_name: str | None = None
    connect_attrs: Mapping[str, str] = field(default_factory=dict)

    COMMAND = Command.CHANGE_USER

    @classmethod
    def parse(cls, payload: Buffer, capabilities: int) -> ChangeUser:
        r = PayloadReader(payload, "COM_CHANGE_USER")
        _expect_command(r, Command.CHANGE_USER)
        raw_user = r.null_terminated("user name")
        if capabilities & Capability.SECURE_CONNECTION:
            auth = r.fixed(r.u8("auth response length"), "auth response")
        else:
            auth = r.null_terminated("auth response")
        raw_db = r.null_terminated_or_rest("database")
        charset = UTF8MB4_GENERAL_CI
        plugin = None
        attrs: dict[str, str] = {}
        if not r.at_end:
            charset = r.u16("character set")
        if capabilities & Capability.PLUGIN_AUTH and not r.at_end:
            plugin = r.null_terminated_or_rest("auth plugin name").decode("ascii", "replace")
        if capabilities & Capability.CONNECT_ATTRS and not r.at_end:
            block = PayloadReader(r.lenenc_bytes("connect attrs"), "connect attrs")
            while not block.at_end:
                key = block.lenenc_bytes().decode("utf-8", "replace")
                attrs[key] = block.lenenc_bytes().decode("utf-8", "replace")
        codec = text_codec(charset)
        try:
            user = raw_user.decode(codec)
            database = raw_db.decode(codec) if raw_db else None
        except UnicodeDecodeError as exc:
            raise ProtocolViolationError(
                f"COM_CHANGE_USER names are not valid {codec}: {exc.reason}"
            ) from None
        return cls(user, auth, database, charset, plugin, attrs)

    def encode(self, capabilities: int) -> bytes:
        codec = text_codec(self.character_set)
        out = [bytes((Command.CHANGE_USER,)), null_terminated(self.username.encode(codec))]
        if capabilities & Capability.SECURE_CONNECTION:
            out.append(bytes((len(self.auth_response),)) + self.auth_response)
        else:
            out.append(null_terminated(self.auth_response))
        out.append(null_terminated((self.database or "").encode(codec)))
        out.append(self.character_set.to_bytes(2, "little"))
        if capabilities & Capability.PLUGIN_AUTH:
            out.append(null_terminated((self.auth_plugin_name or "").encode("ascii")))
        if capabilities & Capability.CONNECT_ATTRS:
            block = b"".join(
                lenenc_bytes(k.encode("utf-8")) + lenenc_bytes(v.encode("utf-8"))
                for k, v in self.connect_attrs.items()
            )
            out.append(lenenc_bytes(block))
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class SimpleCommand:
    """A command that is only its byte (COM_PING, COM_QUIT, COM_RESET_CONNECTION, …)
    or whose arguments the gateway does not interpret (``rest``)."""

    command: int
    rest: bytes = b""

    def encode(self) -> bytes:
        return bytes((self.command,)) + self.rest


ClientCommand = (
    Query
    | InitDb
    | StmtPrepare
    | StatementCommand
    | StmtFetch
    | StmtSendLongData
    | ProcessKill
    | SetOption
    | FieldList
    | ChangeUser
    | SimpleCommand
)


def parse_command(payload: Buffer, capabilities: int) -> ClientCommand:
    """Parse a command packet whose meaning needs no per-statement context.

    COM_STMT_EXECUTE and COM_STMT_BULK_EXECUTE need the statement's parameter count and
    types (:meth:`.binary.StmtExecute.parse`); here they, like every command the gateway
    does not interpret, come back as :class:`SimpleCommand` with the raw arguments.
    """
    if not len(payload):
        raise ProtocolViolationError("empty command packet; a command needs at least one byte")
    cmd = payload[0]
    if cmd == Command.QUERY:
        return Query.parse(payload)
    if cmd == Command.INIT_DB:
        return InitDb.parse(payload)
    if cmd == Command.STMT_PREPARE:
        return StmtPrepare.parse(payload)
    if cmd in (Command.STMT_CLOSE, Command.STMT_RESET):
        return StatementCommand.parse(payload)
    if cmd == Command.STMT_FETCH:
        return StmtFetch.parse(payload)
    if cmd == Command.STMT_SEND_LONG_DATA:
        return StmtSendLongData.parse(payload)
    if cmd == Command.PROCESS_KILL:
        return ProcessKill.parse(payload)
    if cmd == Command.SET_OPTION:
        return SetOption.parse(payload)
    if cmd == Command.FIELD_LIST:
        return FieldList.parse(payload)
    if cmd == Command.CHANGE_USER:
        return ChangeUser.parse(payload, capabilities)
    return SimpleCommand(cmd, bytes(payload[1:]))


def command_name(command: int) -> str:
    """``COM_QUERY`` style name for logs and error messages."""
    try:
        return f"COM_{Command(command).name}"
    except ValueError:
        return f"unknown command 0x{command:02x}"
