"""The client side of a PostgreSQL connection until the session is established.

SSLRequest → TLS, GSSENCRequest → declined, CancelRequest → mapped to the target, then
StartupMessage → cleartext password exchange carrying a wardgate token or a JWT (the
channel is TLS whenever the client allows it) → target resolution and authorization →
the gateway's own upstream login → AuthenticationOk, the target's ParameterStatus, the
gateway's BackendKeyData, ReadyForQuery → the relay takes over the transports.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import ssl
import time
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
from wardgate.proto.pg import messages as m
from wardgate.recording.events import EndReason
from wardgate.secrets.providers import resolve_credential
from wardgate.server import metrics
from wardgate.server.handshake_stream import HandshakeStream
from wardgate.server.live import LiveSession, new_session_id
from wardgate.server.pg_masking import CATALOG_QUERY, PgRowMasker
from wardgate.server.pg_observer import PgObserver
from wardgate.server.pg_relay import PgRelay
from wardgate.server.pg_upstream import Upstream, connect_upstream, simple_query

if TYPE_CHECKING:
    from wardgate.server.gateway import Gateway

log = logging.getLogger("wardgate.pg")

_MAX_PASSWORD_MESSAGE = 16 * 1024
# Startup parameters that must never reach the target from a client.
_DROPPED_PARAMS = {"user", "database"}
# Settings a client may not choose in startup `options`: they would change who the
# session acts as, which is the gateway's decision, not the client's.
_FORBIDDEN_OPTIONS = {"role", "session_authorization", "session_replication_role"}


def _check_options(value: str) -> None:
    try:
        words = shlex.split(value)
    except ValueError as e:
        raise AuthorizationError(f"startup options could not be parsed: {e}") from None
    i = 0
    while i < len(words):
        w = words[i]
        if w == "-c" and i + 1 < len(words):
            setting = words[i + 1]
            i += 2
        elif w.startswith("-c") or w.startswith("--"):
            setting = w[2:]
            i += 1
        else:
            raise AuthorizationError(
                f"startup option {w!r} is not allowed through wardgate; only -c name=value"
            )
        name = setting.split("=", 1)[0].strip().lower().replace("-", "_")
        if name in _FORBIDDEN_OPTIONS:
            raise AuthorizationError(
                f"startup option -c {name}=… is not allowed through wardgate: the gateway "
                "decides which role the session runs as"
            )


def recording_end_reason(reason: str | None) -> EndReason:
    """The recording format's vocabulary for how a session ended."""
    mapping: dict[str, EndReason] = {
        "client_terminate": "client_quit",
        "client_eof": "client_eof",
        "killed": "killed",
        "max_duration": "killed",
        "idle_timeout": "killed",
        "revoked": "revoked",
        "gateway_shutdown": "gateway_shutdown",
    }
    return mapping.get(reason or "", "error")


