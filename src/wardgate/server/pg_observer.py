"""What the gateway learns from a PostgreSQL session's messages, for recording and masking.

Attached to a ``PgRelay`` when recording or masking is on. It follows the protocol's own
ordering: every Query, Describe, Execute and Sync the client sends is answered in order,
so a FIFO of pending entries maps each server message to the statement it belongs to,
however deep the client pipelines. An error makes the server skip to the next Sync;
entries it skipped are recorded as not executed.

Masking rewrites DataRow/CopyData *before* recording sees them: recordings hold exactly
what left the gateway.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from wardgate.masking.native import capture_rows as _capture_rows
from wardgate.masking.native import pg_bind as _pg_bind
from wardgate.masking.native import pg_cells as _pg_cells
from wardgate.pipeline.hooks import StatementPath, Verdict
from wardgate.proto.pg import messages as m

if TYPE_CHECKING:
    from wardgate._rowscan import Gate
    from wardgate.recording.writer import ResultCapture, ResultParts, SessionRecorder

log = logging.getLogger("wardgate.pg")

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")


class RowMasker(Protocol):
    """Masking as the observer needs it (implemented by ``wardgate.masking``)."""

    def plan(self, columns: list[ColumnDesc] | None, formats: list[int]) -> object | None: ...

    def mask_row(self, msg: bytes, plan: object) -> bytes | None: ...

    def native_gate(self, plan: object) -> Gate | None:
        """A compiled gate that can vouch for runs of unchanged rows, or None."""
        ...

    def copy_plan(self, statement: str, binary: bool) -> object | None: ...

    def native_copy_gate(self, plan: object) -> tuple[Gate, bool] | None:
        """(compiled gate, text format) for the CopyData rows of ``plan``, or None."""
        ...

    def mask_copy(self, data: bytes, plan: object) -> bytes | None: ...


@dataclass(slots=True)
class ColumnDesc:
    name: str
    table_oid: int
    column: int
    type_oid: int
    format: int


def parse_row_description(msg: bytes) -> list[ColumnDesc]:
    n = _I16.unpack_from(msg, 5)[0]
    pos = 7
    out = []
    for _ in range(n):
        end = msg.index(b"\x00", pos)
        name = msg[pos:end].decode("utf-8", "replace")
        table_oid, col, type_oid, _size, _mod, fmt = struct.unpack_from("!IhIhih", msg, end + 1)
        out.append(ColumnDesc(name, table_oid, col, type_oid, fmt))
        pos = end + 19
    return out


def decode_data_row(msg: bytes, formats: list[int]) -> list[str | None]:
    n = _I16.unpack_from(msg, 5)[0]
    pos = 7
    out: list[str | None] = []
    for i in range(n):
        length = _I32.unpack_from(msg, pos)[0]
        pos += 4
        if length < 0:
            out.append(None)
            continue
        raw = msg[pos : pos + length]
        pos += length
        if i < len(formats) and formats[i] == 1:
            out.append("\\x" + raw.hex())
        else:
            out.append(raw.decode("utf-8", "replace"))
    return out


_BINARY_PARAM: dict[int, Callable[[bytes], str]] = {
    16: lambda b: "true" if b == b"\x01" else "false",
    20: lambda b: str(int.from_bytes(b, "big", signed=True)),
    21: lambda b: str(int.from_bytes(b, "big", signed=True)),
    23: lambda b: str(int.from_bytes(b, "big", signed=True)),
    700: lambda b: repr(struct.unpack("!f", b)[0]),
    701: lambda b: repr(struct.unpack("!d", b)[0]),
    25: lambda b: b.decode("utf-8", "replace"),
    1043: lambda b: b.decode("utf-8", "replace"),
}


def _binary_param(raw: bytes, type_oid: int) -> str:
    """A readable form of a binary-format parameter for the recording."""
    decode = _BINARY_PARAM.get(type_oid)
    if decode is not None:
        try:
            return decode(raw)
        except (struct.error, ValueError):
            pass
    return "\\x" + raw.hex()


def _parse_bind(
    msg: bytes, types: list[int] | None = None
) -> tuple[str, str, list[str | None], list[int]]:
    """portal, statement, params (text; binary as \\x hex), result format codes."""
    pos = 5
    end = msg.index(b"\x00", pos)
    portal = msg[pos:end].decode()
    pos = end + 1
    end = msg.index(b"\x00", pos)
    stmt = msg[pos:end].decode()
    pos = end + 1
    nfmt = _I16.unpack_from(msg, pos)[0]
    pos += 2
    pfmts = [_I16.unpack_from(msg, pos + 2 * i)[0] for i in range(nfmt)]
    pos += 2 * nfmt
    nparams = _I16.unpack_from(msg, pos)[0]
    pos += 2
    params: list[str | None] = []
    for i in range(nparams):
        length = _I32.unpack_from(msg, pos)[0]
        pos += 4
        if length < 0:
            params.append(None)
            continue
        raw = msg[pos : pos + length]
        pos += length
        fmt = pfmts[0] if nfmt == 1 else (pfmts[i] if i < nfmt else 0)
        if fmt == 1:
            oid = types[i] if types is not None and i < len(types) else 0
            params.append(_binary_param(raw, oid))
        else:
            params.append(raw.decode("utf-8", "replace"))
    nres = _I16.unpack_from(msg, pos)[0]
    pos += 2
    rfmts = [_I16.unpack_from(msg, pos + 2 * i)[0] for i in range(nres)]
    return portal, stmt, params, rfmts


def parse_bind(
    msg: bytes, types_of: Callable[[str], list[int] | None]
) -> tuple[str, str, list[str | None], list[int]]:
    """``_parse_bind`` of a Bind message, by the compiled reader when it can (``types_of``
    gives a statement's parameter types; it is asked only for binary parameters)."""
    if _pg_bind is not None:
        got = _pg_bind(msg)
        if got is not None:
            portal, stmt, values, rfmts, any_binary = got
            if any_binary:
                types = types_of(stmt)
                for i, v in enumerate(values):
                    if isinstance(v, bytes):
                        oid = types[i] if types is not None and i < len(types) else 0
                        values[i] = _binary_param(v, oid)
            return portal, stmt, values, rfmts  # type: ignore[return-value]
    try:
        end = msg.index(b"\x00", 5)
        stmt_name = msg[end + 1 : msg.index(b"\x00", end + 1)].decode()
    except ValueError:  # (UnicodeDecodeError too) the parser fails on it: let it say how
        return _parse_bind(msg, None)
    return _parse_bind(msg, types_of(stmt_name))


@dataclass(slots=True)
class _Statement:
    sql: str
    verdict: Verdict
    columns: list[ColumnDesc] | None = None
    param_types: list[int] | None = None


@dataclass(slots=True)
class _Portal:
    statement: _Statement
    params: list[str | None]
    formats: list[int]
    columns: list[ColumnDesc] | None = None


@dataclass(slots=True)
class _Pending:
    kind: str  # "simple" | "execute" | "describe" | "sync"
    sql: str = ""
    path: StatementPath = "simple"
    n: int = 0
    params: Sequence[str | None] = ()
    portal: _Portal | None = None
    describe_target: _Statement | _Portal | None = None
    # Set (``_started``) only on entries that are recorded as statements.
    started_wall: datetime | None = None
    started: float = 0.0
    rows: int = 0
    error: tuple[str, str] | None = None
    done: bool = False
    # An allowed statement's decision and results ride inside its statement event.
    decision: Verdict | None = None
    results: list[ResultParts] | None = None
    duration_us: int = 0


# Every Sync's entry: it only marks where the server's ReadyForQuery ends a batch, and is
# never changed, so one object serves them all.
_SYNC = _Pending("sync")


def _started(p: _Pending) -> _Pending:
    p.started_wall = datetime.now(UTC)
    p.started = time.perf_counter()
    return p


def _rows_from_tag(tag: str) -> int | None:
    last = tag.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else None


# What ``PgObserver.server_message`` acts on: DataRow, RowDescription, CommandComplete,
# EmptyQueryResponse, PortalSuspended, NoData, ErrorResponse, ReadyForQuery,
# CopyOutResponse, CopyData, CopyDone. Anything else it would return None for, untouched.
SERVER_KINDS: frozenset[int] = frozenset(b"DTCIsnEZHdc")


class PgObserver:
    server_kinds = SERVER_KINDS

    def __init__(self, recorder: SessionRecorder | None, masker: RowMasker | None) -> None:
        self.rec = recorder
        self.masker = masker
        self.fifo: deque[_Pending] = deque()
        self.statements: dict[str, _Statement] = {}
        self.portals: dict[str, _Portal] = {}
        self._cols: list[ColumnDesc] | None = None
        self._formats: list[int] = []
        self._plan: object | None = None
        self._capture: ResultCapture | None = None
        self._copy_plan: object | None = None
        # Read by the relay for every DataRow: True when a row needs no inspection;
        # otherwise ``row_gate`` (when set) lets the compiled walk vouch for runs of rows
        # that masking would leave unchanged, once the recording capture is full.
        self.rows_passthrough = False
        self.row_gate: Gate | None = None
        self.copy_gate: tuple[Gate, bool] | None = None  # the same for COPY TO STDOUT rows
        # While the capture keeps rows: True when the compiled walk may take them and
        # decode them for it (``capture_rows``), with this gate (None: nothing to mask).
        self.capture_walk = False
        self._capture_gate: Gate | None = None
        self._capture_owner: _Pending | None = None
        self._finished: list[_Pending] = []  # finished, not yet recorded: flush_finished
        self._descs: dict[bytes, list[ColumnDesc]] = {}  # RowDescription bytes -> columns

    # ------------------------------------------------------------------ client side
    def statement_judged(self, kind: str, name: str, sql: str, verdict: Verdict) -> None:
        """A Query or Parse was judged. Denials are recorded now: they never execute."""
        rec = self.rec
        if kind == "simple":
            n = rec.next_statement() if rec is not None else 0
            entry = _started(_Pending("simple", sql=sql, n=n))
            if rec is not None:
                self._decide(entry, verdict)
            # A denied Query still gets the server's (replaced) ErrorResponse and
            # ReadyForQuery, so it finishes through the normal path with SQLSTATE 42501.
            self.fifo.append(entry)
            return
        self.statements[name] = _Statement(sql, verdict)
        if verdict.kind == "deny" and rec is not None:
            n = rec.next_statement()
            self._decision(n, verdict)
            self._record_denied(n, sql, "extended", verdict)

    def approval(self, request_id: str, state: str, by: str, reason: str) -> None:
        if self.rec is None:
            return
        n = self.fifo[-1].n if self.fifo and self.fifo[-1].kind == "simple" else 0
        self.rec.approval(
            n,
            state,  # type: ignore[arg-type]
            request_id=request_id or "none",
            approver=by or None,
            reason=reason or None,
        )

    def parse_types(self, name: str, tail: bytes) -> None:
        """Parameter type OIDs from a Parse (after its query), to read binary parameters."""
        stmt = self.statements.get(name)
        if stmt is None or len(tail) < 2:
            return
        if tail == b"\x00\x00":  # no types given (what most drivers send): nothing to read
            stmt.param_types = []
            return
        n = _I16.unpack_from(tail, 0)[0]
        if len(tail) >= 2 + 4 * n:
            stmt.param_types = list(struct.unpack_from(f"!{n}I", tail, 2))

    def client_message(self, kind: int, msg: bytes) -> None:
        if kind == 66:  # 'B' Bind
            portal_name, stmt_name, params, formats = parse_bind(msg, self._param_types)
            stmt = self.statements.get(stmt_name)
            if stmt is not None:
                self.portals[portal_name] = _Portal(stmt, params, formats, None)
        elif kind == 69:  # 'E' Execute
            end = msg.index(b"\x00", 5)
            portal_ = self.portals.get(msg[5:end].decode())
            if portal_ is None:
                self.fifo.append(_Pending("execute", path="extended"))
                return
            portal = portal_
            if portal.statement.verdict.kind == "deny":
                # Recorded when its Parse was denied; the server never runs it.
                self.fifo.append(_Pending("execute", path="extended"))
                return
            n = self.rec.next_statement() if self.rec is not None else 0
            entry = _started(
                _Pending(
                    "execute",
                    sql=portal.statement.sql,
                    path="extended",
                    n=n,
                    params=portal.params,
                    portal=portal,
                )
            )
            if self.rec is not None:
                self._decide(entry, portal.statement.verdict)
            self.fifo.append(entry)
        elif kind == 68:  # 'D' Describe
            which = msg[5:6]
            name = msg[6:-1].decode()
            target: _Statement | _Portal | None = (
                self.statements.get(name) if which == b"S" else self.portals.get(name)
            )
            self.fifo.append(_Pending("describe", describe_target=target))
        elif kind == 83:  # 'S' Sync
            self.fifo.append(_SYNC)
        elif kind == 67:  # 'C' Close
            which = msg[5:6]
            name = msg[6:-1].decode()
            if which == b"S":
                self.statements.pop(name, None)
            else:
                self.portals.pop(name, None)

    def _param_types(self, stmt_name: str) -> list[int] | None:
        stmt = self.statements.get(stmt_name)
        return stmt.param_types if stmt is not None else None

    # ------------------------------------------------------------------ server side
    def _head(self) -> _Pending | None:
        for p in self.fifo:
            if not p.done and p.kind != "sync":
                return p
            if p.kind == "sync":
                return None
        return None

    def server_message(self, kind: int, msg: bytes) -> bytes | None:
        """Observe one server message; return replacement bytes when masking changed it."""
        if kind == 68:  # 'D' DataRow
            if self._cols is None:
                self._rows_without_description()
            out = None
            plan = self._plan
            if plan is not None and self.masker is not None:
                out = self.masker.mask_row(msg, plan)
            cap = self._capture
            if cap is not None:
                if cap.truncated:
                    cap.total_rows += 1
                    cap.total_bytes += len(msg) - 7
                else:
                    row = out if out is not None else msg
                    cells = _pg_cells(row, self._formats) if _pg_cells is not None else None
                    if cells is not None:
                        cap.add_sized(*cells)
                    else:
                        cap.add(decode_data_row(row, self._formats))
                    if cap.truncated:
                        self._update_passthrough()
            head = self._head()
            if head is not None:
                head.rows += 1
            return out
        if kind == 84:  # 'T' RowDescription
            cols = self._descs.get(msg)
            if cols is None:
                # A statement run again (libpq describes the portal on every execution)
                # gets the same list back: parsed once, and masking's plan for it is
                # remembered by its identity (PgRowMasker.plan). Never mutated.
                cols = parse_row_description(msg)
                if len(self._descs) >= 256:
                    self._descs.clear()
                self._descs[msg] = cols
            head = self._head()
            if head is not None and head.kind == "describe":
                tgt = head.describe_target
                if tgt is not None:
                    tgt.columns = cols
                head.done = True
                return None
            self._start_result(head, cols, [c.format for c in cols])
            return None
        if kind == 67:  # 'C' CommandComplete
            self._end_result()
            head = self._head()
            if head is not None:
                if head.rows == 0:  # no DataRows counted: the tag says (INSERT 0 3, ...)
                    rows = _rows_from_tag(msg[5:-1].decode("ascii", "replace"))
                    if rows is not None:
                        head.rows = rows
                if head.kind == "execute":
                    self._finish(head)
            return None
        if kind in (73, 115):  # 'I' EmptyQuery, 's' PortalSuspended
            self._end_result()
            head = self._head()
            if head is not None and head.kind == "execute":
                self._finish(head)
            return None
        if kind == 110:  # 'n' NoData
            head = self._head()
            if head is not None and head.kind == "describe":
                head.done = True
            return None
        if kind == 69:  # 'E' ErrorResponse
            self._end_result()
            fields = m.parse_error_fields(msg[5:])
            head = self._head()
            if head is not None:
                head.error = (fields.get("C", ""), fields.get("M", ""))
                if head.kind == "execute":
                    self._finish(head)
                elif head.kind == "describe":
                    head.done = True
            return None
        if kind == 90:  # 'Z' ReadyForQuery: everything up to this Sync/Query is over
            self._end_result()
            self._copy_plan = None  # a COPY that failed part way sends no CopyDone
            self.copy_gate = None
            while self.fifo:
                p = self.fifo.popleft()
                if p.kind == "sync":
                    break
                if p.kind == "simple":
                    self._finish(p)
                    break
                if p.kind == "execute" and not p.done:
                    p.error = p.error or (
                        "",
                        "not executed: an earlier message in the batch failed",
                    )
                    self._finish(p)
            return None
        if kind == 72:  # 'H' CopyOutResponse
            head = self._head()
            if self.masker is not None and head is not None:
                self._copy_plan = self.masker.copy_plan(head.sql, msg[5] == 1)
                self.copy_gate = (
                    self.masker.native_copy_gate(self._copy_plan)
                    if self._copy_plan is not None
                    else None
                )
            return None
        if kind == 100:  # 'd' CopyData (COPY TO STDOUT)
            plan = self._copy_plan
            if plan is not None and self.masker is not None:
                return self.masker.mask_copy(msg, plan)
            return None
        if kind == 99:  # 'c' CopyDone
            self._copy_plan = None
            self.copy_gate = None
        return None

    def rows_passed(self, rows: int, nbytes: int) -> None:
        """``rows`` DataRows (``nbytes`` after their headers) went by uninspected."""
        cap = self._capture
        if cap is not None:
            cap.total_rows += rows
            cap.total_bytes += nbytes
        head = self._head()
        if head is not None:
            head.rows += rows

    def capture_rows(self, data: bytes, pos: int, end: int, max_message: int) -> int:
        """While ``capture_walk``: the compiled walk takes the DataRows from ``pos`` that
        the capture keeps (within its room, that masking would leave as they are) and
        they are counted and kept as ``server_message`` would; returns where it stopped
        (``pos``: the next row takes the Python path)."""
        cap = self._capture
        assert cap is not None and _capture_rows is not None
        room_rows, room_bytes = cap.room()
        kept: list[list[str | None]] = []
        after, run, _, size = _capture_rows(
            data, pos, end, max_message, self._capture_gate, self._formats, kept,
            room_rows, room_bytes,
        )  # fmt: skip
        if run:
            cap.add_run(kept, size)
            head = self._head()
            if head is not None:
                head.rows += run
        return after

    def _update_passthrough(self) -> None:
        cap = self._capture
        plan = self._plan
        masker = self.masker
        known = self._cols is not None
        masking = plan is not None and masker is not None
        gate = masker.native_gate(plan) if known and masking else None  # type: ignore[union-attr]
        ready = known and (cap is None or cap.truncated)
        self.rows_passthrough = ready and not masking
        self.row_gate = gate if ready else None
        # Rows the capture keeps: in C too, when masking leaves them be or a gate says so.
        keeping = known and cap is not None and not cap.truncated and _capture_rows is not None
        self.capture_walk = keeping and (not masking or gate is not None)
        self._capture_gate = gate if self.capture_walk else None

    # ------------------------------------------------------------------ helpers
    def _start_result(
        self,
        head: _Pending | None,
        cols: list[ColumnDesc],
        formats: list[int],
        *,
        known: bool = True,
    ) -> None:
        self._end_result()
        self._cols = cols
        self._formats = formats
        if self.masker is not None:
            self._plan = self.masker.plan(cols if known else None, formats)
        if self.rec is not None and head is not None and head.sql:
            names = [c.name for c in cols] if known else ["?"]
            self._capture = self.rec.capture(head.n, names)
            self._capture_owner = head
        self._update_passthrough()

    def _end_result(self) -> None:
        if self._cols is None:  # no result (_start_result sets _cols with all the rest)
            return
        if self._capture is not None:
            owner = self._capture_owner
            if owner is not None and not owner.done:
                if owner.results is None:
                    owner.results = []
                owner.results.append(self._capture.parts())
            else:
                self._capture.finish()
            self._capture = None
            self._capture_owner = None
        self._plan = None
        self._cols = None
        self.rows_passthrough = False
        self.row_gate = None
        self.capture_walk = False
        self._capture_gate = None

    def _rows_without_description(self) -> None:
        """An Execute of a statement the client described earlier sends no RowDescription:
        use the one remembered for the portal/statement, with the Bind's result formats."""
        head = self._head()
        cols: list[ColumnDesc] | None = None
        formats: list[int] = []
        if head is not None and head.portal is not None:
            portal = head.portal
            cols = portal.columns or portal.statement.columns
            n = len(cols) if cols else 0
            f = portal.formats
            formats = [0] * n if not f else ([f[0]] * n if len(f) == 1 else list(f[:n]))
        # cols None: the layout is unknown; masking then scans every value (fail closed).
        self._start_result(head, cols if cols else [], formats, known=bool(cols))

    def _decide(self, entry: _Pending, v: Verdict) -> None:
        """Denials and reviews are recorded the moment they are decided; an allowed
        statement's decision waits to be embedded in its statement event."""
        if v.kind == "allow":
            entry.decision = v
        else:
            self._decision(entry.n, v)

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

    def _record_denied(self, n: int, sql: str, path: StatementPath, v: Verdict) -> None:
        if self.rec is None:
            return
        self.rec.statement(
            n,
            text=sql,
            path=path,
            started_at=datetime.now(UTC),
            duration_us=0,
            error_sqlstate=v.sqlstate,
            error_message=f"denied by {v.rule}: {v.reason}",
        )

    def _finish(self, p: _Pending) -> None:
        if p.done:
            return
        p.done = True
        if self.rec is None or not p.sql:
            return
        p.duration_us = int((time.perf_counter() - p.started) * 1e6)
        self._finished.append(p)

    def flush_finished(self) -> None:
        """Record the statements that finished in the chunk just forwarded.

        The relay calls this after it wrote the chunk to the client (and before the session
        closes), so serialising and chaining the statement event is not between the
        target's answer and the client; the event is queued before the relay reads
        anything else, so the recording's order is the session's order. Whether the
        statement could run unrecorded was decided before it ran (``admit``)."""
        finished = self._finished
        rec = self.rec
        if not finished or rec is None:
            return
        self._finished = []
        if rec.closed:  # cannot happen through the relay, which flushes before closing
            log.error("session recording closed with %d statements unrecorded", len(finished))
            return
        for p in finished:
            error = p.error
            rec.ran(
                p.n,
                p.sql,
                p.path,
                p.started_wall or datetime.now(UTC),
                p.duration_us,
                p.params,
                p.rows,
                error[0] if error else None,
                error[1] if error else None,
                p.decision,
                p.results or [],
            )
