"""Live sessions on this node: what is connected now, and the cancel-key map.

The gateway hands clients its own BackendKeyData. A CancelRequest carrying that key is
mapped here to the target's real key, so a client can cancel its query without ever
learning which backend it was talking to.
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from wardgate.core.model import Principal


def new_session_id() -> str:
    return "ses_" + uuid.uuid4().hex[:20]


@dataclass(slots=True)
class LiveSession:
    id: str
    protocol: str
    client_addr: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_mono: float = field(default_factory=time.monotonic)
    principal: Principal | None = None
    target: str | None = None
    bytes_from_client: int = 0
    bytes_to_client: int = 0
    statements: int = 0
    ended_mono: float | None = None
    # (upstream host, port, upstream pid, upstream secret), set once connected
    upstream_key: tuple[str, int, int, int] | None = None
    gateway_key: tuple[int, int] | None = None
    terminate: Callable[[str, str], None] | None = None
    last_activity_mono: float = field(default_factory=time.monotonic)

    def summary(self) -> dict[str, object]:
        p = self.principal
        return {
            "id": self.id,
            "protocol": self.protocol,
            "principal": p.name if p else None,
            "groups": sorted(p.groups) if p else [],
            "auth_method": p.auth_method if p else None,
            "target": self.target,
            "client_addr": self.client_addr,
            "started_at": self.started_at.isoformat(),
            "bytes_from_client": self.bytes_from_client,
            "bytes_to_client": self.bytes_to_client,
            "statements": self.statements,
        }


class LiveRegistry:
    def __init__(self, worker: int = 0) -> None:
        self.sessions: dict[str, LiveSession] = {}
        self._by_pid: dict[int, LiveSession] = {}
        # With --workers N a CancelRequest may reach any process; the worker index in the
        # top bits of the key tells which one holds the session.
        self.worker = worker

    def add(self, s: LiveSession) -> None:
        self.sessions[s.id] = s

    def remove(self, s: LiveSession) -> None:
        self.sessions.pop(s.id, None)
        if s.gateway_key is not None:
            self._by_pid.pop(s.gateway_key[0], None)

    def assign_cancel_key(self, s: LiveSession) -> tuple[int, int]:
        while True:
            pid = (self.worker << 24) | (secrets.randbits(24) or 1)
            if pid not in self._by_pid:
                break
        key = (pid, secrets.randbits(32))
        s.gateway_key = key
        self._by_pid[pid] = s
        return key

    @staticmethod
    def worker_of(pid: int) -> int:
        return (pid >> 24) & 0x7F

    def lookup_cancel(self, pid: int, secret: int) -> LiveSession | None:
        s = self._by_pid.get(pid)
        if s is None or s.gateway_key is None:
            return None
        if not hmac.compare_digest(s.gateway_key[1].to_bytes(4, "big"), secret.to_bytes(4, "big")):
            return None
        return s
