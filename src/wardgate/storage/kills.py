"""Kill requests for live sessions, shared through the store so any node can act on them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from wardgate.storage.models import SessionKill, SessionRecord


def record_kill_request(db: sessionmaker[Session], session_id: str, by: str, reason: str) -> bool:
    """False when no such session was ever recorded."""
    with db.begin() as s:
        if s.get(SessionRecord, session_id) is None:
            return False
        if s.get(SessionKill, session_id) is None:
            s.add(
                SessionKill(
                    session_id=session_id,
                    requested_by=by,
                    reason=reason,
                    requested_at=datetime.now(UTC),
                )
            )
    return True
