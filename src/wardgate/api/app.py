"""The REST API (FastAPI): health, metrics, tokens, sessions. OpenAPI at ``/docs``.

Every ``/api/v1`` call needs ``Authorization: Bearer <wardgate token or JWT>``; managing
tokens and killing sessions needs a group listed in ``api.admin_groups``.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import select

from wardgate.cli.approvals import request_json
from wardgate.config import parse_duration
from wardgate.core.errors import AuthenticationError, AuthorizationError, WardgateError
from wardgate.core.model import Principal
from wardgate.policy.approvals import ApprovalConflictError, ApprovalNotFoundError
from wardgate.server import metrics
from wardgate.server.gateway import Gateway
from wardgate.storage.models import SessionRecord


class TokenCreate(BaseModel):
    identity: str
    groups: list[str] = Field(default_factory=list)
    ttl: str = "1h"
    description: str = ""


class TokenOut(BaseModel):
    id: str
    identity: str
    groups: list[str]
    created_at: datetime | None = None
    expires_at: datetime
    status: str = "active"
    token: str | None = None


class Decide(BaseModel):
    reason: str


class KillRequest(BaseModel):
    reason: str = "killed by an administrator"


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()


def session_row(r: SessionRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "node": r.node,
        "protocol": r.protocol,
        "principal": r.principal,
        "groups": r.groups,
        "auth_method": r.auth_method,
        "token_id": r.token_id,
        "subject": r.subject,
        "issuer": r.issuer,
        "client_addr": r.client_addr,
        "target": r.target,
        "started_at": _iso(r.started_at),
        "ended_at": _iso(r.ended_at),
        "bytes_from_client": r.bytes_from_client,
        "bytes_to_client": r.bytes_to_client,
        "statements": r.statements,
        "end_reason": r.end_reason,
        "end_detail": r.end_detail,
    }


async def caller(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The authenticated API caller: a wardgate token or a JWT as a bearer token."""
    gw: Gateway = request.app.state.gateway
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "send Authorization: Bearer <wardgate token or JWT>")
    try:
        return await gw.identify(authorization[7:].strip())
    except AuthenticationError:
        raise HTTPException(401, "invalid, expired or revoked credential") from None


Caller = Annotated[Principal, Depends(caller)]


async def admin(request: Request, p: Caller) -> Principal:
    groups = frozenset(request.app.state.gateway.cfg.api.admin_groups)
    if not p.groups & groups:
        raise HTTPException(
            403, f"this call needs membership in one of: {', '.join(sorted(groups))}"
        )
    return p


Admin = Annotated[Principal, Depends(admin)]


