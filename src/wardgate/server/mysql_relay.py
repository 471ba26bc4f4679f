"""The established MySQL/MariaDB session: frames both directions and applies decisions.

Hot path: client packets are framed (:class:`~wardgate.proto.mysql.PacketFramer`) and
only the command byte is looked at, except for COM_QUERY / COM_STMT_PREPARE (judged by
the session's :class:`~wardgate.pipeline.hooks.StatementGate`) and the few commands the
gateway answers itself. Server packets go through a
:class:`~wardgate.proto.mysql.ResultSetTracker` — two comparisons per row — so the
relay always knows where each response ends; a chunk whose packets all pass is written
to the client as the bytes it arrived in.

Decisions keep MySQL's own semantics:

* a denied command gets an ERR packet with the sequence id the client expects and
  nothing reaches the target, so the connection stays usable. If earlier pipelined
  commands are still being answered, the ERR is queued behind their responses;
* ``review`` holds the command (the client is not read) until an approver decides; a
  MySQL client cannot show a notice mid-command, so the pending notice is logged and
  the approval id is named in the error if it is not granted;
* the target is chosen at connect: ``USE`` / COM_INIT_DB of another schema is refused;
* ``KILL [QUERY] n`` / COM_PROCESS_KILL take the connection id the gateway handed out
  and are rewritten to the target's thread id of the same principal's session;
* LOAD DATA LOCAL INFILE is refused unless ``mysql.allow_local_infile``; a file request
  the target sends without such a statement is never shown to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from wardgate.core.errors import AuthenticationError, ProtocolViolationError, WardgateError
from wardgate.masking.native import capture_mysql_rows as _capture_mysql_rows
from wardgate.masking.native import scan_mysql_rows as _scan_mysql_rows
from wardgate.pipeline.hooks import ApprovalOutcome, StatementGate, StatementPath, Verdict
from wardgate.proto.mysql import (
    ColumnDefinition,
    Command,
    CredentialsPresented,
    DownstreamLogin,
    ErrPacket,
    LoginRefused,
    Packet,
    PacketFramer,
    ResponseKind,
    ResultSetTracker,
    Send,
    access_denied,
    encode_packet,
    error_packet,
    error_packet_for,
    is_trackable,
)
from wardgate.proto.mysql.constants import LAST_PREPARED_STATEMENT_ID
from wardgate.proto.mysql.messages import command_name
from wardgate.server.relay_side import RelaySide
from wardgate.sql.classes import Classification, StatementClass

if TYPE_CHECKING:
    from wardgate._rowscan import Gate
    from wardgate.server.live import LiveSession

log = logging.getLogger("wardgate.mysql")

# Server error numbers the relay answers with (MySQL/MariaDB ER_*).
ER_DBACCESS_DENIED = 1044  # 42000
ER_UNKNOWN_COM = 1047  # 08S01
ER_NO_SUCH_THREAD = 1094  # HY000
ER_TABLEACCESS_DENIED = 1142  # 42000
ER_NOT_ALLOWED_COMMAND = 1148  # 42000
ER_NET_PACKET_TOO_LARGE = 1153  # 08S01
ER_NET_PACKETS_OUT_OF_ORDER = 1156  # 08S01
ER_SPECIFIC_ACCESS_DENIED = 1227  # 42000
ER_OPTION_PREVENTS_STATEMENT = 1290  # HY000
ER_UNKNOWN_STMT_HANDLER = 1243  # HY000
ER_CONNECTION_KILLED = 1927  # 70100 (MariaDB)
CR_SERVER_LOST = 2013  # what clients say when the server goes away mid-query

_QUERY = Command.QUERY
_PREPARE = Command.STMT_PREPARE
_EXECUTE = Command.STMT_EXECUTE
_ROW = ResponseKind.ROW
# Packets nobody acts on while no response is being swallowed and they end no command
# (``_server_packet`` returns None for them: the tracker has them, the observer has
# nothing to do). The last column of a COM_STMT_PREPARE answer may end it: not skipped.
_INERT = frozenset({ResponseKind.COLUMN_DEFINITION})

# Commands forwarded as they are: the statement behind them was judged at prepare time,
# or they only read session state / reset it.
_PASS = frozenset(
    {
        Command.STMT_SEND_LONG_DATA,
        Command.STMT_RESET,
        Command.STMT_FETCH,
        Command.PING,
        Command.SET_OPTION,
        Command.STATISTICS,
    }
)
# Commands that are a statement in disguise: judged as that statement.
_AS_STATEMENT = {
    Command.PROCESS_INFO: "SHOW PROCESSLIST",
    Command.SHUTDOWN: "SHUTDOWN",
}
_INSTEAD = {
    Command.REFRESH: "use the FLUSH statement instead",
    Command.CREATE_DB: "use CREATE DATABASE instead",
    Command.DROP_DB: "use DROP DATABASE instead",
    Command.DEBUG: "it writes server internals to the server's log",
}

_NOT_RELAYED = " (replication, bulk and multi commands are not relayed)"

_KILL = re.compile(
    r"\s*KILL\s+(?:(?:HARD|SOFT)\s+)?(?:(CONNECTION|QUERY)\s+)?(\d+)\s*;?\s*",
    re.IGNORECASE | re.ASCII,
)
_USE = re.compile(r"\s*USE\s+(`(?:[^`]|``)+`|[^\s`;'\"]+)\s*;?\s*", re.IGNORECASE)
_LOCAL = re.compile(r"\bLOCAL\b", re.IGNORECASE)
_MENTIONS_KILL = re.compile("kill", re.IGNORECASE).search
_MENTIONS_LOCAL = re.compile("local", re.IGNORECASE).search
# Multi-byte character sets whose second byte can be an ASCII quote or backslash: a
# statement in one of them must decode exactly, or its string boundaries could differ
# from the server's. In every other client character set an ASCII byte is always its own
# character, so undecodable bytes (binary literals such as _binary'\xff' that drivers
# inline) can be replaced for classification without moving a boundary.
_STRICT_CODECS = frozenset(
    {"big5", "cp932", "gbk", "gb18030", "shift_jis", "utf_16_be", "utf_16_le", "utf_32_be"}
)
# Classes of the statements this adapter looks at itself (USE, KILL, LOAD DATA LOCAL).
_ADAPTER_CLASSES = frozenset({StatementClass.SESSION, StatementClass.SERVER_ESCAPE})


# Rows left in a framed batch worth handing back to the compiled walk (``_relay_packets``):
# below this, the Python loop finishes the batch itself.
_WALK_AGAIN: Final = 4
# Packets framed at a time: a result's first row, after which the compiled walk may take
# over, comes early in a batch; a longer batch would frame rows only to give them back.
_BATCH: Final = 32


class ResultObserver(Protocol):
    """Recording and masking see the session through this (none is installed yet).

    Called in protocol order: ``statement_judged`` for every COM_QUERY / COM_STMT_PREPARE
    (``kind`` "simple" or "extended"; denials never reach the target), ``approval`` when
    a held statement is decided, ``statement_executed`` for each COM_STMT_EXECUTE the
    target answers, with the prepared statement's text and the command's payload (its
    bound parameters), then per result ``on_columns`` (before its first row; ``binary``:
    COM_STMT_EXECUTE / FETCH rows), ``on_row`` -- which may return a replacement payload,
    below 16 MiB-1 bytes when the original was -- and ``on_result_end`` with the packet
    kind that ended it (END_OF_ROWS, OK or ERROR). An exception from the observer ends
    the session with an ERR in place of the packet it was inspecting (fail closed).
    """

    def statement_judged(self, kind: str, name: str, sql: str, verdict: Verdict) -> None: ...

    def approval(self, request_id: str, state: str, by: str, reason: str) -> None: ...

    def statement_executed(self, statement_id: int, sql: str, payload: memoryview) -> None: ...

    def on_columns(self, columns: Sequence[ColumnDefinition], binary: bool) -> None: ...

    def on_row(self, payload: memoryview, binary: bool) -> bytes | None: ...

    def on_result_end(self, kind: ResponseKind) -> None: ...

    # Once a result's columns are announced: may a compiled walk take its rows without
    # ``on_row`` (and with which whole-row masking gate)? ``rows_passed`` counts them.
    def row_walk(self) -> tuple[bool, Gate | None]: ...

    def rows_passed(self, rows: int, nbytes: int) -> None: ...

    # While the recording keeps the rows: may a compiled walk take them and decode them
    # for it (gate, columns, room_rows, room_bytes)? ``rows_captured`` hands them over.
    def capture_walk(self) -> tuple[Gate | None, int, int, int, bytes | None] | None: ...

    def rows_captured(self, rows: list[list[str | None]], size: int) -> None: ...


@dataclass(slots=True)
class PreparedStatement:
    """A statement the target prepared for this session (judged when it was prepared)."""

    sql: str
    params: list[ColumnDefinition] = field(default_factory=list)
    columns: list[ColumnDefinition] = field(default_factory=list)


class KillLookup(Protocol):
    def __call__(self, gateway_id: int) -> int | None:
        """The target thread id behind a gateway connection id this session may kill."""


Reauthenticate = Callable[[CredentialsPresented], Awaitable[StatementGate]]
ResponseHandler = Callable[[ResponseKind], None]


class MySqlRelay:
    def __init__(
        self,
        live: LiveSession,
        client: asyncio.Transport,
        upstream: asyncio.Transport,
        gate: StatementGate,
        *,
        classify: Callable[[str], Classification],
        login: DownstreamLogin,
        capabilities: int,
        target_name: str,
        database: str,
        codec: str,
        max_message_bytes: int,
        max_statement_bytes: int,
        allow_local_infile: bool,
        kill_lookup: KillLookup,
        reauthenticate: Reauthenticate,
        on_closed: Callable[[MySqlRelay], None],
    ) -> None:
        self.live = live
        self.client = client
        self.upstream = upstream
        self.gate = gate
        self.classify = classify
        self.login = login
        self.caps = capabilities
        self.target_name = target_name
        self.database = database
        self.codec = codec
        self._decode_errors = "strict" if codec in _STRICT_CODECS else "replace"
        self.max_message = max_message_bytes
        self.max_statement = max_statement_bytes
        self.allow_local_infile = allow_local_infile
        self.kill_lookup = kill_lookup
        self.reauthenticate = reauthenticate
        self._on_closed = on_closed
        self.observer: ResultObserver | None = None
        self.statements: dict[int, PreparedStatement] = {}
        # client -> upstream
        self.cframer = PacketFramer(max_message_bytes)
        self._queue: deque[Packet] = deque()  # framed client packets not yet handled
        self._stall: str | None = None  # why client packets are not handled right now
        self._held: Packet | None = None
        self._hold_task: asyncio.Task[None] | None = None
        self._prepares: deque[str] = deque()  # SQL of COM_STMT_PREPAREs in flight
        self._last_prepare_denied = False
        self._last_prepared_id = -1
        self._infile_armed = 0  # allowed LOAD DATA LOCAL statements sent to the target
        self._infile_upload = False  # forwarding the client's file to the target
        self._changing_user = False  # the next client packet answers our auth switch
        self._client_read_pauses: set[str] = set()
        # upstream -> client
        self.sframer = PacketFramer(max_message_bytes)
        self.tracker = ResultSetTracker(capabilities)
        # ERR packets we answered with while earlier responses were still arriving:
        # [responses still ahead of it, framed bytes]
        self._injections: deque[list[int | bytes]] = deque()
        self._swallow: ResponseHandler | None = None  # drops the head command's response
        self._columns_announced = False
        self.closed = False
        self.end_reason: str | None = None
        self.end_detail: str | None = None
        self.client_side = RelaySide(self, True)
        self.upstream_side = RelaySide(self, False)

    def start(self, client_leftover: bytes, upstream_leftover: bytes) -> None:
        self.client.set_protocol(self.client_side)
        self.upstream.set_protocol(self.upstream_side)
        if upstream_leftover:
            self.upstream_data(upstream_leftover)
        if client_leftover:
            self.client_data(client_leftover)
        self.client.resume_reading()
        self.upstream.resume_reading()

    # ================================================================ client -> upstream
    def client_data(self, data: bytes) -> None:
        live = self.live
        live.bytes_from_client += len(data)
        live.last_activity_mono = time.monotonic()
        self.cframer.feed(data)
        if self._stall is not None:
            if self.cframer.buffered > self.max_message:
                self._pause_client("backlog")
            return
        self._process_client()

    def _process_client(self) -> None:
        try:
            self._queue.extend(self.cframer.drain())
        except ProtocolViolationError as e:
            self._violation(ER_NET_PACKET_TOO_LARGE, "08S01", str(e))
            return
        out: list[bytes | memoryview] = []
        queue = self._queue
        try:
            while queue and self._stall is None and not self.closed:
                if self._client_packet(queue[0], out):
                    queue.popleft()
        finally:
            if out and not self.closed:
                self.upstream.write(out[0] if len(out) == 1 else b"".join(out))

    def _client_packet(self, p: Packet, out: list[bytes | memoryview]) -> bool:
        """Handle one client packet. False: not consumed (the relay stalled before it)."""
        if self._infile_upload:
            try:
                self.tracker.feed_client(p)
            except ProtocolViolationError as e:
                self._violation(ER_NET_PACKETS_OUT_OF_ORDER, "08S01", str(e))
                return True
            out.append(p.wire)
            if not len(p.payload):
                self._infile_upload = False
            return True
        if self._changing_user:
            self._change_user_answer(p)
            return True
        payload = p.payload
        if p.seq != 0 or not len(payload):
            self._violation(
                ER_NET_PACKETS_OUT_OF_ORDER,
                "08S01",
                f"a command packet must start with sequence id 0 (got {p.seq})"
                if len(payload)
                else "empty command packet",
            )
            return True
        cmd = payload[0]
        if cmd == _QUERY:
            self.live.statements += 1
            return self._statement(p, "simple", out)
        if cmd == _EXECUTE:
            self.live.statements += 1
            stop = self.gate.admit()
            if stop is not None:
                self._answer(p, _denial(stop))
                return True
            if (
                self._last_prepare_denied
                and len(payload) >= 5
                and int.from_bytes(payload[1:5], "little") == LAST_PREPARED_STATEMENT_ID
            ):
                # MariaDB: "the statement prepared last" -- which wardgate refused, so
                # the target would run the one before it.
                self._answer(
                    p,
                    error_packet(
                        ER_UNKNOWN_STMT_HANDLER,
                        "wardgate: the statement prepared last was denied, so there is no "
                        "statement to execute",
                    ),
                )
                return True
            if self.observer is not None and len(payload) >= 5:
                # Only executes the target answers: the observer matches responses in order.
                stmt_id = int.from_bytes(payload[1:5], "little")
                if stmt_id == LAST_PREPARED_STATEMENT_ID:
                    stmt_id = self._last_prepared_id
                stmt = self.statements.get(stmt_id)
                self.observer.statement_executed(stmt_id, stmt.sql if stmt else "", payload)
            return self._forward(p, out)
        if cmd == _PREPARE:
            return self._statement(p, "extended", out)
        if cmd in _PASS:
            return self._forward(p, out)
        if cmd == Command.STMT_CLOSE:
            if len(payload) >= 5:
                self.statements.pop(int.from_bytes(payload[1:5], "little"), None)
            return self._forward(p, out)
        if cmd == Command.RESET_CONNECTION:
            self.statements.clear()
            return self._forward(p, out)
        if cmd == Command.QUIT:
            self.end_reason = self.end_reason or "client_terminate"
            return self._forward(p, out)
        if cmd == Command.INIT_DB:
            return self._init_db(p, out)
        if cmd == Command.PROCESS_KILL:
            return self._process_kill(p, out)
        if cmd == Command.FIELD_LIST:
            table = bytes(payload[1:]).split(b"\x00", 1)[0].decode(self.codec, "replace")
            quoted = "`" + table.replace("`", "``") + "`"
            return self._judge(p, f"SHOW COLUMNS FROM {quoted}", "simple", out)
        if cmd in _AS_STATEMENT:
            return self._judge(p, _AS_STATEMENT[Command(cmd)], "simple", out)
        if cmd == Command.CHANGE_USER:
            return self._change_user(p)
        why = _INSTEAD.get(Command(cmd)) if cmd in _INSTEAD else None
        if why is None and is_trackable(cmd):
            why = "wardgate does not relay it"
        self._answer(
            p,
            error_packet(
                ER_UNKNOWN_COM,
                f"wardgate: {command_name(cmd)} is not allowed through wardgate"
                + (f"; {why}" if why else _NOT_RELAYED),
            ),
        )
        return True

    def _forward(self, p: Packet, out: list[bytes | memoryview]) -> bool:
        try:
            self.tracker.start(p)
        except ProtocolViolationError as e:
            self._violation(ER_UNKNOWN_COM, "08S01", str(e))
            return True
        out.append(p.wire)
        return True

    def _forward_now(self, p: Packet) -> None:
        out: list[bytes | memoryview] = []
        self._forward(p, out)
        if out and not self.closed:
            self.upstream.write(out[0])

    def _answer(self, p: Packet, err: ErrPacket) -> None:
        """Answer command ``p`` with ``err`` ourselves, after any response still due."""
        data = encode_packet(p.next_seq, err.encode(self.caps))
        if self.tracker.idle and not self._injections:
            self.client.write(data)
        else:
            self._injections.append([self.tracker.pending, data])

    # ---------------------------------------------------------------- statements
    def _statement(self, p: Packet, path: StatementPath, out: list[bytes | memoryview]) -> bool:
        raw = p.payload[1:]
        if len(raw) > self.max_statement:
            self._refuse_statement(
                p,
                path,
                error_packet(
                    ER_NET_PACKET_TOO_LARGE,
                    f"wardgate: the statement is {len(raw)} bytes, more than "
                    f"limits.max_statement_bytes ({self.max_statement}); nothing was run",
                ),
            )
            return True
        try:
            sql = bytes(raw).decode(self.codec, self._decode_errors)
        except UnicodeDecodeError:
            # Fail closed: what we cannot read, we do not run.
            self._refuse_statement(
                p,
                path,
                error_packet(
                    ER_TABLEACCESS_DENIED,
                    f"wardgate: statement denied by undecodable: it is not valid {self.codec} "
                    "(the character set the client announced at login); nothing was run",
                    "42000",
                ),
            )
            return True
        if path == "simple":
            kill = self._kill_statement(p, sql)
            if kill is not None:
                if self.observer is not None:
                    self.observer.statement_judged(path, "", sql, _kill_verdict(kill))
                if isinstance(kill, ErrPacket):
                    self._answer(p, kill)
                    return True
                return self._forward(kill, out)
        return self._judge(p, sql, path, out)

    def _judge(
        self, p: Packet, sql: str, path: StatementPath, out: list[bytes | memoryview]
    ) -> bool:
        verdict = self.gate.judge(sql, path)
        refusal = None if verdict.kind == "deny" else self._adapter_refusal(sql)
        if refusal is not None:
            verdict = Verdict("deny", rule=f"mysql:{refusal.code}", reason=refusal.message)
        if self.observer is not None:
            self.observer.statement_judged(path, "", sql, verdict)
        if verdict.kind == "deny":
            self._refuse_statement(p, path, refusal or _denial(verdict))
            return True
        if verdict.kind == "allow":
            self._allowed(p, sql, path)
            return self._forward(p, out)
        # review: everything before this command goes out first, then the client waits.
        if out:
            self.upstream.write(b"".join(out))
            out.clear()
        self._hold(p, sql, path, verdict)
        return True

    def _allowed(self, p: Packet, sql: str, path: StatementPath) -> None:
        if p.payload[0] == _PREPARE:
            self._prepares.append(sql)
            self._last_prepare_denied = False
        if self.allow_local_infile and _MENTIONS_LOCAL(sql):
            self._infile_armed += sum(1 for _ in _local_infile_statements(self.classify(sql)))

    def _refuse_statement(self, p: Packet, path: StatementPath, err: ErrPacket) -> None:
        if p.payload[0] == _PREPARE:
            self._last_prepare_denied = True
        self._answer(p, err)

    def _adapter_refusal(self, sql: str) -> ErrPacket | None:
        """What this adapter refuses whatever policy says (MySQL-specific facts)."""
        cls = self.classify(sql)
        if cls.classes.isdisjoint(_ADAPTER_CLASSES):
            return None
        for st in cls.statements:
            if st.kind == "USE":
                m = _USE.fullmatch(st.text)
                name = _unquote(m.group(1)) if m else None
                if name != self.database:
                    return self._other_schema(name or st.text.strip()[4:].strip())
            elif st.kind == "KILL":
                return _kill_refusal(None)
        if not self.allow_local_infile and any(True for _ in _local_infile_statements(cls)):
            return error_packet(
                ER_NOT_ALLOWED_COMMAND,
                "wardgate: LOAD DATA LOCAL INFILE is disabled on this gateway (it lets the "
                "server read files from the client); load from a file on the server, or ask "
                "an operator to set mysql.allow_local_infile",
                "42000",
            )
        return None

    def _other_schema(self, name: str) -> ErrPacket:
        user = self.live.principal.name if self.live.principal else "?"
        return error_packet(
            ER_DBACCESS_DENIED,
            f"Access denied for user '{user}'@'wardgate' to database '{name}': this session "
            f"is connected to target {self.target_name} (database {self.database}); the "
            "target is chosen when you connect -- reconnect with that schema to use another "
            "target",
            "42000",
        )

    def _init_db(self, p: Packet, out: list[bytes | memoryview]) -> bool:
        try:
            name = bytes(p.payload[1:]).decode(self.codec)
        except UnicodeDecodeError:
            name = bytes(p.payload[1:]).decode(self.codec, "replace")
        if name == self.database:
            return self._forward(p, out)
        if name == self.target_name:
            # The client knows its schema by the target's name (it connected with it).
            rewritten = Packet.of(0, bytes((Command.INIT_DB,)) + self.database.encode(self.codec))
            return self._forward(rewritten, out)
        self._answer(p, self._other_schema(name))
        return True

    # ---------------------------------------------------------------- KILL
    def _kill_statement(self, p: Packet, sql: str) -> Packet | ErrPacket | None:
        """None: not a KILL. A packet: the rewritten KILL. An ERR: refused."""
        if _MENTIONS_KILL(sql) is None:
            return None
        cls = self.classify(sql)
        if not any(st.kind == "KILL" for st in cls.statements):
            return None
        m = _KILL.fullmatch(sql)
        if m is None or len(cls.statements) != 1:
            return _kill_refusal(None)
        thread = self.kill_lookup(int(m.group(2)))
        if thread is None:
            return _kill_refusal(int(m.group(2)))
        what = (m.group(1) or "CONNECTION").upper()
        log.info(
            "session %s: KILL %s %s mapped to target thread %d",
            self.live.id,
            what,
            m.group(2),
            thread,
        )
        return Packet.of(0, bytes((_QUERY,)) + f"KILL {what} {thread}".encode())

    def _process_kill(self, p: Packet, out: list[bytes | memoryview]) -> bool:
        if len(p.payload) != 5:
            self._violation(ER_UNKNOWN_COM, "08S01", "malformed COM_PROCESS_KILL")
            return True
        gateway_id = int.from_bytes(p.payload[1:5], "little")
        thread = self.kill_lookup(gateway_id)
        if thread is None:
            self._answer(p, _kill_refusal(gateway_id))
            return True
        rewritten = Packet.of(0, bytes((Command.PROCESS_KILL,)) + thread.to_bytes(4, "little"))
        return self._forward(rewritten, out)

    # ---------------------------------------------------------------- approval hold
    def _hold(self, p: Packet, sql: str, path: StatementPath, verdict: Verdict) -> None:
        self._stall = "held"
        self._held = p
        self._pause_client("held")

        def notify(text: str) -> None:
            # A MySQL client shows nothing until its command is answered.
            log.info("session %s: %s", self.live.id, text)

        async def wait() -> None:
            try:
                outcome = await self.gate.request_approval(sql, verdict, notify)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # fail closed on any approval-service failure
                log.exception("approval failed")
                outcome = ApprovalOutcome(False, "", reason=f"approval service error: {e}")
            if self.closed:
                return
            self._held = None
            if self.observer is not None:
                state = "approved" if outcome.approved else ("denied" if outcome.by else "timeout")
                self.observer.approval(outcome.request_id, state, outcome.by, outcome.reason)
            if outcome.approved:
                log.info(
                    "session %s: running statement under approval %s",
                    self.live.id,
                    outcome.request_id,
                )
                self._allowed(p, sql, path)
                self._forward_now(p)
            else:
                self._refuse_statement(
                    p,
                    path,
                    _denial(
                        Verdict(
                            "deny",
                            rule=verdict.rule,
                            reason=(
                                f"approval {outcome.request_id or '(none)'} was not granted"
                                + (f" by {outcome.by}" if outcome.by else "")
                                + (f": {outcome.reason}" if outcome.reason else "")
                            ),
                            classes=verdict.classes,
                        )
                    ),
                )
            self._unstall()

        self._hold_task = asyncio.get_running_loop().create_task(wait())

    def _unstall(self) -> None:
        self._stall = None
        self._resume_client("held")
        self._resume_client("backlog")
        self._process_client()

    # ---------------------------------------------------------------- COM_CHANGE_USER
    def _change_user(self, p: Packet) -> bool:
        if not self.tracker.idle or self._injections:
            self._stall = "idle"  # answered once every earlier response is out
            return False
        try:
            step = self.login.change_user(p)
        except ProtocolViolationError as e:
            self._violation(ER_UNKNOWN_COM, "08S01", f"COM_CHANGE_USER: {e}")
            return True
        self._changing_user = True
        self.client.write(step.data)
        return True

    def _change_user_answer(self, p: Packet) -> None:
        try:
            step = self.login.receive(p)
        except ProtocolViolationError as e:
            self._violation(ER_UNKNOWN_COM, "08S01", f"COM_CHANGE_USER: {e}")
            return
        if isinstance(step, Send):
            self.client.write(step.data)
            return
        self._changing_user = False
        if isinstance(step, LoginRefused):
            self.client.write(step.data)
            self.close("change_user_refused", step.error.message)
            return
        if not isinstance(step, CredentialsPresented):
            self._violation(ER_UNKNOWN_COM, "08S01", "COM_CHANGE_USER: unexpected TLS request")
            return
        self._stall = "change_user"
        self._pause_client("change_user")
        self._hold_task = asyncio.get_running_loop().create_task(self._reauthenticated(step))

    async def _reauthenticated(self, presented: CredentialsPresented) -> None:
        try:
            gate = await self.reauthenticate(presented)
        except WardgateError as e:
            if self.closed:
                return
            log.info("session %s: COM_CHANGE_USER refused: %s", self.live.id, e)
            err = (
                access_denied(presented.username)
                if isinstance(e, AuthenticationError)
                else error_packet_for(e)
            )
            self.client.write(self.login.reject(err))
            self.close("change_user_refused", str(e))
            return
        if self.closed:
            return

        def reset_done(kind: ResponseKind) -> None:
            if kind is ResponseKind.OK and self.tracker.last_ok is not None:
                self.gate = gate
                self.statements.clear()
                self._prepares.clear()
                self._last_prepare_denied = False
                self.client.write(self.login.accept(self.tracker.last_ok))
                self._resume_client("change_user")
                # After the packet being handled now is out, not in the middle of it.
                asyncio.get_running_loop().call_soon(self._unstall)
                return
            err = self.tracker.error or error_packet(
                ER_UNKNOWN_COM, "the target could not reset the session"
            )
            self.client.write(self.login.reject(err))
            self.close("change_user_refused", err.message)

        # What COM_CHANGE_USER promises the client -- a fresh session -- without the
        # target re-authenticating: the gateway's credential has not changed.
        reset = Packet.of(0, bytes((Command.RESET_CONNECTION,)))
        self._swallow = reset_done
        self._forward_now(reset)

    # ================================================================ upstream -> client
    def upstream_data(self, data: bytes) -> None:
        self.live.bytes_to_client += len(data)
        framer = self.sframer
        # The chunk as it came, while it may still go out as is (it starts on a packet
        # boundary, and nothing in it has been dropped, replaced or walked).
        whole: bytes | None = data if framer.buffered == 0 else None
        framer.feed(data)
        out: list[bytes | memoryview] = []  # what goes to the client, in one write
        while True:
            if _scan_mysql_rows is not None and self._swallow is None:
                walked = self._walk_rows()
                if walked is not None:
                    # Rows nobody needs to see one by one go out as they came; the rest
                    # (end of rows, a row the gate could not rule out) follows.
                    out.append(walked)
                    whole = None
            again = self._relay_packets(out, whole)
            if self.closed:
                return
            if not again:
                break
            whole = None
        if len(out) == 1:
            self.client.write(out[0])
        elif out:
            self.client.writelines(out)
        if self._stall == "idle" and self.tracker.idle and not self._injections:
            self._stall = None
            self._process_client()

    def _relay_packets(self, out: list[bytes | memoryview], whole: bytes | None) -> bool:
        """Frame a batch of what is buffered, feed it to the tracker (and observer) and add
        what goes to the client to ``out``. True when more may follow: the batch was full,
        or it stopped after a row past which the compiled walk may take the rest of the
        result (the packets after it are framed again). On a protocol violation or failed
        inspection, ``out`` is written before the session ends."""
        framer = self.sframer
        try:
            packets = framer.drain(_BATCH)
        except ProtocolViolationError as e:
            self._flush(out)
            self._upstream_violation(str(e))
            return False
        if not packets:
            return False
        again = len(packets) == _BATCH
        tracker = self.tracker
        feed = tracker.feed
        observer = self.observer
        plain = observer is None and self._swallow is None
        # Rows the observer need not see one by one (``row_walk``) are only counted:
        # ``run`` rows of ``run_bytes``, reported before the next packet it does see.
        walk, gate = self._rows_unobserved()
        run = run_bytes = 0
        segments: list[bytes | memoryview] | None = None
        start = 0
        last = len(packets) - 1
        for i, p in enumerate(packets):
            try:
                kind = feed(p)
            except ProtocolViolationError as e:
                self._flush(out)
                if self.tracker.idle and len(p.payload) and p.payload[0] == 0xFF:
                    # The target ends the session on its own (KILL CONNECTION, timeout,
                    # shutdown): pass its reason on, then close.
                    try:
                        err = ErrPacket.parse(p.payload)
                    except ProtocolViolationError:
                        err = ErrPacket(CR_SERVER_LOST, "the target closed the connection")
                    self._send_error(err.code, err.sqlstate, err.message)
                    self.close("target_closed", err.message)
                else:
                    self._upstream_violation(str(e))
                return False
            if kind is _ROW:
                if plain:
                    continue
                if walk and (gate is None or not gate.may_contain(p.payload)):
                    run += 1
                    run_bytes += len(p.payload)
                    continue
            elif kind in _INERT and self._swallow is None and tracker.completed_command is None:
                continue
            if run:
                assert observer is not None
                observer.rows_passed(run, run_bytes)
                run = run_bytes = 0
            try:
                extra = self._server_packet(p, kind)
            except Exception as e:
                # Fail closed: a result masking or recording could not inspect does not
                # leave; what was already checked goes out, then the session ends.
                log.exception("session %s: result inspection failed", self.live.id)
                sent = out
                if segments is not None:
                    sent.extend(segments)
                sent.extend(q.wire for q in packets[start:i])
                self._inspection_failed(sent, p, e)
                return False
            walk, gate = self._rows_unobserved()
            if extra is not None:
                # This packet is dropped or replaced, or something follows it.
                if segments is None:
                    segments = []
                segments.extend(q.wire for q in packets[start:i])
                segments.extend(extra)
                start = i + 1
                plain = self.observer is None and self._swallow is None
            if kind is _ROW and last - i >= _WALK_AGAIN and self._walk_applies(walk):
                # The rest of this result may go to the compiled walk: hand the
                # packets after this row back to the framer.
                framer.unread(sum(len(q.wire) for q in packets[i + 1 :]))
                del packets[i + 1 :]
                again = True
                break
        if run:
            assert observer is not None
            observer.rows_passed(run, run_bytes)
        if segments is not None:
            segments.extend(q.wire for q in packets[start:])
            out.extend(segments)
        elif whole is not None and not again:
            rest = framer.buffered
            out.append(whole if not rest else memoryview(whole)[: len(whole) - rest])
        elif len(packets) == 1:
            out.append(packets[0].wire)
        else:
            out.append(b"".join(q.wire for q in packets))
        return again

    def _flush(self, out: list[bytes | memoryview]) -> None:
        """Write what was checked so far (before an error ends the session)."""
        if out:
            with contextlib.suppress(Exception):
                self.client.writelines(out)
            out.clear()

    def _walk_applies(self, walk: bool) -> bool:
        """After a row that took the Python path: may a compiled walk (``_walk_rows``)
        take the rows that follow it?"""
        if _scan_mysql_rows is None or self._swallow is not None:
            return False
        if walk:
            return True
        observer = self.observer
        return (
            _capture_mysql_rows is not None
            and observer is not None
            and self.tracker.row_run_seq() >= 0
            and observer.capture_walk() is not None
        )

    def _rows_unobserved(self) -> tuple[bool, Gate | None]:
        """(True, gate) while the rows of the current result need not go to ``on_row``:
        the observer's capture is full and masking, if any, rules a row out with ``gate``
        (a row the gate cannot rule out still goes to ``on_row``)."""
        observer = self.observer
        if observer is None or self._swallow is not None or not self._columns_announced:
            return False, None
        return observer.row_walk()

    def _walk_rows(self) -> memoryview | None:
        """The compiled walk over a streaming result's row packets (``_rowscan``): takes
        every complete row packet at the front of the buffer that the tracker would call
        ROW and that neither masking (its whole-row gate rules the row out) nor recording
        (the capture is full) needs to see; returns their bytes to forward, or None."""
        seq = self.tracker.row_run_seq()
        if seq < 0:
            return None
        gate: Gate | None = None
        observer = self.observer
        if observer is not None:
            ok, gate = self._rows_unobserved()  # (the first row announces the columns)
            if not ok:
                return self._capture_rows(observer, seq)
        scan = _scan_mysql_rows
        assert scan is not None
        cap = self.sframer.max_payload
        taken = self.sframer.take_run(lambda buf, pos, end: scan(buf, pos, end, cap, seq, gate))
        if taken is None:
            return None
        span, (_, rows, nbytes, next_seq) = taken
        self.tracker.rows_walked(rows, next_seq)
        if observer is not None:
            observer.rows_passed(rows, nbytes)
        return span

    def _capture_rows(self, observer: ResultObserver, seq: int) -> memoryview | None:
        """``_walk_rows`` while the recording keeps the result's rows: the compiled walk
        takes the rows that fit the capture and decodes them for it (the row that does
        not fit, does not parse or may need masking goes to ``on_row``)."""
        if not self._columns_announced or self._swallow is not None:
            return None
        walk = observer.capture_walk()
        if walk is None:
            return None
        gate, ncols, room_rows, room_bytes, types = walk
        if room_rows <= 0:
            return None
        capture = _capture_mysql_rows
        assert capture is not None
        cap = self.sframer.max_payload
        kept: list[list[str | None]] = []
        taken = self.sframer.take_run(
            lambda buf, pos, end: capture(
                buf, pos, end, cap, seq, gate, ncols, kept, room_rows, room_bytes, types
            )
        )
        if taken is None:
            return None
        span, (_, rows, _nbytes, next_seq, size) = taken
        self.tracker.rows_walked(rows, next_seq)
        observer.rows_captured(kept, size)
        return span

    def _server_packet(self, p: Packet, kind: ResponseKind) -> list[bytes | memoryview] | None:
        """The slow path. None: forward ``p`` as it is; else what to send in its place."""
        tracker = self.tracker
        done = tracker.completed_command
        if self._swallow is not None:
            if done is not None:
                handler, self._swallow = self._swallow, None
                handler(kind)
                return self._after_response(p, [])
            return []
        replaced: list[bytes | memoryview] | None = None
        if kind is ResponseKind.PREPARE_OK:
            prepared = tracker.prepared
            sql = self._prepares.popleft() if self._prepares else ""
            if prepared is not None:
                self._last_prepared_id = prepared.statement_id
                self.statements[prepared.statement_id] = PreparedStatement(
                    sql, tracker.params, tracker.columns
                )
                self.gate.statement_name_prepared(str(prepared.statement_id), sql)
        elif kind is ResponseKind.ERROR:
            if done == _PREPARE and self._prepares:
                self._prepares.popleft()
        elif kind is ResponseKind.LOCAL_INFILE_REQUEST:
            replaced = self._file_request(p)
        observer = self.observer
        if observer is not None:
            replaced = self._observe(observer, p, kind, replaced)
        if done is not None:
            return self._after_response(p, replaced)
        return replaced

    def _inspection_failed(self, sent: list[bytes | memoryview], p: Packet, exc: Exception) -> None:
        """End the session with an ERR in place of packet ``p`` (nothing unchecked leaves)."""
        text = (
            f"wardgate: the gateway could not inspect this result ({type(exc).__name__}); "
            "nothing unmasked was sent and the session is closed"
        )
        err = ErrPacket(ER_CONNECTION_KILLED, text, "70100")
        sent.append(encode_packet(p.seq, err.encode(self.caps)))
        with contextlib.suppress(Exception):
            self.client.write(b"".join(sent))
        self.close("error", text)

    def _after_response(
        self, p: Packet, replaced: list[bytes | memoryview] | None
    ) -> list[bytes | memoryview] | None:
        """A response ended: ERRs queued behind it go out right after it."""
        if not self._injections:
            return replaced
        sent: list[bytes | memoryview] = [p.wire] if replaced is None else replaced
        for item in self._injections:
            item[0] = int(item[0]) - 1
        while self._injections and int(self._injections[0][0]) <= 0:
            data = self._injections.popleft()[1]
            assert isinstance(data, bytes)
            sent.append(data)
        return sent

    def _file_request(self, p: Packet) -> list[bytes | memoryview] | None:
        if self._infile_armed > 0:
            self._infile_armed -= 1
            self._infile_upload = True  # the client's next packets are the file
            return None
        # The target asks for a client file nobody asked to upload (a hostile or
        # compromised server does this to read files off the client). Send it an empty
        # file, tell the client no, and drop the rest of the target's answer.
        log.warning(
            "session %s: target %s asked the client for a file unasked; refused",
            self.live.id,
            self.target_name,
        )
        empty = Packet.of(self.tracker.expected_seq, b"")
        self.tracker.feed_client(empty)
        self.upstream.write(empty.wire)
        why = (
            "no LOAD DATA LOCAL INFILE statement asked for one"
            if self.allow_local_infile
            else "LOAD DATA LOCAL INFILE is disabled on this gateway (mysql.allow_local_infile)"
        )
        err = error_packet(
            ER_NOT_ALLOWED_COMMAND,
            f"wardgate: the target asked to read a file from the client, refused: {why}",
            "42000",
        )
        self._swallow = lambda kind: None
        return [encode_packet(p.seq, err.encode(self.caps))]

    def _observe(
        self,
        observer: ResultObserver,
        p: Packet,
        kind: ResponseKind,
        replaced: list[bytes | memoryview] | None,
    ) -> list[bytes | memoryview] | None:
        tracker = self.tracker
        if kind is ResponseKind.COLUMN_COUNT:
            self._columns_announced = False
        elif kind is _ROW:
            if not self._columns_announced:
                self._columns_announced = True
                observer.on_columns(tracker.columns, tracker.binary_rows)
            new = observer.on_row(p.payload, tracker.binary_rows)
            if new is not None:
                return [encode_packet(p.seq, new)]
        elif kind in (ResponseKind.END_OF_ROWS, ResponseKind.OK, ResponseKind.ERROR):
            if kind is ResponseKind.END_OF_ROWS and not self._columns_announced:
                observer.on_columns(tracker.columns, tracker.binary_rows)
            self._columns_announced = False
            observer.on_result_end(kind)
        return replaced

    # ================================================================ lifecycle
    def _client_seq(self) -> int:
        """The sequence id the client expects on the next packet it reads from us."""
        if self._held is not None:
            return self._held.next_seq
        if not self.tracker.idle:
            return self.tracker.expected_seq
        return 1  # idle: the client reads this as the answer to its next command

    def _pause_client(self, why: str) -> None:
        if not self._client_read_pauses and not self.closed:
            self.client.pause_reading()
        self._client_read_pauses.add(why)

    def _resume_client(self, why: str) -> None:
        self._client_read_pauses.discard(why)
        if not self._client_read_pauses and not self.closed:
            self.client.resume_reading()

    def backpressure(self, is_client: bool, paused: bool) -> None:
        if is_client:  # the client cannot keep up: stop reading the target
            if not self.closed:
                (self.upstream.pause_reading if paused else self.upstream.resume_reading)()
        elif paused:
            self._pause_client("upstream-full")
        else:
            self._resume_client("upstream-full")

    def _send_error(self, code: int, sqlstate: str, text: str) -> None:
        if self.closed or self.client.is_closing():
            return
        err = ErrPacket(code, text, sqlstate)
        with contextlib.suppress(Exception):
            self.client.write(encode_packet(self._client_seq(), err.encode(self.caps)))

    def _violation(self, code: int, sqlstate: str, text: str) -> None:
        log.warning("session %s: protocol violation from client: %s", self.live.id, text)
        self._send_error(code, sqlstate, f"wardgate: {text}")
        self.close("protocol_error", text)

    def _upstream_violation(self, text: str) -> None:
        log.error("session %s: protocol violation from target: %s", self.live.id, text)
        self._send_error(
            CR_SERVER_LOST, "HY000", f"wardgate: the target broke the protocol: {text}"
        )
        self.close("target_protocol_error", text)

    def terminate(self, reason: str, text: str) -> None:
        """End the session from the gateway side (admin kill, revocation, timeout)."""
        if self.closed:
            return
        self._send_error(ER_CONNECTION_KILLED, "70100", f"wardgate: {text}")
        self.close(reason, text)

    def peer_eof(self, is_client: bool) -> None:
        self.peer_lost(is_client, None)

    def peer_lost(self, is_client: bool, exc: Exception | None) -> None:
        if is_client:
            self.close(self.end_reason or ("client_eof" if exc is None else "client_error"))
            return
        if not self.closed and self.end_reason is None:
            self._send_error(CR_SERVER_LOST, "HY000", "wardgate: the target closed the connection")
        self.close(self.end_reason or "target_closed")

    def close(self, reason: str, detail: str | None = None) -> None:
        if self.closed:
            return
        if self.tracker.idle and not self.upstream.is_closing() and reason != "target_closed":
            # The target logs a clean disconnect rather than an aborted connection.
            with contextlib.suppress(Exception):
                if self.end_reason != "client_terminate":
                    self.upstream.write(encode_packet(0, bytes((Command.QUIT,))))
        self.closed = True
        self.end_reason = self.end_reason or reason
        self.end_detail = detail
        if self._hold_task is not None and not self._hold_task.done():
            self.gate.cancel_approval()
            self._hold_task.cancel()
        self.live.ended_mono = time.monotonic()
        for t in (self.client, self.upstream):
            if not t.is_closing():
                t.close()
        self._on_closed(self)


# -------------------------------------------------------------------------------- helpers
def _denial(verdict: Verdict) -> ErrPacket:
    text = f"wardgate: statement denied by {verdict.rule}: {verdict.reason}"
    if verdict.sqlstate == "58030":  # recording unavailable: fail closed
        return error_packet(ER_OPTION_PREVENTS_STATEMENT, text, "HY000")
    privilege = StatementClass.PRIVILEGE in verdict.classes
    return error_packet(
        ER_SPECIFIC_ACCESS_DENIED if privilege else ER_TABLEACCESS_DENIED, text, "42000"
    )


def _kill_verdict(kill: Packet | ErrPacket) -> Verdict:
    """What a KILL the adapter handled itself looks like to recording."""
    if isinstance(kill, ErrPacket):
        return Verdict("deny", rule=f"mysql:{kill.code}", reason=kill.message)
    return Verdict(
        "allow",
        rule="mysql:own-session-kill",
        reason="KILL of one of the caller's own sessions, mapped to its target thread",
    )


def _kill_refusal(gateway_id: int | None) -> ErrPacket:
    if gateway_id is None:
        return error_packet(
            ER_NO_SUCH_THREAD,
            "wardgate: KILL is allowed only as a single `KILL [QUERY] <connection id>` "
            "naming a connection id wardgate gave one of your own sessions on this target",
        )
    return error_packet(
        ER_NO_SUCH_THREAD,
        f"Unknown thread id: {gateway_id} (wardgate: KILL takes the connection id "
        "wardgate gave one of your own sessions on this target)",
    )


def _unquote(name: str) -> str:
    if name.startswith("`") and name.endswith("`") and len(name) >= 2:
        return name[1:-1].replace("``", "`")
    return name


def _local_infile_statements(cls: Classification) -> list[str]:
    return [st.text for st in cls.statements if st.kind == "LOAD" and _LOCAL.search(st.text)]
