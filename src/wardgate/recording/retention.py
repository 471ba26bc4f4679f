"""Retention: purge old recordings without making what remains look tampered with.

Owns ``purge``. The global log can only be shortened from its start, so a purge removes
the longest prefix of global-log entries written before the cutoff, the sessions sealed
within that prefix (their events too), and writes a signed checkpoint holding the
position and hash of the last removed entry. ``verify_all`` then starts the log from the
checkpoint. Sessions still open, or sealed after the cutoff, are kept; a long-lived
session whose ``open`` entry falls in the prefix keeps its row and events (its open entry
is vouched for by the checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select

from wardgate.core.errors import WardgateError
from wardgate.recording.chain import checkpoint_message
from wardgate.recording.keys import KeyRing, SigningKey
from wardgate.recording.models import CHECKPOINTS, EVENTS, GLOBAL_LOG, SESSIONS
from wardgate.recording.verify import Verifier

_CHUNK = 500


class PurgeRefusedError(WardgateError):
    """The store does not verify; purging would destroy the evidence of what broke it."""


@dataclass(frozen=True, slots=True)
class PurgeReport:
    cutoff: datetime
    sessions_purged: int
    events_purged: int
    global_entries_purged: int
    checkpoint_position: int | None  # None: nothing was old enough


def purge(
    engine: Engine,
    key: SigningKey,
    older_than: timedelta,
    *,
    now: datetime | None = None,
    keyring: KeyRing | None = None,
    require_intact: bool = True,
) -> PurgeReport:
    """Delete recordings sealed before ``now - older_than`` and checkpoint the global log.

    With ``require_intact`` (the default) the whole store is verified first and nothing
    is purged if it does not verify: the broken part might be in what would be deleted.
    """
    now = now or datetime.now(UTC)
    cutoff = now - older_than
    if require_intact:
        report = Verifier(engine, keyring or KeyRing([key.public_key])).verify_all()
        if not report.ok:
            raise PurgeRefusedError(
                f"retention purge refused: the recording store does not verify "
                f"({len(report.problems)} problems, first: {report.problems[0]}); run "
                "`wardgate audit verify --all`, investigate, then purge"
            )
    with engine.begin() as conn:
        first_young = conn.execute(
            select(func.min(GLOBAL_LOG.c.position)).where(GLOBAL_LOG.c.ts >= cutoff)
        ).scalar()
        if first_young is None:
            last = conn.execute(select(func.max(GLOBAL_LOG.c.position))).scalar()
        else:
            last = conn.execute(
                select(func.max(GLOBAL_LOG.c.position)).where(GLOBAL_LOG.c.position < first_young)
            ).scalar()
        if last is None:
            return PurgeReport(cutoff, 0, 0, 0, None)
        position = int(last)
        last_hash = conn.execute(
            select(GLOBAL_LOG.c.hash).where(GLOBAL_LOG.c.position == position)
        ).scalar_one()
        session_ids = [
            sid
            for (sid,) in conn.execute(
                select(SESSIONS.c.id).where(
                    SESSIONS.c.seal_position.is_not(None),
                    SESSIONS.c.seal_position <= position,
                )
            )
        ]
        events_purged = 0
        for start in range(0, len(session_ids), _CHUNK):
            chunk = session_ids[start : start + _CHUNK]
            events_purged += conn.execute(
                delete(EVENTS).where(EVENTS.c.session_id.in_(chunk))
            ).rowcount
            conn.execute(delete(SESSIONS).where(SESSIONS.c.id.in_(chunk)))
        entries_purged = conn.execute(
            delete(GLOBAL_LOG).where(GLOBAL_LOG.c.position <= position)
        ).rowcount
        conn.execute(
            insert(CHECKPOINTS).values(
                position=position,
                hash=last_hash,
                created_at=now,
                purged_before=cutoff,
                sessions_purged=len(session_ids),
                signature=key.sign(checkpoint_message(position, last_hash)).hex(),
                key_id=key.key_id,
            )
        )
    return PurgeReport(cutoff, len(session_ids), events_purged, entries_purged, position)
