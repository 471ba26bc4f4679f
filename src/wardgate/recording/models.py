"""The recording tables (``rec_*``): sessions, their chained events, the global log, checkpoints.

Owns the schema only; ``store`` writes these tables and ``verify``/``replay`` read them.
Types are portable between SQLite and PostgreSQL: hashes and signatures are hex strings,
payloads are ``Text`` holding canonical JSON (never a JSON/JSONB column, which would
normalise the bytes the hash covers), times are stored as UTC.

``rec_global_log.session_id`` deliberately has no foreign key: the log must outlive a
session deleted behind the gateway's back, so the deletion shows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from wardgate.storage.base import Base


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on PostgreSQL (timestamptz) and SQLite (naive text).

    The recorded ``ts`` is part of the hashed envelope, so it must read back exactly as it
    was written, to the microsecond, whatever the connection's time zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        ts: datetime = value
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        if dialect.name == "sqlite":
            return ts.replace(tzinfo=None)
        return ts

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the store, got {type(value).__name__}")
        ts: datetime = value
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


HASH = String(64)
SIGNATURE = String(128)
KEY_ID = String(16)
SESSION_ID = String(40)


class RecordedSession(Base):
    """One recorded session and its signed head.

    ``last_seq``/``head_hash`` are the newest flushed event; ``signature`` (by ``key_id``)
    covers (id, last_seq, head_hash, status) and is renewed on every flush. ``principal``
    and ``target`` are copies of the ``session.start`` event for listing; verify checks
    they agree with it.
    """

    __tablename__ = "rec_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'sealed', 'interrupted')", name="status"),
    )

    id: Mapped[str] = mapped_column(SESSION_ID, primary_key=True)
    node: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    end_how: Mapped[str | None] = mapped_column(String(32), default=None)
    principal: Mapped[str] = mapped_column(String(200), index=True)
    target: Mapped[str] = mapped_column(String(200), index=True)
    protocol: Mapped[str] = mapped_column(String(20))
    last_seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(HASH)
    signature: Mapped[str] = mapped_column(SIGNATURE)
    key_id: Mapped[str] = mapped_column(KEY_ID)
    open_position: Mapped[int | None] = mapped_column(BigInteger, default=None)
    seal_position: Mapped[int | None] = mapped_column(BigInteger, default=None)


class RecordedEvent(Base):
    """One event of a session's chain: its canonical payload and its two chain links."""

    __tablename__ = "rec_events"

    session_id: Mapped[str] = mapped_column(
        SESSION_ID, ForeignKey("rec_sessions.id"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(HASH)
    hash: Mapped[str] = mapped_column(HASH)


class GlobalLogEntry(Base):
    """One signed, chained entry of the global log: a session opened or sealed."""

    __tablename__ = "rec_global_log"
    __table_args__ = (CheckConstraint("kind IN ('open', 'sealed', 'interrupted')", name="kind"),)

    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    session_id: Mapped[str] = mapped_column(SESSION_ID, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    last_seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(HASH)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    prev_hash: Mapped[str] = mapped_column(HASH)
    hash: Mapped[str] = mapped_column(HASH)
    signature: Mapped[str] = mapped_column(SIGNATURE)
    key_id: Mapped[str] = mapped_column(KEY_ID)


class Checkpoint(Base):
    """A retention purge: the global log now starts after ``position``, whose hash was ``hash``."""

    __tablename__ = "rec_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    position: Mapped[int] = mapped_column(BigInteger, index=True)
    hash: Mapped[str] = mapped_column(HASH)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    purged_before: Mapped[datetime] = mapped_column(UTCDateTime())
    sessions_purged: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(SIGNATURE)
    key_id: Mapped[str] = mapped_column(KEY_ID)


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


SESSIONS = _table(RecordedSession)
EVENTS = _table(RecordedEvent)
GLOBAL_LOG = _table(GlobalLogEntry)
CHECKPOINTS = _table(Checkpoint)

# For ``Base.metadata.create_all(engine, tables=RECORDING_TABLES)`` in tests and tools.
RECORDING_TABLES: list[Table] = [SESSIONS, EVENTS, GLOBAL_LOG, CHECKPOINTS]
