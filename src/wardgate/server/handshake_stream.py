"""A tiny awaitable reader for the handshake phase of a connection.

Handshakes are short and rare, so readable coroutine code wins there; once a session
is established the transport is handed to a callback-based relay protocol with
``transport.set_protocol`` and whatever bytes are already buffered go with it.
"""

from __future__ import annotations

import asyncio
from typing import cast

from wardgate.core.errors import ProtocolViolationError


class HandshakeStream(asyncio.Protocol):
    def __init__(self, *, max_buffer: int = 1 << 20) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._error: Exception | None = None
        self._max_buffer = max_buffer
        self.connected = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > self._max_buffer and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- reading -------------------------------------------------------------------------
    async def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            if self._eof:
                raise ConnectionResetError("peer closed the connection during the handshake")
            self._waiter = asyncio.get_running_loop().create_future()
            if self.transport is not None:
                self.transport.resume_reading()
            await self._waiter
            self._waiter = None

    async def read_exactly(self, n: int) -> bytes:
        await self._fill(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def read_startup(self, max_len: int) -> bytes:
        """An untyped packet (int32 length including itself, then body); returns the body."""
        await self._fill(4)
        length = int.from_bytes(self._buf[:4], "big")
        if length < 8 or length > max_len:
            raise ProtocolViolationError(f"invalid startup packet length {length}")
        return (await self.read_exactly(length))[4:]

    async def read_message(self, max_len: int) -> tuple[bytes, bytes]:
        """A typed message: returns (type byte, payload)."""
        await self._fill(5)
        kind = bytes(self._buf[:1])
        length = int.from_bytes(self._buf[1:5], "big")
        if length < 4 or length > max_len:
            raise ProtocolViolationError(
                f"message {kind!r} has invalid length {length} (limit {max_len})"
            )
        data = await self.read_exactly(1 + length)
        return kind, data[5:]

    def take_buffer(self) -> bytes:
        """Bytes already received but not consumed; the relay processes them first."""
        out = bytes(self._buf)
        self._buf.clear()
        return out

    @property
    def has_buffered(self) -> bool:
        return bool(self._buf)
