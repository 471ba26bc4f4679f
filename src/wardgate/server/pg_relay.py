"""The established PostgreSQL session: frames both directions and applies decisions.

Hot path rules: messages nobody needs to look at are forwarded as the bytes they arrived
in (a whole chunk is written with one ``write`` when nothing in it was changed); only
Query and Parse are decoded client-side; server-side only headers are read unless a
result observer (masking, recording) or a pending denial asks for more.

Denials keep PostgreSQL's own semantics. The denied Query/Parse is replaced by a
statement that fails to parse, carrying a unique marker; the server then does exactly
what it does for any error (aborts the transaction, skips to Sync, sends ReadyForQuery
with the right status) and the gateway swaps that ErrorResponse for its own 42501. No
response is ever injected out of order, however deep the client's pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from wardgate.masking.native import scan_copy as _scan_copy
from wardgate.masking.native import scan_rows as _scan_rows
from wardgate.pipeline.hooks import ApprovalOutcome, StatementGate, StatementPath, Verdict
from wardgate.proto.pg import messages as m
from wardgate.server.relay_side import RelaySide

if TYPE_CHECKING:
    from wardgate._rowscan import Gate
    from wardgate.server.live import LiveSession

log = logging.getLogger("wardgate.pg")

_Q = ord("Q")
_P = ord("P")
_X = ord("X")
_EXECUTE = ord("E")
_SYNC = ord("S")
_ERROR = ord("E")
_READY = ord("Z")
_DATAROW = ord("D")
_COPYDATA = ord("d")

_MARKER_PREFIX = "wardgate_denied_"
# What became of a judged Query/Parse (PgRelay._on_statement).
_PASS, _REPLACED, _HELD = object(), object(), object()
_UNDECODABLE = Verdict(
    "deny",
    rule="undecodable",
    reason="statement is not valid UTF-8; wardgate requires client_encoding UTF8",
    sqlstate="22021",
)
_marker_ids = itertools.count(1)


class SessionObserver(Protocol):
    """Recording and masking see the session through this (``server.pg_observer``)."""

    def statement_judged(self, kind: str, name: str, sql: str, verdict: Verdict) -> None: ...

    def approval(self, request_id: str, state: str, by: str, reason: str) -> None: ...

    def parse_types(self, name: str, tail: bytes) -> None: ...

    def client_message(self, kind: int, msg: bytes) -> None: ...

    def server_message(self, kind: int, msg: bytes) -> bytes | None: ...

    # The server message types ``server_message`` acts on; the relay forwards the others
    # (ParseComplete, BindComplete, notices, ...) without a call.
    server_kinds: frozenset[int]

    # True while DataRows need no inspection (nothing to mask, result capture full): the
    # relay then only counts them and reports each run of rows with one ``rows_passed``.
    rows_passthrough: bool
    # Otherwise, when set: the compiled gate that may vouch for runs of DataRows (and of
    # COPY TO STDOUT rows, with their text-format flag) that masking would leave as they
    # are; the first row it cannot vouch for goes to ``server_message``.
    row_gate: Gate | None
    copy_gate: tuple[Gate, bool] | None

    def rows_passed(self, rows: int, nbytes: int) -> None: ...

    # While the recording keeps a result's rows: True when the compiled walk may take them
    # and decode them for it -- ``capture_rows`` does, and says where it stopped.
    capture_walk: bool

    def capture_rows(self, data: bytes, pos: int, end: int, max_message: int) -> int: ...

    # Record what finished in the chunk just forwarded (after the client has it).
    def flush_finished(self) -> None: ...


# Client messages the observer needs whole: Bind, Execute, Describe, Sync, Close.
_OBSERVED_CLIENT = frozenset(b"BEDSC")


class PgRelay:
    def __init__(
        self,
        live: LiveSession,
        client: asyncio.Transport,
        upstream: asyncio.Transport,
        gate: StatementGate,
        *,
        max_message_bytes: int,
        max_statement_bytes: int,
        on_closed: Callable[[PgRelay], None],
    ) -> None:
        self.live = live
        self.client = client
        self.upstream = upstream
        self.gate = gate
        self.max_message = max_message_bytes
        self.max_statement = max_statement_bytes
        self._on_closed = on_closed
        self.observer: SessionObserver | None = None
        # client -> upstream framing
        self._cbuf = b""
        self._cskip = 0
        self._held = False
        self._backlog = bytearray()
        self._hold_task: asyncio.Task[None] | None = None
        # upstream -> client framing
        self._sbuf = b""
        self._sskip = 0
        self._replacements: OrderedDict[bytes, bytes] = OrderedDict()
        self._client_read_pauses: set[str] = set()
        self.txn_status = ord("I")
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
        if self._held:
            self._backlog += data
            if len(self._backlog) > self.max_message:
                self._pause_client("backlog")
            return
        self._process_client(data)

    def _process_client(self, data: bytes) -> None:
        if self._cbuf:
            data = self._cbuf + data
            self._cbuf = b""
        n = len(data)
        pos = 0
        skip = self._cskip
        if skip:
            if skip >= n:
                self._cskip = skip - n
                self.upstream.write(data)
                return
            pos = skip
            self._cskip = 0
        start = 0
        observer = self.observer
        while pos < n:
            if n - pos < 5:
                break
            kind = data[pos]
            length = int.from_bytes(data[pos + 1 : pos + 5], "big")
            end = pos + 1 + length
            if kind in (_Q, _P):
                if length < 5 or length > self.max_statement:
                    self._violation(
                        f"{chr(kind)} message of {length} bytes exceeds "
                        f"limits.max_statement_bytes ({self.max_statement})"
                        if length > 5
                        else f"malformed {chr(kind)} message"
                    )
                    return
                if end > n:
                    break
                outcome = self._on_statement(kind, data[pos:end], data, start, pos)
                if outcome is not _PASS:
                    start = end  # it was replaced, or is held; what preceded it is out
                    if outcome is _HELD:
                        self._backlog += data[end:]
                        return
                pos = end
                continue
            if length < 4 or length > self.max_message:
                self._violation(
                    f"client message {chr(kind)!r} has invalid length {length} "
                    f"(limits.max_message_bytes is {self.max_message})"
                )
                return
            if kind == _EXECUTE:
                # A statement prepared earlier runs here without a new Parse, so the
                # per-execution checks (recording health: fail closed) happen at Execute.
                stop = self.gate.admit()
                if stop is not None:
                    if end > n:
                        break
                    if start < pos:
                        self.upstream.write(data[start:pos])
                    self._deny_marker(stop, b"")
                    if observer is not None:
                        observer.client_message(kind, data[pos:end])
                    start = pos = end
                    continue
                self.live.statements += 1
            if observer is not None and kind in _OBSERVED_CLIENT:
                if end > n:
                    break
                observer.client_message(kind, data[pos:end])
                pos = end
                continue
            if kind == _X:
                self.end_reason = self.end_reason or "client_terminate"
            if end > n:
                self._cskip = end - n
                pos = n
                break
            pos = end
        if start < pos:
            self.upstream.write(data[start:pos] if start or pos != n else data)
        if pos < n:
            self._cbuf = data[pos:]

    def _on_statement(self, kind: int, msg: bytes, data: bytes, start: int, pos: int) -> object:
        """Judge one Query/Parse message, ``msg`` = ``data[pos:...]``.

        ``_PASS``: it may go as it is; the caller leaves it in place, so a pipelined Parse/
        Bind/Execute/Sync still leaves in one write (one wake-up of the target, not two).
        Otherwise the bytes before it (``data[start:pos]``) have been written and it was
        replaced by a denial (``_REPLACED``) or is held for approval (``_HELD``).
        """
        path: StatementPath
        name = sql = ""
        qend = 0
        try:
            if kind == _Q:
                path = "simple"
                sql = msg[5:-1].decode()
                self.live.statements += 1
            else:
                path = "extended"
                nul = msg.index(b"\x00", 5)
                name = msg[5:nul].decode()
                qend = msg.index(b"\x00", nul + 1)
                sql = msg[nul + 1 : qend].decode()
        except (UnicodeDecodeError, ValueError):
            verdict = _UNDECODABLE  # fail closed: what we cannot read, we do not run
        else:
            verdict = self.gate.judge(sql, path)
            if self.observer is not None:
                self.observer.statement_judged(path, name, sql, verdict)
                if kind == _P:
                    self.observer.parse_types(name, msg[qend + 1 :])
            if verdict.kind == "allow":
                if name:
                    self.gate.statement_name_prepared(name, sql)
                return _PASS
        if start < pos:
            self.upstream.write(data[start:pos])
        if verdict.kind == "deny":
            self._deny(kind, msg, verdict)
            return _REPLACED
        self._hold(kind, msg, sql, name, verdict)
        return _HELD

    def _deny(self, kind: int, msg: bytes, verdict: Verdict) -> None:
        if kind == _Q:
            self._deny_marker(verdict, None)
        else:
            nul = msg.index(b"\x00", 5)
            self._deny_marker(verdict, msg[5:nul])

    def _deny_marker(self, verdict: Verdict, parse_name: bytes | None) -> None:
        """Send the target a statement that fails to parse, carrying a unique marker, in
        place of the denied message (a Query when ``parse_name`` is None, else a Parse)."""
        marker = f"{_MARKER_PREFIX}{next(_marker_ids)}"
        hint = (
            "ask for a role that grants this, or for approval"
            if verdict.kind == "deny" and verdict.sqlstate == "42501"
            else None
        )
        text = f"wardgate: statement denied by {verdict.rule}: {verdict.reason}"
        self._replacements[marker.encode()] = m.error_response(verdict.sqlstate, text, hint=hint)
        while len(self._replacements) > 4096:
            self._replacements.popitem(last=False)
        if parse_name is None:
            self.upstream.write(m.query(marker))
        else:
            body = parse_name + b"\x00" + marker.encode() + b"\x00\x00\x00"
            self.upstream.write(m.message(b"P", body))

    # ---------------------------------------------------------------- approval hold
    def _hold(self, kind: int, msg: bytes, sql: str, name: str, verdict: Verdict) -> None:
        self._held = True
        self._pause_client("held")

        def notify(text: str) -> None:
            if not self.closed:
                self.client.write(m.notice_response(text))

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
            if self.observer is not None:
                state = "approved" if outcome.approved else ("denied" if outcome.by else "timeout")
                self.observer.approval(outcome.request_id, state, outcome.by, outcome.reason)
            if outcome.approved:
                if name:
                    self.gate.statement_name_prepared(name, sql)
                self.upstream.write(msg)
            else:
                self._deny(
                    kind,
                    msg,
                    Verdict(
                        "deny",
                        rule=verdict.rule,
                        reason=(
                            f"approval {outcome.request_id} was not granted"
                            + (f" by {outcome.by}" if outcome.by else "")
                            + (f": {outcome.reason}" if outcome.reason else "")
                        ),
                    ),
                )
            self._held = False
            backlog = bytes(self._backlog)
            self._backlog.clear()
            self._resume_client("held")
            self._resume_client("backlog")
            if backlog:
                self._process_client(backlog)

        self._hold_task = asyncio.get_running_loop().create_task(wait())

    # ================================================================ upstream -> client
    def upstream_data(self, data: bytes) -> None:
        self.live.bytes_to_client += len(data)
        if self.observer is not None:
            self._upstream_observed(data)
            return
        if self._sbuf:
            data = self._sbuf + data
            self._sbuf = b""
        n = len(data)
        pos = 0
        skip = self._sskip
        if skip:
            if skip >= n:
                self._sskip = skip - n
                self.client.write(data)
                return
            pos = skip
            self._sskip = 0
        replacing = bool(self._replacements)
        start = 0
        out: list[bytes] | None = None
        while pos < n:
            if n - pos < 5:
                break
            kind = data[pos]
            length = int.from_bytes(data[pos + 1 : pos + 5], "big")
            end = pos + 1 + length
            if kind == _READY:
                if end > n:
                    break
                self.txn_status = data[pos + 5]
                pos = end
                continue
            if kind == _ERROR and replacing:
                if end > n:
                    break
                replacement = self._error_replacement(data[pos:end])
                if replacement is not None:
                    if out is None:
                        out = []
                    out.append(data[start:pos])
                    out.append(replacement)
                    start = end
                pos = end
                continue
            if length < 4:
                self._upstream_violation(f"target sent a message with invalid length {length}")
                return
            if end > n:
                self._sskip = end - n
                pos = n
                break
            pos = end
        if out is None:
            if start < pos:
                self.client.write(data if pos == n and start == 0 else data[start:pos])
        else:
            out.append(data[start:pos])
            self.client.write(b"".join(out))
        if pos < n:
            self._sbuf = data[pos:]

    def _upstream_observed(self, data: bytes) -> None:
        """Every server message whole, shown to the observer (masking may replace it)."""
        observer = self.observer
        assert observer is not None
        if self._sbuf:
            data = self._sbuf + data
            self._sbuf = b""
        n = len(data)
        pos = 0
        start = 0
        out: list[bytes] | None = None
        replacing = bool(self._replacements)
        rows = nbytes = 0  # a run of DataRows passed through uninspected
        max_message = self.max_message
        server_kinds = observer.server_kinds
        while n - pos >= 5:
            kind = data[pos]
            length = int.from_bytes(data[pos + 1 : pos + 5], "big")
            end = pos + 1 + length
            if length < 4 or length > max_message:
                self._upstream_violation(f"target sent a message with invalid length {length}")
                return
            if end > n:
                break
            if kind == _DATAROW:
                if observer.rows_passthrough:
                    if _scan_rows is None:
                        rows += 1
                        nbytes += length - 6
                        pos = end
                        continue
                    # The compiled walk takes the whole run of rows in one call.
                    pos, run, run_bytes = _scan_rows(data, pos, n, max_message, None)
                    rows += run
                    nbytes += run_bytes
                    continue
                if observer.capture_walk:
                    # Rows the recording keeps, decoded for it in the same compiled walk.
                    after = observer.capture_rows(data, pos, n, max_message)
                    if after > pos:
                        pos = after
                        continue
                gate = observer.row_gate
                if gate is not None:
                    # Rows the compiled gate vouches for (masking would leave them
                    # unchanged) go by like passthrough rows; it stops before the first
                    # row it cannot vouch for, which takes the Python path below.
                    assert _scan_rows is not None  # a gate exists only with the module
                    after, run, run_bytes = _scan_rows(data, pos, n, max_message, gate)
                    if run:
                        pos = after
                        rows += run
                        nbytes += run_bytes
                        continue
            elif kind == _COPYDATA and observer.copy_gate is not None:
                # COPY TO STDOUT rows the compiled gate vouches for; none is counted
                # (CommandComplete's tag carries the row count).
                assert _scan_copy is not None
                gate, text_format = observer.copy_gate
                after, run = _scan_copy(data, pos, n, max_message, gate, text_format)
                if run:
                    pos = after
                    continue
            if rows:
                observer.rows_passed(rows, nbytes)
                rows = nbytes = 0
            if kind not in server_kinds and not (kind == _ERROR and replacing):
                pos = end
                continue
            msg = data[pos:end]
            new: bytes | None = None
            if kind == _ERROR and replacing:
                new = self._error_replacement(msg)
            elif kind == _READY:
                self.txn_status = data[pos + 5]
            try:
                changed = observer.server_message(kind, new if new is not None else msg)
            except Exception as e:
                # Fail closed: a result we cannot inspect (mask, record) does not leave.
                log.exception("session %s: result inspection failed", self.live.id)
                if start < pos:
                    self.client.write(data[start:pos])
                self.terminate(
                    "error",
                    f"the gateway could not inspect this result ({type(e).__name__}); "
                    "nothing unmasked was sent. Binary COPY is not available to masked "
                    "identities; use COPY ... TO STDOUT (FORMAT csv)",
                    sqlstate="XX000",
                )
                return
            if changed is not None:
                new = changed
            if new is not None:
                if out is None:
                    out = []
                out.append(data[start:pos])
                out.append(new)
                start = end
            pos = end
        if rows:
            observer.rows_passed(rows, nbytes)
        if out is None:
            if start < pos:
                self.client.write(data if pos == n and start == 0 else data[start:pos])
        else:
            out.append(data[start:pos])
            self.client.write(b"".join(out))
        if pos < n:
            self._sbuf = data[pos:]
        observer.flush_finished()

    def _error_replacement(self, msg: bytes) -> bytes | None:
        idx = msg.find(_MARKER_PREFIX.encode())
        if idx < 0:
            return None
        end = idx + len(_MARKER_PREFIX)
        while end < len(msg) and 48 <= msg[end] <= 57:
            end += 1
        return self._replacements.pop(msg[idx:end], None)

    # ================================================================ lifecycle
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

    def _violation(self, text: str) -> None:
        log.warning("session %s: protocol violation from client: %s", self.live.id, text)
        self.client.write(m.error_response("08P01", f"wardgate: {text}", severity="FATAL"))
        self.close("protocol_error", text)

    def _upstream_violation(self, text: str) -> None:
        log.error("session %s: protocol violation from target: %s", self.live.id, text)
        self.client.write(m.error_response("08P01", f"wardgate: {text}", severity="FATAL"))
        self.close("target_protocol_error", text)

    def terminate(self, reason: str, text: str, sqlstate: str = "57P01") -> None:
        """End the session from the gateway side (admin kill, revocation, timeout)."""
        if self.closed:
            return
        self.client.write(m.error_response(sqlstate, f"wardgate: {text}", severity="FATAL"))
        self.close(reason, text)

    def peer_eof(self, is_client: bool) -> None:
        self.close("client_eof" if is_client else "target_closed")

    def peer_lost(self, is_client: bool, exc: Exception | None) -> None:
        if is_client:
            self.close(self.end_reason or ("client_eof" if exc is None else "client_error"))
        else:
            if not self.closed and self.end_reason is None:
                with contextlib.suppress(Exception):
                    self.client.write(
                        m.error_response(
                            "57P01" if exc is None else "08006",
                            "wardgate: the target closed the connection",
                            severity="FATAL",
                        )
                    )
            self.close(self.end_reason or "target_closed")

    def close(self, reason: str, detail: str | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.observer is not None:
            try:  # statements that finished in the last chunk, before the recording seals
                self.observer.flush_finished()
            except Exception:
                log.exception("session %s: recording the last statements failed", self.live.id)
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
