"""Reads and writes of the ``rec_*`` tables: the only module that issues recording SQL.

Owns the units of work the writer hands over (``OpenOp``, ``EventOp``, ``SealOp``), the
transaction that applies a batch of them, global-log appends, and the read models
(``SessionSummary``, ``StoredEvent``) that verify and replay use. Everything here is
synchronous and runs on the recorder's writer thread or in a CLI/API worker thread.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, func, insert, select

from wardgate.recording.chain import (
    GENESIS_HASH,
    chain_hash,
    global_entry_bytes,
    global_entry_message,
    head_message,
)
from wardgate.recording.events import StoredEvent
from wardgate.recording.keys import SigningKey
from wardgate.recording.models import CHECKPOINTS, EVENTS, GLOBAL_LOG, SESSIONS
from wardgate.storage.db import update_by_id


@dataclass(frozen=True, slots=True)
class OpenOp:
    """Create the session row (signed, empty head) and its ``open`` global-log entry."""

    session_id: str
    node: str
    started_at: datetime
    principal: str
    target: str
    protocol: str


class EventOp(NamedTuple):
    """One event, already serialised and chained on the event loop.

    A named tuple rather than a frozen dataclass: as immutable, and made three times as
    fast (one per recorded event, on the event loop).
    """

    session_id: str
    seq: int
    ts: datetime
    type: str
    payload: str
    prev_hash: str
    hash: str
    size: int


@dataclass(frozen=True, slots=True)
class SealOp:
    """Seal the session at (last_seq, head_hash) and append it to the global log."""

    session_id: str
    status: str  # "sealed" or "interrupted"
    ended_at: datetime
    how: str
    last_seq: int
    head_hash: str


Op = OpenOp | EventOp | SealOp


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A ``rec_sessions`` row."""

    id: str
    node: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    end_how: str | None
    principal: str
    target: str
    protocol: str
    last_seq: int
    head_hash: str
    signature: str
    key_id: str
    open_position: int | None
    seal_position: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "end_how": self.end_how,
            "principal": self.principal,
            "target": self.target,
            "protocol": self.protocol,
            "last_seq": self.last_seq,
            "head_hash": self.head_hash,
            "key_id": self.key_id,
            "open_position": self.open_position,
            "seal_position": self.seal_position,
        }


@dataclass(frozen=True, slots=True)
class GlobalEntry:
    """A ``rec_global_log`` row."""

    position: int
    session_id: str
    kind: str
    last_seq: int
    head_hash: str
    ts: datetime
    prev_hash: str
    hash: str
    signature: str
    key_id: str


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    position: int
    hash: str
    created_at: datetime
    purged_before: datetime
    sessions_purged: int
    signature: str
    key_id: str


# --------------------------------------------------------------------------- writing

COLUMN_LIMITS = {"node": 100, "principal": 200, "target": 200, "protocol": 20}


def column_text(value: object, limit: int) -> str:
    """A storable copy for a bounded text column: valid UTF-8, no NUL (PostgreSQL
    rejects it), at most ``limit`` characters. Verify applies the same to compare."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")[:limit]


def sign_head(key: SigningKey, session_id: str, last_seq: int, head: str, status: str) -> str:
    return key.sign(head_message(session_id, last_seq, head, status)).hex()


def lock_global_log(conn: Connection) -> None:
    """Serialise writers of the global log across processes and nodes.

    Every batch may append to the one global chain, whose next position depends on the
    current tail. Without a lock two workers (``serve --workers``) or two nodes read the
    same tail and one batch fails, which fails statements closed for nothing. Taken first
    in the transaction, before anything is read, so the tail that follows is current.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7261541201)")
    elif conn.dialect.name == "sqlite":
        # A write statement (even one that changes nothing) takes SQLite's write lock,
        # waiting out busy_timeout, before this transaction reads anything.
        conn.exec_driver_sql("UPDATE rec_global_log SET position = position WHERE 0")


