"""The recorder the gateway calls on its hot path, and the batched writer behind it.

Owns: per-session event sequencing and chaining (``SessionRecorder``), result capture caps
(``ResultCapture``), the bounded in-memory queue, the writer task that flushes batches in
one transaction on a dedicated thread, health and the fail-closed admission check, crash
recovery of sessions a previous process left open, and orderly shutdown.

Where the hashes are computed: on the event loop, when the gateway records the event.
Serialising there costs a few microseconds per event (measured in docs/recording.md) and
buys three things: the record is fixed at the moment the gateway observed it (a caller
reusing a row buffer afterwards cannot change what was recorded); the per-session chain
state (seq, head) is owned by the one task that drives the session, so no lock is needed;
and the writer thread is a plain batch inserter whose retry after a failed flush inserts
byte-identical rows. The writer signs (session heads, global-log entries) because those
depend on what is already in the store.

Failure policy. The queue bound (``queue_max_events``/``queue_max_bytes``) is an
*admission* limit: ``check_writable()`` refuses new statements above it, or while the
last flush failed, under ``on_failure: fail_closed``. Events of statements already
admitted are always accepted, so a refusal never tears a hole in a chain; nothing is
dropped, and a failed batch stays at the head of the queue and is retried with backoff
until it commits. Under ``fail_open`` the gateway keeps serving; events above the bound
are dropped, counted, and the hole is recorded in the chain as a ``gap`` event.

Threading: every method except ``recover``/``flush``/``aclose`` is synchronous, does no
I/O and must be called from the event loop thread that called ``start()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from wardgate.core.errors import RecordingUnavailableError
from wardgate.recording.chain import GENESIS_HASH
from wardgate.recording.config import RecordingConfig
from wardgate.recording.events import (
    FORMAT_VERSION,
    ApprovalState,
    Cell,
    EndReason,
    Payload,
    SessionMeta,
    StatementPath,
    Verdict,
    VerdictLike,
    approval_payload,
    canonical_json,
    decision_parts,
    decision_payload,
    envelope_bytes,
    format_ts,
    gap_payload,
    result_payload,
    session_end_payload,
    statement_payload,
    verdict_payload,
)
from wardgate.recording.keys import KeyRing, SigningKey, load_or_create_signing_key
from wardgate.recording.models import EVENTS, SESSIONS
from wardgate.recording.store import (
    COLUMN_LIMITS,
    EventOp,
    Op,
    OpenOp,
    SealOp,
    column_text,
    load_session,
    write_batch,
)
from wardgate.recording.verify import Verifier

log = logging.getLogger("wardgate.recording")

_MAX_BACKOFF_S = 5.0

# The compiled serialise-and-chain (``recording/_chain.c``): the same bytes as the Python
# path below, which stays the reference and takes whatever the C code declines. None when
# the extension was not built or ``WARDGATE_PURE_PYTHON=1``.
_native_chain: Callable[..., tuple[str, str, int]] | None
_native_statement: Callable[..., tuple[str, str, int]] | None
try:
    from wardgate.recording import _chain

    _native_chain, _native_statement = _chain.chain_event, _chain.statement_event
except ImportError:  # built without a compiler
    _native_chain = _native_statement = None
if os.environ.get("WARDGATE_PURE_PYTHON", "") not in ("", "0"):
    _native_chain = _native_statement = None

# A result as ``ResultCapture.parts()`` hands it over: (n, columns, rows, truncated,
# total_rows, total_bytes), the arguments of ``result_payload(..., owned=True)``.
ResultParts = tuple[int, list[str], list[list[Cell]], bool, int, int]


def chain_event(
    *,
    session_id: str,
    seq: int,
    prev_hash: str,
    ts: datetime,
    event_type: str,
    payload: Payload,
) -> EventOp:
    """Serialise and chain one event onto ``prev_hash``."""
    if _native_chain is not None:
        try:
            payload_json, digest, size = _native_chain(
                payload, session_id, seq, format_ts(ts), event_type, FORMAT_VERSION, prev_hash
            )
        except (TypeError, ValueError):  # (UnicodeError is a ValueError) off its shape
            pass
        else:
            return EventOp(session_id, seq, ts, event_type, payload_json, prev_hash, digest, size)
    payload_json = canonical_json(payload)
    envelope = envelope_bytes(session_id, seq, format_ts(ts), event_type, payload_json)
    digest = hashlib.sha256(bytes.fromhex(prev_hash) + envelope).hexdigest()
    return EventOp(session_id, seq, ts, event_type, payload_json, prev_hash, digest, len(envelope))


_SESSION_ID_MAX = 40


def describe_error(exc: BaseException) -> str:
    """A store error in words, without SQL or bound parameters (they carry recorded data)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        text = str(exc.orig).strip().splitlines()
        return f"{type(exc.orig).__name__}: {text[0] if text else 'no message'}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}"


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """A snapshot for metrics and ``/health``."""

    healthy: bool
    pending_events: int
    pending_bytes: int
    events_written: int
    events_dropped: int
    flushes: int
    failed_flushes: int
    open_sessions: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class RecoveredSession:
    """A session a previous process left open, as ``Recorder.recover`` found it."""

    session_id: str
    last_seq: int  # the last event that was flushed before the crash
    sealed: bool  # False: it did not verify and was left open, untouched
    problem: str | None = None


class ResultCapture:
    """Collects the rows of one result as they stream to the client, within the caps.

    Keeps a prefix: rows are kept until ``max_result_rows`` rows or ``max_result_bytes``
    bytes of cell values would be exceeded; every row is still counted in ``total_rows``
    and ``total_bytes`` (UTF-8 bytes of non-null cell values).
    """

    __slots__ = (
        "_columns",
        "_done",
        "_kept_bytes",
        "_max_bytes",
        "_max_rows",
        "_n",
        "_rows",
        "_session",
        "total_bytes",
        "total_rows",
        "truncated",
    )

    def __init__(
        self,
        session: SessionRecorder,
        n: int,
        columns: Sequence[str],
        max_rows: int,
        max_bytes: int,
    ) -> None:
        self._session = session
        self._n = n
        self._columns = [str(c) for c in columns]
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._rows: list[list[Cell]] = []
        self._kept_bytes = 0
        self._done = False
        self.total_rows = 0
        self.total_bytes = 0
        self.truncated = False

    def add(self, row: Sequence[Cell]) -> None:
        size = 0
        cells: list[Cell] = []  # a copy of plain str: the caller may reuse its buffer
        for value in row:
            if value is None:
                cells.append(None)
                continue
            text = str(value)
            size += len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
            cells.append(text)
        self.add_sized(cells, size)

    def add_sized(self, row: list[Cell], size: int) -> None:
        """``add`` for a fresh list of plain ``str`` and None, kept as is (it goes into the
        payload uncopied), whose size (the UTF-8 bytes of its values) the caller already
        knows: the compiled row decoders make such lists and count it."""
        self.total_rows += 1
        self.total_bytes += size
        if self.truncated:
            return
        if len(self._rows) < self._max_rows and self._kept_bytes + size <= self._max_bytes:
            self._rows.append(row)
            self._kept_bytes += size
        else:
            self.truncated = True

    def room(self) -> tuple[int, int]:
        """(rows, bytes) the capture still keeps: a row of ``size`` bytes is kept while
        rows > 0 and size <= bytes (``add_sized``)."""
        return self._max_rows - len(self._rows), self._max_bytes - self._kept_bytes

    def add_run(self, rows: list[list[Cell]], size: int) -> None:
        """``add_sized`` for rows a compiled walk decoded within ``room()`` (``size``:
        theirs together); they are kept as they are."""
        if self.truncated or len(rows) > self._max_rows - len(self._rows):
            raise ValueError("add_run: rows beyond the capture's room")
        if size > self._max_bytes - self._kept_bytes:
            raise ValueError("add_run: bytes beyond the capture's room")
        self._rows.extend(rows)
        self._kept_bytes += size
        self.total_rows += len(rows)
        self.total_bytes += size

    def finish(self) -> None:
        """Record the ``result`` event (once; later calls do nothing)."""
        if self._done:
            return
        self._session._record("result", self.payload())

    def payload(self) -> Payload:
        """The result as a payload, for embedding in its ``statement`` event instead of a
        separate ``result`` event (see ``SessionRecorder.statement``); ends the capture."""
        return _result_payload(self.parts())

    def parts(self) -> ResultParts:
        """``payload`` as the arguments it is made from, for ``SessionRecorder.ran``;
        ends the capture."""
        self._done = True
        rows, self._rows = self._rows, []  # handed over: nothing added later can reach it
        return (
            self._n, self._columns, rows, self.truncated, self.total_rows, self.total_bytes
        )  # fmt: skip


