"""The connection phase as two sans-I/O state machines, one per side of the gateway.

Owns the order of the login exchange and its sequence ids:

* :class:`DownstreamLogin` — wardgate plays the *server* toward a client: greets, honours
  an SSLRequest, switches the client to ``mysql_clear_password`` (a wardgate token does
  not fit a 20-byte scramble), hands the proxy the presented user, token and schema,
  and frames the OK or ERR the proxy decides on. Also re-authenticates COM_CHANGE_USER.
* :class:`UpstreamLogin` — wardgate plays the *client* toward the target with the
  credential it holds: answers the greeting (optionally after TLS), follows auth
  switches and AuthMoreData for mysql_native_password, caching_sha2_password (fast and
  full path, RSA or TLS), sha256_password, client_ed25519 and mysql_clear_password.

Both consume :class:`~.packets.Packet` objects from a :class:`~.packets.PacketFramer` and
return steps telling the proxy what to write; neither touches a socket.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Literal

from wardgate.core.errors import ProtocolViolationError, TargetUnavailableError

from . import auth
from .charsets import UTF8MB4_GENERAL_CI
from .constants import (
    AUTH_MORE_DATA_HEADER,
    AUTH_SWITCH_HEADER,
    CODEC_CAPABILITIES,
    ERR_HEADER,
    GATEWAY_CAPABILITIES,
    OK_HEADER,
    Capability,
    ServerStatus,
)
from .errors import ErrorCode, error_packet
from .handshake import (
    DEFAULT_MAX_PACKET_SIZE,
    SCRAMBLE_LENGTH,
    AuthSwitchRequest,
    HandshakeResponse41,
    HandshakeV10,
    SslRequest,
    is_ssl_request,
)
from .messages import ChangeUser, ErrPacket, OkPacket
from .packets import Packet, encode_packet

#: The version string wardgate greets with unless the adapter mirrors the target's. The
#: "5.5.5-" prefix is what MariaDB sends for old replication clients; drivers (Connector/J,
#: mysql2) look for "MariaDB" to pick MariaDB behaviour.
DEFAULT_SERVER_VERSION = "5.5.5-10.11.0-MariaDB-wardgate"

#: What wardgate asks a target for by default (intersected with what the target offers).
UPSTREAM_CAPABILITIES = CODEC_CAPABILITIES & ~(
    Capability.LOCAL_FILES
    | Capability.SSL
    | Capability.SSL_VERIFY_SERVER_CERT
    | Capability.REMEMBER_OPTIONS
    | Capability.INTERACTIVE
    | Capability.MARIADB_PROGRESS
)

TlsMode = Literal["disabled", "preferred", "required"]

_MAX_AUTH_SWITCHES = 3


def _nonce() -> bytes:
    # Printable, NUL-free bytes, like MySQL's own scramble (some clients treat it as a
    # C string).
    return bytes(33 + b % 94 for b in os.urandom(SCRAMBLE_LENGTH))


# -- steps the proxy acts on -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``data`` (framed packets) to the peer, then feed the next packet."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StartTls:
    """Write ``data`` (an SSLRequest, if any), wrap the socket in TLS, then call
    ``tls_started()``. Downstream: hand the framer's :meth:`detach_buffer` bytes to TLS."""

    data: bytes = b""


@dataclass(frozen=True, slots=True)
class LoginSucceeded:
    """Upstream login done. ``capabilities`` are the ones agreed with the target."""

    ok: OkPacket
    capabilities: int
    handshake: HandshakeV10
    plugin: str
    tls: bool


@dataclass(frozen=True, slots=True)
class LoginRejected:
    """The target refused the login (bad credential, unknown schema, host blocked…)."""

    error: ErrPacket


@dataclass(frozen=True, slots=True)
class CredentialsPresented:
    """Downstream: the client presented these; verify them, then ``accept()`` or ``reject()``."""

    username: str
    token: bytes
    database: str | None
    connect_attrs: Mapping[str, str]
    capabilities: int
    character_set: int
    tls: bool


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """Downstream: the login cannot proceed; write ``data`` (an ERR) and close."""

    data: bytes
    error: ErrPacket


# -- wardgate as the server -------------------------------------------------------------------


