"""Ends live sessions that have outlived their scope.

Once a second (``sessions.check_interval``) this node checks its own live sessions:
maximum duration, idle time, kill requests written to the store by the CLI/API (from
any node), and whether the credential still holds — a revoked or expired token, a
disabled identity, a group taken away, or a policy that no longer grants the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from wardgate.config import parse_duration
from wardgate.storage.models import SessionKill

if TYPE_CHECKING:
    from wardgate.server.gateway import Gateway
    from wardgate.server.live import LiveSession

log = logging.getLogger("wardgate.watch")


class SessionWatcher:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        cfg = gw.cfg.sessions
        self.interval = parse_duration(cfg.check_interval)
        self.max_duration = parse_duration(cfg.max_duration) if cfg.max_duration else None
        self.idle = parse_duration(cfg.idle_timeout) if cfg.idle_timeout else None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_once()
            except Exception:
                log.exception("session check failed; will retry")

    async def check_once(self) -> None:
        live = [s for s in self.gw.live.sessions.values() if s.terminate is not None]
        if not live:
            return
        now = time.monotonic()
        for s in live:
            if self.max_duration is not None and now - s.started_mono > self.max_duration:
                self._end(s, "max_duration", "session exceeded sessions.max_duration")
            elif self.idle is not None and now - s.last_activity_mono > self.idle:
                self._end(s, "idle_timeout", "session was idle longer than sessions.idle_timeout")
        verdicts = await asyncio.to_thread(self._check_store, live)
        for s, reason, text in verdicts:
            self._end(s, reason, text)

    def _check_store(self, live: list[LiveSession]) -> list[tuple[LiveSession, str, str]]:
        out: list[tuple[LiveSession, str, str]] = []
        ids = {s.id: s for s in live}
        with self.gw.db.begin() as db:
            kills = db.scalars(
                select(SessionKill).where(
                    SessionKill.session_id.in_(list(ids)), SessionKill.done_at.is_(None)
                )
            ).all()
            for k in kills:
                out.append(
                    (ids[k.session_id], "killed", f"session killed by {k.requested_by}: {k.reason}")
                )
                db.execute(
                    update(SessionKill)
                    .where(SessionKill.session_id == k.session_id)
                    .values(done_at=datetime.now(UTC))
                )
        killed = {s.id for s, _, _ in out}
        for s in live:
            if s.id in killed or s.principal is None:
                continue
            why = self.gw.tokens.still_valid(s.principal)
            if why is not None and (
                s.principal.auth_method == "token" or self.gw.cfg.sessions.end_on_credential_expiry
            ):
                out.append((s, "revoked", f"access revoked: {why}"))
                continue
            if s.target is not None:
                denial = self.gw.connect_denial(s.principal, s.target)
                if denial is not None:
                    out.append((s, "revoked", f"access revoked: {denial}"))
        return out

    def _end(self, s: LiveSession, reason: str, text: str) -> None:
        if s.terminate is not None and s.id in self.gw.live.sessions:
            log.info("ending session %s (%s): %s", s.id, reason, text)
            s.terminate(reason, text)
