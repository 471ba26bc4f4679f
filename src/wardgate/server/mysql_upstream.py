"""Opening the gateway's own connection to a MySQL/MariaDB target, and what it greets with.

The login is :class:`~wardgate.proto.mysql.UpstreamLogin` driven over a socket: TLS per
``targets.<name>.tls.mode`` (the same words as for PostgreSQL), then whatever plugin the
target asks for, answered with the credential the gateway holds. Errors say that the
*gateway* could not reach or authenticate to the target and never include the credential.

:class:`TargetProfiles` remembers each target's greeting (server version, capabilities).
A client is greeted before it names its target, so the greeting mirrors what the targets
said: clients pick behaviour by the version string, and the capabilities that change
packet layouts (DEPRECATE_EOF, SESSION_TRACK, MariaDB's extended metadata) must be ones
the target agrees to, or the bytes could not be forwarded untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

from wardgate.config import GatewayConfig, TargetConfig
from wardgate.core.errors import (
    ProtocolViolationError,
    TargetUnavailableError,
    UnknownTargetError,
    WardgateError,
)
from wardgate.proto.mysql import (
    DEFAULT_SERVER_VERSION,
    UPSTREAM_CAPABILITIES,
    Capability,
    Command,
    HandshakeV10,
    LoginRejected,
    LoginSucceeded,
    OkPacket,
    Packet,
    Send,
    StartTls,
    UpstreamLogin,
    encode_packet,
)
from wardgate.proto.mysql.charsets import UTF8MB4_GENERAL_CI
from wardgate.proto.mysql.login import TlsMode
from wardgate.secrets.providers import Credential, resolve_credential
from wardgate.server.handshake_stream import HandshakeStream
from wardgate.server.pg_upstream import upstream_ssl_context

log = logging.getLogger("wardgate.mysql")

#: Login packets are small; a greeting or auth packet larger than this is not one.
MAX_LOGIN_PACKET = 1 << 20

#: Capabilities that change how command-phase packets are laid out. The client and the
#: target must agree on each of them, or forwarding bytes untouched would corrupt them.
LAYOUT_CAPABILITIES = (
    Capability.DEPRECATE_EOF | Capability.SESSION_TRACK | Capability.MARIADB_EXTENDED_METADATA
)

#: MySQL error numbers a target answers a login with that the gateway explains itself.
_ER_DBACCESS_DENIED = 1044
_ER_ACCESS_DENIED = 1045
_ER_BAD_DB = 1049
_ER_ACCESS_DENIED_NO_PASSWORD = 1698

#: tls.mode (libpq words) → the codec's upstream TLS modes. MySQL has no "try plaintext,
#: fall back to TLS", so ``allow`` means plaintext.
_TLS_MODES: dict[str, TlsMode] = {
    "disable": "disabled",
    "allow": "disabled",
    "prefer": "preferred",
    "require": "required",
    "verify-ca": "required",
    "verify-full": "required",
}


@dataclass(slots=True)
class MySqlUpstream:
    transport: asyncio.Transport
    stream: HandshakeStream
    ok: OkPacket
    capabilities: int
    handshake: HandshakeV10
    plugin: str
    tls: bool

    @property
    def thread_id(self) -> int:
        """The target's id for this connection (what ``KILL`` on the target takes)."""
        return self.handshake.connection_id


async def read_packet(stream: HandshakeStream, limit: int = MAX_LOGIN_PACKET) -> Packet:
    """One physical packet of the login phase (login packets never reach 16 MiB)."""
    head = await stream.read_exactly(4)
    length = int.from_bytes(head[:3], "little")
    if length > limit:
        raise ProtocolViolationError(
            f"login packet of {length} bytes exceeds the {limit}-byte limit"
        )
    body = await stream.read_exactly(length)
    seq = head[3]
    return Packet(seq, memoryview(body), (seq + 1) & 0xFF, memoryview(head + body))


async def connect_mysql_upstream(
    name: str,
    target: TargetConfig,
    credential: Credential,
    *,
    capabilities: int = UPSTREAM_CAPABILITIES,
    character_set: int = UTF8MB4_GENERAL_CI,
    connect_attrs: Mapping[str, str] | None = None,
) -> MySqlUpstream:
    loop = asyncio.get_running_loop()
    host, port = target.host, target.effective_port
    try:
        factory = lambda: HandshakeStream(max_buffer=MAX_LOGIN_PACKET)  # noqa: E731
        if host.startswith("/"):  # a unix socket path, as the mysql client's --socket
            opening = loop.create_unix_connection(factory, host)
        else:
            opening = loop.create_connection(factory, host, port)
        transport, stream = await asyncio.wait_for(opening, timeout=target.connect_timeout)
    except (OSError, TimeoutError) as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        where = host if host.startswith("/") else f"{host}:{port}"
        raise TargetUnavailableError(
            f"wardgate could not reach target {name!r} at {where}: {why}"
        ) from None
    login = UpstreamLogin(
        username=credential.username,
        password=(credential.password or "").encode(),
        database=target.database,
        capabilities=capabilities,
        character_set=character_set,
        connect_attrs=dict(connect_attrs or {}),
        tls=_TLS_MODES[target.tls.mode],
        # A unix socket never leaves the machine: the server treats it as secure too.
        allow_cleartext_without_tls=host.startswith("/"),
    )
    try:
        return await asyncio.wait_for(
            _login(name, target, login, transport, stream), timeout=target.connect_timeout
        )
    except TimeoutError:
        transport.close()
        raise TargetUnavailableError(f"wardgate timed out logging in to target {name!r}") from None
    except BaseException:
        transport.close()
        raise


