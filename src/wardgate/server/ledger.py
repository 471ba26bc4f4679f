"""The session ledger: one row per connection, written off the event loop.

Connects and disconnects are queued to a single writer thread so a slow state store
never stalls traffic. The row is inserted when a session starts (so a crash still
leaves evidence of who was connected) and completed when it ends.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from wardgate.server.live import LiveSession
from wardgate.storage.models import SessionRecord

log = logging.getLogger("wardgate.ledger")

_Op = Callable[[Session], None]


class SessionLedger:
    def __init__(self, sessions: sessionmaker[Session], node: str) -> None:
        self._sessions = sessions
        self._node = node
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="wardgate-ledger", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            op = self._queue.get()
            if op is None:
                return
            batch = [op]
            while len(batch) < 200:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._apply(batch)
                    return
                batch.append(nxt)
            self._apply(batch)

    def _apply(self, batch: list[_Op]) -> None:
        for attempt in range(5):
            try:
                with self._sessions.begin() as db:
                    for op in batch:
                        op(db)
                return
            except Exception:
                log.exception("session ledger write failed (attempt %d)", attempt + 1)
                threading.Event().wait(0.2 * (attempt + 1))

    def started(self, s: LiveSession) -> None:
        p = s.principal
        row = dict(
            id=s.id,
            node=self._node,
            protocol=s.protocol,
            principal=p.name if p else None,
            groups=sorted(p.groups) if p else [],
            auth_method=p.auth_method if p else None,
            token_id=p.token_id if p else None,
            subject=p.subject if p else None,
            issuer=p.issuer if p else None,
            client_addr=s.client_addr,
            target=s.target,
            started_at=s.started_at,
            bytes_from_client=0,
            bytes_to_client=0,
            statements=0,
        )
        self._queue.put(lambda db: db.add(SessionRecord(**row)))

    def ended(self, s: LiveSession, reason: str, detail: str | None, *, inserted: bool) -> None:
        p = s.principal
        values = dict(
            ended_at=datetime.now(UTC),
            bytes_from_client=s.bytes_from_client,
            bytes_to_client=s.bytes_to_client,
            statements=s.statements,
            end_reason=reason,
            end_detail=(detail or "")[:2000] or None,
            principal=p.name if p else None,
            target=s.target,
        )
        if inserted:

            def complete(db: Session) -> None:
                db.execute(update(SessionRecord).where(SessionRecord.id == s.id).values(**values))

            self._queue.put(complete)
        else:
            # Sessions that failed before they were established still leave a row.
            row = dict(
                id=s.id,
                node=self._node,
                protocol=s.protocol,
                groups=sorted(p.groups) if p else [],
                auth_method=p.auth_method if p else None,
                token_id=p.token_id if p else None,
                subject=p.subject if p else None,
                issuer=p.issuer if p else None,
                client_addr=s.client_addr,
                started_at=s.started_at,
                **values,
            )
            self._queue.put(lambda db: db.add(SessionRecord(**row)))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
