"""What the gateway learns from a MySQL/MariaDB session, for recording and masking.

Installed as :attr:`MySqlRelay.observer <wardgate.server.mysql_relay.MySqlRelay.observer>`
(the relay's ``ResultObserver`` hook) when recording or masking is on. The relay calls
it in protocol order; every result packet it reports has already been classified by the
relay's :class:`~wardgate.proto.mysql.ResultSetTracker`, which also says which command a
response belongs to (``completed_command`` when the packet ended it, else the command
being answered). Statements the target runs are queued per command kind -- COM_QUERY
(and the commands judged as a query: COM_FIELD_LIST, COM_PROCESS_INFO) and
COM_STMT_EXECUTE -- and responses arrive in command order, so the head of each queue is
the statement a response belongs to, whatever else (COM_PING, COM_STMT_PREPARE, ...) is
interleaved.

Denied statements never reach the target: they are recorded when judged. Masking
rewrites rows *before* recording sees them: recordings hold exactly what left the
gateway. With no masking a row is only decoded when recording captures it (the capture's
caps apply; after truncation rows are only counted).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from wardgate.masking.native import capture_mysql_rows as _capture_mysql_rows
from wardgate.masking.native import mysql_binary_cells as _mysql_binary_cells
from wardgate.masking.native import mysql_text_cells as _mysql_text_cells
from wardgate.pipeline.hooks import StatementPath, Verdict
from wardgate.proto.mysql import ColumnDefinition, ResponseKind, ResultSetTracker
from wardgate.proto.mysql.binary import (
    BinaryValue,
    DateTimeValue,
    StmtExecute,
    TimeValue,
    ValueType,
    parse_binary_row,
)
from wardgate.proto.mysql.constants import ColumnFlag, Command
from wardgate.proto.mysql.messages import parse_text_row

if TYPE_CHECKING:
    from wardgate._rowscan import Gate
    from wardgate.recording.writer import ResultCapture, ResultParts, SessionRecorder
    from wardgate.server.mysql_masking import MySqlMaskPlan, MySqlRowMasker
    from wardgate.server.mysql_relay import PreparedStatement

_UNSIGNED: Final = int(ColumnFlag.UNSIGNED)
# The relay may decode captured rows in C (``capture_walk``) when the extension is built.
_CAPTURE_WALK: Final = _capture_mysql_rows is not None
_SIMPLE_COMMANDS: Final = frozenset({Command.QUERY, Command.FIELD_LIST, Command.PROCESS_INFO})
# ERR codes the relay answers refusals with whose SQLSTATE is not 42000.
_HY000_CODES: Final = frozenset({1094, 1290})


@dataclass(slots=True)
class _Pending:
    """A statement the target is running (or, with ``sql`` empty, one not recorded)."""

    sql: str
    path: StatementPath
    n: int = 0
    params: list[str | None] = field(default_factory=list)
    started_wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)
    rows: int = 0
    error: tuple[str, str] | None = None
    # An allowed statement's decision and results ride inside its statement event (one
    # chained event per statement, as on PostgreSQL); denials and reviews are recorded
    # as their own decision events the moment they are decided.
    decision: Verdict | None = None
    results: list[ResultParts] = field(default_factory=list)


@dataclass(slots=True)
class _Held:
    """A statement waiting for an approver."""

    sql: str
    path: str
    verdict: Verdict
    n: int


def _denied_sqlstate(v: Verdict) -> str:
    """The SQLSTATE of the ERR the relay answers a refusal with (see ``_denial``)."""
    if v.sqlstate == "58030":
        return "HY000"
    if v.rule.startswith("mysql:"):
        code = v.rule[6:]
        return "HY000" if code.isdigit() and int(code) in _HY000_CODES else "42000"
    return "42000"


def _cell(value: BinaryValue) -> str | None:
    """One binary-protocol value as recording text (what the text protocol would show)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, DateTimeValue):
        out = f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        if value.hour or value.minute or value.second or value.microsecond:
            out += f" {value.hour:02d}:{value.minute:02d}:{value.second:02d}"
            if value.microsecond:
                out += f".{value.microsecond:06d}"
        return out
    if isinstance(value, TimeValue):
        hours = value.days * 24 + value.hours
        out = f"{'-' if value.negative else ''}{hours:02d}:{value.minutes:02d}:{value.seconds:02d}"
        if value.microseconds:
            out += f".{value.microseconds:06d}"
        return out
    return str(value)