def global_tail(conn: Connection) -> tuple[int, str]:
    """(position, hash) the next global entry chains onto: last entry, else last checkpoint."""
    row = conn.execute(
        select(GLOBAL_LOG.c.position, GLOBAL_LOG.c.hash)
        .order_by(GLOBAL_LOG.c.position.desc())
        .limit(1)
    ).first()
    if row is not None:
        return int(row[0]), str(row[1])
    cp = latest_checkpoint(conn)
    if cp is not None:
        return cp.position, cp.hash
    return 0, GENESIS_HASH


def append_global(
    conn: Connection,
    key: SigningKey,
    entries: Sequence[tuple[str, str, int, str]],
    now: datetime,
) -> list[int]:
    """Append (session_id, kind, last_seq, head_hash) entries; returns their positions.

    Two nodes appending at once both pick the same next position; the primary key makes
    one transaction fail and its writer retries on top of the winner.
    """
    if not entries:
        return []
    position, prev = global_tail(conn)
    rows: list[dict[str, Any]] = []
    positions: list[int] = []
    for session_id, kind, last_seq, head in entries:
        position += 1
        digest = chain_hash(
            prev,
            global_entry_bytes(
                position=position,
                session_id=session_id,
                kind=kind,
                last_seq=last_seq,
                head_hash=head,
                ts=now,
            ),
        )
        rows.append(
            {
                "position": position,
                "session_id": session_id,
                "kind": kind,
                "last_seq": last_seq,
                "head_hash": head,
                "ts": now,
                "prev_hash": prev,
                "hash": digest,
                "signature": key.sign(global_entry_message(position, digest)).hex(),
                "key_id": key.key_id,
            }
        )
        positions.append(position)
        prev = digest
    conn.execute(insert(GLOBAL_LOG), rows)
    return positions


def _already_written(
    conn: Connection, ops: Sequence[Op]
) -> tuple[set[str], dict[str, int], set[str]]:
    """After a failed commit the batch may in fact have been committed (the error came
    after COMMIT reached the server): find what exists so a retry does not collide."""
    ids = sorted({op.session_id for op in ops})
    existing: set[str] = set()
    max_seq: dict[str, int] = {}
    sealed: set[str] = set()
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        for sid, status in conn.execute(
            select(SESSIONS.c.id, SESSIONS.c.status).where(SESSIONS.c.id.in_(chunk))
        ):
            existing.add(sid)
            if status != "open":
                sealed.add(sid)
        for sid, top in conn.execute(
            select(EVENTS.c.session_id, func.max(EVENTS.c.seq))
            .where(EVENTS.c.session_id.in_(chunk))
            .group_by(EVENTS.c.session_id)
        ):
            max_seq[sid] = int(top)
    return existing, max_seq, sealed


_INSERT_EVENTS = (
    "INSERT INTO rec_events (session_id, seq, ts, type, payload, prev_hash, hash) "
    "VALUES ({0}, {0}, {0}, {0}, {0}, {0}, {0})"
)


# 7 parameters a row. SQLite before 3.32 allowed 999 variables a statement (128 rows);
# 3.32 and later 32,766 by default, so a whole batch of 512 events is one INSERT: every
# statement hands the GIL over, and each time the writer can wait a switch interval to
# get it back from a busy event loop (see _insert_events).
_SQLITE_ROWS_PER_INSERT = 512 if sqlite3.sqlite_version_info >= (3, 32, 0) else 128


