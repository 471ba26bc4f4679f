"""Reading recordings back: transcripts for people, JSON for programs, and live tailing.

Owns the transcript format (``TranscriptRenderer``, ``render_transcript``), the JSON Lines
export (one event per line with its hashes, ``export_jsonl``), the JSON document the REST
API serves (``session_document``) and ``follow``, which tails a live session by polling.

A statement's decision, approvals and result are recorded before its ``statement`` event
(that one is written when the statement finishes); the transcript regroups them under
the statement by its number ``n``. Everything recorded is untrusted text by the time it
is shown: control characters are escaped so a recorded value cannot drive the reader's
terminal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from wardgate.recording.events import StoredEvent, canonical_json
from wardgate.recording.store import SessionSummary, iter_events, load_session

_CONTROL = {c: f"\\x{c:02x}" for c in range(0x20) if c not in (0x0A, 0x09)}
_CONTROL.update({0x7F: "\\x7f", 0x0A: "\\n", 0x09: "\\t"})
_CONTROL.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})
_SAFE = str.maketrans(_CONTROL)
_INDENT = " " * 15


def safe(text: object) -> str:
    """Untrusted recorded text, with control characters (ESC, CR, newlines...) escaped."""
    return str(text).translate(_SAFE)


def _clock(ts: str | datetime | None) -> str:
    if ts is None:
        return "--:--:--.---"
    if isinstance(ts, datetime):
        return ts.strftime("%H:%M:%S.%f")[:-3]
    # "2025-11-25T15:23:00.123456Z"
    return ts[11:23] if len(ts) >= 23 else safe(ts)


def _when(ts: datetime | None) -> str:
    return "-" if ts is None else ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _bytes(n: object) -> str:
    if not isinstance(n, int):
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def render_table(
    columns: Sequence[str], rows: Sequence[Sequence[str | None]], null: str
) -> list[str]:
    """A psql-style aligned table."""
    head = [safe(c) for c in columns]
    body = [[null if v is None else safe(v) for v in row] for row in rows]
    widths = [len(h) for h in head]
    for row in body:
        for i, cell in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], len(cell))
    lines = [
        " " + " | ".join(h.center(w) for h, w in zip(head, widths, strict=True)).rstrip(),
        "-" + "-+-".join("-" * w for w in widths) + "-",
    ]
    for row in body:
        cells = (row + [""] * len(widths))[: len(widths)]
        lines.append(
            " " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        )
    return lines


@dataclass(slots=True)
class _Pending:
    decision: dict[str, Any] | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    # Several for a multi-statement simple query (one per result set).
    results: list[dict[str, Any]] = field(default_factory=list)


class TranscriptRenderer:
    """Turns events, in seq order, into transcript lines.

    ``feed`` returns the lines that can be printed now. With ``live=True`` (``--follow``)
    decisions and approvals print as they happen (a held statement shows while it waits);
    otherwise they are printed grouped under their statement.
    """

    def __init__(self, *, live: bool = False, null: str = "NULL") -> None:
        self.live = live
        self.null = null
        self._pending: dict[int, _Pending] = {}

    def header(self, s: SessionSummary) -> list[str]:
        lines = [f"Session {safe(s.id)} · {s.status}"]
        lines.append(f"  principal  {safe(s.principal)}")
        lines.append(f"  target     {safe(s.target)} ({safe(s.protocol)}) via node {safe(s.node)}")
        lines.append(f"  started    {_when(s.started_at)}")
        if s.ended_at is not None:
            lines.append(f"  ended      {_when(s.ended_at)} ({safe(s.end_how or '?')})")
        lines.append(f"  events     {s.last_seq} (head {s.head_hash[:16]}.., key {s.key_id})")
        return lines

    def feed(self, event: StoredEvent) -> list[str]:
        p = event.payload
        kind = event.type
        if kind == "session.start":
            return self._start(event)
        if kind == "session.end":
            return [*self._flush_pending(), *self._end(event)]
        if kind == "gap":
            return [
                f"[{_clock(event.ts)}] !! {p.get('dropped')} events were not recorded here "
                f"({safe(p.get('reason', ''))})"
            ]
        n = p.get("n")
        if not isinstance(n, int):
            return [f"[{_clock(event.ts)}] ?? {safe(kind)} event without a statement number"]
        pending = self._pending.setdefault(n, _Pending())
        if kind == "decision":
            pending.decision = p
            return [f"[{_clock(event.ts)}] #{n} {self._decision(p)}"] if self.live else []
        if kind == "approval":
            pending.approvals.append(p)
            return [f"[{_clock(event.ts)}] #{n} {self._approval(p)}"] if self.live else []
        if kind == "result":
            pending.results.append(p)
            return []
        if kind == "statement":
            self._pending.pop(n, None)
            # Compact form: the decision and results of an allowed statement ride inside it.
            embedded = p.get("decision")
            if isinstance(embedded, dict) and pending.decision is None:
                pending.decision = embedded
            for result in p.get("results") or []:
                if isinstance(result, dict):
                    pending.results.append(result)
            return self._statement(n, p, pending)
        return [f"[{_clock(event.ts)}] ?? unknown event type {safe(kind)}"]

    def finish(self) -> list[str]:
        """Lines for statements that never completed (the session was interrupted)."""
        return self._flush_pending()

    # ------------------------------------------------------------------ pieces

    def _start(self, event: StoredEvent) -> list[str]:
        p = event.payload
        who = safe(p.get("principal"))
        groups = ", ".join(safe(g) for g in p.get("groups") or [])
        if p.get("token_id"):
            cred = f"token {safe(p['token_id'])}"
        elif p.get("subject"):
            cred = f"jwt {safe(p['subject'])} from {safe(p.get('issuer'))}"
        else:
            cred = safe(p.get("auth_method"))
        where = safe(p.get("target"))
        extras = [x for x in (p.get("database"), p.get("target_user")) if x]
        if extras:
            where += " (" + ", ".join(safe(x) for x in extras) + ")"
        return [
            f"[{_clock(event.ts)}] connected: {who} [{groups}] via {cred}, from "
            f"{safe(p.get('client_address'))} to {where} over {safe(p.get('protocol'))}"
        ]

    def _end(self, event: StoredEvent) -> list[str]:
        p = event.payload
        parts = [f"{p.get('statements')} statements"]
        if p.get("bytes_in") is not None or p.get("bytes_out") is not None:
            parts.append(f"in {_bytes(p.get('bytes_in'))} / out {_bytes(p.get('bytes_out'))}")
        if p.get("events_dropped"):
            parts.append(f"{p['events_dropped']} events NOT recorded")
        return [f"[{_clock(event.ts)}] session ended: {safe(p.get('how'))} · " + " · ".join(parts)]

    @staticmethod
    def _decision(p: dict[str, Any]) -> str:
        text = f"decision: {safe(p.get('verdict'))}"
        details = []
        if p.get("rule"):
            details.append(f"rule {safe(p['rule'])}")
        if p.get("classes"):
            details.append("classes: " + ", ".join(safe(c) for c in p["classes"]))
        if p.get("approvers"):
            details.append("approvers: " + ", ".join(safe(a) for a in p["approvers"]))
        if details:
            text += " (" + "; ".join(details) + ")"
        if p.get("reason"):
            text += f" — {safe(p['reason'])}"
        return text

    @staticmethod
    def _approval(p: dict[str, Any]) -> str:
        text = f"approval {safe(p.get('state'))} (request {safe(p.get('request_id'))})"
        if p.get("approver"):
            text += f" by {safe(p['approver'])}"
        if p.get("reason"):
            text += f": {safe(p['reason'])}"
        return text

    def _statement(self, n: int, p: dict[str, Any], pending: _Pending) -> list[str]:
        lines = [f"[{_clock(p.get('started_at'))}] #{n} {safe(p.get('text'))}"]
        params = p.get("params") or []
        if p.get("path") == "extended" or params:
            shown = ", ".join(
                f"${i}={self.null if v is None else repr(safe(v))}"
                for i, v in enumerate(params, start=1)
            )
            lines.append(
                f"{_INDENT}{safe(p.get('path'))}" + (f" · params: {shown}" if shown else "")
            )
        if not self.live:
            if pending.decision is not None:
                lines.append(_INDENT + self._decision(pending.decision))
            lines.extend(_INDENT + self._approval(a) for a in pending.approvals)
        duration = p.get("duration_us")
        took = f"{duration / 1000:.3f} ms" if isinstance(duration, int) else "? ms"
        if p.get("error_sqlstate"):
            message = safe(p.get("error_message") or "")
            lines.append(f"{_INDENT}error {safe(p['error_sqlstate'])}: {message} · {took}")
        else:
            rows = p.get("rows")
            counted = "" if rows is None else f" · {rows} row{'s' if rows != 1 else ''}"
            lines.append(f"{_INDENT}ok{counted} · {took}")
        for result in pending.results:
            lines.extend(self._result(result))
        return lines

    def _result(self, r: dict[str, Any]) -> list[str]:
        rows = r.get("rows") or []
        lines = [_INDENT + line for line in render_table(r.get("columns") or [], rows, self.null)]
        total = r.get("total_rows")
        if r.get("truncated"):
            lines.append(
                f"{_INDENT}({len(rows)} of {total} rows recorded, "
                f"{_bytes(r.get('total_bytes'))} in total; capped by "
                "recording.max_result_rows / max_result_bytes)"
            )
        else:
            lines.append(f"{_INDENT}({total} row{'s' if total != 1 else ''})")
        return lines

    def _flush_pending(self) -> list[str]:
        lines: list[str] = []
        for n in sorted(self._pending):
            pending = self._pending[n]
            lines.append(f"[--:--:--.---] #{n} (no statement record: it had not finished)")
            if not self.live and pending.decision is not None:
                lines.append(_INDENT + self._decision(pending.decision))
            if not self.live:
                lines.extend(_INDENT + self._approval(a) for a in pending.approvals)
            for result in pending.results:
                lines.extend(self._result(result))
        self._pending.clear()
        return lines


def render_transcript(engine: Engine, session_id: str, *, null: str = "NULL") -> str:
    """The whole session as text; raises ``LookupError`` for an unknown session."""
    renderer = TranscriptRenderer(null=null)
    with engine.connect() as conn:
        summary = load_session(conn, session_id)
        if summary is None:
            raise LookupError(f"no recorded session {session_id}")
        lines = [*renderer.header(summary), ""]
        for event in iter_events(conn, session_id):
            lines.extend(renderer.feed(event))
    lines.extend(renderer.finish())
    return "\n".join(lines) + "\n"


def export_jsonl(engine: Engine, session_id: str) -> Iterator[str]:
    """One canonical JSON object per event (with ``prev_hash`` and ``hash``), no newline."""
    with engine.connect() as conn:
        if load_session(conn, session_id) is None:
            raise LookupError(f"no recorded session {session_id}")
        for event in iter_events(conn, session_id):
            yield dumps_line(event)


def session_document(engine: Engine, session_id: str) -> dict[str, Any]:
    """The REST API's JSON: the session row and its events, in seq order."""
    with engine.connect() as conn:
        summary = load_session(conn, session_id)
        if summary is None:
            raise LookupError(f"no recorded session {session_id}")
        events = [e.to_dict() for e in iter_events(conn, session_id)]
    return {"session": summary.to_dict(), "events": events}


async def follow(
    engine: Engine,
    session_id: str,
    *,
    after_seq: int = 0,
    poll_interval: float = 0.5,
) -> AsyncIterator[StoredEvent]:
    """Yield the session's events as they are stored; ends once the session is sealed
    (or interrupted) and every event has been yielded. Polls in a worker thread."""

    def poll(after: int) -> tuple[SessionSummary | None, list[StoredEvent]]:
        with engine.connect() as conn:
            # Status first: if it says sealed, the events read next include the last one.
            summary = load_session(conn, session_id)
            return summary, list(iter_events(conn, session_id, after_seq=after, limit=1000))

    last = after_seq
    while True:
        summary, events = await asyncio.to_thread(poll, last)
        if summary is None:
            raise LookupError(f"no recorded session {session_id}")
        for event in events:
            last = event.seq
            yield event
        if events:
            continue
        if summary.status != "open":
            return
        await asyncio.sleep(poll_interval)


def dumps_line(event: StoredEvent) -> str:
    """The JSON Lines form of one event (same as ``export_jsonl``)."""
    return canonical_json(event.to_dict())
