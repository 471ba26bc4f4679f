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
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session, sessionmaker

from wardgate.server.live import LiveSession
from wardgate.storage.db import update_by_id
from wardgate.storage.models import SessionRecord

log = logging.getLogger("wardgate.ledger")

_Op = Callable[[Session], None]

_TABLE = SessionRecord.__table__
assert isinstance(_TABLE, Table)
# Core statements, built once: the ORM's unit of work cost ~1 ms of this thread's CPU per
# connection (it holds the GIL while it runs), most of a short session's cost here.
_INSERT = insert(_TABLE)
_COMPLETE = update_by_id(
    _TABLE,
    "ended_at",
    "bytes_from_client",
    "bytes_to_client",
    "statements",
    "end_reason",
    "end_detail",
    "principal",
    "target",
)
# Every column a row may leave out, with its default (so inserts of both kinds of row
# share one parameter set).
_ROW_DEFAULTS: dict[str, Any] = {
    "principal": None,
    "target": None,
    "ended_at": None,
    "end_reason": None,
    "end_detail": None,
}


def _insert_row(row: dict[str, Any]) -> _Op:
    full = {**_ROW_DEFAULTS, **row}

    def op(db: Session) -> None:
        db.execute(_INSERT, [full])

    return op


def _complete_row(session_id: str, values: dict[str, Any]) -> _Op:
    params = {"b_id": session_id, **{f"b_{k}": v for k, v in values.items()}}

    def op(db: Session) -> None:
        db.execute(_COMPLETE, [params])

    return op


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
        self._queue.put(_insert_row(row))

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
            self._queue.put(_complete_row(s.id, values))
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
            self._queue.put(_insert_row(row))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