class PgFrontend(HandshakeStream):
    def __init__(self, gateway: Gateway) -> None:
        super().__init__(max_buffer=1 << 20)
        self.gw = gateway
        self.task: asyncio.Task[None] | None = None
        self.live: LiveSession | None = None
        self.tls = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.live = LiveSession(id=new_session_id(), protocol="postgres", client_addr=addr)
        self.task = asyncio.get_running_loop().create_task(self._run())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)

    async def _run(self) -> None:
        assert self.live is not None and self.transport is not None
        live = self.live
        try:
            await asyncio.wait_for(
                self._handshake(live), timeout=self.gw.cfg.limits.startup_timeout
            )
        except TimeoutError:
            self._fatal("08P01", "wardgate: startup timed out")
            self.gw.session_failed(live, "startup_timeout", None)
        except AuthenticationError as e:
            metrics.AUTH_FAILURES.labels("postgres").inc()
            log.info("postgres auth failed from %s: %s", live.client_addr, e)
            user = live.principal.name if live.principal else self._user
            self._fatal("28P01", f'password authentication failed for user "{user}"')
            self.gw.session_failed(live, "auth_failed", str(e))
        except UnknownTargetError as e:
            self._fatal("3D000", str(e))
            self.gw.session_failed(live, "unknown_target", str(e))
        except AuthorizationError as e:
            self._fatal("42501", str(e) if str(e).startswith("wardgate") else f"wardgate: {e}")
            self.gw.session_failed(live, "denied", str(e))
        except TargetUnavailableError as e:
            self._fatal("08001", str(e))
            self.gw.session_failed(live, "target_unavailable", str(e))
        except RecordingUnavailableError as e:
            self._fatal("58030", f"wardgate: {e}")
            self.gw.session_failed(live, "recording_unavailable", str(e))
        except ProtocolViolationError as e:
            self._fatal("08P01", f"wardgate: {e}")
            self.gw.session_failed(live, "protocol_error", str(e))
        except (ConnectionResetError, BrokenPipeError):
            self.gw.session_failed(live, "client_eof", "client left during startup")
            if self.transport is not None:
                self.transport.close()
        except WardgateError as e:
            self._fatal(e.sqlstate, f"wardgate: {e}")
            self.gw.session_failed(live, "error", str(e))
        except Exception as e:
            log.exception("unexpected error during postgres startup")
            self._fatal("XX000", "wardgate: internal error during startup; see the gateway log")
            self.gw.session_failed(live, "error", repr(e))

    _user = ""

    def _fatal(self, sqlstate: str, text: str) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(m.error_response(sqlstate, text, severity="FATAL"))
            t.close()

    async def _handshake(self, live: LiveSession) -> None:
        gw = self.gw
        assert self.transport is not None
        while True:
            pkt = m.parse_startup(await self.read_startup(m.MAX_STARTUP_BYTES))
            if pkt.kind == "ssl":
                if self.tls or self.has_buffered:
                    # Bytes after SSLRequest would be readable by a MITM (CVE-2021-23214).
                    raise ProtocolViolationError("unexpected data after SSLRequest")
                if gw.client_tls is None:
                    self.transport.write(b"N")
                    continue
                self.transport.write(b"S")
                await self._start_tls(gw.client_tls)
                continue
            if pkt.kind == "gssenc":
                self.transport.write(b"N")
                continue
            if pkt.kind == "cancel":
                await self._cancel(pkt.cancel_pid, pkt.cancel_secret)
                return
            break
        params = pkt.params
        self._user = user = params.get("user", "")
        if not user:
            raise ProtocolViolationError("no user name in the startup packet")
        database = params.get("database") or user
        if gw.cfg.tls.require and not self.tls:
            raise AuthenticationError(
                "client did not use TLS; the gateway requires it (sslmode=require)"
            )
        if "replication" in params and params["replication"].lower() not in (
            "false",
            "off",
            "no",
            "0",
        ):
            raise AuthorizationError("replication connections are not supported through wardgate")
        # Ask for the token. Cleartext over TLS is how a bearer token must travel.
        self.transport.write(m.auth_cleartext_request())
        kind, payload = await self.read_message(_MAX_PASSWORD_MESSAGE)
        if kind != b"p":
            raise ProtocolViolationError(f"expected a password message, got {kind!r}")
        secret = payload.rstrip(b"\x00").decode("utf-8", "replace")
        principal = await gw.identify(secret)
        if principal.name != user:
            raise AuthenticationError(
                f"token belongs to {principal.name!r} but the client connected as {user!r}"
            )
        live.principal = principal
        target = gw.resolve_target(principal, database, "postgres")
        live.target = database
        gw.authorize_connect(principal, database)
        if gw.recorder is not None:
            gw.recorder.check_writable()  # fail closed before anything reaches the target
        forwarded = {
            k: v for k, v in params.items() if k not in _DROPPED_PARAMS and k != "replication"
        }
        if "options" in forwarded:
            _check_options(forwarded["options"])
        credential = resolve_credential(database, target.credential)
        up = await connect_upstream(database, target, credential, forwarded)
        log.info(
            "session %s: %s -> target %s (upstream auth %s, upstream tls %s, client tls %s)",
            live.id,
            principal.name,
            database,
            up.auth_method,
            up.tls,
            self.tls,
        )
        masking = gw.masking_for(principal)
        tables: dict[int, str] = {}
        if masking is not None and masking.column_rules:
            tables = await self._table_names(database, up)
        assert self.transport is not None
        pid, secret_key = gw.live.assign_cancel_key(live)
        live.upstream_key = (target.host, target.effective_port, up.backend_pid, up.backend_secret)
        out = [
            m.AUTH_OK,
            *up.status_messages,
            m.backend_key_data(pid, secret_key),
            m.ready_for_query(up.txn_status),
        ]
        self.transport.write(b"".join(out))
        gate = gw.gate_for(live)
        limits = gw.cfg.limits
        srec = gw.open_recording(live, target, credential.username, "postgresql")

        def closed(relay: PgRelay) -> None:
            if srec is not None:
                srec.close(
                    recording_end_reason(relay.end_reason),
                    bytes_in=live.bytes_from_client,
                    bytes_out=live.bytes_to_client,
                )
            gw.session_ended(live, relay.end_reason or "closed", relay.end_detail)

        relay = PgRelay(
            live,
            self.transport,
            up.transport,
            gate,
            max_message_bytes=limits.max_message_bytes,
            max_statement_bytes=limits.max_statement_bytes,
            on_closed=closed,
        )
        masker = None
        if masking is not None:
            masker = PgRowMasker(masking, tables)
        if srec is not None or masker is not None:
            relay.observer = PgObserver(srec, masker)
        live.terminate = relay.terminate
        gw.session_started(live)
        self.relay = relay
        relay.start(self.take_buffer(), up.stream.take_buffer())
        if self._eof:  # the client left while the target was logging us in
            relay.close("client_eof")

    async def _table_names(self, target: str, up: Upstream) -> dict[int, str]:
        """oid → schema.table for column rules, read on the fresh upstream connection
        before the client gets it (cached per target for a minute)."""
        cached = self.gw.table_names.get(target)
        if cached is not None and time.monotonic() - cached[0] < 60:
            return cached[1]
        rows = await simple_query(up, CATALOG_QUERY)
        names = {int(r[0] or 0): f"{r[1]}.{r[2]}" for r in rows}
        self.gw.table_names[target] = (time.monotonic(), names)
        return names

    async def _start_tls(self, ctx: ssl.SSLContext) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        new = await loop.start_tls(self.transport, self, ctx, server_side=True)
        assert new is not None
        self.transport = new
        self.tls = True

    async def _cancel(self, pid: int, secret: int) -> None:
        assert self.transport is not None
        self.transport.close()
        await self.gw.cancel(pid, secret)
