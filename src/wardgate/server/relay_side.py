"""One socket of a relayed pair, for any protocol's relay.

It hands received bytes straight to the relay's bound method (no extra call per chunk)
and turns asyncio's flow-control callbacks into the relay's backpressure decisions.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Relay(Protocol):
    def client_data(self, data: bytes) -> None: ...

    def upstream_data(self, data: bytes) -> None: ...

    def peer_eof(self, is_client: bool) -> None: ...

    def peer_lost(self, is_client: bool, exc: Exception | None) -> None: ...

    def backpressure(self, is_client: bool, paused: bool) -> None: ...


class RelaySide(asyncio.Protocol):
    def __init__(self, relay: Relay, is_client: bool) -> None:
        self.relay = relay
        self.is_client = is_client
        self.data_received = relay.client_data if is_client else relay.upstream_data  # type: ignore[method-assign]

    def data_received(self, data: bytes) -> None:  # replaced per instance in __init__
        raise NotImplementedError

    def eof_received(self) -> bool | None:
        self.relay.peer_eof(self.is_client)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.peer_lost(self.is_client, exc)

    def pause_writing(self) -> None:
        self.relay.backpressure(self.is_client, True)

    def resume_writing(self) -> None:
        self.relay.backpressure(self.is_client, False)