class _Down(Enum):
    GREETED = auto()
    TLS = auto()
    AFTER_TLS = auto()
    SWITCHED = auto()
    VERIFYING = auto()
    DONE = auto()


@dataclass(slots=True)
class DownstreamLogin:
    """Authenticate a client with a wardgate token over ``mysql_clear_password``.

    ``capabilities`` are what wardgate announces (``SSL`` is added when ``tls_available``).
    Cleartext tokens travel only inside TLS unless ``allow_cleartext_without_tls`` (meant
    for loopback) says otherwise.
    """

    connection_id: int
    server_version: str = DEFAULT_SERVER_VERSION
    capabilities: int = GATEWAY_CAPABILITIES
    character_set: int = UTF8MB4_GENERAL_CI
    tls_available: bool = False
    allow_cleartext_without_tls: bool = False
    nonce: bytes = field(default_factory=_nonce)
    #: Filled in as the exchange proceeds.
    response: HandshakeResponse41 | None = field(default=None, init=False)
    negotiated: int = field(default=0, init=False)
    tls: bool = field(default=False, init=False)
    _state: _Down = field(default=_Down.GREETED, init=False)
    _seq: int = field(default=1, init=False)

    @property
    def announced(self) -> int:
        caps = self.capabilities | Capability.PROTOCOL_41 | Capability.PLUGIN_AUTH
        caps |= Capability.SECURE_CONNECTION
        if self.tls_available:
            caps |= Capability.SSL
        else:
            caps &= ~Capability.SSL
        return caps

    def greeting(self) -> bytes:
        """The framed HandshakeV10 to write as soon as the client connects."""
        hello = HandshakeV10(
            server_version=self.server_version,
            connection_id=self.connection_id,
            auth_plugin_data=self.nonce,
            capabilities=self.announced,
            character_set=self.character_set,
            status_flags=ServerStatus.AUTOCOMMIT,
            auth_plugin_name=auth.NATIVE_PASSWORD,
        )
        return encode_packet(0, hello.encode())

    def _frame(self, payload: bytes) -> bytes:
        data = encode_packet(self._seq, payload)
        self._seq = (self._seq + 1) & 0xFF
        return data

    def _check_seq(self, packet: Packet) -> None:
        if packet.seq != self._seq:
            raise ProtocolViolationError(
                f"client packet has sequence id {packet.seq}, expected {self._seq} during login"
            )
        self._seq = packet.next_seq

    def _refuse(self, code: ErrorCode, message: str) -> LoginRefused:
        err = error_packet(code, message)
        self._state = _Down.DONE
        return LoginRefused(self._frame(err.encode(self.negotiated or Capability.PROTOCOL_41)), err)

    def tls_started(self) -> None:
        """The proxy finished the TLS handshake the client asked for."""
        if self._state is not _Down.TLS:
            raise ProtocolViolationError("TLS started without an SSLRequest")
        self.tls = True
        self._state = _Down.AFTER_TLS

    def receive(self, packet: Packet) -> StartTls | Send | CredentialsPresented | LoginRefused:
        self._check_seq(packet)
        payload = packet.payload
        if self._state in (_Down.GREETED, _Down.AFTER_TLS):
            if self._state is _Down.GREETED and is_ssl_request(payload):
                if not self.tls_available:
                    return self._refuse(
                        ErrorCode.HANDSHAKE_ERROR,
                        "the client asked for TLS but this wardgate listener has no "
                        "certificate configured; connect without TLS only where the "
                        "listener allows it",
                    )
                SslRequest.parse(payload)
                self._state = _Down.TLS
                return StartTls()
            return self._handshake_response(payload)
        if self._state is _Down.SWITCHED:
            return self._presented(bytes(payload))
        raise ProtocolViolationError(f"unexpected client packet in login state {self._state.name}")

    def _handshake_response(
        self, payload: memoryview
    ) -> Send | CredentialsPresented | LoginRefused:
        try:
            response = HandshakeResponse41.parse(payload)
        except ProtocolViolationError as exc:
            return self._refuse(ErrorCode.HANDSHAKE_ERROR, f"bad handshake: {exc}")
        self.response = response
        self.negotiated = response.capabilities & self.announced
        if not self.tls:
            self.negotiated &= ~Capability.SSL
        if not (self.tls or self.allow_cleartext_without_tls):
            return self._refuse(
                ErrorCode.ACCESS_DENIED,
                "wardgate accepts tokens only over TLS (mysql_clear_password); connect with "
                "TLS enabled (mariadb/mysql: --ssl, pymysql: ssl={...}, Connector/J: "
                "sslMode=REQUIRED)",
            )
        if response.auth_plugin_name == auth.CLEAR_PASSWORD:
            return self._presented(response.auth_response)
        if not response.capabilities & Capability.PLUGIN_AUTH:
            return self._refuse(
                ErrorCode.NOT_SUPPORTED_AUTH_MODE,
                "the client cannot switch authentication plugins (no CLIENT_PLUGIN_AUTH); "
                "wardgate needs mysql_clear_password support",
            )
        self._state = _Down.SWITCHED
        switch = AuthSwitchRequest(auth.CLEAR_PASSWORD, self.nonce + b"\x00")
        return Send(self._frame(switch.encode()))

    def _presented(self, raw: bytes) -> CredentialsPresented:
        response = self.response
        assert response is not None
        token = raw[:-1] if raw.endswith(b"\x00") else raw
        self._state = _Down.VERIFYING
        return CredentialsPresented(
            username=response.username,
            token=token,
            database=response.database,
            connect_attrs=response.connect_attrs,
            capabilities=self.negotiated,
            character_set=response.character_set,
            tls=self.tls,
        )

    def accept(self, ok: OkPacket | None = None) -> bytes:
        """The framed OK that completes the login (call after verifying the token)."""
        if self._state is not _Down.VERIFYING:
            raise ProtocolViolationError("accept() before the client presented credentials")
        self._state = _Down.DONE
        return self._frame((ok or OkPacket()).encode(self.negotiated))

    def reject(self, error: ErrPacket) -> bytes:
        """The framed ERR that ends the login; close the connection after writing it."""
        self._state = _Down.DONE
        return self._frame(error.encode(self.negotiated or Capability.PROTOCOL_41))

    def change_user(self, packet: Packet) -> Send:
        """Start re-authentication for a COM_CHANGE_USER the client sent after login.

        Returns the auth switch to write; the client's answer goes to :meth:`receive`,
        which yields :class:`CredentialsPresented` for the new user as at first login.
        """
        if self._state is not _Down.DONE:
            raise ProtocolViolationError("COM_CHANGE_USER before the login completed")
        cmd = ChangeUser.parse(packet.payload, self.negotiated)
        base = self.response
        self.response = HandshakeResponse41(
            capabilities=self.negotiated,
            username=cmd.username,
            auth_response=cmd.auth_response,
            database=cmd.database,
            auth_plugin_name=cmd.auth_plugin_name,
            connect_attrs=cmd.connect_attrs,
            max_packet_size=base.max_packet_size if base else DEFAULT_MAX_PACKET_SIZE,
            character_set=cmd.character_set,
        )
        self._seq = packet.next_seq
        self._state = _Down.SWITCHED
        self.nonce = _nonce()
        switch = AuthSwitchRequest(auth.CLEAR_PASSWORD, self.nonce + b"\x00")
        return Send(self._frame(switch.encode()))