def _result_payload(parts: ResultParts) -> Payload:
    n, columns, rows, truncated, total_rows, total_bytes = parts
    return result_payload(
        n,
        columns=columns,
        rows=rows,
        truncated=truncated,
        total_rows=total_rows,
        total_bytes=total_bytes,
        owned=True,
    )


class SessionRecorder:
    """Records one session. Every call is cheap: it serialises, chains and enqueues.

    ``n`` is the statement number within the session (``next_statement()``); it ties a
    statement's decision, approvals and result to its ``statement`` event, which is
    recorded last, when the statement has finished (or been refused).
    """

    __slots__ = (
        "_closed",
        "_dropped_total",
        "_dropped_unmarked",
        "_head",
        "_next_n",
        "_recorder",
        "_seq",
        "_statements",
        "session_id",
    )

    def __init__(self, recorder: Recorder, session_id: str) -> None:
        self._recorder = recorder
        self.session_id = session_id
        self._seq = 0
        self._head = GENESIS_HASH
        self._next_n = 0
        self._statements = 0
        self._dropped_unmarked = 0
        self._dropped_total = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def last_seq(self) -> int:
        return self._seq

    def next_statement(self) -> int:
        """Allocate the number of the next statement of this session (1, 2, ...)."""
        self._next_n += 1
        return self._next_n

    def statement(
        self,
        n: int,
        *,
        text: str,
        path: StatementPath,
        started_at: datetime,
        duration_us: int,
        params: Sequence[Cell] = (),
        rows: int | None = None,
        error_sqlstate: str | None = None,
        error_message: str | None = None,
        decision: Payload | None = None,
        results: Sequence[Payload] = (),
    ) -> None:
        """The statement as it ran, or was refused (then ``error_sqlstate`` says why).

        ``decision`` and ``results`` (from ``decision_payload`` / ``ResultCapture.payload``)
        may be embedded here instead of being separate events: one chained event per
        allowed statement instead of three is what keeps the recorder's cost per statement
        within what the event loop and the writer can sustain. Denials and reviews are still
        recorded as their own ``decision`` event the moment they are decided.
        """
        self._statements += 1
        payload = statement_payload(
            n,
            text=text,
            path=path,
            params=params,
            started_at=started_at,
            duration_us=duration_us,
            rows=rows,
            error_sqlstate=error_sqlstate,
            error_message=error_message,
        )
        if decision is not None:
            payload["decision"] = decision
        if results:
            payload["results"] = list(results)
        self._record("statement", payload)

    def ran(
        self,
        n: int,
        text: str,
        path: StatementPath,
        started_at: datetime,
        duration_us: int,
        params: Sequence[Cell],
        rows: int | None,
        error_sqlstate: str | None,
        error_message: str | None,
        verdict: VerdictLike | None,
        results: list[ResultParts],
    ) -> None:
        """``statement`` as the relays call it for every statement that ran: the decision
        as its verdict (``decision=verdict_payload(n, verdict)``), the results as
        ``ResultCapture.parts()``. The same event, byte for byte; with the compiled
        extension it is serialised and chained in one call, without the payload dicts."""
        rec = self._recorder
        if _native_statement is not None and not self._closed and not self._dropped_unmarked:
            parts = None if verdict is None else decision_parts(verdict)
            if parts is not None or verdict is None:
                if rec._over_bound_fail_open():
                    self._statements += 1
                    self._drop()
                    return
                ts = rec.now()
                seq = self._seq + 1
                try:
                    payload_json, digest, size = _native_statement(
                        self.session_id, seq, ts, FORMAT_VERSION, self._head,
                        n, text, path, params, started_at, duration_us, rows,
                        error_sqlstate, error_message, parts, results,
                    )  # fmt: skip
                except (TypeError, ValueError):  # off its shape: the dict path below
                    pass
                else:
                    self._statements += 1
                    op = EventOp(
                        self.session_id, seq, ts, "statement", payload_json, self._head,
                        digest, size,
                    )  # fmt: skip
                    self._seq = seq
                    self._head = digest
                    rec._push(op)
                    return
        self.statement(
            n,
            text=text,
            path=path,
            started_at=started_at,
            duration_us=duration_us,
            params=params,
            rows=rows,
            error_sqlstate=error_sqlstate,
            error_message=error_message,
            decision=None if verdict is None else verdict_payload(n, verdict),
            results=[_result_payload(r) for r in results],
        )

    def decision(
        self,
        n: int,
        verdict: Verdict,
        *,
        rule: str | None = None,
        reason: str | None = None,
        classes: Iterable[str] = (),
        approvers: Iterable[str] = (),
    ) -> None:
        self._record(
            "decision",
            decision_payload(
                n, verdict, rule=rule, reason=reason, classes=classes, approvers=approvers
            ),
        )

    def approval(
        self,
        n: int,
        state: ApprovalState,
        *,
        request_id: str,
        approver: str | None = None,
        reason: str | None = None,
    ) -> None:
        self._record(
            "approval",
            approval_payload(n, state, request_id=request_id, approver=approver, reason=reason),
        )

    def capture(self, n: int, columns: Sequence[str]) -> ResultCapture:
        """Start capturing a streamed result; call ``add`` per row and ``finish`` at the end."""
        cfg = self._recorder.config
        return ResultCapture(self, n, columns, cfg.max_result_rows, cfg.max_result_bytes)

    def result(self, n: int, columns: Sequence[str], rows: Iterable[Sequence[Cell]]) -> None:
        """Record a whole result at once (the caps apply as for ``capture``)."""
        cap = self.capture(n, columns)
        for row in rows:
            cap.add(row)
        cap.finish()

    def close(
        self, how: EndReason, *, bytes_in: int | None = None, bytes_out: int | None = None
    ) -> None:
        """Record ``session.end`` and seal the session. A second call does nothing."""
        if self._closed:
            return
        self._record(
            "session.end",
            session_end_payload(
                how,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                statements=self._statements,
                events_dropped=self._dropped_total,
            ),
            essential=True,
        )
        self._closed = True
        rec = self._recorder
        rec._push(SealOp(self.session_id, "sealed", rec.now(), how, self._seq, self._head))
        rec._sessions.pop(self.session_id, None)

    def _record(self, event_type: str, payload: Payload, *, essential: bool = False) -> None:
        if self._closed:
            raise RuntimeError(
                f"session {self.session_id} is closed; its recording is sealed and cannot "
                f"take a {event_type} event"
            )
        rec = self._recorder
        if not essential and rec._over_bound_fail_open():
            self._drop()
            return
        if self._dropped_unmarked:
            dropped, self._dropped_unmarked = self._dropped_unmarked, 0
            self._append(
                "gap",
                gap_payload(dropped, "recording queue full under on_failure: fail_open"),
            )
        self._append(event_type, payload)

    def _drop(self) -> None:
        """An event refused under ``on_failure: fail_open`` with the queue full: counted,
        and marked by a ``gap`` event before the next one that is recorded."""
        self._dropped_unmarked += 1
        self._dropped_total += 1
        self._recorder._events_dropped += 1

    def _append(self, event_type: str, payload: Payload) -> None:
        op = chain_event(
            session_id=self.session_id,
            seq=self._seq + 1,
            prev_hash=self._head,
            ts=self._recorder.now(),
            event_type=event_type,
            payload=payload,
        )
        self._seq = op.seq
        self._head = op.hash
        self._recorder._push(op)


