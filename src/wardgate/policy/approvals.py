"""Just-in-time approval of held statements: request, wait, approve/deny, cancel, expire.

``ApprovalService`` is protocol-neutral: an adapter that got a ``review`` decision holds
the client and drives it like this::

    decision = engine.decide(principal, target, classification)
    if decision.needs_review:
        grant = await approvals.preapproved(principal, target, classification.fingerprint)
        if grant is None:
            req = await approvals.request(principal, target, sql, classification, decision,
                                          session_id=session.id)
            notice(req.pending_notice)           # tell the waiting client who can approve
            outcome = await approvals.wait(req.id)
            if not outcome.approved:
                error_42501(outcome.message)     # denied / expired: nothing ran
                return
        forward the held statement to the target

The store (SQLite or PostgreSQL, through the ``sessionmaker`` passed in) is the source of
truth, shared by every gateway node and the ``wardgate approvals`` CLI process. A waiter
is woken at once when the decision is made through this same service object, and
otherwise sees it by polling the store every ``poll_interval`` seconds. Every status
change is a conditional ``UPDATE … WHERE status = 'pending'``, so exactly one of several
concurrent deciders (approvers on two nodes, an approval racing the timeout, a cancel
racing an approval) wins, and the others are told what happened instead.

Database calls run in worker threads (``asyncio.to_thread``), so a slow store never
stalls the event loop that relays other sessions' bytes. Webhook notifications run as
background tasks: a slow or broken webhook is logged and never delays a request.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import httpx
from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from wardgate.core.errors import AuthorizationError, WardgateError
from wardgate.core.model import Principal
from wardgate.policy.config import ApprovalsConfig
from wardgate.policy.decision import Decision
from wardgate.policy.models import ApprovalRequestRow
from wardgate.sql.classes import Classification, StatementClass

logger = logging.getLogger(__name__)

ApprovalStatus = Literal["pending", "approved", "denied", "expired", "cancelled"]
ApprovalScope = Literal["statement", "fingerprint"]

# No 0/O, 1/I/L or U: ids are read aloud and typed from chat messages.
_ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_LENGTH = 6


def new_request_id() -> str:
    """A short id people can type: ``apr_7K3P9Q`` (30**6 ≈ 7e8 values; collisions retry)."""
    return "apr_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


class ApprovalNotFoundError(WardgateError):
    """No approval request has that id."""

    sqlstate = "42704"


class ApprovalConflictError(AuthorizationError):
    """The request is no longer pending (decided, expired or cancelled)."""


@dataclass(frozen=True, slots=True)
class Approver:
    """Who is deciding, when the caller has no full ``Principal`` (e.g. the CLI)."""

    name: str
    groups: frozenset[str]
    credential_id: str | None = None


def _utc(value: datetime) -> datetime:
    # SQLite hands naive datetimes back; everything wardgate writes is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _stamp(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A read-only snapshot of one ``approval_requests`` row."""

    id: str
    created_at: datetime
    requester_name: str
    requester_credential_id: str
    requester_groups: frozenset[str]
    target: str
    # Kept out of repr so that logging a request never logs SQL literals.
    statement_text: str = field(repr=False)
    fingerprint: str
    classes: frozenset[StatementClass]
    rule: str
    reason: str
    approver_groups: frozenset[str]
    status: ApprovalStatus
    decided_by: str | None
    decided_by_credential_id: str | None
    decided_at: datetime | None
    decision_reason: str | None
    session_id: str | None
    scope: ApprovalScope
    deadline_at: datetime
    expires_at: datetime | None

    @classmethod
    def from_row(cls, row: ApprovalRequestRow) -> ApprovalRequest:
        return cls(
            id=row.id,
            created_at=_utc(row.created_at),
            requester_name=row.requester_name,
            requester_credential_id=row.requester_credential_id,
            requester_groups=frozenset(row.requester_groups),
            target=row.target,
            statement_text=row.statement_text,
            fingerprint=row.fingerprint,
            classes=frozenset(StatementClass(c) for c in row.classes),
            rule=row.rule,
            reason=row.reason,
            approver_groups=frozenset(row.approver_groups),
            status=cast(ApprovalStatus, row.status),
            decided_by=row.decided_by,
            decided_by_credential_id=row.decided_by_credential_id,
            decided_at=_utc_or_none(row.decided_at),
            decision_reason=row.decision_reason,
            session_id=row.session_id,
            scope=cast(ApprovalScope, row.scope),
            deadline_at=_utc(row.deadline_at),
            expires_at=_utc_or_none(row.expires_at),
        )

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    @property
    def pending_notice(self) -> str:
        """What the held client is told (PostgreSQL NoticeResponse, MySQL warning...)."""
        scope = (
            "this statement and identical ones for a limited time"
            if self.scope == "fingerprint"
            else "this statement only"
        )
        return (
            f"approval request {self.id} is pending: {self.reason}. A member of "
            f"{', '.join(sorted(self.approver_groups))} can approve it ({scope}) with "
            f"`wardgate approvals approve {self.id}`; this session waits until "
            f"{_stamp(self.deadline_at)}"
        )


