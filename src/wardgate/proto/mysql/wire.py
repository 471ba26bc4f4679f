"""Primitive MySQL wire types: fixed and length-encoded integers and strings.

Owns the byte-level vocabulary every other module in ``proto.mysql`` is written in:
a :class:`PayloadReader` cursor over one packet payload, and the matching encoders.
Nothing here knows about packets, commands or state; a truncated or malformed field is a
:class:`~wardgate.core.errors.ProtocolViolationError` naming what was being read.
"""

from __future__ import annotations

from wardgate.core.errors import ProtocolViolationError

#: First byte of a length-encoded value that means SQL NULL (only valid in text rows).
LENENC_NULL = 0xFB
#: Largest value a length-encoded integer can carry.
LENENC_MAX = (1 << 64) - 1

Buffer = bytes | bytearray | memoryview


class PayloadReader:
    """A forward-only cursor over one packet payload.

    ``what`` names the message being decoded so that a truncation error says which
    message was short ("truncated HandshakeV10 …"), not just that some read failed.
    """

    __slots__ = ("_buf", "_end", "_pos", "what")

    def __init__(self, payload: Buffer, what: str = "packet", pos: int = 0) -> None:
        self._buf = payload if isinstance(payload, memoryview) else memoryview(payload)
        self._end = len(self._buf)
        self._pos = pos
        self.what = what

    # -- position ---------------------------------------------------------------------

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    @property
    def at_end(self) -> bool:
        return self._pos >= self._end

    def _need(self, n: int, field: str) -> int:
        pos = self._pos
        if n < 0 or pos + n > self._end:
            raise ProtocolViolationError(
                f"truncated {self.what}: reading {field} needs {n} bytes at offset {pos}, "
                f"only {self._end - pos} left; the peer sent a malformed packet"
            )
        self._pos = pos + n
        return pos

    def skip(self, n: int, field: str = "filler") -> None:
        self._need(n, field)

    # -- fixed-width integers -----------------------------------------------------------

    def peek_u8(self) -> int:
        if self._pos >= self._end:
            raise ProtocolViolationError(
                f"truncated {self.what}: expected another byte at offset {self._pos}"
            )
        return self._buf[self._pos]

    def u8(self, field: str = "int<1>") -> int:
        return self._buf[self._need(1, field)]

    def u16(self, field: str = "int<2>") -> int:
        p = self._need(2, field)
        return int.from_bytes(self._buf[p : p + 2], "little")

    def u24(self, field: str = "int<3>") -> int:
        p = self._need(3, field)
        return int.from_bytes(self._buf[p : p + 3], "little")

    def u32(self, field: str = "int<4>") -> int:
        p = self._need(4, field)
        return int.from_bytes(self._buf[p : p + 4], "little")

    def u64(self, field: str = "int<8>") -> int:
        p = self._need(8, field)
        return int.from_bytes(self._buf[p : p + 8], "little")

    def int_le(self, n: int, *, signed: bool, field: str = "integer") -> int:
        p = self._need(n, field)
        return int.from_bytes(self._buf[p : p + n], "little", signed=signed)

    # -- length-encoded integers ----------------------------------------------------------

    def lenenc_int_or_null(self, field: str = "int<lenenc>") -> int | None:
        first = self.u8(field)
        if first < 0xFB:
            return first
        if first == 0xFC:
            return self.u16(field)
        if first == 0xFD:
            return self.u24(field)
        if first == 0xFE:
            return self.u64(field)
        if first == LENENC_NULL:
            return None
        raise ProtocolViolationError(
            f"malformed {self.what}: {field} starts with 0xFF, which is not a "
            f"length-encoded integer (offset {self._pos - 1})"
        )

    def lenenc_int(self, field: str = "int<lenenc>") -> int:
        value = self.lenenc_int_or_null(field)
        if value is None:
            raise ProtocolViolationError(
                f"malformed {self.what}: {field} is NULL (0xFB) where a number is required "
                f"(offset {self._pos - 1})"
            )
        return value

    # -- strings --------------------------------------------------------------------------

    def fixed(self, n: int, field: str = "string<fix>") -> bytes:
        p = self._need(n, field)
        return bytes(self._buf[p : p + n])

    def fixed_view(self, n: int, field: str = "string<fix>") -> memoryview:
        p = self._need(n, field)
        return self._buf[p : p + n]

    def lenenc_bytes(self, field: str = "string<lenenc>") -> bytes:
        return self.fixed(self.lenenc_int(field), field)

    def lenenc_bytes_or_null(self, field: str = "string<lenenc>") -> bytes | None:
        n = self.lenenc_int_or_null(field)
        return None if n is None else self.fixed(n, field)

    def null_terminated(self, field: str = "string<NUL>") -> bytes:
        buf, start = self._buf, self._pos
        end = bytes(buf[start : self._end]).find(b"\x00")
        if end < 0:
            raise ProtocolViolationError(
                f"malformed {self.what}: {field} at offset {start} has no NUL terminator"
            )
        self._pos = start + end + 1
        return bytes(buf[start : start + end])

    def null_terminated_or_rest(self, field: str = "string<NUL>") -> bytes:
        """A NUL-terminated string whose terminator some peers omit at the packet's end."""
        buf, start = self._buf, self._pos
        rest = bytes(buf[start : self._end])
        end = rest.find(b"\x00")
        if end < 0:
            self._pos = self._end
            return rest
        self._pos = start + end + 1
        return rest[:end]

    def rest(self) -> bytes:
        p, self._pos = self._pos, self._end
        return bytes(self._buf[p : self._end])

    def rest_view(self) -> memoryview:
        p, self._pos = self._pos, self._end
        return self._buf[p : self._end]

    def expect_end(self) -> None:
        if self._pos != self._end:
            raise ProtocolViolationError(
                f"malformed {self.what}: {self._end - self._pos} unexpected trailing bytes "
                f"at offset {self._pos}"
            )


# -- encoders -------------------------------------------------------------------------------


def lenenc_int(value: int) -> bytes:
    """Encode ``value`` as a length-encoded integer (1, 3, 4 or 9 bytes)."""
    if value < 0 or value > LENENC_MAX:
        raise ValueError(f"length-encoded integer out of range: {value}")
    if value < 0xFB:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


def lenenc_bytes(value: Buffer) -> bytes:
    """Encode ``value`` as a length-encoded string."""
    return lenenc_int(len(value)) + bytes(value)


def lenenc_bytes_or_null(value: Buffer | None) -> bytes:
    """Encode a text-row column: NULL is the single byte 0xFB."""
    if value is None:
        return b"\xfb"
    return lenenc_int(len(value)) + bytes(value)


def null_terminated(value: Buffer, field: str = "string") -> bytes:
    """Encode ``value`` followed by NUL; a NUL inside it would split the field, so refuse."""
    raw = bytes(value)
    if b"\x00" in raw:
        raise ValueError(f"{field} contains a NUL byte and cannot be sent NUL-terminated")
    return raw + b"\x00"


def int_le(value: int, n: int, *, signed: bool = False) -> bytes:
    return value.to_bytes(n, "little", signed=signed)