def _sqlite_rows_per_insert(conn: Connection) -> int:
    """``_SQLITE_ROWS_PER_INSERT``, fewer if this connection's variable limit is lower."""
    raw = conn.connection.dbapi_connection
    getlimit = getattr(raw, "getlimit", None)  # Python 3.11+
    if getlimit is None:
        return min(_SQLITE_ROWS_PER_INSERT, 128)
    limit = int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    return max(1, min(_SQLITE_ROWS_PER_INSERT, limit // 7))


@functools.lru_cache(maxsize=64)
def _sqlite_insert_events(n: int) -> str:
    return _INSERT_EVENTS.format("?").replace(
        "VALUES (?, ?, ?, ?, ?, ?, ?)", "VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * n)
    )


def _insert_events(conn: Connection, rows: list[EventOp]) -> None:
    """One executemany through the driver.

    SQLAlchemy's per-row parameter processing (compiled-statement params, the DATETIME
    bind processors) costs more than SQLite's insert itself, and it runs on the writer
    thread holding the GIL, i.e. it is taken from the event loop. The values stored are
    the ones ``UTCDateTime`` would store: naive UTC text on SQLite, aware UTC on PostgreSQL.
    """
    name = conn.dialect.name
    if name == "sqlite":
        # Multi-row VALUES, not executemany: the sqlite3 module lets go of the GIL around
        # every sqlite3_step, and getting it back from a busy event loop can take a whole
        # switch interval (5 ms). Per row, that convoy capped a 500-event batch at a few
        # hundred rows per second while pgbench -c 8 kept the loop busy; per chunk it is
        # a handful of hand-overs per batch.
        per_insert = _sqlite_rows_per_insert(conn)
        for i in range(0, len(rows), per_insert):
            chunk = rows[i : i + per_insert]
            flat = _native_params(chunk) if _native_params is not None else None
            if flat is None:
                params: list[Any] = []
                for r in chunk:
                    params += (
                        r.session_id,
                        r.seq,
                        _sqlite_ts(r.ts),
                        r.type,
                        r.payload,
                        r.prev_hash,
                        r.hash,
                    )
                flat = tuple(params)
            conn.exec_driver_sql(_sqlite_insert_events(len(chunk)), flat)
    elif name == "postgresql" and conn.dialect.driver == "psycopg":
        conn.exec_driver_sql(
            _INSERT_EVENTS.format("%s"),
            [
                (r.session_id, r.seq, _utc(r.ts), r.type, r.payload, r.prev_hash, r.hash)
                for r in rows
            ],
        )
    else:
        conn.execute(
            insert(EVENTS),
            [
                {
                    "session_id": r.session_id,
                    "seq": r.seq,
                    "ts": r.ts,
                    "type": r.type,
                    "payload": r.payload,
                    "prev_hash": r.prev_hash,
                    "hash": r.hash,
                }
                for r in rows
            ],
        )


def _utc(ts: datetime) -> datetime:
    """As ``UTCDateTime`` binds it: naive means UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# The compiled builder of those parameters (``recording/_chain.c``): the same values, one
# call per INSERT; None when the extension was not built or ``WARDGATE_PURE_PYTHON=1``.
_native_params: Callable[[list[EventOp]], tuple[Any, ...] | None] | None
try:
    from wardgate.recording._chain import sqlite_event_params as _native_params
except ImportError:  # pragma: no cover - the extension is optional
    _native_params = None
if os.environ.get("WARDGATE_PURE_PYTHON", "") not in ("", "0"):
    _native_params = None


def _sqlite_ts(ts: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME storage format of the UTC time (as UTCDateTime binds):
    ``YYYY-MM-DD HH:MM:SS.ffffff``, the first 26 characters of the UTC ``isoformat``."""
    if ts.tzinfo is not UTC:
        ts = _utc(ts)
    return ts.isoformat(" ", "microseconds")[:26]


def write_batch(
    engine: Engine, key: SigningKey, ops: Sequence[Op], now: datetime, *, reconcile: bool
) -> None:
    """Apply one batch in one transaction: all of it is stored, or none of it."""
    with engine.begin() as conn:
        lock_global_log(conn)
        existing: set[str] = set()
        max_seq: dict[str, int] = {}
        sealed: set[str] = set()
        if reconcile:
            existing, max_seq, sealed = _already_written(conn, ops)

        # Final head per session in this batch (idempotent even when events are skipped).
        heads: dict[str, tuple[int, str]] = {}
        event_rows: list[EventOp] = []
        for op in ops:
            if isinstance(op, EventOp):
                heads[op.session_id] = (op.seq, op.hash)
                if op.seq > max_seq.get(op.session_id, 0):
                    event_rows.append(op)

        opens = [op for op in ops if isinstance(op, OpenOp) and op.session_id not in existing]
        seals = [op for op in ops if isinstance(op, SealOp) and op.session_id not in sealed]
        # Global entries in batch order, so a session's open precedes its seal.
        open_ids = {op.session_id for op in opens}
        seal_ids = {op.session_id for op in seals}
        global_ops: list[OpenOp | SealOp] = [
            op
            for op in ops
            if (isinstance(op, OpenOp) and op.session_id in open_ids)
            or (isinstance(op, SealOp) and op.session_id in seal_ids)
        ]
        positions = append_global(
            conn,
            key,
            [
                (op.session_id, "open", 0, GENESIS_HASH)
                if isinstance(op, OpenOp)
                else (op.session_id, op.status, op.last_seq, op.head_hash)
                for op in global_ops
            ],
            now,
        )
        position_of: dict[tuple[str, bool], int] = {
            (op.session_id, isinstance(op, OpenOp)): pos
            for op, pos in zip(global_ops, positions, strict=True)
        }

        if opens:
            conn.execute(
                insert(SESSIONS),
                [
                    {
                        "id": op.session_id,
                        "node": op.node,
                        "status": "open",
                        "started_at": op.started_at,
                        "ended_at": None,
                        "end_how": None,
                        "principal": op.principal,
                        "target": op.target,
                        "protocol": op.protocol,
                        "last_seq": 0,
                        "head_hash": GENESIS_HASH,
                        "signature": sign_head(key, op.session_id, 0, GENESIS_HASH, "open"),
                        "key_id": key.key_id,
                        "open_position": position_of[(op.session_id, True)],
                        "seal_position": None,
                    }
                    for op in opens
                ],
            )
        if event_rows:
            _insert_events(conn, event_rows)

        sealing = {op.session_id for op in seals}
        head_rows = [
            {
                "b_id": sid,
                "b_last_seq": seq,
                "b_head_hash": head,
                "b_signature": sign_head(key, sid, seq, head, "open"),
                "b_key_id": key.key_id,
            }
            for sid, (seq, head) in heads.items()
            if sid not in sealing and sid not in sealed
        ]
        if head_rows:
            conn.execute(_UPDATE_HEAD, head_rows)
        if seals:
            conn.execute(
                _SEAL,
                [
                    {
                        "b_id": op.session_id,
                        "b_status": op.status,
                        "b_ended_at": op.ended_at,
                        "b_end_how": op.how,
                        "b_last_seq": op.last_seq,
                        "b_head_hash": op.head_hash,
                        "b_signature": sign_head(
                            key, op.session_id, op.last_seq, op.head_hash, op.status
                        ),
                        "b_key_id": key.key_id,
                        "b_seal_position": position_of[(op.session_id, False)],
                    }
                    for op in seals
                ],
            )


# The two session-row updates of a batch: one executemany each per batch (a statement
# built per session cost ~40 % of the writer's CPU per short session).
_UPDATE_HEAD = update_by_id(SESSIONS, "last_seq", "head_hash", "signature", "key_id")
_SEAL = update_by_id(
    SESSIONS,
    "status",
    "ended_at",
    "end_how",
    "last_seq",
    "head_hash",
    "signature",
    "key_id",
    "seal_position",
)


# --------------------------------------------------------------------------- reading


def _summary(row: Any) -> SessionSummary:
    return SessionSummary(
        id=row.id,
        node=row.node,
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        end_how=row.end_how,
        principal=row.principal,
        target=row.target,
        protocol=row.protocol,
        last_seq=int(row.last_seq),
        head_hash=row.head_hash,
        signature=row.signature,
        key_id=row.key_id,
        open_position=None if row.open_position is None else int(row.open_position),
        seal_position=None if row.seal_position is None else int(row.seal_position),
    )


def load_session(conn: Connection, session_id: str) -> SessionSummary | None:
    row = conn.execute(select(SESSIONS).where(SESSIONS.c.id == session_id)).first()
    return None if row is None else _summary(row)


def list_sessions(
    conn: Connection,
    *,
    status: str | None = None,
    principal: str | None = None,
    target: str | None = None,
    node: str | None = None,
    limit: int | None = None,
) -> list[SessionSummary]:
    """Newest first."""
    query = select(SESSIONS).order_by(SESSIONS.c.started_at.desc(), SESSIONS.c.id)
    if status is not None:
        query = query.where(SESSIONS.c.status == status)
    if principal is not None:
        query = query.where(SESSIONS.c.principal == principal)
    if target is not None:
        query = query.where(SESSIONS.c.target == target)
    if node is not None:
        query = query.where(SESSIONS.c.node == node)
    if limit is not None:
        query = query.limit(limit)
    return [_summary(row) for row in conn.execute(query)]


class PayloadError(ValueError):
    """A stored payload is not JSON (it was edited)."""


def parse_payload(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise PayloadError(str(exc)) from exc
    if not isinstance(value, dict):
        raise PayloadError("payload is not a JSON object")
    return value


def iter_event_rows(
    conn: Connection, session_id: str, *, after_seq: int = 0, limit: int | None = None
) -> Iterator[Any]:
    """Raw rows (seq, ts, type, payload text, prev_hash, hash) in seq order, streamed."""
    query = (
        select(
            EVENTS.c.seq,
            EVENTS.c.ts,
            EVENTS.c.type,
            EVENTS.c.payload,
            EVENTS.c.prev_hash,
            EVENTS.c.hash,
        )
        .where(EVENTS.c.session_id == session_id, EVENTS.c.seq > after_seq)
        .order_by(EVENTS.c.seq)
    )
    if limit is not None:
        query = query.limit(limit)
    yield from conn.execution_options(yield_per=1000).execute(query)


def iter_events(
    conn: Connection, session_id: str, *, after_seq: int = 0, limit: int | None = None
) -> Iterator[StoredEvent]:
    """Events with parsed payloads; an unparsable payload reads as ``{"_invalid": text}``."""
    for row in iter_event_rows(conn, session_id, after_seq=after_seq, limit=limit):
        try:
            payload = parse_payload(row.payload)
        except PayloadError:
            payload = {"_invalid": row.payload}
        yield StoredEvent(
            session_id=session_id,
            seq=int(row.seq),
            ts=row.ts,
            type=row.type,
            payload=payload,
            prev_hash=row.prev_hash,
            hash=row.hash,
        )


def iter_global_log(conn: Connection) -> Iterator[GlobalEntry]:
    query = select(GLOBAL_LOG).order_by(GLOBAL_LOG.c.position)
    for row in conn.execution_options(yield_per=1000).execute(query):
        yield GlobalEntry(
            position=int(row.position),
            session_id=row.session_id,
            kind=row.kind,
            last_seq=int(row.last_seq),
            head_hash=row.head_hash,
            ts=row.ts,
            prev_hash=row.prev_hash,
            hash=row.hash,
            signature=row.signature,
            key_id=row.key_id,
        )


def latest_checkpoint(conn: Connection) -> CheckpointRow | None:
    row = conn.execute(
        select(CHECKPOINTS).order_by(CHECKPOINTS.c.position.desc(), CHECKPOINTS.c.id.desc())
    ).first()
    if row is None:
        return None
    return CheckpointRow(
        position=int(row.position),
        hash=row.hash,
        created_at=row.created_at,
        purged_before=row.purged_before,
        sessions_purged=int(row.sessions_purged),
        signature=row.signature,
        key_id=row.key_id,
    )
