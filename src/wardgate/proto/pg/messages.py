"""PostgreSQL v3 wire messages: builders and parsers, sans-I/O (bytes in, bytes out).

Only what the gateway originates or must look inside is here; everything else is
forwarded as the bytes it arrived in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from wardgate.core.errors import ProtocolViolationError

PROTOCOL_3_0 = 196608
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102
MAX_STARTUP_BYTES = 10_000  # PostgreSQL's own limit for the startup packet

_I32 = struct.Struct("!i")
_HDR = struct.Struct("!ci")
_I16 = struct.Struct("!h")

AUTH_OK = b"R\x00\x00\x00\x08\x00\x00\x00\x00"


def message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + _I32.pack(len(payload) + 4) + payload


def cstr(s: str) -> bytes:
    return s.encode() + b"\x00"


# -- backend messages the gateway originates -------------------------------------------


def auth_cleartext_request() -> bytes:
    return message(b"R", _I32.pack(3))


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return message(b"K", struct.pack("!iI", pid, secret))


def ready_for_query(status: bytes = b"I") -> bytes:
    return message(b"Z", status)


def _fields(severity: str, sqlstate: str, text: str, detail: str | None, hint: str | None) -> bytes:
    parts = [
        b"S" + cstr(severity),
        b"V" + cstr(severity),
        b"C" + cstr(sqlstate),
        b"M" + cstr(text),
    ]
    if detail:
        parts.append(b"D" + cstr(detail))
    if hint:
        parts.append(b"H" + cstr(hint))
    return b"".join(parts) + b"\x00"


def error_response(
    sqlstate: str,
    text: str,
    *,
    severity: str = "ERROR",
    detail: str | None = None,
    hint: str | None = None,
) -> bytes:
    return message(b"E", _fields(severity, sqlstate, text, detail, hint))


def notice_response(text: str, *, sqlstate: str = "00000", detail: str | None = None) -> bytes:
    return message(b"N", _fields("NOTICE", sqlstate, text, detail, None))


# -- frontend messages the gateway sends upstream -----------------------------------------


def startup_message(params: dict[str, str]) -> bytes:
    body = (
        _I32.pack(PROTOCOL_3_0) + b"".join(cstr(k) + cstr(v) for k, v in params.items()) + b"\x00"
    )
    return _I32.pack(len(body) + 4) + body


def ssl_request() -> bytes:
    return struct.pack("!ii", 8, SSL_REQUEST_CODE)


def cancel_request(pid: int, secret: int) -> bytes:
    return struct.pack("!iiiI", 16, CANCEL_REQUEST_CODE, pid, secret)


def password_message(data: bytes) -> bytes:
    return message(b"p", data)


def sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    return message(b"p", cstr(mechanism) + _I32.pack(len(data)) + data)


def query(text: str) -> bytes:
    return message(b"Q", cstr(text))


TERMINATE = b"X\x00\x00\x00\x04"


# -- parsing ------------------------------------------------------------------------------


@dataclass(slots=True)
class StartupPacket:
    """The first, untyped client packet: startup, SSL/GSS negotiation or a cancel."""

    kind: str  # "startup" | "ssl" | "gssenc" | "cancel"
    params: dict[str, str] = field(default_factory=dict)
    cancel_pid: int = 0
    cancel_secret: int = 0
    protocol: int = PROTOCOL_3_0


def parse_startup(body: bytes) -> StartupPacket:
    """``body`` is the packet without its 4-byte length."""
    if len(body) < 4:
        raise ProtocolViolationError("startup packet too short")
    (code,) = _I32.unpack_from(body, 0)
    if code == SSL_REQUEST_CODE:
        return StartupPacket("ssl")
    if code == GSSENC_REQUEST_CODE:
        return StartupPacket("gssenc")
    if code == CANCEL_REQUEST_CODE:
        if len(body) != 12:
            raise ProtocolViolationError("malformed CancelRequest")
        pid, secret = struct.unpack_from("!iI", body, 4)
        return StartupPacket("cancel", cancel_pid=pid, cancel_secret=secret)
    major = code >> 16
    if major != 3:
        raise ProtocolViolationError(
            f"unsupported frontend protocol {major}.{code & 0xFFFF}: wardgate speaks 3.0"
        )
    parts = body[4:].split(b"\x00")
    # Well-formed: k\0v\0...k\0v\0\0  -> split gives [..., '', ''].
    if len(parts) < 2 or parts[-1] != b"" or parts[-2] != b"":
        raise ProtocolViolationError("startup packet is not NUL-terminated")
    items = parts[:-2]
    if len(items) % 2:
        raise ProtocolViolationError("startup packet has a parameter without a value")
    try:
        params = {items[i].decode(): items[i + 1].decode() for i in range(0, len(items), 2)}
    except UnicodeDecodeError as e:
        raise ProtocolViolationError("startup parameters are not valid UTF-8") from e
    return StartupPacket("startup", params=params, protocol=code)


def parse_error_fields(payload: bytes | memoryview) -> dict[str, str]:
    """Fields of an ErrorResponse/NoticeResponse body, keyed by their one-letter code."""
    out: dict[str, str] = {}
    data = bytes(payload)
    pos = 0
    while pos < len(data) and data[pos] != 0:
        code = chr(data[pos])
        end = data.index(b"\x00", pos + 1)
        out[code] = data[pos + 1 : end].decode("utf-8", "replace")
        pos = end + 1
    return out


def read_cstr(data: bytes | memoryview, pos: int) -> tuple[str, int]:
    raw = bytes(data[pos:]) if isinstance(data, memoryview) else data
    start = 0 if isinstance(data, memoryview) else pos
    end = raw.index(b"\x00", start)
    return raw[start:end].decode("utf-8", "replace"), (pos + end - start + 1)


def i32(data: bytes | memoryview, pos: int) -> int:
    return int(_I32.unpack_from(data, pos)[0])


def i16(data: bytes | memoryview, pos: int) -> int:
    return int(_I16.unpack_from(data, pos)[0])


HEADER = _HDR