@dataclass(frozen=True, slots=True)
class ApprovalOutcome:
    """How a wait ended. Only ``approved`` lets the held statement run."""

    request: ApprovalRequest

    @property
    def status(self) -> ApprovalStatus:
        return self.request.status

    @property
    def approved(self) -> bool:
        return self.request.status == "approved"

    @property
    def message(self) -> str:
        """For the client: what happened, by whom, and what to do next."""
        r = self.request
        why = f": {r.decision_reason}" if r.decision_reason else ""
        if r.status == "approved":
            return f"approval request {r.id} was approved by {r.decided_by}{why}"
        if r.status == "denied":
            return f"approval request {r.id} was denied by {r.decided_by}{why}"
        if r.status == "expired":
            return (
                f"approval request {r.id} expired without a decision from "
                f"{', '.join(sorted(r.approver_groups))}{why}; the statement did not run — "
                "run it again to file a new request"
            )
        if r.status == "cancelled":
            return f"approval request {r.id} was cancelled{why}; the statement did not run"
        return f"approval request {r.id} is still pending"


def _cas(session: Session, request_id: str, values: dict[str, Any]) -> bool:
    """Move a request out of pending; False when another decider got there first."""
    result = session.execute(
        update(ApprovalRequestRow)
        .where(ApprovalRequestRow.id == request_id, ApprovalRequestRow.status == "pending")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(cast(CursorResult[Any], result).rowcount)


def _reload(session: Session, request_id: str) -> ApprovalRequest:
    session.expire_all()
    row = session.get(ApprovalRequestRow, request_id)
    if row is None:  # pragma: no cover - rows are never deleted by the service
        raise ApprovalNotFoundError(f"approval request {request_id} vanished from the store")
    return ApprovalRequest.from_row(row)


def _not_pending(req: ApprovalRequest) -> ApprovalConflictError:
    if req.status in ("approved", "denied"):
        when = f" at {_stamp(req.decided_at)}" if req.decided_at else ""
        detail = f"already {req.status} by {req.decided_by}{when}"
    else:
        detail = f"already {req.status}"
    return ApprovalConflictError(
        f"approval request {req.id} is {detail}; only pending requests can be decided"
    )


class ApprovalService:
    """The approval workflow over a shared store. One per gateway node (and one per CLI run)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: ApprovalsConfig | None = None,
        *,
        poll_interval: float = 0.5,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config if config is not None else ApprovalsConfig()
        self.poll_interval = poll_interval
        self._sessions = sessions
        self._clock = clock if clock is not None else (lambda: datetime.now(UTC))
        # Waiters in this process, woken directly when a decision is made here.
        self._waiters: dict[str, builtins.list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]]
        self._waiters = {}
        # Positive fingerprint grants: (credential, name, target, fingerprint) -> (id, until).
        self._grants: dict[tuple[str, str, str, str], tuple[str, datetime]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._last_delivery: asyncio.Task[None] | None = None

    # -- requesting and waiting ----------------------------------------------------

    async def request(
        self,
        principal: Principal,
        target: str,
        statement_text: str,
        classification: Classification,
        decision: Decision,
        *,
        session_id: str | None = None,
    ) -> ApprovalRequest:
        """Record a held statement as pending and announce it. ``decision`` must be a review."""
        if not decision.needs_review:
            raise ValueError(f"only review decisions need approval, got {decision.verdict}")
        now = self._now()
        scope: ApprovalScope = self.config.scope
        if scope == "fingerprint" and not classification.fingerprint:
            # Without a fingerprint there is nothing to match repeats against.
            scope = "statement"
        values: dict[str, Any] = {
            "created_at": now,
            "requester_name": principal.name,
            "requester_credential_id": principal.credential_id,
            "requester_groups": sorted(principal.groups),
            "target": target,
            "statement_text": statement_text,
            "fingerprint": classification.fingerprint,
            "classes": sorted(c.value for c in classification.classes),
            "rule": decision.rule,
            "reason": decision.reason,
            "approver_groups": sorted(decision.approvers),
            "status": "pending",
            "decided_by": None,
            "decided_by_credential_id": None,
            "decided_at": None,
            "decision_reason": None,
            "session_id": session_id,
            "scope": scope,
            "deadline_at": now + timedelta(seconds=self.config.timeout_seconds),
            "expires_at": None,
        }
        req = await asyncio.to_thread(self._insert, values)
        logger.info(
            "approval %s requested by %s on %s (rule %s)", req.id, req.requester_name,
            req.target, req.rule,
        )  # fmt: skip
        self._notify("approval.requested", req)
        return req

    # The timeout is part of the workflow, not a plain cancellation: running out of it
    # records the request as expired, which a caller's asyncio.timeout() could not do.
    async def wait(
        self,
        request_id: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ApprovalOutcome:
        """Hold until the request is decided, or expire it after ``timeout`` seconds
        (default: until its ``deadline_at``). If the waiting task is cancelled — the
        client went away — the request is cancelled so it can never be approved later."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        self._waiters.setdefault(request_id, []).append(entry)
        try:
            req = await self.get(request_id)
            if timeout is None:
                timeout = max(0.0, (req.deadline_at - self._now()).total_seconds())
            give_up = loop.time() + timeout
            while req.pending:
                remaining = give_up - loop.time()
                if remaining <= 0:
                    req = await self._finish(
                        request_id,
                        "expired",
                        f"no decision within {timeout:g} s",
                    )
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self.poll_interval, remaining)):
                        await event.wait()
                event.clear()
                req = await self.get(request_id)
            return ApprovalOutcome(req)
        except asyncio.CancelledError:
            self._spawn(
                self._finish(
                    request_id, "cancelled", "the client disconnected while waiting for approval"
                )
            )
            raise
        finally:
            waiters = self._waiters.get(request_id, [])
            if entry in waiters:
                waiters.remove(entry)
            if not waiters:
                self._waiters.pop(request_id, None)

    # -- deciding ---------------------------------------------------------------

    async def approve(
        self, request_id: str, approver: Principal | Approver, reason: str
    ) -> ApprovalRequest:
        """Approve a pending request. Raises AuthorizationError when the approver is the
        requester (same name or same credential) or not in the request's approver groups,
        ApprovalConflictError when it is no longer pending."""
        return await self._decide(request_id, "approved", approver, reason)

    async def deny(
        self, request_id: str, approver: Principal | Approver, reason: str
    ) -> ApprovalRequest:
        """Deny a pending request; the same rules as ``approve`` apply to who may decide."""
        return await self._decide(request_id, "denied", approver, reason)

    async def cancel(self, request_id: str, why: str) -> ApprovalRequest:
        """Withdraw a pending request (its client went away). Returns the final state; a
        request already decided is left as it is."""
        return await self._finish(request_id, "cancelled", why)

    async def expire(self, request_id: str, why: str = "no decision in time") -> ApprovalRequest:
        """Mark a pending request expired. Returns the final state."""
        return await self._finish(request_id, "expired", why)

    async def expire_overdue(self) -> int:
        """Expire pending requests past their deadline (their node stopped waiting, e.g.
        it crashed). Returns how many were expired."""
        return await asyncio.to_thread(self._expire_overdue_sync, self._now())

    # -- reading ------------------------------------------------------------------

    async def get(self, request_id: str) -> ApprovalRequest:
        return await asyncio.to_thread(self._get_sync, request_id)

    async def list(
        self, status: ApprovalStatus | None = None, *, limit: int = 100
    ) -> builtins.list[ApprovalRequest]:
        """Requests, newest first, optionally only those with ``status``."""
        return await asyncio.to_thread(self._list_sync, status, limit)

    async def preapproved(self, principal: Principal, target: str, fingerprint: str) -> str | None:
        """The id of an approved fingerprint-scope grant that covers this statement for this
        requester (same credential and name) on this target and has not expired; else None.

        Call it only for statements policy sent to review: a grant never overrides a deny.
        """
        if not fingerprint:
            return None
        now = self._now()
        key = (principal.credential_id, principal.name, target, fingerprint)
        cached = self._grants.get(key)
        if cached is not None:
            if cached[1] > now:
                return cached[0]
            del self._grants[key]
        found = await asyncio.to_thread(self._find_grant_sync, key, now)
        if found is not None:
            self._grants[key] = found
            return found[0]
        return None

    # -- lifecycle ------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait for background work (webhook deliveries, cancellations) to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        await self.flush()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- internals ----------------------------------------------------------------

    def _now(self) -> datetime:
        return _utc(self._clock())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await coro
            except Exception:
                # Background work must never take the gateway down; say what failed.
                logger.exception("background approval task failed")

        task = asyncio.get_running_loop().create_task(run())
        # Keep a reference: the event loop only holds weak ones.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _wake(self, request_id: str) -> None:
        current = asyncio.get_running_loop()
        for loop, event in self._waiters.get(request_id, []):
            if loop is current:
                event.set()
            else:  # a waiter on another event loop in this process
                loop.call_soon_threadsafe(event.set)

    async def _decide(
        self,
        request_id: str,
        status: Literal["approved", "denied"],
        approver: Principal | Approver,
        reason: str,
    ) -> ApprovalRequest:
        if not reason.strip():
            verb = "approve" if status == "approved" else "deny"
            raise ValueError(f"give a reason to {verb} {request_id}; it is kept for the audit")
        req = await asyncio.to_thread(
            self._decide_sync, request_id, status, approver, reason.strip(), self._now()
        )
        logger.info("approval %s %s by %s", req.id, req.status, req.decided_by)
        self._wake(request_id)
        self._notify(f"approval.{status}", req)
        return req

    async def _finish(
        self, request_id: str, status: Literal["expired", "cancelled"], why: str
    ) -> ApprovalRequest:
        req, changed = await asyncio.to_thread(
            self._finish_sync, request_id, status, why, self._now()
        )
        if changed:
            logger.info("approval %s %s: %s", req.id, req.status, why)
            self._wake(request_id)
            self._notify(f"approval.{status}", req)
        return req

    # -- store (worker threads) ------------------------------------------------------

    def _insert(self, values: dict[str, Any]) -> ApprovalRequest:
        for _ in range(8):
            try:
                with self._sessions.begin() as session:
                    row = ApprovalRequestRow(id=new_request_id(), **values)
                    session.add(row)
                    session.flush()
                    return ApprovalRequest.from_row(row)
            except IntegrityError:  # id collision: draw another
                continue
        raise WardgateError("could not allocate a unique approval request id; check the store")

    def _get_sync(self, request_id: str) -> ApprovalRequest:
        with self._sessions() as session:
            row = session.get(ApprovalRequestRow, request_id)
            if row is None:
                raise ApprovalNotFoundError(
                    f"no approval request {request_id}; `wardgate approvals list` shows them"
                )
            return ApprovalRequest.from_row(row)

    def _list_sync(self, status: str | None, limit: int) -> builtins.list[ApprovalRequest]:
        query = select(ApprovalRequestRow).order_by(ApprovalRequestRow.created_at.desc())
        if status is not None:
            query = query.where(ApprovalRequestRow.status == status)
        with self._sessions() as session:
            rows = session.scalars(query.limit(limit)).all()
            return [ApprovalRequest.from_row(r) for r in rows]

    def _decide_sync(
        self,
        request_id: str,
        status: Literal["approved", "denied"],
        approver: Principal | Approver,
        reason: str,
        now: datetime,
    ) -> ApprovalRequest:
        with self._sessions() as session:
            row = session.get(ApprovalRequestRow, request_id)
            if row is None:
                raise ApprovalNotFoundError(
                    f"no approval request {request_id}; `wardgate approvals list` shows them"
                )
            req = ApprovalRequest.from_row(row)
            _check_approver(req, approver)
            if not req.pending:
                raise _not_pending(req)
            if req.deadline_at <= now:
                # Its session stopped waiting (its node may have died): approving it now
                # would run nothing, or mint a fingerprint grant nobody asked for in time.
                _cas(session, request_id, _final("expired", "deadline passed", now))
                session.commit()
                raise ApprovalConflictError(
                    f"approval request {request_id} expired at {_stamp(req.deadline_at)} "
                    "without a decision, and its client is no longer waiting; ask the "
                    "requester to run the statement again"
                )
            values = _final(status, reason, now)
            values["decided_by"] = approver.name
            values["decided_by_credential_id"] = approver.credential_id
            if status == "approved" and req.scope == "fingerprint":
                values["expires_at"] = now + timedelta(seconds=self.config.fingerprint_ttl_seconds)
            won = _cas(session, request_id, values)
            session.commit()
            req = _reload(session, request_id)
            if not won:
                raise _not_pending(req)
            return req

    def _finish_sync(
        self, request_id: str, status: str, why: str, now: datetime
    ) -> tuple[ApprovalRequest, bool]:
        with self._sessions() as session:
            if session.get(ApprovalRequestRow, request_id) is None:
                raise ApprovalNotFoundError(f"no approval request {request_id}")
            changed = _cas(session, request_id, _final(status, why, now))
            session.commit()
            return _reload(session, request_id), changed

    def _expire_overdue_sync(self, now: datetime) -> int:
        with self._sessions.begin() as session:
            result = session.execute(
                update(ApprovalRequestRow)
                .where(
                    ApprovalRequestRow.status == "pending",
                    ApprovalRequestRow.deadline_at <= now,
                )
                .values(**_final("expired", "deadline passed", now))
                .execution_options(synchronize_session=False)
            )
            return int(cast(CursorResult[Any], result).rowcount)

    def _find_grant_sync(
        self, key: tuple[str, str, str, str], now: datetime
    ) -> tuple[str, datetime] | None:
        credential_id, name, target, fingerprint = key
        query = (
            select(ApprovalRequestRow.id, ApprovalRequestRow.expires_at)
            .where(
                ApprovalRequestRow.requester_credential_id == credential_id,
                ApprovalRequestRow.requester_name == name,
                ApprovalRequestRow.target == target,
                ApprovalRequestRow.fingerprint == fingerprint,
                ApprovalRequestRow.status == "approved",
                ApprovalRequestRow.scope == "fingerprint",
                ApprovalRequestRow.expires_at > now,
            )
            .order_by(ApprovalRequestRow.expires_at.desc())
            .limit(1)
        )
        with self._sessions() as session:
            found = session.execute(query).first()
            if found is None or found[1] is None:
                return None
            return found[0], _utc(found[1])

    # -- webhook ---------------------------------------------------------------------

    def _notify(self, event: str, req: ApprovalRequest) -> None:
        hook = self.config.webhook
        if hook.url is None:
            return
        if hook.format == "slack":
            payload: dict[str, Any] = {"text": _slack_text(event, req)}
        else:
            payload = _json_payload(event, req, include_statement=hook.include_statement)
        previous = self._last_delivery

        async def in_order() -> None:
            # One delivery at a time, in event order: a channel must not show "approved"
            # before "requested".
            if previous is not None:
                await asyncio.wait([previous])
            await self._deliver(str(hook.url), payload, req.id, event)

        self._last_delivery = self._spawn(in_order())

    async def _deliver(
        self, url: str, payload: dict[str, Any], request_id: str, event: str
    ) -> None:
        hook = self.config.webhook
        # Log the host only: webhook URLs (Slack's especially) carry their secret in the path.
        host = httpx.URL(url).host
        try:
            if self._http is None:
                self._http = httpx.AsyncClient()
            response = await self._http.post(url, json=payload, timeout=hook.timeout_seconds)
        except Exception as exc:
            logger.warning(
                "webhook %s for approval %s to host %s failed: %s; the request itself is "
                "unaffected — check policy.approvals.webhook",
                event, request_id, host, type(exc).__name__,
            )  # fmt: skip
            return
        if response.status_code >= 400:
            logger.warning(
                "webhook %s for approval %s: host %s answered HTTP %d; check "
                "policy.approvals.webhook",
                event, request_id, host, response.status_code,
            )  # fmt: skip


