from __future__ import annotations

import contextlib
import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.core.errors import ProtocolViolationError, TargetUnavailableError
from wardgate.proto.pg import messages as m
from wardgate.proto.pg.upstream_auth import UpstreamAuthenticator, md5_password


def test_startup_round_trip() -> None:
    pkt = m.startup_message({"user": "alice", "database": "demo", "application_name": "x"})
    parsed = m.parse_startup(pkt[4:])
    assert parsed.kind == "startup"
    assert parsed.params == {"user": "alice", "database": "demo", "application_name": "x"}


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (struct.pack("!i", 80877103), "ssl"),
        (struct.pack("!i", 80877104), "gssenc"),
        (struct.pack("!iiI", 80877102, 7, 9), "cancel"),
    ],
)
def test_negotiation_packets(body: bytes, kind: str) -> None:
    assert m.parse_startup(body).kind == kind


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x01",
        struct.pack("!i", 196608) + b"user\x00alice",  # not NUL-terminated
        struct.pack("!i", 196608) + b"user\x00\x00",  # key without value pairing
        struct.pack("!i", 2 << 16) + b"\x00",  # protocol 2
        struct.pack("!ii", 80877102, 1),  # short cancel
        struct.pack("!i", 196608) + b"user\x00\xff\xfe\x00\x00",  # not UTF-8
    ],
)
def test_malformed_startup_is_a_protocol_violation(body: bytes) -> None:
    with pytest.raises(ProtocolViolationError):
        m.parse_startup(body)


@given(st.binary(max_size=200))
def test_parse_startup_never_raises_anything_else(body: bytes) -> None:
    with contextlib.suppress(ProtocolViolationError):
        m.parse_startup(body)


def test_error_response_fields() -> None:
    msg = m.error_response("42501", "denied", detail="d", hint="h", severity="FATAL")
    assert msg[:1] == b"E" and struct.unpack("!i", msg[1:5])[0] == len(msg) - 1
    f = m.parse_error_fields(msg[5:])
    assert f == {"S": "FATAL", "V": "FATAL", "C": "42501", "M": "denied", "D": "d", "H": "h"}


def test_md5_matches_libpq_formula() -> None:
    inner = hashlib.md5(b"secretalice").hexdigest()
    expected = b"md5" + hashlib.md5(inner.encode() + b"salt").hexdigest().encode() + b"\x00"
    assert md5_password("alice", "secret", b"salt") == expected


def test_authenticator_refuses_unknown_methods_and_missing_password() -> None:
    auth = UpstreamAuthenticator("t", "u", None, None)
    with pytest.raises(TargetUnavailableError, match="holds no password"):
        auth.respond(struct.pack("!i", 5) + b"salt")
    with pytest.raises(TargetUnavailableError, match="does not support"):
        UpstreamAuthenticator("t", "u", "p", None).respond(struct.pack("!i", 7))  # GSS
    assert UpstreamAuthenticator("t", "u", "p", None).respond(struct.pack("!i", 0)) is None


def test_scram_plus_is_not_chosen_without_tls() -> None:
    auth = UpstreamAuthenticator("t", "u", "p", None)
    out = auth.respond(struct.pack("!i", 10) + b"SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00")
    assert out is not None and b"SCRAM-SHA-256\x00" in out and b"PLUS" not in out