async def _login(
    name: str,
    target: TargetConfig,
    login: UpstreamLogin,
    transport: asyncio.Transport,
    stream: HandshakeStream,
) -> MySqlUpstream:
    loop = asyncio.get_running_loop()
    tls = False
    while True:
        try:
            packet = await read_packet(stream)
            step = login.receive(packet)
        except ProtocolViolationError as e:
            raise TargetUnavailableError(
                f"target {name!r} sent an invalid packet during the gateway's login: {e}"
            ) from None
        except ConnectionResetError:
            raise TargetUnavailableError(
                f"target {name!r} closed the connection during the gateway's login"
            ) from None
        if step is None:
            continue
        if isinstance(step, Send):
            transport.write(step.data)
            continue
        if isinstance(step, StartTls):
            transport.write(step.data)
            ctx = upstream_ssl_context(target)
            server_name = target.tls.server_name or target.host
            try:
                new = await loop.start_tls(
                    transport,
                    stream,
                    ctx,
                    server_hostname=server_name if ctx.check_hostname else None,
                )
            except (ssl.SSLError, OSError) as e:
                raise TargetUnavailableError(
                    f"wardgate could not establish TLS with target {name!r} "
                    f"(tls.mode={target.tls.mode}): {e}"
                ) from None
            assert new is not None
            transport = new
            stream.transport = new
            tls = True
            transport.write(login.tls_started().data)
            continue
        if isinstance(step, LoginRejected):
            raise _rejection(name, target, step)
        assert isinstance(step, LoginSucceeded)
        transport.pause_reading()
        return MySqlUpstream(
            transport=transport,
            stream=stream,
            ok=step.ok,
            capabilities=step.capabilities,
            handshake=step.handshake,
            plugin=step.plugin,
            tls=tls,
        )


def _rejection(name: str, target: TargetConfig, step: LoginRejected) -> WardgateError:
    err = step.error
    if err.code in (_ER_ACCESS_DENIED, _ER_ACCESS_DENIED_NO_PASSWORD):
        # The server's text names the account; the operator has it in the config already.
        return TargetUnavailableError(
            f"wardgate could not authenticate to target {name!r}: the target rejected the "
            f"credential the gateway holds (error {err.code}); an operator must fix "
            f"targets.{name}.credential"
        )
    if err.code == _ER_BAD_DB:
        return UnknownTargetError(
            f"target {name!r} is configured with database {target.database!r}, which does "
            "not exist on the target server"
        )
    if err.code == _ER_DBACCESS_DENIED:
        return TargetUnavailableError(
            f"the account wardgate uses for target {name!r} may not open database "
            f"{target.database!r} (error {err.code}); an operator must grant it"
        )
    return TargetUnavailableError(
        f"target {name!r} refused the gateway's session: {err.message} "
        f"(error {err.code}, SQLSTATE {err.sqlstate})"
    )


async def close_politely(up: MySqlUpstream) -> None:
    """COM_QUIT, then close: the target logs a clean disconnect, not an aborted one."""
    with contextlib.suppress(Exception):
        up.transport.write(encode_packet(0, bytes((Command.QUIT,))))
    up.transport.close()


# ------------------------------------------------------------------------------- profiles
@dataclass(frozen=True, slots=True)
class TargetProfile:
    server_version: str
    capabilities: int


class TargetProfiles:
    """What each MySQL target greets with, learned from the gateway's own logins.

    A target nobody has connected to yet is probed once (a full login with the held
    credential and COM_QUIT, so the target counts no aborted connection) before the
    first client is greeted; a target that cannot be reached is retried in the
    background at most every ``retry_after`` seconds and never delays a greeting again.
    """

    def __init__(self, *, probe_timeout: float = 3.0, retry_after: float = 30.0) -> None:
        self.known: dict[str, TargetProfile] = {}
        self.probe_timeout = probe_timeout
        self.retry_after = retry_after
        self._failed_at: dict[str, float] = {}
        self._probing: asyncio.Task[None] | None = None

    def learn(self, name: str, hello: HandshakeV10) -> None:
        self.known[name] = TargetProfile(hello.server_version, hello.capabilities)
        self._failed_at.pop(name, None)

    def greeting(self, cfg: GatewayConfig) -> tuple[str, int]:
        """(server version, capabilities to withhold from clients)."""
        names = [n for n, t in cfg.targets.items() if t.kind == "mysql"]
        profiles = [self.known[n] for n in names if n in self.known]
        withheld = 0
        for p in profiles:
            withheld |= LAYOUT_CAPABILITIES & ~p.capabilities
        versions = {p.server_version for p in profiles}
        if len(versions) == 1 and len(profiles) == len(names):
            return versions.pop(), withheld
        return DEFAULT_SERVER_VERSION, withheld

    async def ensure(self, cfg: GatewayConfig) -> None:
        """Probe targets never seen; wait only for those never tried before."""
        now = time.monotonic()
        todo = [
            n
            for n, t in cfg.targets.items()
            if t.kind == "mysql"
            and n not in self.known
            and now - self._failed_at.get(n, -1e9) > self.retry_after
        ]
        if not todo:
            return
        first_time = any(n not in self._failed_at for n in todo)
        if self._probing is None or self._probing.done():
            self._probing = asyncio.get_running_loop().create_task(self._probe(cfg, todo))
        if first_time:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._probing), self.probe_timeout)

    async def _probe(self, cfg: GatewayConfig, names: list[str]) -> None:
        async def one(name: str) -> None:
            target = cfg.targets[name]
            try:
                credential = resolve_credential(name, target.credential)
                up = await connect_mysql_upstream(name, target, credential)
            except Exception as e:
                self._failed_at[name] = time.monotonic()
                log.info("could not learn the greeting of target %s: %s", name, e)
                return
            self.learn(name, up.handshake)
            await close_politely(up)

        await asyncio.gather(*(one(n) for n in names))