def _final(status: str, why: str, now: datetime) -> dict[str, Any]:
    return {"status": status, "decided_at": now, "decision_reason": why}


def _check_approver(req: ApprovalRequest, approver: Principal | Approver) -> None:
    who = approver.name
    groups = ", ".join(sorted(req.approver_groups))
    if who.casefold() == req.requester_name.casefold():
        raise AuthorizationError(
            f"{who} cannot decide approval request {req.id}: it was requested by "
            f"{req.requester_name}, and a requester can never decide their own request; "
            f"ask another member of {groups}"
        )
    if approver.credential_id is not None and approver.credential_id == req.requester_credential_id:
        raise AuthorizationError(
            f"{who} cannot decide approval request {req.id}: it was requested with the same "
            f"credential, and a requester can never decide their own request; ask another "
            f"member of {groups}"
        )
    if approver.groups.isdisjoint(req.approver_groups):
        held = ", ".join(sorted(approver.groups)) or "no groups"
        raise AuthorizationError(
            f"{who} cannot decide approval request {req.id}: it needs a member of {groups} "
            f"(rule {req.rule}), and {who} is in {held}"
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _utc(value).isoformat()


def _json_payload(event: str, req: ApprovalRequest, *, include_statement: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event": event,
        "id": req.id,
        "status": req.status,
        "requester": req.requester_name,
        "target": req.target,
        "classes": sorted(c.value for c in req.classes),
        "rule": req.rule,
        "reason": req.reason,
        "approvers": sorted(req.approver_groups),
        "scope": req.scope,
        "fingerprint": req.fingerprint,
        "session_id": req.session_id,
        "created_at": _iso(req.created_at),
        "deadline_at": _iso(req.deadline_at),
        "decided_by": req.decided_by,
        "decided_at": _iso(req.decided_at),
        "decision_reason": req.decision_reason,
        "expires_at": _iso(req.expires_at),
        "approve_command": f"wardgate approvals approve {req.id}",
        "deny_command": f"wardgate approvals deny {req.id}",
    }
    if include_statement:
        payload["statement"] = req.statement_text
    return payload


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_text(event: str, req: ApprovalRequest) -> str:
    who = _slack_escape(req.requester_name)
    target = _slack_escape(req.target)
    classes = ", ".join(sorted(c.value for c in req.classes))
    if event == "approval.requested":
        return (
            f"Approval {req.id}: *{who}* wants to run a {classes} statement on *{target}*. "
            f"{_slack_escape(req.reason)}\n"
            f"A member of {_slack_escape(', '.join(sorted(req.approver_groups)))} can run "
            f"`wardgate approvals approve {req.id}` or `wardgate approvals deny {req.id}` "
            f"before {_stamp(req.deadline_at)}."
        )
    by = f" by *{_slack_escape(req.decided_by)}*" if req.decided_by else ""
    why = f": {_slack_escape(req.decision_reason)}" if req.decision_reason else ""
    return f"Approval {req.id} ({who} on *{target}*) {req.status}{by}{why}"
