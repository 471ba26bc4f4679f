"""The floor of a Python data path: a uvloop TCP relay that copies bytes and does nothing else.

    .venv/bin/python bench/floor_relay.py LISTEN_PORT TARGET_PORT

Not part of wardgate: ``bench/ladder.py`` runs it next to pgbouncer and the gateway to
separate what the event loop and the kernel cost per statement (the same for any proxy
written this way) from what the gateway's own work costs. It has the gateway's transport
settings (uvloop, TCP_NODELAY both ways, one ``write`` per chunk read) and none of its
work: no framing, no authentication, no policy, no recording.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import cast

import uvloop


class Side(asyncio.Protocol):
    """One connection; what it reads goes to its peer (buffered until the peer is up)."""

    def __init__(self) -> None:
        self.peer: Side | None = None
        self.transport: asyncio.Transport | None = None
        self.early: list[bytes] = []
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports are not asyncio.Transport subclasses: no isinstance
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for data in self.early:  # what the client sent before the target answered
            self.transport.write(data)
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        assert peer is not None
        if peer.transport is None:
            peer.early.append(data)
        else:
            peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def serve(port: int, target_port: int) -> None:
    loop = asyncio.get_running_loop()

    def accepted() -> Side:
        client, upstream = Side(), Side()
        client.peer, upstream.peer = upstream, client

        async def connect() -> None:
            try:
                await loop.create_connection(lambda: upstream, "127.0.0.1", target_port)
            except OSError:
                if client.transport is not None:
                    client.transport.close()

        client.connecting = loop.create_task(connect())
        return client

    server = await loop.create_server(accepted, "127.0.0.1", port)
    print("ready", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2])))
