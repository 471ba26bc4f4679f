"""Opening the gateway's own connection to a PostgreSQL target.

TLS follows libpq's sslmode semantics; authentication uses the credential the gateway
holds. Errors say that the *gateway* could not reach or authenticate to the target and
never include the credential.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from dataclasses import dataclass, field

from wardgate.config import TargetConfig
from wardgate.core.errors import ProtocolViolationError, TargetUnavailableError, UnknownTargetError
from wardgate.proto.pg import messages as m
from wardgate.proto.pg.upstream_auth import UpstreamAuthenticator
from wardgate.secrets.providers import Credential
from wardgate.server.handshake_stream import HandshakeStream

_MAX_HANDSHAKE_MESSAGE = 1 << 20


@dataclass(slots=True)
class Upstream:
    transport: asyncio.Transport
    stream: HandshakeStream
    status_messages: list[bytes] = field(default_factory=list)  # ParameterStatus / Notice, raw
    backend_pid: int = 0
    backend_secret: int = 0
    txn_status: bytes = b"I"
    auth_method: str = "trust"
    tls: bool = False


def upstream_ssl_context(target: TargetConfig) -> ssl.SSLContext:
    tls = target.tls
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.mode in ("prefer", "require", "allow") and tls.ca_file is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif tls.mode == "verify-ca" or (tls.mode == "require" and tls.ca_file is not None):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file and tls.key_file:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


async def connect_upstream(
    name: str,
    target: TargetConfig,
    credential: Credential,
    params: dict[str, str],
) -> Upstream:
    loop = asyncio.get_running_loop()
    host, port = target.host, target.effective_port
    try:
        factory = lambda: HandshakeStream(max_buffer=_MAX_HANDSHAKE_MESSAGE)  # noqa: E731
        if host.startswith("/"):  # a socket directory, as libpq's host= accepts
            opening = loop.create_unix_connection(factory, f"{host}/.s.PGSQL.{port}")
        else:
            opening = loop.create_connection(factory, host, port)
        transport, stream = await asyncio.wait_for(opening, timeout=target.connect_timeout)
    except (OSError, TimeoutError) as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise TargetUnavailableError(
            f"wardgate could not reach target {name!r} at {host}:{port}: {why}"
        ) from None
    try:
        return await asyncio.wait_for(
            _handshake(name, target, credential, params, transport, stream),
            timeout=target.connect_timeout,
        )
    except TimeoutError:
        transport.close()
        raise TargetUnavailableError(
            f"wardgate timed out setting up its session with target {name!r}"
        ) from None
    except BaseException:
        transport.close()
        raise


async def _handshake(
    name: str,
    target: TargetConfig,
    credential: Credential,
    params: dict[str, str],
    transport: asyncio.Transport,
    stream: HandshakeStream,
) -> Upstream:
    loop = asyncio.get_running_loop()
    mode = target.tls.mode
    ssl_object: ssl.SSLObject | None = None
    tls = False
    if mode not in ("disable", "allow") and not target.host.startswith("/"):
        transport.write(m.ssl_request())
        answer = await stream.read_exactly(1)
        if answer == b"S":
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
                    f"wardgate could not establish TLS with target {name!r} (sslmode={mode}): {e}"
                ) from None
            assert new is not None
            transport = new
            stream.transport = transport
            ssl_object = transport.get_extra_info("ssl_object")
            tls = True
        elif answer == b"N":
            if mode in ("require", "verify-ca", "verify-full"):
                raise TargetUnavailableError(
                    f"target {name!r} does not offer TLS but its tls.mode is {mode!r}"
                )
        else:
            raise TargetUnavailableError(f"target {name!r} answered SSLRequest with {answer!r}")

    startup = {"user": credential.username, "database": target.database, **params}
    transport.write(m.startup_message(startup))
    auth = UpstreamAuthenticator(name, credential.username, credential.password, ssl_object)
    up = Upstream(transport=transport, stream=stream, tls=tls)
    authenticated = False
    while True:
        try:
            kind, payload = await stream.read_message(_MAX_HANDSHAKE_MESSAGE)
        except ProtocolViolationError as e:
            raise TargetUnavailableError(f"target {name!r} sent an invalid message: {e}") from None
        except ConnectionResetError:
            raise TargetUnavailableError(
                f"target {name!r} closed the connection during the gateway's login"
            ) from None
        if kind == b"R" and not authenticated:
            reply = auth.respond(payload)
            if reply is None:
                authenticated = True
                up.auth_method = auth.method
            elif reply:
                transport.write(reply)
        elif kind == b"E":
            fields = m.parse_error_fields(payload)
            code = fields.get("C", "")
            if code == "3D000":
                raise UnknownTargetError(
                    f"target {name!r} is configured with database {target.database!r}, "
                    "which does not exist on the target server"
                )
            if code in ("28P01", "28000"):
                raise TargetUnavailableError(
                    f"wardgate could not authenticate to target {name!r}: the target rejected "
                    f"the credential the gateway holds (SQLSTATE {code}); an operator must fix "
                    f"targets.{name}.credential"
                )
            raise TargetUnavailableError(
                f"target {name!r} refused the gateway's session: "
                f"{fields.get('M', 'unknown error')} "
                f"(SQLSTATE {code})"
            )
        elif kind in (b"S", b"N"):
            up.status_messages.append(m.message(kind, payload))
        elif kind == b"K":
            up.backend_pid, up.backend_secret = struct.unpack_from("!iI", payload, 0)
        elif kind == b"Z":
            if not authenticated:
                raise TargetUnavailableError(f"target {name!r} skipped authentication")
            up.txn_status = payload[:1]
            transport.pause_reading()
            return up
        elif kind == b"v":  # NegotiateProtocolVersion: fine, we asked for nothing optional
            continue
        else:
            raise TargetUnavailableError(
                f"target {name!r} sent unexpected message {kind!r} during login"
            )


async def send_cancel(target: TargetConfig, pid: int, secret: int) -> None:
    """Forward a CancelRequest to the target on a fresh connection, as libpq does."""
    try:
        if target.host.startswith("/"):
            opening = asyncio.open_unix_connection(
                f"{target.host}/.s.PGSQL.{target.effective_port}"
            )
        else:
            opening = asyncio.open_connection(target.host, target.effective_port)
        _, writer = await asyncio.wait_for(opening, timeout=5)
    except (OSError, TimeoutError):
        return
    writer.write(m.cancel_request(pid, secret))
    try:
        await writer.drain()
    finally:
        writer.close()


async def simple_query(up: Upstream, sql: str) -> list[list[str | None]]:
    """Run one catalog query on a connection the client has not been handed yet."""
    up.transport.resume_reading()
    up.transport.write(m.query(sql))
    rows: list[list[str | None]] = []
    error = None
    while True:
        kind, payload = await up.stream.read_message(_MAX_HANDSHAKE_MESSAGE)
        if kind == b"D":
            n = struct.unpack_from("!h", payload, 0)[0]
            pos = 2
            row: list[str | None] = []
            for _ in range(n):
                (length,) = struct.unpack_from("!i", payload, pos)
                pos += 4
                if length < 0:
                    row.append(None)
                else:
                    row.append(payload[pos : pos + length].decode("utf-8", "replace"))
                    pos += length
            rows.append(row)
        elif kind == b"E":
            error = m.parse_error_fields(payload).get("M", "error")
        elif kind == b"Z":
            up.transport.pause_reading()
            if error is not None:
                raise TargetUnavailableError(f"catalog lookup on the target failed: {error}")
            return rows