class MySqlObserver:
    """Records statements, decisions, approvals and results; masks rows (see module doc)."""

    def __init__(
        self,
        recorder: SessionRecorder | None,
        masker: MySqlRowMasker | None,
        tracker: ResultSetTracker,
        statements: Mapping[int, PreparedStatement],
    ) -> None:
        self.rec = recorder
        self.masker = masker
        self.tracker = tracker  # the relay's: which command a response belongs to
        self.prepared = statements  # the relay's: statement id -> prepared statement
        self._simple: deque[_Pending] = deque()
        self._executes: deque[_Pending] = deque()
        self._verdicts: dict[str, Verdict] = {}  # prepared SQL -> its verdict
        self._bound: dict[int, tuple[ValueType, ...]] = {}  # statement id -> param types
        self._held: _Held | None = None
        # the result being streamed
        self._owner: _Pending | None = None
        self._columns: list[ColumnDefinition] = []
        self._binary = False
        self._types: bytes | None = None  # binary rows: (type, unsigned) per column
        self._plan: MySqlMaskPlan | None = None
        self._capture: ResultCapture | None = None

    # ------------------------------------------------------------------ client side
    def statement_judged(self, kind: str, name: str, sql: str, verdict: Verdict) -> None:
        """A COM_QUERY ("simple") or COM_STMT_PREPARE ("extended") was judged."""
        rec = self.rec
        path: StatementPath = "extended" if kind == "extended" else "simple"
        if verdict.kind == "deny":
            if rec is not None:
                n = rec.next_statement()
                self._decision(n, verdict)
                self._record_denied(
                    n, sql, path, verdict, f"denied by {verdict.rule}: {verdict.reason}"
                )
            return
        if verdict.kind == "review":
            n = 0
            if rec is not None:
                n = rec.next_statement()
                self._decision(n, verdict)
            self._held = _Held(sql, path, verdict, n)
            return
        self._admitted(sql, path, verdict, None)

    def approval(self, request_id: str, state: str, by: str, reason: str) -> None:
        held, self._held = self._held, None
        if self.rec is not None:
            self.rec.approval(
                held.n if held is not None else 0,
                state,  # type: ignore[arg-type]
                request_id=request_id or "none",
                approver=by or None,
                reason=reason or None,
            )
        if held is None:
            return
        path: StatementPath = "extended" if held.path == "extended" else "simple"
        if state == "approved":
            self._admitted(held.sql, path, held.verdict, held.n)
        elif self.rec is not None:
            why = f"approval {request_id or '(none)'} was not granted" + (f" by {by}" if by else "")
            self._record_denied(held.n, held.sql, path, held.verdict, why)

    def _admitted(self, sql: str, path: StatementPath, verdict: Verdict, n: int | None) -> None:
        """An allowed (or approved) statement goes to the target."""
        if path == "extended":
            # Recorded per execution, with its parameters (COM_STMT_EXECUTE).
            self._verdicts[sql] = verdict
            return
        decision: Verdict | None = None
        if n is None:
            n = 0
            if self.rec is not None:
                n = self.rec.next_statement()
                decision = verdict
        self._simple.append(_Pending(sql, "simple", n, decision=decision))

    def statement_executed(
        self, statement_id: int, sql: str, payload: memoryview | bytes = b""
    ) -> None:
        """A COM_STMT_EXECUTE the relay forwards (its response follows in order)."""
        rec = self.rec
        if rec is None or not sql:
            # Still queued: the response must be matched to this execute, not the next.
            self._executes.append(_Pending("", "extended"))
            return
        n = rec.next_statement()
        self._executes.append(
            _Pending(
                sql,
                "extended",
                n,
                params=self._params(statement_id, payload),
                decision=self._verdicts.get(sql),
            )
        )

    def _params(self, statement_id: int, payload: memoryview | bytes) -> list[str | None]:
        stmt = self.prepared.get(statement_id)
        if stmt is None or not stmt.params or not len(payload):
            return []
        try:
            ex = StmtExecute.parse(payload, len(stmt.params), self._bound.get(statement_id))
        except Exception:  # recording must not break the session over a parameter
            return ["?"] * len(stmt.params)
        if ex.types:
            self._bound[statement_id] = ex.types
        return [_cell(v) for v in ex.values]

    # ------------------------------------------------------------------ server side
    def on_columns(self, columns: Sequence[ColumnDefinition], binary: bool) -> None:
        self._end_capture()
        owner = self._head()
        self._owner = owner
        self._columns = list(columns)
        self._binary = binary
        # What the compiled decoder needs of a binary row's columns: type, unsigned.
        self._types = (
            b"".join(bytes((c.type, 1 if c.flags & _UNSIGNED else 0)) for c in columns)
            if binary
            else None
        )
        self._plan = self.masker.plan(columns, binary) if self.masker is not None else None
        if self.rec is not None and owner is not None and owner.sql:
            self._capture = self.rec.capture(owner.n, [c.name for c in columns])

    def on_row(self, payload: memoryview, binary: bool) -> bytes | None:
        out: bytes | None = None
        plan = self._plan
        if plan is not None:
            assert self.masker is not None
            out = self.masker.mask_row(payload, plan)
        cap = self._capture
        if cap is not None:
            if cap.truncated:
                cap.total_rows += 1
                cap.total_bytes += len(payload)
            else:
                row = out if out is not None else payload
                types = self._types
                if _mysql_text_cells is None or _mysql_binary_cells is None:
                    cells = None
                elif types is None:
                    cells = _mysql_text_cells(row, len(self._columns))
                else:
                    cells = _mysql_binary_cells(row, types)
                if cells is not None:
                    cap.add_sized(*cells)
                else:
                    cap.add(self._decode(row))
        owner = self._owner
        if owner is not None:
            owner.rows += 1
        return out

    def row_walk(self) -> tuple[bool, Gate | None]:
        """May a compiled walk take the next rows without ``on_row``, and with which gate?
        Yes once the recording capture is full (or there is none) and masking has nothing
        to do or a compiled whole-row gate (the rows it cannot rule out go to ``on_row``)."""
        cap = self._capture
        if cap is not None and not cap.truncated:
            return False, None
        plan = self._plan
        if plan is None:
            return True, None
        gate = plan.gate
        return gate is not None, gate

    def capture_walk(self) -> tuple[Gate | None, int, int, int, bytes | None] | None:
        """While the capture keeps the rows of a result: (gate, columns, room_rows,
        room_bytes, types) for a compiled walk that decodes the rows it takes
        (``capture_mysql_rows``; ``types`` for binary rows), reported with
        ``rows_captured``; None when each row must go to ``on_row`` (masking without a
        compiled gate, no capture keeping rows, no extension)."""
        cap = self._capture
        if cap is None or cap.truncated or not _CAPTURE_WALK:
            return None
        plan = self._plan
        gate = None
        if plan is not None:
            gate = plan.gate
            if gate is None:
                return None
        return (gate, len(self._columns), *cap.room(), self._types)

    def rows_captured(self, rows: list[list[str | None]], size: int) -> None:
        """``rows`` went out as ``capture_walk`` allowed, decoded (``size``: their cells'
        bytes); the capture keeps them as ``on_row`` would have."""
        cap = self._capture
        assert cap is not None
        cap.add_run(rows, size)
        owner = self._owner
        if owner is not None:
            owner.rows += len(rows)

    def rows_passed(self, rows: int, nbytes: int) -> None:
        """``rows`` rows (``nbytes`` of payload) went out as ``row_walk`` allowed."""
        cap = self._capture
        if cap is not None:
            cap.total_rows += rows
            cap.total_bytes += nbytes
        owner = self._owner
        if owner is not None:
            owner.rows += rows

    def on_result_end(self, kind: ResponseKind) -> None:
        self._end_capture()
        tracker = self.tracker
        owner = self._head()
        if owner is not None:
            if kind is ResponseKind.ERROR and tracker.error is not None:
                owner.error = (tracker.error.sqlstate, tracker.error.message)
            elif kind is ResponseKind.OK and tracker.last_ok is not None and owner.rows == 0:
                owner.rows = tracker.last_ok.affected_rows
        done = tracker.completed_command
        if done is None:
            return  # more results of the same statement follow
        queue = self._queue_for(done)
        if queue:
            self._finish(queue.popleft())

    def close(self) -> None:
        """The session ended: what is still outstanding is recorded as interrupted."""
        self._end_capture()
        for queue in (self._simple, self._executes):
            while queue:
                p = queue.popleft()
                if p.error is None:
                    p.error = ("08S01", "the session ended before the statement finished")
                self._finish(p)

    # ------------------------------------------------------------------ helpers
    def _queue_for(self, command: int | None) -> deque[_Pending] | None:
        if command in _SIMPLE_COMMANDS:
            return self._simple
        if command == Command.STMT_EXECUTE:
            return self._executes
        return None

    def _head(self) -> _Pending | None:
        """The statement the response being read belongs to, if one is being recorded."""
        tracker = self.tracker
        cmd = tracker.completed_command
        if cmd is None:
            cmd = tracker.current_command
        queue = self._queue_for(cmd)
        return queue[0] if queue else None

    def _decode(self, payload: bytes | memoryview) -> list[str | None]:
        if self._binary:
            return [_cell(v) for v in parse_binary_row(payload, self._columns)]
        return [
            None if v is None else v.decode("utf-8", "replace")
            for v in parse_text_row(payload, len(self._columns))
        ]

    def _end_capture(self) -> None:
        if self._capture is not None:
            owner = self._owner
            if owner is not None and self._queued(owner):
                owner.results.append(self._capture.parts())
            else:
                self._capture.finish()
            self._capture = None
        self._plan = None
        self._owner = None

    def _queued(self, p: _Pending) -> bool:
        """``p`` is still waiting to be recorded (its statement event is not written)."""
        return any(q is p for q in self._simple) or any(q is p for q in self._executes)

    def _decision(self, n: int, v: Verdict) -> None:
        assert self.rec is not None
        self.rec.decision(
            n,
            v.kind,
            rule=v.rule or None,
            reason=v.reason or None,
            classes=v.classes,
            approvers=v.approvers,
        )

    def _record_denied(
        self, n: int, sql: str, path: StatementPath, v: Verdict, message: str
    ) -> None:
        if self.rec is None:
            return
        self.rec.statement(
            n,
            text=sql,
            path=path,
            started_at=datetime.now(UTC),
            duration_us=0,
            error_sqlstate=_denied_sqlstate(v),
            error_message=message,
        )

    def _finish(self, p: _Pending) -> None:
        if self.rec is None or not p.sql:
            return
        error = p.error
        self.rec.ran(
            p.n,
            p.sql,
            p.path,
            p.started_wall,
            int((time.perf_counter() - p.started) * 1e6),
            p.params,
            p.rows,
            error[0] if error else None,
            error[1] if error else None,
            p.decision,
            p.results,
        )