# -- wardgate as the client -------------------------------------------------------------------


class _Up(Enum):
    GREETING = auto()
    TLS = auto()
    AUTH = auto()
    SHA2_FULL = auto()  # caching_sha2 asked for full auth; public key requested
    SHA256_KEY = auto()  # sha256_password public key requested
    DONE = auto()


_SUPPORTED_PLUGINS = frozenset(
    {
        auth.NATIVE_PASSWORD,
        auth.CACHING_SHA2_PASSWORD,
        auth.SHA256_PASSWORD,
        auth.ED25519,
        auth.CLEAR_PASSWORD,
    }
)


@dataclass(slots=True)
class UpstreamLogin:
    """Log in to a target as ``username`` with the credential wardgate holds.

    ``capabilities`` are requested and intersected with the target's. With
    ``tls="required"`` a target without TLS is refused; the cleartext paths
    (mysql_clear_password, caching_sha2 full auth without an RSA key) are used only over
    TLS unless ``allow_cleartext_without_tls`` is set. ``server_public_key`` (PEM) saves
    the public-key round trip of caching_sha2_password's full path.
    """

    username: str
    password: bytes
    database: str | None = None
    capabilities: int = UPSTREAM_CAPABILITIES
    character_set: int = UTF8MB4_GENERAL_CI
    connect_attrs: Mapping[str, str] = field(default_factory=dict)
    tls: TlsMode = "disabled"
    server_public_key: bytes | None = None
    allow_cleartext_without_tls: bool = False
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    allowed_plugins: frozenset[str] = _SUPPORTED_PLUGINS
    #: Filled in as the exchange proceeds.
    handshake: HandshakeV10 | None = field(default=None, init=False)
    negotiated: int = field(default=0, init=False)
    secure: bool = field(default=False, init=False)
    plugin: str = field(default=auth.NATIVE_PASSWORD, init=False)
    _nonce: bytes = field(default=b"", init=False)
    _state: _Up = field(default=_Up.GREETING, init=False)
    _seq: int = field(default=0, init=False)
    _switches: int = field(default=0, init=False)

    def _frame(self, payload: bytes) -> bytes:
        data = encode_packet(self._seq, payload)
        self._seq = (self._seq + 1) & 0xFF
        return data

    def receive(self, packet: Packet) -> Send | StartTls | LoginSucceeded | LoginRejected | None:
        """Consume one server packet. ``None`` means: nothing to write, feed the next one."""
        if packet.seq != self._seq:
            raise ProtocolViolationError(
                f"target packet has sequence id {packet.seq}, expected {self._seq} during login"
            )
        self._seq = packet.next_seq
        payload = packet.payload
        if not len(payload):
            raise ProtocolViolationError("the target sent an empty packet during login")
        first = payload[0]
        if first == ERR_HEADER:
            self._state = _Up.DONE
            return LoginRejected(ErrPacket.parse(payload))
        if self._state is _Up.GREETING:
            return self._greeting(HandshakeV10.parse(payload))
        if self._state in (_Up.DONE, _Up.TLS):
            raise ProtocolViolationError(f"unexpected target packet in state {self._state.name}")
        if first == OK_HEADER:
            self._state = _Up.DONE
            assert self.handshake is not None
            return LoginSucceeded(
                ok=OkPacket.parse(payload, self.negotiated),
                capabilities=self.negotiated,
                handshake=self.handshake,
                plugin=self.plugin,
                tls=self.secure,
            )
        if first == AUTH_SWITCH_HEADER:
            self._switches += 1
            if self._switches > _MAX_AUTH_SWITCHES:
                raise ProtocolViolationError("the target keeps switching auth plugins")
            switch = AuthSwitchRequest.parse(payload)
            self.plugin = switch.plugin_name
            self._nonce = switch.nonce
            self._state = _Up.AUTH
            return Send(self._frame(self._first_answer()))
        if first == AUTH_MORE_DATA_HEADER:
            return self._more_data(bytes(payload[1:]))
        raise ProtocolViolationError(
            f"unexpected packet 0x{first:02x} from the target during login"
        )

    def _greeting(self, hello: HandshakeV10) -> Send | StartTls:
        self.handshake = hello
        self._nonce = hello.auth_plugin_data
        self.plugin = hello.auth_plugin_name or auth.NATIVE_PASSWORD
        caps = self.capabilities & hello.capabilities
        caps |= Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION
        if not hello.capabilities & Capability.PROTOCOL_41:
            raise TargetUnavailableError(
                f"the target ({hello.server_version}) does not speak the 4.1 protocol"
            )
        if self.database:
            caps |= Capability.CONNECT_WITH_DB & hello.capabilities
        else:
            caps &= ~Capability.CONNECT_WITH_DB
        caps &= ~Capability.SSL
        want_tls = self.tls != "disabled"
        if want_tls and hello.capabilities & Capability.SSL:
            caps |= Capability.SSL
        elif self.tls == "required":
            raise TargetUnavailableError(
                f"the target ({hello.server_version}) does not offer TLS but the target's "
                "tls setting is 'required'; enable TLS on the server or relax the setting"
            )
        self.negotiated = caps
        if caps & Capability.SSL:
            self._state = _Up.TLS
            request = SslRequest(caps, self.max_packet_size, self.character_set)
            return StartTls(self._frame(request.encode()))
        self._state = _Up.AUTH
        return Send(self._frame(self._handshake_response()))

    def tls_started(self) -> Send:
        """The proxy finished the TLS handshake; returns the handshake response to write."""
        if self._state is not _Up.TLS:
            raise ProtocolViolationError("tls_started() without a pending SSLRequest")
        self.secure = True
        self._state = _Up.AUTH
        return Send(self._frame(self._handshake_response()))

    def _handshake_response(self) -> bytes:
        if self.plugin not in (
            auth.NATIVE_PASSWORD,
            auth.CACHING_SHA2_PASSWORD,
            auth.SHA256_PASSWORD,
        ) and not (self.plugin == auth.CLEAR_PASSWORD and self._cleartext_ok()):
            # Answer as native and let the target switch us to the plugin it wants (its
            # greeting nonce is 20 bytes; ed25519 needs the 32 it sends on the switch).
            self.plugin = auth.NATIVE_PASSWORD
        response = HandshakeResponse41(
            capabilities=self.negotiated,
            username=self.username,
            auth_response=self._first_answer(),
            database=self.database,
            auth_plugin_name=self.plugin,
            connect_attrs=dict(self.connect_attrs),
            max_packet_size=self.max_packet_size,
            character_set=self.character_set,
        )
        return response.encode()

    def _cleartext_ok(self) -> bool:
        return self.secure or self.allow_cleartext_without_tls

    def _first_answer(self) -> bytes:
        plugin, password, nonce = self.plugin, self.password, self._nonce
        if plugin not in self.allowed_plugins:
            raise TargetUnavailableError(
                f"the target asks for auth plugin {plugin!r}, which wardgate does not answer "
                f"(allowed: {', '.join(sorted(self.allowed_plugins))}); change the target "
                "account's plugin"
            )
        if plugin == auth.NATIVE_PASSWORD:
            return auth.scramble_native_password(password, nonce)
        if plugin == auth.CACHING_SHA2_PASSWORD:
            return auth.scramble_caching_sha2(password, nonce)
        if plugin == auth.ED25519:
            return auth.ed25519_sign(password, nonce)
        if plugin == auth.CLEAR_PASSWORD:
            if not self._cleartext_ok():
                raise TargetUnavailableError(
                    "the target asks for mysql_clear_password but the upstream connection "
                    "is not TLS; refusing to send the password in clear (set the target's "
                    "tls to 'required')"
                )
            return auth.cleartext_password(password)
        if plugin == auth.SHA256_PASSWORD:
            if self.secure:
                return auth.cleartext_password(password)
            if not password:
                return b"\x00"
            if self.server_public_key:
                return auth.encrypt_password_rsa(password, nonce, self.server_public_key)
            self._state = _Up.SHA256_KEY
            return bytes((auth.SHA256_REQUEST_PUBLIC_KEY,))
        raise TargetUnavailableError(f"auth plugin {plugin!r} is not supported")

    def _more_data(self, data: bytes) -> Send | None:
        if self.plugin == auth.CACHING_SHA2_PASSWORD:
            if self._state is _Up.SHA2_FULL:
                self.server_public_key = data
                return Send(self._frame(self._rsa(data)))
            if data == bytes((auth.CACHING_SHA2_FAST_AUTH_SUCCESS,)):
                return None  # the OK follows
            if data == bytes((auth.CACHING_SHA2_PERFORM_FULL_AUTH,)):
                if self.secure:
                    return Send(self._frame(auth.cleartext_password(self.password)))
                if self.server_public_key:
                    return Send(self._frame(self._rsa(self.server_public_key)))
                self._state = _Up.SHA2_FULL
                return Send(self._frame(bytes((auth.CACHING_SHA2_REQUEST_PUBLIC_KEY,))))
        if self.plugin == auth.SHA256_PASSWORD and self._state is _Up.SHA256_KEY:
            self.server_public_key = data
            self._state = _Up.AUTH
            return Send(self._frame(self._rsa(data)))
        raise ProtocolViolationError(
            f"unexpected AuthMoreData for plugin {self.plugin!r} ({len(data)} bytes)"
        )

    def _rsa(self, key: bytes) -> bytes:
        return auth.encrypt_password_rsa(self.password, self._nonce, key)
