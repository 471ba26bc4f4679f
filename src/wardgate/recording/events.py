"""The recording event model (format version 1) and its canonical serialisation.

Owns what a session recording *says*: the seven event types, the fields of each payload,
and the exact bytes the hash chain covers. Nothing here does I/O.

Canonical form (what is hashed): the event *envelope*

    {"payload": {...}, "seq": 12, "session": "ses_..", "ts": "2025-11-25T15:23:00.123456Z",
     "type": "statement", "v": 1}

serialised as JSON with sorted keys, no whitespace, non-ASCII characters kept as UTF-8
(``ensure_ascii=False``) and encoded as UTF-8. Payload values are only strings, integers,
booleans, null, lists and objects: no floats, so re-serialising a parsed payload gives
back the same bytes. A payload holding text that is not valid Unicode (a lone surrogate
from a lossy decode) is serialised with ``\\u`` escapes instead, deterministically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, Protocol

from wardgate.core.model import Principal
from wardgate.pipeline.hooks import Verdict as GateVerdict

FORMAT_VERSION: Final = 1

EventType = Literal[
    "session.start", "statement", "decision", "approval", "result", "session.end", "gap"
]
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    ("session.start", "statement", "decision", "approval", "result", "session.end", "gap")
)
StatementPath = Literal["simple", "extended"]
Verdict = Literal["allow", "deny", "review"]
ApprovalState = Literal["requested", "approved", "denied", "timeout", "cancelled"]
EndReason = Literal[
    "client_quit", "client_eof", "killed", "revoked", "error", "gateway_shutdown", "interrupted"
]
Cell = str | None
Payload = dict[str, Any]


# One encoder, built once: json.dumps() would rebuild it on every call (measurably slower
# on the hot path). The C encoder handles sort_keys.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_ASCII_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def canonical_json(value: object) -> str:
    """Sorted keys, no whitespace, UTF-8 text kept; escapes only if the text is not Unicode."""
    text = _ENCODER.encode(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates cannot be stored as UTF-8 (nor in a PostgreSQL text column);
            # the escaped form is valid JSON, parses back to the same value and is ASCII.
            text = _ASCII_ENCODER.encode(value)
    return text


def format_ts(ts: datetime) -> str:
    """The one timestamp spelling of the format: UTC, microseconds, ``Z``."""
    if _native_format_ts is not None:
        text = _native_format_ts(ts)  # an exact datetime in UTC; else None
        if text is not None:
            return text
    return format_ts_py(ts)


def format_ts_py(ts: datetime) -> str:
    """``format_ts`` in Python: the reference, and the path for what the compiled one
    declines (naive times, other zones, datetime subclasses)."""
    global _ts_second
    stamp = ts.timestamp() if ts.tzinfo is UTC else -1.0
    if not 0.0 <= stamp < 4294967296.0:
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        elif ts.utcoffset():
            ts = ts.astimezone(UTC)
        return ts.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    # The hot path (every event, every statement's start): the date and time to the
    # second change rarely, so they are formatted once per second. Below 2**32 s a float
    # is exact to well under a microsecond, so flooring it gives the right second.
    second = int(stamp)
    cached = _ts_second
    if cached[0] != second:
        text = ts.replace(microsecond=0, tzinfo=None).isoformat() + "."
        cached = _ts_second = (second, text)
    return f"{cached[1]}{ts.microsecond:06d}Z"


_ts_second: tuple[int, str] = (-(2**63), "")

# The compiled spelling (``recording/_chain.c``); None without the extension or with
# ``WARDGATE_PURE_PYTHON=1``.
_native_format_ts: Callable[[datetime], str | None] | None
try:
    from wardgate.recording._chain import format_ts as _native_format_ts
except ImportError:  # built without a compiler
    _native_format_ts = None
if os.environ.get("WARDGATE_PURE_PYTHON", "") not in ("", "0"):
    _native_format_ts = None


_TYPE_JSON = {t: canonical_json(t) for t in EVENT_TYPES}
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _str_json(text: str) -> str:
    return _encode_str(text) if text.isascii() else canonical_json(text)


def envelope_bytes(session_id: str, seq: int, ts: str, event_type: str, payload_json: str) -> bytes:
    """The canonical envelope, built by concatenation (keys are already in sorted order).

    Equal to ``canonical_json({"payload": .., "seq": .., "session": .., "ts": .., "type": ..,
    "v": 1}).encode()`` (a unit test holds this), without serialising the payload twice.
    """
    type_json = _TYPE_JSON.get(event_type) or canonical_json(event_type)
    return (
        '{"payload":'
        + payload_json
        + ',"seq":'
        + str(seq)
        + ',"session":'
        + _str_json(session_id)
        + ',"ts":'
        + _str_json(ts)
        + ',"type":'
        + type_json
        + ',"v":'
        + str(FORMAT_VERSION)
        + "}"
    ).encode("utf-8")


def _opt(value: str | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class SessionStart:
    """Who connected, how they proved it, from where, to what."""

    TYPE: ClassVar[EventType] = "session.start"

    principal: str
    groups: Sequence[str]
    auth_method: str
    client_address: str
    target: str
    protocol: str
    token_id: str | None = None
    subject: str | None = None
    issuer: str | None = None
    database: str | None = None
    target_user: str | None = None
    node: str | None = None

    def payload(self) -> Payload:
        return {
            "principal": self.principal,
            "groups": sorted(self.groups),
            "auth_method": self.auth_method,
            "token_id": self.token_id,
            "subject": self.subject,
            "issuer": self.issuer,
            "client_address": self.client_address,
            "target": self.target,
            "protocol": self.protocol,
            "database": self.database,
            "target_user": self.target_user,
            "node": self.node,
        }


@dataclass(frozen=True, slots=True)
class SessionMeta:
    """What the gateway knows when a session starts; becomes the ``session.start`` event."""

    session_id: str  # the gateway's session id (the ledger's ``sessions.id``)
    principal: Principal
    client_address: str
    target: str
    protocol: str
    database: str | None = None
    target_user: str | None = None

    def start_event(self, node: str | None) -> SessionStart:
        p = self.principal
        return SessionStart(
            principal=p.name,
            groups=sorted(p.groups),
            auth_method=p.auth_method,
            token_id=p.token_id,
            subject=p.subject,
            issuer=p.issuer,
            client_address=self.client_address,
            target=self.target,
            protocol=self.protocol,
            database=self.database,
            target_user=self.target_user,
            node=node,
        )


def statement_payload(
    n: int,
    *,
    text: str,
    path: StatementPath,
    params: Sequence[Cell],
    started_at: datetime,
    duration_us: int,
    rows: int | None,
    error_sqlstate: str | None,
    error_message: str | None,
) -> Payload:
    """One statement as it ran (or was refused). ``params`` arrive already masked."""
    return {
        "n": int(n),
        "text": text,
        "path": path,
        "params": [_opt(p) for p in params],
        "started_at": format_ts(started_at),
        "duration_us": int(duration_us),
        "rows": None if rows is None else int(rows),
        "error_sqlstate": error_sqlstate,
        "error_message": error_message,
    }


def decision_payload(
    n: int,
    verdict: Verdict,
    *,
    rule: str | None,
    reason: str | None,
    classes: Iterable[str],
    approvers: Iterable[str],
) -> Payload:
    return {
        "n": int(n),
        "verdict": verdict,
        "rule": rule,
        "reason": reason,
        "classes": sorted(str(c) for c in classes),
        "approvers": sorted(str(a) for a in approvers),
    }


class VerdictLike(Protocol):
    """What a decision is recorded from (``pipeline.hooks.Verdict``)."""

    @property
    def kind(self) -> Verdict: ...
    @property
    def rule(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def classes(self) -> Iterable[str]: ...
    @property
    def approvers(self) -> Iterable[str]: ...


def verdict_payload(n: int, v: VerdictLike) -> Payload:
    """``decision_payload`` of a verdict; an empty rule or reason is recorded as null.

    Every allowed statement's event embeds one, and a session's verdicts are the few
    objects its gate keeps per decision, so the payload of a gate verdict (immutable) is
    built once per object and only ``n`` is filled in per statement.
    """
    if type(v) is not GateVerdict:
        return _verdict_payload(n, v)
    found = _verdict_bases.get(id(v))
    if found is None or found[0] is not v:
        if len(_verdict_bases) >= 256:
            _verdict_bases.clear()
        found = _verdict_bases[id(v)] = (v, _verdict_payload(0, v))
    return {**found[1], "n": int(n)}


def _verdict_payload(n: int, v: VerdictLike) -> Payload:
    return decision_payload(
        n,
        v.kind,
        rule=v.rule or None,
        reason=v.reason or None,
        classes=v.classes,
        approvers=v.approvers,
    )


# id(verdict) -> (the verdict, which keeps its id from being reused; its payload)
_verdict_bases: dict[int, tuple[VerdictLike, Payload]] = {}


def decision_parts(v: VerdictLike) -> tuple[str, str] | None:
    """``canonical_json(verdict_payload(n, v))`` in two halves, around the digits of ``n``
    (its keys sort as approvers, classes, n, reason, rule, verdict), for the compiled
    statement event; None when the halves cannot be plain UTF-8 JSON (a lone surrogate,
    which ``canonical_json`` escapes for the whole payload: the Python path's business).
    Remembered per gate verdict, as ``verdict_payload``'s base is."""
    if type(v) is GateVerdict:
        found = _decision_parts.get(id(v))
        if found is not None and found[0] is v:
            return found[1]
    base = _verdict_payload(0, v)
    head = {"approvers": base["approvers"], "classes": base["classes"]}
    tail = {"reason": base["reason"], "rule": base["rule"], "verdict": base["verdict"]}
    parts: tuple[str, str] | None = (
        _ENCODER.encode(head)[:-1] + ',"n":',
        "," + _ENCODER.encode(tail)[1:],
    )
    try:
        parts[0].encode("utf-8"), parts[1].encode("utf-8")  # type: ignore[index]
    except UnicodeEncodeError:
        parts = None
    if type(v) is GateVerdict:
        if len(_decision_parts) >= 256:
            _decision_parts.clear()
        _decision_parts[id(v)] = (v, parts)
    return parts


# id(verdict) -> (the verdict; its decision_parts)
_decision_parts: dict[int, tuple[VerdictLike, tuple[str, str] | None]] = {}


def approval_payload(
    n: int,
    state: ApprovalState,
    *,
    request_id: str,
    approver: str | None,
    reason: str | None,
) -> Payload:
    return {
        "n": int(n),
        "state": state,
        "request_id": request_id,
        "approver": approver,
        "reason": reason,
    }


def result_payload(
    n: int,
    *,
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    truncated: bool,
    total_rows: int,
    total_bytes: int,
    owned: bool = False,
) -> Payload:
    """The rows as they left the gateway (already masked), possibly a capped prefix.

    ``owned``: ``columns`` and ``rows`` are lists of plain ``str`` (and None) that the
    caller hands over and never changes again (``ResultCapture`` makes them so); they are
    taken as they are instead of copied, which for a 1,000-row capture is most of the cost.
    """
    if owned:
        assert isinstance(columns, list) and isinstance(rows, list)
        cols, kept = columns, rows
    else:
        cols = [str(c) for c in columns]
        kept = [[_opt(v) for v in row] for row in rows]
    return {
        "n": int(n),
        "columns": cols,
        "rows": kept,
        "truncated": bool(truncated),
        "total_rows": int(total_rows),
        "total_bytes": int(total_bytes),
    }


def session_end_payload(
    how: EndReason,
    *,
    bytes_in: int | None,
    bytes_out: int | None,
    statements: int,
    events_dropped: int,
) -> Payload:
    return {
        "how": how,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "statements": int(statements),
        "events_dropped": int(events_dropped),
    }


def gap_payload(dropped: int, reason: str) -> Payload:
    """Events the recorder refused under ``on_failure: fail_open`` before this point."""
    return {"dropped": int(dropped), "reason": reason}


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as read back from the store, with its chain links."""

    session_id: str
    seq: int
    ts: datetime
    type: str
    payload: Payload
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines export form: the canonical envelope fields plus both hashes."""
        return {
            "v": FORMAT_VERSION,
            "session": self.session_id,
            "seq": self.seq,
            "ts": format_ts(self.ts),
            "type": self.type,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }
