"""Connection-phase messages: greeting, SSLRequest, handshake response, auth switch, more data.

Owns the byte layouts of the packets exchanged before a connection is authenticated,
in both directions: the server's ``HandshakeV10`` greeting, the client's ``SSLRequest``
and ``HandshakeResponse41`` (with ``CLIENT_CONNECT_ATTRS``, ``CLIENT_PLUGIN_AUTH`` and
MariaDB's extended capabilities), ``AuthSwitchRequest`` and ``AuthMoreData``. Each message
is a frozen dataclass with ``parse(payload)`` and ``encode() -> payload``; framing and the
order of the exchange live in :mod:`.packets` and :mod:`.login`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wardgate.core.errors import ProtocolViolationError

from .charsets import UTF8MB4_GENERAL_CI, text_codec
from .constants import (
    AUTH_MORE_DATA_HEADER,
    AUTH_SWITCH_HEADER,
    CLIENT_MYSQL,
    Capability,
    ServerStatus,
)
from .wire import Buffer, PayloadReader, lenenc_bytes, lenenc_int, null_terminated

PROTOCOL_VERSION = 10
#: Length of the nonce ("scramble") mysql_native_password and caching_sha2_password use.
SCRAMBLE_LENGTH = 20
#: Size of an SSLRequest payload: capabilities, max packet size, charset, 23 filler bytes.
SSL_REQUEST_LENGTH = 32
#: MySQL's client default for max_packet_size in the handshake response.
DEFAULT_MAX_PACKET_SIZE = 16 * 1024 * 1024

LOW_32 = 0xFFFFFFFF


def _decode(raw: bytes, collation_id: int, what: str) -> str:
    try:
        return raw.decode(text_codec(collation_id))
    except UnicodeDecodeError as exc:
        raise ProtocolViolationError(
            f"{what} is not valid text in the announced character set "
            f"(collation id {collation_id}): {exc.reason}"
        ) from None


@dataclass(frozen=True, slots=True)
class HandshakeV10:
    """The server greeting (``Protocol::HandshakeV10``)."""

    server_version: str
    connection_id: int
    auth_plugin_data: bytes  # the nonce, without the trailing NUL
    capabilities: int
    character_set: int = UTF8MB4_GENERAL_CI
    status_flags: int = ServerStatus.AUTOCOMMIT
    auth_plugin_name: str = "mysql_native_password"
    protocol_version: int = PROTOCOL_VERSION

    @property
    def is_mariadb(self) -> bool:
        """MariaDB 10.2+ clears CLIENT_MYSQL; older ones say so in the version string."""
        return not self.capabilities & CLIENT_MYSQL or "MariaDB" in self.server_version

    @classmethod
    def parse(cls, payload: Buffer) -> HandshakeV10:
        r = PayloadReader(payload, "HandshakeV10")
        version = r.u8("protocol version")
        if version != PROTOCOL_VERSION:
            if version == 0xFF:
                raise ProtocolViolationError(
                    "server refused the connection before the handshake (ERR packet "
                    "instead of a greeting); parse it with ErrPacket.parse"
                )
            raise ProtocolViolationError(
                f"unsupported handshake protocol version {version}; only 10 is spoken"
            )
        server_version = r.null_terminated("server version").decode("utf-8", "replace")
        connection_id = r.u32("connection id")
        part1 = r.fixed(8, "auth-plugin-data-part-1")
        r.skip(1)
        caps = r.u16("capability flags (lower)")
        character_set = 0
        status = 0
        data_len = 0
        part2 = b""
        plugin = ""
        if not r.at_end:
            character_set = r.u8("character set")
            status = r.u16("status flags")
            caps |= r.u16("capability flags (upper)") << 16
            data_len = r.u8("auth plugin data length")
            r.skip(6, "reserved")
            ext = r.u32("MariaDB extended capabilities")
            if not caps & CLIENT_MYSQL:
                caps |= ext << 32
            if caps & Capability.SECURE_CONNECTION:
                part2 = r.fixed(max(13, data_len - 8), "auth-plugin-data-part-2")
                # part 2 ends with a NUL that is not part of the nonce
                if data_len:
                    part2 = part2[: max(data_len - 9, 0)]
                elif part2.endswith(b"\x00"):
                    part2 = part2[:-1]
            if caps & Capability.PLUGIN_AUTH:
                # MySQL 5.5.7-5.5.9 forgot the final NUL; tolerate it.
                plugin = r.null_terminated_or_rest("auth plugin name").decode("ascii", "replace")
        return cls(
            server_version=server_version,
            connection_id=connection_id,
            auth_plugin_data=part1 + part2,
            capabilities=caps,
            character_set=character_set,
            status_flags=status,
            auth_plugin_name=plugin,
            protocol_version=version,
        )

    def encode(self) -> bytes:
        data = self.auth_plugin_data
        if len(data) < 8:
            raise ValueError("auth_plugin_data must be at least 8 bytes")
        caps = self.capabilities
        ext = 0 if caps & CLIENT_MYSQL else (caps >> 32) & LOW_32
        part2 = data[8:] + b"\x00"
        part2 = part2.ljust(13, b"\x00")
        out = [
            bytes((self.protocol_version,)),
            null_terminated(self.server_version.encode("utf-8"), "server version"),
            self.connection_id.to_bytes(4, "little"),
            data[:8],
            b"\x00",
            (caps & 0xFFFF).to_bytes(2, "little"),
            bytes((self.character_set & 0xFF,)),
            self.status_flags.to_bytes(2, "little"),
            ((caps >> 16) & 0xFFFF).to_bytes(2, "little"),
            bytes((len(data) + 1 if caps & Capability.PLUGIN_AUTH else 0,)),
            bytes(6),
            ext.to_bytes(4, "little"),
        ]
        if caps & Capability.SECURE_CONNECTION:
            out.append(part2)
        if caps & Capability.PLUGIN_AUTH:
            out.append(null_terminated(self.auth_plugin_name.encode("ascii"), "plugin name"))
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class SslRequest:
    """The truncated handshake response a client sends to ask for TLS (``CLIENT_SSL``)."""

    capabilities: int
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    character_set: int = UTF8MB4_GENERAL_CI

    @classmethod
    def parse(cls, payload: Buffer) -> SslRequest:
        if not is_ssl_request(payload):
            raise ProtocolViolationError(
                "expected an SSLRequest (32 bytes with CLIENT_SSL set); got something else"
            )
        r = PayloadReader(payload, "SSLRequest")
        caps = r.u32()
        max_packet = r.u32()
        charset = r.u8()
        r.skip(19)
        ext = r.u32()
        if not caps & CLIENT_MYSQL:
            caps |= ext << 32
        return cls(caps, max_packet, charset)

    def encode(self) -> bytes:
        return _response_prefix(self.capabilities, self.max_packet_size, self.character_set)


def is_ssl_request(payload: Buffer) -> bool:
    """True if ``payload`` is an SSLRequest rather than a full handshake response.

    A full HandshakeResponse41 is always longer than 32 bytes (it has at least a user
    name terminator after the 32-byte prefix), so length plus ``CLIENT_SSL`` decides.
    """
    if len(payload) != SSL_REQUEST_LENGTH:
        return False
    caps = int.from_bytes(bytes(payload[:4]), "little")
    return bool(caps & Capability.SSL)


def _response_prefix(caps: int, max_packet_size: int, charset: int) -> bytes:
    ext = 0 if caps & CLIENT_MYSQL else (caps >> 32) & LOW_32
    return (
        (caps & LOW_32).to_bytes(4, "little")
        + max_packet_size.to_bytes(4, "little")
        + bytes((charset & 0xFF,))
        + bytes(19)
        + ext.to_bytes(4, "little")
    )


@dataclass(frozen=True, slots=True)
class HandshakeResponse41:
    """The client's answer to the greeting (``Protocol::HandshakeResponse41``).

    Text fields are decoded with the character set the client announced. Optional fields
    the client's capabilities promise but the packet omits (some drivers stop early)
    parse as absent rather than failing.
    """

    capabilities: int
    username: str
    auth_response: bytes = b""
    database: str | None = None
    auth_plugin_name: str | None = None
    connect_attrs: Mapping[str, str] = field(default_factory=dict)
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    character_set: int = UTF8MB4_GENERAL_CI
    zstd_compression_level: int | None = None

    @classmethod
    def parse(cls, payload: Buffer) -> HandshakeResponse41:
        r = PayloadReader(payload, "HandshakeResponse41")
        caps = r.u32("client capabilities")
        if not caps & Capability.PROTOCOL_41:
            raise ProtocolViolationError(
                "client uses the pre-4.1 handshake (CLIENT_PROTOCOL_41 not set); "
                "wardgate needs a MySQL 4.1+ client library"
            )
        max_packet = r.u32("max packet size")
        charset = r.u8("character set")
        r.skip(19, "filler")
        ext = r.u32("MariaDB extended capabilities")
        if not caps & CLIENT_MYSQL:
            caps |= ext << 32
        codec_id = charset
        username = _decode(r.null_terminated("user name"), codec_id, "user name")
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth = r.lenenc_bytes("auth response")
        elif caps & Capability.SECURE_CONNECTION:
            auth = r.fixed(r.u8("auth response length"), "auth response")
        else:
            auth = r.null_terminated("auth response")
        database = None
        if caps & Capability.CONNECT_WITH_DB and not r.at_end:
            database = _decode(r.null_terminated_or_rest("database"), codec_id, "database")
        plugin = None
        if caps & Capability.PLUGIN_AUTH and not r.at_end:
            plugin = r.null_terminated_or_rest("auth plugin name").decode("ascii", "replace")
        attrs: dict[str, str] = {}
        if caps & Capability.CONNECT_ATTRS and not r.at_end:
            total = r.lenenc_int("connect attrs length")
            block = PayloadReader(r.fixed_view(total, "connect attrs"), "connect attrs")
            while not block.at_end:
                key = block.lenenc_bytes("attribute name").decode("utf-8", "replace")
                attrs[key] = block.lenenc_bytes("attribute value").decode("utf-8", "replace")
        zstd = None
        if caps & Capability.ZSTD_COMPRESSION_ALGORITHM and not r.at_end:
            zstd = r.u8("zstd compression level")
        return cls(
            capabilities=caps,
            username=username,
            auth_response=auth,
            database=database,
            auth_plugin_name=plugin,
            connect_attrs=attrs,
            max_packet_size=max_packet,
            character_set=charset,
            zstd_compression_level=zstd,
        )

    def encode(self) -> bytes:
        caps = self.capabilities
        codec = text_codec(self.character_set)
        out = [
            _response_prefix(caps, self.max_packet_size, self.character_set),
            null_terminated(self.username.encode(codec), "user name"),
        ]
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            out.append(lenenc_bytes(self.auth_response))
        elif caps & Capability.SECURE_CONNECTION:
            if len(self.auth_response) > 255:
                raise ValueError(
                    "auth response longer than 255 bytes needs "
                    "CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA"
                )
            out.append(bytes((len(self.auth_response),)) + self.auth_response)
        else:
            out.append(null_terminated(self.auth_response, "auth response"))
        if caps & Capability.CONNECT_WITH_DB:
            out.append(null_terminated((self.database or "").encode(codec), "database"))
        if caps & Capability.PLUGIN_AUTH:
            out.append(null_terminated((self.auth_plugin_name or "").encode("ascii"), "plugin"))
        if caps & Capability.CONNECT_ATTRS:
            block = b"".join(
                lenenc_bytes(k.encode("utf-8")) + lenenc_bytes(v.encode("utf-8"))
                for k, v in self.connect_attrs.items()
            )
            out.append(lenenc_int(len(block)) + block)
        if caps & Capability.ZSTD_COMPRESSION_ALGORITHM:
            out.append(bytes((self.zstd_compression_level or 3,)))
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class AuthSwitchRequest:
    """Server → client: continue with another auth plugin (``0xFE`` + name + data).

    ``plugin_data`` is exactly what followed the name. MySQL-style servers append a NUL
    to a 20-byte nonce; use :attr:`nonce` for the scramble, which drops it where the
    plugin's nonce is NUL-terminated (ed25519's 32-byte nonce is sent as is).
    """

    plugin_name: str
    plugin_data: bytes = b""

    @classmethod
    def parse(cls, payload: Buffer) -> AuthSwitchRequest:
        r = PayloadReader(payload, "AuthSwitchRequest")
        if r.u8() != AUTH_SWITCH_HEADER:
            raise ProtocolViolationError("AuthSwitchRequest must start with 0xFE")
        if r.at_end:
            # Pre-4.1 "old auth switch": switch to mysql_old_password with the greeting nonce.
            return cls("mysql_old_password", b"")
        name = r.null_terminated_or_rest("plugin name").decode("ascii", "replace")
        return cls(name, r.rest())

    @property
    def nonce(self) -> bytes:
        data = self.plugin_data
        if self.plugin_name == "client_ed25519":
            return data
        if len(data) == SCRAMBLE_LENGTH + 1 and data.endswith(b"\x00"):
            return data[:-1]
        return data

    def encode(self) -> bytes:
        return (
            bytes((AUTH_SWITCH_HEADER,))
            + null_terminated(self.plugin_name.encode("ascii"), "plugin name")
            + self.plugin_data
        )


@dataclass(frozen=True, slots=True)
class AuthMoreData:
    """Server → client: plugin-specific data (``0x01`` + data), e.g. caching_sha2's 3/4."""

    data: bytes

    @classmethod
    def parse(cls, payload: Buffer) -> AuthMoreData:
        r = PayloadReader(payload, "AuthMoreData")
        if r.u8() != AUTH_MORE_DATA_HEADER:
            raise ProtocolViolationError("AuthMoreData must start with 0x01")
        return cls(r.rest())

    def encode(self) -> bytes:
        return bytes((AUTH_MORE_DATA_HEADER,)) + self.data
