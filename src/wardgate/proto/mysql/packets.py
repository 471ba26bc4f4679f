"""Packet framing: the 4-byte header (3-byte length + sequence id) and 16 MiB continuations.

Owns turning a byte stream into logical packets and back. A logical payload of 16 MiB-1
(0xFFFFFF) bytes or more travels as several physical packets with consecutive sequence ids,
the last one shorter than 0xFFFFFF (possibly empty); :class:`PacketFramer` joins them and
:func:`encode_packet` splits them.

The framer copies as little as possible: it keeps immutable ``bytes`` chunks and hands
out ``memoryview`` slices of them, so a packet that arrived inside one read is never
copied, and :attr:`Packet.wire` is the exact bytes it arrived in (forward those untouched
when the sequence id does not change). Payloads are capped (``max_payload``) *before*
they are buffered; exceeding the cap, or a continuation with a wrong sequence id, raises
:class:`~wardgate.core.errors.ProtocolViolationError`. Nothing else is ever raised for any
input bytes (the property tests and the fuzz target hold this module to that).

The framer never reads past the packet the caller asks for: after an SSLRequest the next
bytes on the wire are a TLS ClientHello, which :meth:`PacketFramer.detach_buffer` hands
back instead of misparsing it as a packet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from wardgate.core.errors import ProtocolViolationError

#: Largest payload one physical packet carries; a payload this long is continued.
MAX_PHYSICAL_PAYLOAD = 0xFFFFFF
#: Default cap on one logical payload. It must be at least the target's
#: ``max_allowed_packet`` (MariaDB 10.11 defaults to 16 MiB) or big rows break.
DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024
HEADER_SIZE = 4


class Packet(NamedTuple):
    """One logical packet.

    ``seq`` is the sequence id of its first physical packet and ``next_seq`` the id the
    next packet of the same exchange must carry (they differ by more than one only for
    payloads of 16 MiB-1 bytes or more). ``wire`` is the exact bytes it arrived in.
    (A NamedTuple because one is built per row on the hot path.)
    """

    seq: int
    payload: memoryview
    next_seq: int
    wire: memoryview

    @classmethod
    def of(cls, seq: int, payload: bytes | bytearray | memoryview) -> Packet:
        """Build the packet a peer would send: handy for tests and for reinjection."""
        wire = memoryview(encode_packet(seq, payload))
        n = len(payload)
        body = wire[4:] if n < MAX_PHYSICAL_PAYLOAD else memoryview(bytes(payload))
        return cls(seq & 0xFF, body, (seq + physical_count(n)) & 0xFF, wire)

    @property
    def first_byte(self) -> int:
        """The payload's first byte (-1 for an empty payload): the message type marker."""
        return self.payload[0] if len(self.payload) else -1

    def with_seq(self, seq: int) -> bytes | memoryview:
        """This packet's wire bytes renumbered to start at ``seq`` (no copy if unchanged)."""
        if seq == self.seq:
            return self.wire
        return encode_packet(seq, self.payload)


def physical_count(payload_len: int) -> int:
    """How many physical packets carry a payload of ``payload_len`` bytes."""
    return payload_len // MAX_PHYSICAL_PAYLOAD + 1


def header(length: int, seq: int) -> bytes:
    """The 4-byte header of one physical packet."""
    if not 0 <= length <= MAX_PHYSICAL_PAYLOAD:
        raise ValueError(f"physical packet length out of range: {length}")
    return length.to_bytes(3, "little") + bytes((seq & 0xFF,))


