"""``wardgate approvals``: list, show, approve and deny held statements.

Deciding needs the approver's own credential (``--token`` or ``WARDGATE_TOKEN``): the
gateway checks it like any login, so an approval always names a verified identity and
the requester can never approve their own request.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from dataclasses import asdict
from typing import Any, TypeVar

import click

from wardgate.core.errors import AuthenticationError, WardgateError
from wardgate.policy.approvals import ApprovalRequest, ApprovalService

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def request_json(r: ApprovalRequest) -> dict[str, Any]:
    d = asdict(r)
    for k, v in list(d.items()):
        if isinstance(v, frozenset | set):
            d[k] = sorted(str(x) for x in v)
        elif hasattr(v, "isoformat"):
            d[k] = v.isoformat()
    return d


def _service(ctx: Any) -> ApprovalService:
    return ApprovalService(ctx.db(), ctx.cfg.policy.approvals)


@click.group()
def approvals() -> None:
    """Just-in-time approvals of held statements."""


@approvals.command("list")
@click.option(
    "--status",
    default="pending",
    show_default=True,
    help="pending|approved|denied|expired|cancelled|all",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def approvals_list(ctx: Any, status: str, as_json: bool) -> None:
    """Requests waiting for a decision (or with --status, decided ones)."""

    async def go() -> list[ApprovalRequest]:
        svc = _service(ctx)
        try:
            await svc.expire_overdue()
            return await svc.list(None if status == "all" else status)  # type: ignore[arg-type]
        finally:
            await svc.aclose()

    rows = _run(go())
    if as_json:
        click.echo(json.dumps([request_json(r) for r in rows], indent=2))
        return
    click.echo(
        f"{'ID':<12}{'STATUS':<10}{'WHO':<16}{'TARGET':<12}{'CLASSES':<26}{'APPROVERS':<14}STATEMENT"
    )
    for r in rows:
        stmt = " ".join(r.statement_text.split())
        click.echo(
            f"{r.id:<12}{r.status:<10}{r.requester_name:<16}{r.target:<12}"
            f"{','.join(sorted(map(str, r.classes))):<26}{','.join(sorted(r.approver_groups)):<14}"
            f"{stmt[:60] + ('…' if len(stmt) > 60 else '')}"
        )


@approvals.command("show")
@click.argument("request_id")
@click.pass_obj
def approvals_show(ctx: Any, request_id: str) -> None:
    """Everything about one request, as JSON."""

    async def go() -> ApprovalRequest:
        svc = _service(ctx)
        try:
            return await svc.get(request_id)
        finally:
            await svc.aclose()

    try:
        click.echo(json.dumps(request_json(_run(go())), indent=2))
    except WardgateError as e:
        click.echo(f"wardgate: {e}", err=True)
        sys.exit(2)


def _decide(ctx: Any, request_id: str, reason: str, token: str | None, approve: bool) -> None:
    if not token:
        click.echo("wardgate: pass your own credential with --token or WARDGATE_TOKEN", err=True)
        sys.exit(2)
    from wardgate.authn.tokens import TokenService

    async def go() -> ApprovalRequest:
        db = ctx.db()
        try:
            if token.startswith("wg_"):
                principal = TokenService(db).verify(token, use_cache=False)
            else:
                from wardgate.authn.jwt import JwtVerifier

                verifier = JwtVerifier(list(ctx.cfg.identity.oidc))
                try:
                    principal = await verifier.verify(token)
                finally:
                    await verifier.aclose()
        except AuthenticationError:
            raise WardgateError("your credential is invalid, expired or revoked") from None
        svc = ApprovalService(db, ctx.cfg.policy.approvals)
        try:
            if approve:
                return await svc.approve(request_id, principal, reason)
            return await svc.deny(request_id, principal, reason)
        finally:
            await svc.aclose()

    try:
        r = _run(go())
    except WardgateError as e:
        click.echo(f"wardgate: {e}", err=True)
        sys.exit(2)
    click.echo(f"{r.id} {r.status} by {r.decided_by}", err=True)


@approvals.command("approve")
@click.argument("request_id")
@click.option("--reason", required=True)
@click.option(
    "--token", envvar="WARDGATE_TOKEN", default=None, help="Your own wardgate token or JWT."
)
@click.pass_obj
def approvals_approve(ctx: Any, request_id: str, reason: str, token: str | None) -> None:
    """Let the held statement run (it runs in the waiting session at once)."""
    _decide(ctx, request_id, reason, token, approve=True)


@approvals.command("deny")
@click.argument("request_id")
@click.option("--reason", required=True)
@click.option(
    "--token", envvar="WARDGATE_TOKEN", default=None, help="Your own wardgate token or JWT."
)
@click.pass_obj
def approvals_deny(ctx: Any, request_id: str, reason: str, token: str | None) -> None:
    """Refuse the held statement; the waiting client gets 42501 with your reason."""
    _decide(ctx, request_id, reason, token, approve=False)
