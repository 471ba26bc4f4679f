"""The gateway runtime: the objects every listener shares, wired from the config.

This is the composition root. Listeners ask it to identify callers, to resolve and
authorize targets, for a per-session statement gate, and to book sessions in and out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import ssl
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from wardgate.authn.tokens import TokenService, looks_like_token
from wardgate.config import GatewayConfig, TargetConfig
from wardgate.core.errors import (
    AuthenticationError,
    AuthorizationError,
    RecordingUnavailableError,
    UnknownTargetError,
    WardgateError,
)
from wardgate.core.model import Principal
from wardgate.pipeline.hooks import StatementGate, Verdict
from wardgate.pipeline.statement_gate import PolicyGate
from wardgate.policy.approvals import ApprovalService
from wardgate.policy.engine import PolicyEngine
from wardgate.proto.pg import messages as m
from wardgate.recording.events import SessionMeta
from wardgate.recording.writer import Recorder, SessionRecorder
from wardgate.server import metrics
from wardgate.server.ledger import SessionLedger
from wardgate.server.live import LiveRegistry, LiveSession
from wardgate.server.pg_upstream import send_cancel
from wardgate.server.tls import client_ssl_context
from wardgate.sql.cache import ClassificationCache
from wardgate.sql.mysql_shapes import MySqlShapeCache
from wardgate.sql.pg_shapes import PostgresShapeCache
from wardgate.storage.db import make_engine, session_factory, upgrade
from wardgate.storage.kills import record_kill_request

if TYPE_CHECKING:
    from wardgate.authn.jwt import JwtVerifier
    from wardgate.masking.engine import MaskingPolicy

log = logging.getLogger("wardgate")


class Gateway:
    def __init__(self, cfg: GatewayConfig, *, migrate: bool = True) -> None:
        self.cfg = cfg
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self.engine = make_engine(cfg.state.url)
        if migrate:
            upgrade(self.engine)
        self.db = session_factory(self.engine)
        self.tokens = TokenService(self.db)
        self.worker = int(os.environ.get("WARDGATE_WORKER", "0"))
        self.live = LiveRegistry(self.worker)
        self.ledger = SessionLedger(self.db, self.node)
        self.client_tls: ssl.SSLContext | None = client_ssl_context(cfg)
        self.policy = PolicyEngine(cfg.policy)
        self.classifiers = {
            # Exact text first; a text differing from an earlier one only in its literals
            # is answered from their shared, literal-blind classification.
            "postgres": ClassificationCache(PostgresShapeCache().classify),
            "mysql": ClassificationCache(MySqlShapeCache().classify),
        }
        self.approvals = ApprovalService(self.db, cfg.policy.approvals)
        self.table_names: dict[str, tuple[float, dict[int, str]]] = {}
        self._retention_task: asyncio.Task[None] | None = None
        self._prepare_masking_key()
        self.recorder: Recorder | None = None
        if cfg.recording.enabled:
            self.recorder = Recorder.from_config(self.engine, cfg.recording, cfg.state.directory)
        self.jwt: JwtVerifier | None = None
        if cfg.identity.oidc:
            from wardgate.authn.jwt import JwtVerifier

            self.jwt = JwtVerifier(list(cfg.identity.oidc))

    def _prepare_masking_key(self) -> None:
        """Pseudonyms need a stable secret key: use the configured one, else one generated
        once (0600) in the state directory, so joins on pseudonyms survive restarts."""
        m = self.cfg.masking
        if not m.enabled or m.pseudonym_key is not None:
            return
        if m.pseudonym_key_env and os.environ.get(m.pseudonym_key_env):
            return
        path = self.cfg.state.directory / "masking-pseudonym.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        data = m.model_dump()
        data.update(pseudonym_key=path.read_text().strip(), pseudonym_key_env=None)
        self.cfg.masking = type(m).model_validate(data)

    # -- identity ------------------------------------------------------------------------
    async def identify(self, secret: str) -> Principal:
        if looks_like_token(secret):
            try:
                return self.tokens.verify(secret)
            except AuthenticationError:
                raise
        if self.jwt is not None:
            from wardgate.authn.jwt import looks_like_jwt

            if looks_like_jwt(secret):
                return await self.jwt.verify(secret)
        raise AuthenticationError("presented secret is neither a wardgate token nor a JWT")

    # -- targets ---------------------------------------------------------------------------
    def targets_for(self, principal: Principal, protocol: str) -> list[str]:
        names = [n for n, t in self.cfg.targets.items() if t.kind == protocol]
        return sorted(self.policy.targets_for(principal, names))

    def resolve_target(self, principal: Principal, name: str, protocol: str) -> TargetConfig:
        target = self.cfg.targets.get(name)
        if target is None or target.kind != protocol:
            allowed = self.targets_for(principal, protocol)
            raise UnknownTargetError(
                f'wardgate: target "{name}" does not exist; targets you may use: '
                + (", ".join(allowed) if allowed else "(none)")
            )
        return target

    def connect_denial(self, principal: Principal, name: str) -> str | None:
        """Why policy does not let ``principal`` use target ``name`` (None: it does)."""
        decision = self.policy.can_connect(principal, name)
        return None if decision.allowed else f"wardgate: {decision.reason} ({decision.rule})"

    def authorize_connect(self, principal: Principal, name: str) -> None:
        denial = self.connect_denial(principal, name)
        if denial is not None:
            raise AuthorizationError(denial)

    def request_kill(self, session_id: str, by: str, reason: str) -> bool:
        """Record a kill request; the node holding the session ends it within a second."""
        if not record_kill_request(self.db, session_id, by, reason):
            return False
        self.kill(session_id, f"session killed by {by}: {reason}")
        return True

    def open_recording(
        self, live: LiveSession, target: TargetConfig, target_user: str, protocol: str
    ) -> SessionRecorder | None:
        """Start recording an established session (None when recording is off)."""
        if self.recorder is None:
            return None
        assert live.principal is not None and live.target is not None
        return self.recorder.open_session(
            SessionMeta(
                session_id=live.id,
                principal=live.principal,
                client_address=live.client_addr,
                target=live.target,
                protocol=protocol,
                database=target.database,
                target_user=target_user,
            )
        )

    def masking_for(self, principal: Principal) -> MaskingPolicy | None:
        """Masking for this identity, or None when it may see everything (the zero-cost path)."""
        if not self.cfg.masking.enabled:
            return None
        return self.cfg.masking.masking_plan_for(principal.groups)

    def gate_for(self, live: LiveSession) -> StatementGate:
        assert live.principal is not None and live.target is not None
        return PolicyGate(
            principal=live.principal,
            target=live.target,
            session_id=live.id,
            engine=self.policy,
            cache=self.classifiers[live.protocol],
            approvals=self.approvals,
            approval_timeout=float(self.cfg.policy.approvals.timeout_seconds),
            blocked=self._recording_blocked if self.recorder is not None else None,
        )

    def _recording_blocked(self) -> Verdict | None:
        """Fail closed: a statement that could not be recorded does not run."""
        assert self.recorder is not None
        try:
            self.recorder.check_writable()
        except RecordingUnavailableError as e:
            return Verdict(
                "deny",
                rule="recording-unavailable",
                reason=f"{e}; statements are refused until recording works again "
                "(recording.on_failure is fail_closed)",
                sqlstate="58030",
            )
        return None

    async def start(self) -> None:
        """Work that needs the event loop: seal what a crashed gateway left, start writers."""
        if self.recorder is not None:
            recovered = await self.recorder.recover()
            if recovered:
                log.warning(
                    "sealed %d session recording(s) left open by a previous run", len(recovered)
                )
            self.recorder.start()
            period = self.cfg.recording.retention_period
            if period is not None and self.worker == 0:
                self._retention_task = asyncio.get_running_loop().create_task(
                    self._retention_loop(period)
                )

    async def _retention_loop(self, period: timedelta) -> None:
        """Purge recordings past ``recording.retention`` every few hours (one worker only);
        the purge checkpoints the global chain so `audit verify` keeps passing."""
        from wardgate.recording.keys import load_signing_key
        from wardgate.recording.retention import purge

        key = load_signing_key(self.cfg.recording.key_path(self.cfg.state.directory))
        while True:
            try:
                report = await asyncio.to_thread(purge, self.engine, key, period)
                log.info("recording retention: %s", report)
            except Exception:
                log.exception("recording retention purge failed; will retry")
            await asyncio.sleep(6 * 3600)

    # -- bookkeeping -------------------------------------------------------------------
    def session_started(self, live: LiveSession) -> None:
        self.live.add(live)
        metrics.SESSIONS_ACTIVE.labels(live.protocol).inc()
        self.ledger.started(live)

    def session_ended(self, live: LiveSession, reason: str, detail: str | None) -> None:
        self.live.remove(live)
        metrics.SESSIONS_ACTIVE.labels(live.protocol).dec()
        metrics.SESSIONS_TOTAL.labels(live.protocol, reason).inc()
        metrics.BYTES.labels(live.protocol, "from_client").inc(live.bytes_from_client)
        metrics.BYTES.labels(live.protocol, "to_client").inc(live.bytes_to_client)
        self.ledger.ended(live, reason, detail, inserted=True)

    def session_failed(self, live: LiveSession, reason: str, detail: str | None) -> None:
        metrics.SESSIONS_TOTAL.labels(live.protocol, reason).inc()
        self.ledger.ended(live, reason, detail, inserted=False)

    def cancel_socket(self, worker: int) -> Path:
        return self.cfg.state.directory / "run" / f"cancel-{worker}.sock"

    async def cancel(self, pid: int, secret: int, *, forwarded: bool = False) -> None:
        """Map a client's CancelRequest to the target; hand it to the owning worker."""
        live = self.live.lookup_cancel(pid, secret)
        if live is None:
            owner = self.live.worker_of(pid)
            if forwarded or owner == self.worker or "WARDGATE_WORKER" not in os.environ:
                log.info("cancel request with an unknown key ignored")
                return
            try:
                _, w = await asyncio.open_unix_connection(str(self.cancel_socket(owner)))
                w.write(m.cancel_request(pid, secret))
                await w.drain()
                w.close()
            except OSError:
                log.info("could not forward a cancel request to worker %d", owner)
            return
        if live.protocol != "postgres" or live.upstream_key is None or live.target is None:
            return
        _, _, up_pid, up_secret = live.upstream_key
        await send_cancel(self.cfg.targets[live.target], up_pid, up_secret)

    async def serve_cancel_socket(self) -> asyncio.Server | None:
        """In worker mode, accept CancelRequests forwarded by sibling workers."""
        if "WARDGATE_WORKER" not in os.environ:
            return None
        path = self.cancel_socket(self.worker)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                pkt = m.parse_startup((await r.readexactly(16))[4:])
                if pkt.kind == "cancel":
                    await self.cancel(pkt.cancel_pid, pkt.cancel_secret, forwarded=True)
            except (asyncio.IncompleteReadError, WardgateError):
                pass
            finally:
                w.close()

        return await asyncio.start_unix_server(handle, str(path))

    def kill(self, session_id: str, why: str) -> bool:
        live = self.live.sessions.get(session_id)
        if live is None or live.terminate is None:
            return False
        live.terminate("killed", why)
        return True

    async def aclose(self) -> None:
        for live in list(self.live.sessions.values()):
            if live.terminate is not None:
                live.terminate("gateway_shutdown", "the gateway is shutting down")
        await asyncio.sleep(0)
        if self.jwt is not None:
            await self.jwt.aclose()
        await self.approvals.aclose()
        if self._retention_task is not None:
            self._retention_task.cancel()
        if self.recorder is not None:
            await self.recorder.aclose()
        self.ledger.close()
        self.engine.dispose()