def create_app(gw: Gateway) -> FastAPI:
    app = FastAPI(
        title="wardgate",
        version="0.1.0",
        description="Identity-aware access gateway: sessions, tokens, approvals, recordings.",
    )
    app.state.gateway = gw
    admin_groups = frozenset(gw.cfg.api.admin_groups)

    @app.get("/healthz", tags=["ops"])
    def healthz(response: Response) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "ok",
            "node": gw.node,
            "live_sessions": len(gw.live.sessions),
        }
        if gw.recorder is not None:
            stats = gw.recorder.stats
            body["recording"] = {
                "healthy": stats.healthy,
                "pending_events": stats.pending_events,
                "events_written": stats.events_written,
                "failed_flushes": stats.failed_flushes,
                "last_error": stats.last_error,
            }
            if not stats.healthy and gw.cfg.recording.on_failure == "fail_closed":
                # A load balancer should stop sending sessions here: they would be refused.
                body["status"] = "degraded"
                response.status_code = 503
        return body

    @app.get("/metrics", tags=["ops"])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.post("/api/v1/tokens", tags=["tokens"], response_model=TokenOut)
    def create_token(body: TokenCreate, _: Admin) -> TokenOut:
        try:
            issued = gw.tokens.create(
                body.identity,
                body.groups,
                timedelta(seconds=parse_duration(body.ttl)),
                max_ttl=timedelta(seconds=parse_duration(gw.cfg.identity.tokens.max_ttl)),
                description=body.description,
            )
        except (WardgateError, ValueError) as e:
            raise HTTPException(400, str(e)) from None
        return TokenOut(
            id=issued.id,
            identity=issued.identity,
            groups=list(issued.groups),
            expires_at=issued.expires_at,
            token=issued.token,
        )

    @app.get("/api/v1/tokens", tags=["tokens"], response_model=list[TokenOut])
    def list_tokens(_: Admin, identity: str | None = None, all: bool = False) -> list[TokenOut]:
        return [
            TokenOut(
                id=t.id,
                identity=t.identity,
                groups=list(t.groups),
                created_at=t.created_at,
                expires_at=t.expires_at,
                status=t.status,
            )
            for t in gw.tokens.list_tokens(identity, include_inactive=all)
        ]

    @app.delete("/api/v1/tokens/{token_id}", tags=["tokens"])
    def revoke_token(token_id: str, _: Admin) -> dict[str, str]:
        if not gw.tokens.revoke(token_id):
            raise HTTPException(404, f"no token {token_id}")
        return {"id": token_id, "status": "revoked"}

    @app.get("/api/v1/sessions", tags=["sessions"])
    def list_sessions(p: Caller, live: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        is_admin = bool(p.groups & admin_groups)
        if live:
            return [
                s.summary()
                for s in gw.live.sessions.values()
                if is_admin or (s.principal is not None and s.principal.name == p.name)
            ]
        with gw.db() as db:
            q = (
                select(SessionRecord)
                .order_by(SessionRecord.started_at.desc())
                .limit(min(limit, 1000))
            )
            if not is_admin:
                q = q.where(SessionRecord.principal == p.name)
            return [session_row(r) for r in db.scalars(q)]

    @app.get("/api/v1/sessions/{session_id}", tags=["sessions"])
    def get_session(session_id: str, p: Caller) -> dict[str, Any]:
        with gw.db() as db:
            r = db.get(SessionRecord, session_id)
            if r is None or (not p.groups & admin_groups and r.principal != p.name):
                raise HTTPException(404, f"no session {session_id}")
            return session_row(r)

    @app.post("/api/v1/sessions/{session_id}/kill", tags=["sessions"])
    def kill_session(session_id: str, body: KillRequest, p: Admin) -> dict[str, str]:
        if not gw.request_kill(session_id, p.name, body.reason):
            raise HTTPException(404, f"no session {session_id}")
        return {"id": session_id, "status": "killed"}

    @app.get("/api/v1/sessions/{session_id}/recording", tags=["sessions"])
    def session_recording(session_id: str, p: Caller) -> dict[str, Any]:
        """The recorded session as JSON (events with hashes), for replay in a console."""
        from wardgate.recording.replay import session_document

        if not p.groups & admin_groups:
            with gw.db() as db:
                r = db.get(SessionRecord, session_id)
                if r is None or r.principal != p.name:
                    raise HTTPException(404, f"no recorded session {session_id}")
        try:
            return session_document(gw.engine, session_id)
        except LookupError:
            raise HTTPException(404, f"no recorded session {session_id}") from None

    @app.get("/api/v1/approvals", tags=["approvals"])
    async def list_approvals(_: Caller, status: str = "pending") -> list[dict[str, Any]]:
        await gw.approvals.expire_overdue()
        rows = await gw.approvals.list(None if status == "all" else status)  # type: ignore[arg-type]
        return [request_json(r) for r in rows]

    @app.get("/api/v1/approvals/{request_id}", tags=["approvals"])
    async def get_approval(request_id: str, _: Caller) -> dict[str, Any]:
        try:
            return request_json(await gw.approvals.get(request_id))
        except ApprovalNotFoundError:
            raise HTTPException(404, f"no approval request {request_id}") from None

    async def decide(request_id: str, body: Decide, p: Principal, approve: bool) -> dict[str, Any]:
        try:
            if approve:
                r = await gw.approvals.approve(request_id, p, body.reason)
            else:
                r = await gw.approvals.deny(request_id, p, body.reason)
        except ApprovalNotFoundError:
            raise HTTPException(404, f"no approval request {request_id}") from None
        except ApprovalConflictError as e:
            raise HTTPException(409, str(e)) from None
        except AuthorizationError as e:
            raise HTTPException(403, str(e)) from None
        except WardgateError as e:
            raise HTTPException(400, str(e)) from None
        return request_json(r)

    @app.post("/api/v1/approvals/{request_id}/approve", tags=["approvals"])
    async def approve(request_id: str, body: Decide, p: Caller) -> dict[str, Any]:
        return await decide(request_id, body, p, True)

    @app.post("/api/v1/approvals/{request_id}/deny", tags=["approvals"])
    async def deny(request_id: str, body: Decide, p: Caller) -> dict[str, Any]:
        return await decide(request_id, body, p, False)

    return app
