"""Connection-phase messages against known byte vectors (MariaDB 10.11 capture, MySQL 8 layout)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.core.errors import ProtocolViolationError
from wardgate.proto.mysql.constants import CLIENT_MYSQL, Capability
from wardgate.proto.mysql.handshake import (
    AuthMoreData,
    AuthSwitchRequest,
    HandshakeResponse41,
    HandshakeV10,
    SslRequest,
    is_ssl_request,
)

# The greeting MariaDB 10.11.19 (Debian 12) sent to a raw socket on 127.0.0.1:3306,
# header stripped. Capabilities: CLIENT_MYSQL clear, extended caps 0x1d (progress, bulk,
# extended metadata, cache metadata); no SSL on this server.
MARIADB_GREETING = bytes.fromhex(
    "0a352e352e352d31302e31312e31392d4d6172696144422d302b64656231327531000a000000"
    "33266139384c544300fef72d0200ff81150000000000001d000000347824446967476d6f652f"
    "57006d7973716c5f6e61746976655f70617373776f726400"
)

# A MySQL 8.0 greeting laid out by hand from the protocol documentation: CLIENT_MYSQL set,
# so the 10 reserved bytes carry no MariaDB capabilities.
MYSQL8_GREETING = (
    b"\x0a"
    + b"8.0.36\x00"
    + (4711).to_bytes(4, "little")
    + b"abcdefgh"
    + b"\x00"
    + b"\xff\xff"  # capabilities (lower)
    + b"\xff"  # utf8mb4_0900_ai_ci
    + b"\x02\x00"  # SERVER_STATUS_AUTOCOMMIT
    + b"\xff\xdf"  # capabilities (upper)
    + b"\x15"  # auth plugin data length 21
    + b"\x00" * 10
    + b"ijklmnopqrst\x00"
    + b"caching_sha2_password\x00"
)


def test_parse_real_mariadb_greeting() -> None:
    hello = HandshakeV10.parse(MARIADB_GREETING)
    assert hello.server_version == "5.5.5-10.11.19-MariaDB-0+deb12u1"
    assert hello.connection_id == 10
    assert hello.auth_plugin_data == b"3&a98LTC4x$DigGmoe/W"
    assert len(hello.auth_plugin_data) == 20
    assert hello.auth_plugin_name == "mysql_native_password"
    assert hello.character_set == 45
    assert hello.is_mariadb
    caps = Capability(hello.capabilities)
    assert not caps & CLIENT_MYSQL
    assert caps & Capability.DEPRECATE_EOF
    assert caps & Capability.MARIADB_EXTENDED_METADATA
    assert caps & Capability.MARIADB_CACHE_METADATA
    assert not caps & Capability.SSL


def test_mariadb_greeting_re_encodes_byte_for_byte() -> None:
    assert HandshakeV10.parse(MARIADB_GREETING).encode() == MARIADB_GREETING


def test_parse_mysql8_greeting() -> None:
    hello = HandshakeV10.parse(MYSQL8_GREETING)
    assert hello.server_version == "8.0.36"
    assert hello.connection_id == 4711
    assert hello.auth_plugin_data == b"abcdefghijklmnopqrst"
    assert hello.auth_plugin_name == "caching_sha2_password"
    assert hello.capabilities == 0xDFFFFFFF
    assert not hello.is_mariadb
    assert hello.encode() == MYSQL8_GREETING


def test_err_instead_of_greeting_is_explained() -> None:
    with pytest.raises(ProtocolViolationError, match="ERR packet instead of a greeting"):
        HandshakeV10.parse(b"\xff\x10\x04Too many connections")
    with pytest.raises(ProtocolViolationError, match="protocol version 9"):
        HandshakeV10.parse(b"\x09old\x00")


def test_handshake_response_vector() -> None:
    caps = (
        Capability.LONG_PASSWORD
        | Capability.PROTOCOL_41
        | Capability.SECURE_CONNECTION
        | Capability.PLUGIN_AUTH
        | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
        | Capability.CONNECT_WITH_DB
        | Capability.CONNECT_ATTRS
    )
    attrs = b"\x04_pid\x041234" + b"\x0c_client_name\x00"
    payload = (
        int(caps).to_bytes(4, "little")
        + (16 * 1024 * 1024).to_bytes(4, "little")
        + b"\x2d"  # utf8mb4_general_ci
        + bytes(23)
        + b"alice\x00"
        + b"\x14" + bytes(range(20))  # lenenc auth response
        + b"test\x00"
        + b"mysql_native_password\x00"
        + bytes((len(attrs),)) + attrs
    )
    resp = HandshakeResponse41.parse(payload)
    assert resp.username == "alice"
    assert resp.auth_response == bytes(range(20))
    assert resp.database == "test"
    assert resp.auth_plugin_name == "mysql_native_password"
    assert dict(resp.connect_attrs) == {"_pid": "1234", "_client_name": ""}
    assert resp.character_set == 45
    assert resp.encode() == payload


def test_handshake_response_with_mariadb_extended_capabilities() -> None:
    caps = (
        Capability.PROTOCOL_41
        | Capability.SECURE_CONNECTION
        | Capability.PLUGIN_AUTH
        | Capability.MARIADB_EXTENDED_METADATA
        | Capability.MARIADB_PROGRESS
    )
    resp = HandshakeResponse41(capabilities=caps, username="bob", auth_plugin_name="x")
    raw = resp.encode()
    assert raw[28:32] == (0b1001).to_bytes(4, "little")  # progress | extended metadata
    assert HandshakeResponse41.parse(raw) == resp
    # A MySQL client sets CLIENT_MYSQL; then those bytes are filler and ignored.
    mysql_style = bytearray(raw)
    mysql_style[0] |= 1
    parsed = HandshakeResponse41.parse(bytes(mysql_style))
    assert not parsed.capabilities >> 32


def test_handshake_response_tolerates_missing_optional_tail() -> None:
    caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.CONNECT_WITH_DB
    caps |= Capability.PLUGIN_AUTH | Capability.CONNECT_ATTRS
    payload = int(caps).to_bytes(4, "little") + bytes(4) + b"\x21" + bytes(23) + b"u\x00\x00"
    resp = HandshakeResponse41.parse(payload)
    assert resp.username == "u"
    assert resp.database is None
    assert resp.auth_plugin_name is None
    assert resp.connect_attrs == {}


def test_pre_41_client_is_refused_with_a_reason() -> None:
    with pytest.raises(ProtocolViolationError, match=r"pre-4\.1 handshake"):
        HandshakeResponse41.parse(bytes(40))


def test_user_name_decoded_in_announced_charset() -> None:
    caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION
    latin1 = HandshakeResponse41(capabilities=caps, username="jürgen", character_set=8)
    raw = latin1.encode()
    assert b"j\xfcrgen\x00" in raw
    assert HandshakeResponse41.parse(raw).username == "jürgen"
    utf8 = bytearray(raw)
    utf8[8] = 45  # same bytes claimed as utf8mb4: not valid UTF-8
    with pytest.raises(ProtocolViolationError, match="not valid text"):
        HandshakeResponse41.parse(bytes(utf8))


def test_long_auth_response_needs_lenenc() -> None:
    caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION
    with pytest.raises(ValueError, match="LENENC"):
        HandshakeResponse41(capabilities=caps, username="u", auth_response=b"t" * 300).encode()
    caps |= Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    resp = HandshakeResponse41(capabilities=caps, username="u", auth_response=b"t" * 300)
    assert HandshakeResponse41.parse(resp.encode()).auth_response == b"t" * 300


def test_ssl_request_detection() -> None:
    caps = Capability.PROTOCOL_41 | Capability.SSL | Capability.SECURE_CONNECTION
    raw = SslRequest(caps).encode()
    assert len(raw) == 32
    assert is_ssl_request(raw)
    assert SslRequest.parse(raw) == SslRequest(caps)
    # the full response that follows TLS also has CLIENT_SSL but is longer
    full = HandshakeResponse41(capabilities=caps, username="u").encode()
    assert not is_ssl_request(full)
    # 32 bytes without CLIENT_SSL is not an SSLRequest
    assert not is_ssl_request(SslRequest(Capability.PROTOCOL_41).encode())
    with pytest.raises(ProtocolViolationError, match="SSLRequest"):
        SslRequest.parse(full)


def test_auth_switch_request_vectors() -> None:
    raw = b"\xfemysql_native_password\x00" + b"N" * 20 + b"\x00"
    switch = AuthSwitchRequest.parse(raw)
    assert switch.plugin_name == "mysql_native_password"
    assert switch.nonce == b"N" * 20
    assert switch.encode() == raw
    # ed25519's 32-byte nonce can end in NUL: it is kept whole
    ed = AuthSwitchRequest("client_ed25519", b"\x01" * 31 + b"\x00")
    assert AuthSwitchRequest.parse(ed.encode()).nonce == b"\x01" * 31 + b"\x00"
    # pre-4.1 "old" switch
    assert AuthSwitchRequest.parse(b"\xfe").plugin_name == "mysql_old_password"


def test_auth_more_data() -> None:
    assert AuthMoreData.parse(b"\x01\x03").data == b"\x03"
    assert AuthMoreData(b"\x04").encode() == b"\x01\x04"
    with pytest.raises(ProtocolViolationError):
        AuthMoreData.parse(b"\x00")


names = st.text(st.characters(blacklist_characters="\x00", codec="utf-8"), max_size=20)


@given(
    caps=st.integers(0, 0xFFFFFFFF),
    ext=st.integers(0, 0xFF),
    username=names,
    auth=st.binary(max_size=255),
    database=st.none() | names,
    plugin=st.none() | st.from_regex(r"[a-z_0-9]{1,20}", fullmatch=True),
    attrs=st.dictionaries(names, names, max_size=4),
)
def test_handshake_response_round_trip(
    caps: int,
    ext: int,
    username: str,
    auth: bytes,
    database: str | None,
    plugin: str | None,
    attrs: dict[str, str],
) -> None:
    caps |= Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION
    caps &= ~Capability.ZSTD_COMPRESSION_ALGORITHM
    if not caps & CLIENT_MYSQL:
        caps |= ext << 32
    if not caps & Capability.CONNECT_WITH_DB:
        database = None
    elif database is None:
        database = ""
    if not caps & Capability.PLUGIN_AUTH:
        plugin = None
    elif plugin is None:
        plugin = ""
    if not caps & Capability.CONNECT_ATTRS:
        attrs = {}
    resp = HandshakeResponse41(
        capabilities=caps,
        username=username,
        auth_response=auth,
        database=database,
        auth_plugin_name=plugin,
        connect_attrs=attrs,
    )
    parsed = HandshakeResponse41.parse(resp.encode())
    assert parsed.auth_plugin_name == plugin
    assert parsed.username == username
    assert parsed.auth_response == auth
    assert parsed.database == database
    assert dict(parsed.connect_attrs) == attrs
    assert parsed.capabilities == caps


@given(
    version=st.from_regex(r"[0-9a-zA-Z.\-+]{1,40}", fullmatch=True),
    conn=st.integers(0, 0xFFFFFFFF),
    nonce=st.binary(min_size=20, max_size=20).filter(lambda b: not b.endswith(b"\x00")),
    caps=st.integers(0, (1 << 37) - 1),
)
def test_greeting_round_trip(version: str, conn: int, nonce: bytes, caps: int) -> None:
    caps |= Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH | Capability.PROTOCOL_41
    if caps & CLIENT_MYSQL:
        caps &= 0xFFFFFFFF
    hello = HandshakeV10(version, conn, nonce, caps, auth_plugin_name="client_ed25519")
    assert HandshakeV10.parse(hello.encode()) == hello