def encode_packet(seq: int, payload: bytes | bytearray | memoryview) -> bytes:
    """Frame ``payload`` starting at sequence id ``seq``, splitting at 16 MiB-1.

    A payload that is an exact multiple of 0xFFFFFF bytes ends with an empty packet, so
    the receiver knows it is complete.
    """
    n = len(payload)
    if n < MAX_PHYSICAL_PAYLOAD:
        return n.to_bytes(3, "little") + bytes((seq & 0xFF,)) + bytes(payload)
    parts: list[bytes] = []
    view = memoryview(payload)
    pos = 0
    while True:
        chunk = view[pos : pos + MAX_PHYSICAL_PAYLOAD]
        parts.append(header(len(chunk), seq))
        parts.append(bytes(chunk))
        seq += 1
        pos += len(chunk)
        if len(chunk) < MAX_PHYSICAL_PAYLOAD:
            return b"".join(parts)


def encode_packets(seq: int, payloads: list[bytes]) -> tuple[bytes, int]:
    """Frame consecutive payloads; returns the wire bytes and the next sequence id."""
    out: list[bytes] = []
    for payload in payloads:
        out.append(encode_packet(seq, payload))
        seq = (seq + physical_count(len(payload))) & 0xFF
    return b"".join(out), seq


class PacketFramer:
    """Feed bytes in, take logical packets out. Sans-I/O; one per direction of a connection.

    ``feed`` only buffers; ``next_packet`` frames one packet at a time (or iterate the
    framer), so the caller can stop before bytes that belong to a TLS handshake.
    """

    __slots__ = (
        "_broken",
        "_buf",
        "_need",
        "_pending",
        "_pending_len",
        "_pos",
        "_view",
        "max_payload",
    )

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if max_payload < 0:
            raise ValueError("max_payload must not be negative")
        self.max_payload = max_payload
        self._buf: bytes = b""  # contiguous bytes being framed
        self._view = memoryview(self._buf)
        self._pos = 0  # start of the first unframed byte in _buf
        self._pending: list[bytes] = []  # chunks fed since _buf was last joined
        self._pending_len = 0
        self._need = HEADER_SIZE  # bytes from _pos needed before framing can progress
        self._broken: ProtocolViolationError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out as packets."""
        return len(self._buf) - self._pos + self._pending_len

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes. ``bytes`` are kept as is; other buffers are copied once."""
        if not data:
            return
        chunk = data if isinstance(data, bytes) else bytes(data)
        if self._pos == len(self._buf) and not self._pending:
            # Common case: the previous read ended on a packet boundary. Keep the chunk
            # itself so that packets inside it are views, not copies.
            self._buf, self._pos = chunk, 0
            self._view = memoryview(chunk)
        else:
            self._pending.append(chunk)
            self._pending_len += len(chunk)

    def detach_buffer(self) -> bytes:
        """Return and forget every unframed byte (e.g. the start of a TLS handshake)."""
        rest = self._buf[self._pos :] + b"".join(self._pending)
        self._buf, self._pos, self._pending, self._pending_len = b"", 0, [], 0
        self._view = memoryview(self._buf)
        self._need = HEADER_SIZE
        return rest

    def __iter__(self) -> PacketFramer:
        return self

    def __next__(self) -> Packet:
        packet = self.next_packet()
        if packet is None:
            raise StopIteration
        return packet

    def drain(self, limit: int = 1 << 62) -> list[Packet]:
        """Frame every complete packet buffered so far, up to ``limit`` packets (the
        command-phase hot path).

        Equivalent to iterating the framer, in one tight loop. Not for the login phase,
        where bytes after an SSLRequest belong to TLS (use :meth:`next_packet` there).
        """
        out: list[Packet] = []
        append = out.append
        if self._broken is None and not self._pending:
            buf, pos, view, cap = self._buf, self._pos, self._view, self.max_payload
            size = len(buf)
            n = limit
            while n and pos + HEADER_SIZE <= size:
                length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
                end = pos + HEADER_SIZE + length
                if length >= MAX_PHYSICAL_PAYLOAD or end > size or length > cap:
                    break
                seq = buf[pos + 3]
                append(Packet(seq, view[pos + HEADER_SIZE : end], (seq + 1) & 0xFF, view[pos:end]))
                pos = end
                n -= 1
            self._pos = pos
        while len(out) < limit and (packet := self.next_packet()) is not None:
            append(packet)
        return out

    def unread(self, nbytes: int) -> None:
        """Give back the last ``nbytes`` of what the last ``drain`` framed (whole packets
        at its end): they are framed again next time. All of one drain's packets lie in
        the current buffer, back to back, ending at the read position."""
        if self._pending or not 0 <= nbytes <= self._pos:
            raise ValueError("unread: only the tail of the last drain can be given back")
        self._pos -= nbytes
        self._need = HEADER_SIZE

    def take_run(
        self, walk: Callable[[bytes, int, int], tuple[int, ...]]
    ) -> tuple[memoryview, tuple[int, ...]] | None:
        """Let ``walk(buf, pos, end) -> (new_pos, ...)`` consume whole packets from the
        front of what is buffered (a compiled walk over result rows); returns their wire
        bytes and what ``walk`` returned, or None when it took nothing. ``walk`` must stop
        on a packet boundary."""
        if self._broken is not None:
            return None
        if self._pending:
            self._buf = self._buf[self._pos :] + b"".join(self._pending)
            self._view = memoryview(self._buf)
            self._pos, self._pending, self._pending_len = 0, [], 0
        start = self._pos
        result = walk(self._buf, start, len(self._buf))
        end = result[0]
        if end <= start:
            return None
        self._pos = end
        self._need = HEADER_SIZE
        return self._view[start:end], result

    def next_packet(self) -> Packet | None:
        """Frame the next complete logical packet, or return ``None`` if more bytes are needed."""
        if self._broken is not None:
            raise self._broken
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail + self._pending_len < self._need:
            return None
        if not self._pending and avail >= HEADER_SIZE:
            # Fast path: one physical packet that is wholly inside the current chunk.
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            end = pos + HEADER_SIZE + length
            if length < MAX_PHYSICAL_PAYLOAD and end <= len(buf) and length <= self.max_payload:
                self._pos = end
                view = self._view
                seq = buf[pos + 3]
                return Packet(seq, view[pos + HEADER_SIZE : end], (seq + 1) & 0xFF, view[pos:end])
        if self._pending:
            self._buf = self._buf[self._pos :] + b"".join(self._pending)
            self._view = memoryview(self._buf)
            self._pos, self._pending, self._pending_len = 0, [], 0
        try:
            return self._frame()
        except ProtocolViolationError as exc:
            self._broken = exc
            raise

    def _frame(self) -> Packet | None:
        buf, start = self._buf, self._pos
        avail = len(buf)
        pos = start
        total = 0
        first_seq = -1
        expect_seq = -1
        bodies: list[tuple[int, int]] = []
        while True:
            if pos + HEADER_SIZE > avail:
                self._need = pos + HEADER_SIZE - start
                return None
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            seq = buf[pos + 3]
            if first_seq < 0:
                first_seq = seq
            elif seq != expect_seq:
                raise ProtocolViolationError(
                    f"continuation packet has sequence id {seq}, expected {expect_seq}; "
                    "the peer's packet stream is out of order"
                )
            total += length
            if total > self.max_payload:
                raise ProtocolViolationError(
                    f"packet payload of at least {total} bytes exceeds the "
                    f"{self.max_payload}-byte limit (max_payload); raise the limit if the "
                    "target's max_allowed_packet is larger"
                )
            end = pos + HEADER_SIZE + length
            if end > avail:
                self._need = end - start
                return None
            bodies.append((pos + HEADER_SIZE, end))
            expect_seq = (seq + 1) & 0xFF
            pos = end
            if length < MAX_PHYSICAL_PAYLOAD:
                break
        self._pos = pos
        self._need = HEADER_SIZE
        view = self._view
        if len(bodies) == 1:
            payload = view[bodies[0][0] : bodies[0][1]]
        else:
            payload = memoryview(b"".join(view[a:b] for a, b in bodies))
        return Packet(first_seq, payload, expect_seq, view[start:pos])
