"""The client side of a MySQL/MariaDB connection until the session is established.

Greeting (the target's version string, the gateway's own connection id) → optional
SSLRequest → TLS → the client is switched to ``mysql_clear_password`` and presents a
wardgate token or a JWT as its password (only over TLS, unless ``mysql.
allow_cleartext_without_tls`` says otherwise) → the user name must be the token's
identity and the schema names the target → authorization → the gateway's own login to
the target with the credential it holds → OK → the relay takes over both transports.

The login itself is :class:`~wardgate.proto.mysql.DownstreamLogin` (sans-I/O); this
module only moves its bytes and turns wardgate errors into ERR packets clients show:
1045 for a bad token, 1049 for an unknown target, 1142 for a policy refusal, 2003 when
the target cannot be reached.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl
import weakref
from typing import TYPE_CHECKING

from wardgate.core.errors import (
    AuthenticationError,
    AuthorizationError,
    ProtocolViolationError,
    RecordingUnavailableError,
    TargetUnavailableError,
    UnknownTargetError,
    WardgateError,
)
from wardgate.pipeline.hooks import StatementGate
from wardgate.proto.mysql import (
    CODEC_CAPABILITIES,
    GATEWAY_CAPABILITIES,
    Capability,
    CredentialsPresented,
    DownstreamLogin,
    ErrorCode,
    ErrPacket,
    LoginRefused,
    Packet,
    Send,
    StartTls,
    access_denied,
    encode_packet,
    error_packet,
    error_packet_for,
)
from wardgate.proto.mysql.charsets import text_codec
from wardgate.secrets.providers import resolve_credential
from wardgate.server import metrics
from wardgate.server.handshake_stream import HandshakeStream
from wardgate.server.live import LiveSession, new_session_id
from wardgate.server.mysql_masking import MySqlRowMasker
from wardgate.server.mysql_observer import MySqlObserver
from wardgate.server.mysql_relay import MySqlRelay
from wardgate.server.mysql_upstream import (
    LAYOUT_CAPABILITIES,
    MAX_LOGIN_PACKET,
    TargetProfiles,
    close_politely,
    connect_mysql_upstream,
    read_packet,
)
from wardgate.server.pg_frontend import recording_end_reason

if TYPE_CHECKING:
    from wardgate.config import TargetConfig
    from wardgate.core.model import Principal
    from wardgate.server.gateway import Gateway

log = logging.getLogger("wardgate.mysql")

#: Capabilities that only shape the login; the gateway's own login chooses them.
_LOGIN_ONLY = (
    Capability.SSL
    | Capability.SSL_VERIFY_SERVER_CERT
    | Capability.LOCAL_FILES
    | Capability.CONNECT_WITH_DB
    | Capability.CONNECT_ATTRS
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CAN_HANDLE_EXPIRED_PASSWORDS
)
_UPSTREAM_LOGIN = (
    Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CONNECT_ATTRS
)

_profiles: weakref.WeakKeyDictionary[Gateway, TargetProfiles] = weakref.WeakKeyDictionary()


def target_profiles(gw: Gateway) -> TargetProfiles:
    profiles = _profiles.get(gw)
    if profiles is None:
        profiles = _profiles[gw] = TargetProfiles()
    return profiles


class _LoginRefusedError(Exception):
    """The login state machine already wrote its ERR; only book the failure."""

    def __init__(self, reason: str, error: ErrPacket) -> None:
        super().__init__(error.message)
        self.reason = reason


class MySqlFrontend(HandshakeStream):
    def __init__(self, gateway: Gateway) -> None:
        super().__init__(max_buffer=MAX_LOGIN_PACKET)
        self.gw = gateway
        self.task: asyncio.Task[None] | None = None
        self.live: LiveSession | None = None
        self.login: DownstreamLogin | None = None
        self.relay: MySqlRelay | None = None
        self._peer_host = ""
        self._user = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._peer_host = peer[0] if isinstance(peer, tuple) else ""
        self.live = LiveSession(id=new_session_id(), protocol="mysql", client_addr=addr)
        self.task = asyncio.get_running_loop().create_task(self._run())

    # ------------------------------------------------------------------------ outcome
    async def _run(self) -> None:
        assert self.live is not None
        live = self.live
        gw = self.gw
        try:
            await asyncio.wait_for(self._handshake(live), timeout=gw.cfg.limits.startup_timeout)
            return
        except TimeoutError:
            self._refuse(error_packet(ErrorCode.HANDSHAKE_ERROR, "wardgate: login timed out"))
            reason, detail = "startup_timeout", None
        except _LoginRefusedError as e:
            if e.reason == "auth_failed":
                metrics.AUTH_FAILURES.labels("mysql").inc()
            reason, detail = e.reason, str(e)
        except AuthenticationError as e:
            metrics.AUTH_FAILURES.labels("mysql").inc()
            log.info("mysql auth failed from %s: %s", live.client_addr, e)
            user = live.principal.name if live.principal else self._user
            self._refuse(access_denied(user))
            reason, detail = "auth_failed", str(e)
        except UnknownTargetError as e:
            self._refuse(error_packet_for(e))
            reason, detail = "unknown_target", str(e)
        except AuthorizationError as e:
            text = str(e) if str(e).startswith("wardgate") else f"wardgate: {e}"
            self._refuse(error_packet(ErrorCode.TABLEACCESS_DENIED, text, "42000"))
            reason, detail = "denied", str(e)
        except TargetUnavailableError as e:
            self._refuse(error_packet_for(e))
            reason, detail = "target_unavailable", str(e)
        except RecordingUnavailableError as e:
            self._refuse(error_packet(ErrorCode.OPTION_PREVENTS_STATEMENT, f"wardgate: {e}"))
            reason, detail = "recording_unavailable", str(e)
        except ProtocolViolationError as e:
            self._refuse(error_packet(ErrorCode.HANDSHAKE_ERROR, f"wardgate: {e}"))
            reason, detail = "protocol_error", str(e)
        except (ConnectionResetError, BrokenPipeError):
            if self.transport is not None:
                self.transport.close()
            reason, detail = "client_eof", "client left during login"
        except WardgateError as e:
            self._refuse(error_packet(ErrorCode.UNKNOWN_ERROR, f"wardgate: {e}"))
            reason, detail = "error", str(e)
        except Exception as e:
            log.exception("unexpected error during mysql login")
            self._refuse(
                error_packet(
                    ErrorCode.UNKNOWN_ERROR,
                    "wardgate: internal error during login; see the gateway log",
                )
            )
            reason, detail = "error", repr(e)
        gw.live.remove(live)  # frees the connection id handed out in the greeting
        gw.session_failed(live, reason, detail)

    def _refuse(self, err: ErrPacket) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if self.login is not None:
            t.write(self.login.reject(err))
        else:
            t.write(encode_packet(0, err.encode()))
        t.close()

    # ------------------------------------------------------------------------ login
    async def _handshake(self, live: LiveSession) -> None:
        gw = self.gw
        cfg = gw.cfg
        assert self.transport is not None
        profiles = target_profiles(gw)
        await profiles.ensure(cfg)
        version, withheld = profiles.greeting(cfg)
        connection_id, _ = gw.live.assign_cancel_key(live)
        caps = GATEWAY_CAPABILITIES & ~withheld
        if cfg.mysql.allow_local_infile:
            caps |= Capability.LOCAL_FILES
        login = self.login = DownstreamLogin(
            connection_id=connection_id,
            server_version=version,
            capabilities=caps,
            tls_available=gw.client_tls is not None,
            allow_cleartext_without_tls=self._cleartext_allowed(),
        )
        if self.transport.is_closing():
            # Gone before the greeting (a port probe, a load balancer's health check).
            raise ConnectionResetError("the client closed the connection before the greeting")
        # The client's first packet is read from the socket itself (see _first_packet).
        # Paused here, not in connection_made: uvloop starts reading after that returns.
        self.transport.pause_reading()
        self.transport.write(login.greeting())
        step = login.receive(await self._first_packet())
        while not isinstance(step, CredentialsPresented):
            if isinstance(step, LoginRefused):
                self.transport.write(step.data)
                self.transport.close()
                code = step.error.code
                raise _LoginRefusedError(
                    "auth_failed" if code == ErrorCode.ACCESS_DENIED else "protocol_error",
                    step.error,
                )
            if isinstance(step, StartTls):
                assert gw.client_tls is not None
                if self.has_buffered:
                    raise ProtocolViolationError("unexpected data after SSLRequest")
                await self._start_tls(gw.client_tls)
                login.tls_started()
            elif isinstance(step, Send):
                self.transport.write(step.data)
            step = login.receive(await read_packet(self))
        await self._establish(live, login, step)

    async def _establish(
        self, live: LiveSession, login: DownstreamLogin, presented: CredentialsPresented
    ) -> None:
        gw = self.gw
        self._user = presented.username
        principal = await self._identify(presented)
        live.principal = principal
        schema = presented.database
        if not schema:
            allowed = gw.targets_for(principal, "mysql")
            if len(allowed) == 1:
                # Tools that connect first and USE later (mysqlslap, Workbench): there
                # is only one target this identity may use, so there is no ambiguity.
                schema = allowed[0]
        if not schema:
            raise UnknownTargetError(
                "wardgate: no schema was given; the schema you connect to names the target "
                "(mysql -D <target>, database=<target>); targets you may use: "
                + (", ".join(allowed) if allowed else "(none)")
            )
        target = gw.resolve_target(principal, schema, "mysql")
        live.target = schema
        gw.authorize_connect(principal, schema)
        if gw.recorder is not None:
            gw.recorder.check_writable()  # fail closed before anything reaches the target
        credential = resolve_credential(schema, target.credential)
        client_caps = presented.capabilities
        up_caps = (client_caps & CODEC_CAPABILITIES & ~_LOGIN_ONLY) | _UPSTREAM_LOGIN
        if gw.cfg.mysql.allow_local_infile:
            up_caps |= client_caps & Capability.LOCAL_FILES
        attrs = dict(presented.connect_attrs)
        # Who is really behind this connection, for the target's DBA
        # (performance_schema.session_connect_attrs).
        attrs["wardgate_principal"] = principal.name
        attrs["wardgate_session"] = live.id
        up = await connect_mysql_upstream(
            schema,
            target,
            credential,
            capabilities=up_caps,
            character_set=presented.character_set,
            connect_attrs=attrs,
        )
        target_profiles(gw).learn(schema, up.handshake)
        missing = client_caps & LAYOUT_CAPABILITIES & ~up.capabilities
        if missing:
            await close_politely(up)
            raise TargetUnavailableError(
                f"target {schema!r} does not support {Capability(missing)!r}, which this "
                "client agreed with the gateway before it named the target; the gateway has "
                "learned the target's capabilities now: connect again"
            )
        log.info(
            "session %s: %s -> target %s (upstream auth %s, upstream tls %s, client tls %s)",
            live.id,
            principal.name,
            schema,
            up.plugin,
            up.tls,
            login.tls,
        )
        assert self.transport is not None
        live.upstream_key = (target.host, target.effective_port, up.thread_id, 0)
        self.transport.write(login.accept(up.ok))
        gate = gw.gate_for(live)
        limits = gw.cfg.limits
        srec = gw.open_recording(live, target, credential.username, "mysql")
        observer: MySqlObserver | None = None

        def closed(relay: MySqlRelay) -> None:
            if observer is not None:
                observer.close()
            if srec is not None:
                srec.close(
                    recording_end_reason(relay.end_reason),
                    bytes_in=live.bytes_from_client,
                    bytes_out=live.bytes_to_client,
                )
            gw.session_ended(live, relay.end_reason or "closed", relay.end_detail)

        relay = MySqlRelay(
            live,
            self.transport,
            up.transport,
            gate,
            classify=gw.classifiers["mysql"].classify,
            login=login,
            capabilities=up.capabilities & ~Capability.SSL,
            target_name=schema,
            database=target.database,
            codec=text_codec(presented.character_set),
            max_message_bytes=limits.max_message_bytes,
            max_statement_bytes=limits.max_statement_bytes,
            allow_local_infile=gw.cfg.mysql.allow_local_infile,
            kill_lookup=lambda gateway_id: self._kill_target(live, gateway_id),
            reauthenticate=lambda p: self._reauthenticate(live, schema, target, p),
            on_closed=closed,
        )
        masking = gw.masking_for(principal)
        if srec is not None or masking is not None:
            observer = MySqlObserver(
                srec,
                MySqlRowMasker(masking) if masking is not None else None,
                relay.tracker,
                relay.statements,
            )
            relay.observer = observer
        live.terminate = relay.terminate
        gw.session_started(live)
        self.relay = relay
        relay.start(self.take_buffer(), up.stream.take_buffer())
        if self._eof:  # the client left while the target was logging us in
            relay.close("client_eof")

    async def _identify(self, presented: CredentialsPresented) -> Principal:
        try:
            secret = presented.token.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationError("the presented password is not UTF-8") from None
        if not secret:
            raise AuthenticationError(
                "no password presented (the client may not have enabled mysql_clear_password)"
            )
        principal = await self.gw.identify(secret)
        if principal.name != presented.username:
            raise AuthenticationError(
                f"token belongs to {principal.name!r} but the client connected as "
                f"{presented.username!r}"
            )
        return principal

    async def _reauthenticate(
        self,
        live: LiveSession,
        schema: str,
        target: TargetConfig,
        presented: CredentialsPresented,
    ) -> StatementGate:
        """COM_CHANGE_USER: a fresh token of the *same* identity, for the same target."""
        principal = await self._identify(presented)
        if live.principal is not None and principal.name != live.principal.name:
            raise AuthorizationError(
                f"wardgate: COM_CHANGE_USER cannot change who a session acts for (it acts "
                f"for {live.principal.name!r}, not {principal.name!r}); open a new connection"
            )
        if presented.database and presented.database not in (schema, target.database):
            raise AuthorizationError(
                f"wardgate: COM_CHANGE_USER cannot switch targets (this session is connected "
                f"to {schema!r}); open a new connection with schema {presented.database!r}"
            )
        self.gw.authorize_connect(principal, schema)
        live.principal = principal
        log.info("session %s: COM_CHANGE_USER re-authenticated %s", live.id, principal.name)
        return self.gw.gate_for(live)

    def _kill_target(self, live: LiveSession, gateway_id: int) -> int | None:
        """The target thread behind ``gateway_id`` if it is the same principal's session
        on the same target; else None (the caller answers "unknown thread")."""
        me = live.principal
        if me is None:
            return None
        for s in self.gw.live.sessions.values():
            if (
                s.protocol == "mysql"
                and s.gateway_key is not None
                and s.gateway_key[0] == gateway_id
                and s.principal is not None
                and s.principal.name == me.name
                and s.target == live.target
                and s.upstream_key is not None
            ):
                return s.upstream_key[2]
        return None

    def _cleartext_allowed(self) -> bool:
        cfg = self.gw.cfg
        if not cfg.mysql.allow_cleartext_without_tls or cfg.tls.require:
            return False
        if not cfg.mysql.cleartext_loopback_only:
            return True
        try:
            ip = ipaddress.ip_address(self._peer_host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ip.ipv4_mapped.is_loopback
        return ip.is_loopback

    # ------------------------------------------------------------------------ I/O
    async def _first_packet(self) -> Packet:
        """Read exactly the client's first packet, straight from the socket.

        A MySQL client that sends an SSLRequest starts its TLS handshake right after it
        without waiting for an answer. Reading through the transport could pull the
        ClientHello into our buffer, where TLS could no longer see it; reading exactly
        the packet's bytes from the socket leaves it in the kernel for ``start_tls``.
        """
        assert self.transport is not None
        raw = self.transport.get_extra_info("socket")
        if raw is None:  # not a socket transport: nothing to preserve
            return await read_packet(self)
        loop = asyncio.get_running_loop()
        early = self.take_buffer()  # only a client that spoke before the greeting
        sock = socket.socket(fileno=os.dup(raw.fileno()))
        try:
            sock.setblocking(False)
            head = early[:4] + await _recv_exactly(loop, sock, 4 - len(early[:4]))
            early = early[4:]
            length = int.from_bytes(head[:3], "little")
            if length > MAX_LOGIN_PACKET:
                raise ProtocolViolationError(
                    f"login packet of {length} bytes exceeds the {MAX_LOGIN_PACKET}-byte limit"
                )
            if len(early) > length:
                raise ProtocolViolationError("the client sent data before the greeting")
            body = early + await _recv_exactly(loop, sock, length - len(early))
        finally:
            sock.close()
        seq = head[3]
        return Packet(seq, memoryview(body), (seq + 1) & 0xFF, memoryview(head + body))

    async def _start_tls(self, ctx: ssl.SSLContext) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        new = await loop.start_tls(self.transport, self, ctx, server_side=True)
        assert new is not None
        self.transport = new


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise ConnectionResetError("peer closed the connection during the handshake")
        buf += chunk
    return bytes(buf)