class Recorder:
    """The gateway's recorder: hand it events, it stores them chained, signed and batched.

    Lifecycle: ``Recorder(...)`` → ``await recover()`` → ``start()`` → per connection
    ``check_writable()`` + ``open_session(meta)`` → ... → ``await aclose()``.
    """

    def __init__(
        self,
        engine: Engine,
        key: SigningKey,
        config: RecordingConfig | None = None,
        *,
        node: str | None = None,
        keyring: KeyRing | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config or RecordingConfig()
        self.node = node or self.config.node_id or socket.gethostname()
        self._engine = engine
        self._key = key
        self._keyring = keyring or KeyRing([key.public_key])
        self.now: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._write_timeout_s = self.config.write_timeout_ms / 1000
        self._ops: deque[Op] = deque()
        self._pending_events = 0
        self._pending_bytes = 0
        self._events_written = 0
        self._events_dropped = 0
        self._flushes = 0
        self._failed_flushes = 0
        self._ops_enqueued = 0
        self._ops_written = 0
        self._last_error: str | None = None
        self._write_started: float | None = None
        self._last_error_logged = 0.0
        self._urgent = False
        self._closing = False
        self._closed = False
        self._sessions: dict[str, SessionRecorder] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # One dedicated thread: flushes are serialised, never starved by other to_thread
        # work, and SQLite connections stay on the thread that uses them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wardgate-recorder")

    @classmethod
    def from_config(cls, engine: Engine, config: RecordingConfig, state_dir: Path) -> Recorder:
        """The gateway's recorder: key from ``key_file`` (generated 0600 on first start),
        verification ring with ``trusted_public_keys`` (used by ``recover``)."""
        key = load_or_create_signing_key(config.key_path(state_dir))
        keyring = KeyRing.for_key(key, config.trusted_key_paths(state_dir))
        return cls(engine, key, config, keyring=keyring)

    # ------------------------------------------------------------------ hot path

    def open_session(self, meta: SessionMeta) -> SessionRecorder:
        """Start recording a session: records ``session.start``. Never blocks, never raises
        for store trouble (call ``check_writable()`` first to apply the failure policy)."""
        if self._closing:
            raise RecordingUnavailableError(
                "session recording is shutting down; the gateway is stopping and accepts "
                "no new sessions"
            )
        sid = meta.session_id
        if not (0 < len(sid) <= _SESSION_ID_MAX and sid.isascii() and sid.isprintable()):
            raise ValueError(
                f"session id {sid!r} must be 1..{_SESSION_ID_MAX} printable ASCII characters"
            )
        if sid in self._sessions:
            raise ValueError(f"session {sid} is already being recorded")
        srec = SessionRecorder(self, sid)
        self._sessions[sid] = srec
        # The row's summary columns are bounded, storable copies (the full values are in
        # the session.start event): one odd value must never wedge the writer in a retry
        # loop, which under fail_closed would refuse every statement of every session.
        self._push(
            OpenOp(
                sid,
                column_text(self.node, COLUMN_LIMITS["node"]),
                self.now(),
                column_text(meta.principal.name, COLUMN_LIMITS["principal"]),
                column_text(meta.target, COLUMN_LIMITS["target"]),
                column_text(meta.protocol, COLUMN_LIMITS["protocol"]),
            )
        )
        srec._record("session.start", meta.start_event(self.node).payload(), essential=True)
        return srec

    @property
    def healthy(self) -> bool:
        """True when events are being written and the queue is below its bound."""
        started = self._write_started
        return (
            self._last_error is None
            and (started is None or time.monotonic() - started < self._write_timeout_s)
            and not self._closed
            and (self._task is None or not self._task.done())
            and self._pending_events < self.config.queue_max_events
            and self._pending_bytes < self.config.queue_max_bytes
        )

    def check_writable(self) -> None:
        """Apply the failure policy before running a statement (or accepting a session).

        Raises ``RecordingUnavailableError`` under ``on_failure: fail_closed`` when the
        recorder is unhealthy; under ``fail_open`` it never raises.
        """
        if self.healthy or self.config.on_failure == "fail_open":
            return
        raise RecordingUnavailableError(self._unavailable_reason())

    def _unavailable_reason(self) -> str:
        policy = (
            "statements are refused because recording.on_failure is fail_closed (set it to "
            "fail_open to run statements unrecorded)"
        )
        if self._closed or self._closing:
            return "session recording has stopped (the gateway is shutting down); " + policy
        if self._task is not None and self._task.done():
            return (
                "the session recording writer has stopped unexpectedly (see the gateway log); "
                "restart the gateway; " + policy
            )
        started = self._write_started
        if started is not None and time.monotonic() - started >= self._write_timeout_s:
            return (
                f"session recording is stalled: a write to the recording store has not "
                f"finished after {time.monotonic() - started:.1f} s (recording.write_timeout_ms"
                f"={self.config.write_timeout_ms}); {self._pending_events} events are held in "
                "memory, none are lost; check the store (locks, reachability, load); " + policy
            )
        if self._last_error is not None:
            return (
                f"session recording is unavailable: writing to the recording store failed "
                f"({self._last_error}); {self._pending_events} events are held in memory and "
                "retried, none are lost; check the store (disk space, permissions, database "
                "reachability); " + policy
            )
        return (
            f"session recording cannot keep up: {self._pending_events} events "
            f"({self._pending_bytes} bytes) are waiting to be written, above "
            f"recording.queue_max_events={self.config.queue_max_events} or "
            f"queue_max_bytes={self.config.queue_max_bytes}; retry shortly, or check the "
            "recording store's speed; " + policy
        )

    @property
    def stats(self) -> RecorderStats:
        return RecorderStats(
            healthy=self.healthy,
            pending_events=self._pending_events,
            pending_bytes=self._pending_bytes,
            events_written=self._events_written,
            events_dropped=self._events_dropped,
            flushes=self._flushes,
            failed_flushes=self._failed_flushes,
            open_sessions=len(self._sessions),
            last_error=self._last_error,
        )

    def _over_bound_fail_open(self) -> bool:
        cfg = self.config
        return cfg.on_failure == "fail_open" and (
            self._pending_events >= cfg.queue_max_events
            or self._pending_bytes >= cfg.queue_max_bytes
        )

    def _push(self, op: Op) -> None:
        self._ops.append(op)
        self._ops_enqueued += 1
        if isinstance(op, EventOp):
            self._pending_events += 1
            self._pending_bytes += op.size
        depth = len(self._ops)
        if depth == 1 or depth >= self.config.flush_max_events:
            self._wake.set()

    # ------------------------------------------------------------------ writer

    def start(self) -> None:
        """Start the writer task on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="wardgate-recorder"
            )
            self._task.add_done_callback(self._writer_stopped)

    def _writer_stopped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # healthy turns False (the task is done): fail_closed refuses statements.
            log.error(
                "session recording: the writer stopped unexpectedly; %d events are unwritten",
                self._pending_events,
                exc_info=task.exception(),
            )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.flush_interval_ms / 1000
        max_batch = self.config.flush_max_events
        failures = 0
        while True:
            if not self._ops:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if not (self._closing or self._urgent) and len(self._ops) < max_batch:
                # Let a batch build up: one transaction per interval, not per event.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), interval)
            self._urgent = False
            batch = list(itertools.islice(self._ops, max_batch))
            if isinstance(batch[-1], OpenOp) and len(self._ops) > len(batch):
                # A session row is never stored without its session.start event: a crash
                # between the two would leave a recording recovery could not seal.
                batch.append(self._ops[len(batch)])
            self._write_started = time.monotonic()
            try:
                await loop.run_in_executor(self._executor, self._write, batch, failures > 0)
            except Exception as exc:
                self._write_started = None
                failures += 1
                self._failed_flushes += 1
                self._last_error = describe_error(exc)
                now = time.monotonic()
                if failures == 1 or now - self._last_error_logged > 30:
                    self._last_error_logged = now
                    log.error(
                        "session recording: writing %d events failed (%s); %d events held in "
                        "memory, retrying (attempt %d)",
                        sum(1 for op in batch if isinstance(op, EventOp)),
                        self._last_error,
                        self._pending_events,
                        failures,
                    )
                await asyncio.sleep(min(_MAX_BACKOFF_S, interval * 2 ** min(failures, 12)))
                continue
            self._write_started = None
            if failures:
                log.warning(
                    "session recording: the store accepts writes again after %d failed "
                    "attempts; %d events written",
                    failures,
                    sum(1 for op in batch if isinstance(op, EventOp)),
                )
            failures = 0
            self._last_error = None
            self._flushes += 1
            for _ in batch:
                op = self._ops.popleft()
                if isinstance(op, EventOp):
                    self._pending_events -= 1
                    self._pending_bytes -= op.size
                    self._events_written += 1
            self._ops_written += len(batch)
            self._release_waiters()

    def _write(self, batch: list[Op], reconcile: bool) -> None:
        write_batch(self._engine, self._key, batch, self.now(), reconcile=reconcile)

    def _release_waiters(self) -> None:
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, fut in self._waiters:
            if self._ops_written >= target:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((target, fut))
        self._waiters = still

    async def flush(self) -> None:
        """Wait until every event recorded so far is stored (flushing now rather than at
        the next interval). While the store fails this waits; bound it with
        ``asyncio.timeout``."""
        if self._ops_written >= self._ops_enqueued:
            return
        if self._task is None:
            raise RuntimeError("the recorder was not started; call start() first")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._ops_enqueued, fut))
        self._urgent = True
        self._wake.set()
        await asyncio.shield(fut)

    async def aclose(self, grace_s: float = 30.0) -> None:
        """Close open sessions (``gateway_shutdown``), flush and seal everything, stop.

        Raises ``RecordingUnavailableError`` if the store does not take the remaining
        events within ``grace_s`` seconds; they are lost with the process, and the
        sessions are recovered as interrupted on the next start.
        """
        if self._closed:
            return
        for srec in list(self._sessions.values()):
            srec.close("gateway_shutdown")
        if self._task is None and self._ops:
            self.start()  # never started: still write what was recorded
        self._closing = True
        self._wake.set()
        try:
            if self._task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(self._task), grace_s)
                except TimeoutError:
                    self._task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._task
                    raise RecordingUnavailableError(
                        f"session recording stopped with {self._pending_events} events "
                        f"unwritten after {grace_s} s ({self._last_error or 'store too slow'}); "
                        "they are lost with this process; sessions already in the store are "
                        "sealed as interrupted on the next start"
                    ) from None
        finally:
            self._closed = True
            self._executor.shutdown(wait=False)

    # ------------------------------------------------------------------ recovery

    async def recover(self, *, all_nodes: bool = False) -> list[RecoveredSession]:
        """Seal sessions a crashed gateway left ``open`` as ``interrupted``.

        Only this node's sessions (``node``), unless ``all_nodes`` (for an operator
        cleaning up after a node that will not come back; never while it still runs).
        A session is sealed only if what was flushed verifies; otherwise it is left open,
        untouched, and reported, so the damage stays visible.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._recover, all_nodes)

    def _recover(self, all_nodes: bool) -> list[RecoveredSession]:
        query = select(SESSIONS.c.id).where(SESSIONS.c.status == "open")
        if not all_nodes:
            query = query.where(SESSIONS.c.node == self.node)
        with self._engine.connect() as conn:
            ids = [sid for (sid,) in conn.execute(query.order_by(SESSIONS.c.started_at))]
        verifier = Verifier(self._engine, self._keyring)
        out: list[RecoveredSession] = []
        for sid in ids:
            if sid in self._sessions:
                continue  # recorded by this process right now
            report = verifier.verify_session(sid)
            if not report.ok:
                problem = report.problems[0]
                log.error(
                    "session recording: session %s was left open by a previous process and "
                    "does not verify (%s); it is left open and unsealed so this stays visible",
                    sid,
                    problem,
                )
                out.append(RecoveredSession(sid, report.last_seq, False, problem))
                continue
            out.append(self._seal_interrupted(sid))
        return out

    def _seal_interrupted(self, session_id: str) -> RecoveredSession:
        with self._engine.connect() as conn:
            summary = load_session(conn, session_id)
            assert summary is not None
            last_ts = conn.execute(
                select(EVENTS.c.ts).where(
                    EVENTS.c.session_id == session_id, EVENTS.c.seq == summary.last_seq
                )
            ).scalar()
            statements = conn.execute(
                select(func.count()).where(
                    EVENTS.c.session_id == session_id, EVENTS.c.type == "statement"
                )
            ).scalar_one()
        flushed = summary.last_seq
        end = chain_event(
            session_id=session_id,
            seq=flushed + 1,
            prev_hash=summary.head_hash,
            ts=self.now(),
            event_type="session.end",
            payload=session_end_payload(
                "interrupted",
                bytes_in=None,
                bytes_out=None,
                statements=int(statements),
                events_dropped=0,
            ),
        )
        ended_at = last_ts if isinstance(last_ts, datetime) else summary.started_at
        seal = SealOp(session_id, "interrupted", ended_at, "interrupted", end.seq, end.hash)
        write_batch(self._engine, self._key, [end, seal], self.now(), reconcile=False)
        log.warning(
            "session recording: session %s was left open by a previous process; sealed as "
            "interrupted after its last flushed event (seq %d)",
            session_id,
            flushed,
        )
        return RecoveredSession(session_id, flushed, True)
