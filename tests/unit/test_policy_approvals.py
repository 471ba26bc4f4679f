"""ApprovalService against real stores: a SQLite file (the default) and a real PostgreSQL
database (the multi-node store), plus a real local HTTP server for webhooks.

Cross-node visibility is tested with a second ApprovalService on its own engine and with a
separate Python process (the shape of `wardgate approvals approve` run from a shell).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from wardgate.core.errors import AuthorizationError
from wardgate.core.model import Principal
from wardgate.policy.approvals import (
    ApprovalConflictError,
    ApprovalNotFoundError,
    ApprovalService,
    Approver,
    new_request_id,
)
from wardgate.policy.config import ApprovalsConfig
from wardgate.policy.decision import Decision
from wardgate.policy.models import ApprovalRequestRow
from wardgate.sql.classes import Classification, StatementClass, StatementInfo
from wardgate.storage.base import Base
from wardgate.storage.db import make_engine, session_factory

S = StatementClass
SQL = "DELETE FROM orders WHERE created_at < '2019-01-01' OR note = 'p@ssw0rd'"

ERIN = Principal(
    name="erin", groups=frozenset({"engineers"}), auth_method="token", token_id="tok_erin"
)
CAROL = Principal(
    name="carol", groups=frozenset({"dba"}), auth_method="token", token_id="tok_carol"
)
BOB = Principal(
    name="bob", groups=frozenset({"engineers"}), auth_method="token", token_id="tok_bob"
)

DECISION = Decision.review(
    rule="role:engineer-demo",
    reason="write-unbounded on target 'demo' needs approval by a member of dba",
    approvers=frozenset({"dba"}),
    classes=frozenset({S.WRITE_UNBOUNDED}),
)
CLASSIFICATION = Classification(
    statements=(
        StatementInfo(
            kind="DeleteStmt",
            classes=frozenset({S.WRITE_UNBOUNDED}),
            tables=frozenset({"orders"}),
            text=SQL,
        ),
    ),
    classes=frozenset({S.WRITE_UNBOUNDED}),
    tables=frozenset({"orders"}),
    fingerprint="fp-delete-orders",
)


# -- stores ---------------------------------------------------------------------------------


def _postgres_url() -> Iterator[str]:
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"wardgate_policy_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {e}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    # One scratch database per module; each test recreates the table in it.
    yield from _postgres_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@dataclass
class Store:
    url: str
    engines: list[Engine] = field(default_factory=list)

    def sessions(self) -> sessionmaker[Session]:
        # A fresh engine per service: like two gateway nodes, nothing shared but the store.
        engine = make_engine(self.url)
        self.engines.append(engine)
        return session_factory(engine)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    engine = make_engine(store_url)
    tables = [ApprovalRequestRow.__table__]
    Base.metadata.drop_all(engine, tables=tables)  # type: ignore[arg-type]
    Base.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]
    engine.dispose()
    s = Store(store_url)
    yield s
    for e in s.engines:
        e.dispose()


class Clock:
    """A settable clock for TTLs and deadlines; starts now."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def make_service(store: Store) -> AsyncIterator[Callable[..., ApprovalService]]:
    made: list[ApprovalService] = []

    def make(config: ApprovalsConfig | None = None, **kw: Any) -> ApprovalService:
        kw.setdefault("poll_interval", 0.05)
        svc = ApprovalService(store.sessions(), config, **kw)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        await svc.aclose()


async def file_request(svc: ApprovalService, who: Principal = ERIN) -> str:
    req = await svc.request(who, "demo", SQL, CLASSIFICATION, DECISION, session_id="sess-1")
    return req.id


# -- the basic flows ------------------------------------------------------------------------


async def test_request_is_persisted_with_everything_an_auditor_needs(
    make_service: Callable[..., ApprovalService],
) -> None:
    svc = make_service()
    req = await svc.request(ERIN, "demo", SQL, CLASSIFICATION, DECISION, session_id="sess-1")
    assert req.id.startswith("apr_") and len(req.id) == 10
    got = await svc.get(req.id)
    assert got == req
    assert (got.status, got.requester_name, got.requester_credential_id) == (
        "pending",
        "erin",
        "token:tok_erin",
    )
    assert got.requester_groups == {"engineers"}
    assert (got.target, got.statement_text, got.fingerprint) == ("demo", SQL, "fp-delete-orders")
    assert got.classes == {S.WRITE_UNBOUNDED}
    assert (got.rule, got.reason) == (DECISION.rule, DECISION.reason)
    assert got.approver_groups == {"dba"}
    assert (got.session_id, got.scope) == ("sess-1", "statement")
    assert got.created_at.tzinfo is not None
    assert timedelta(seconds=299) < got.deadline_at - got.created_at <= timedelta(seconds=300)
    assert got.decided_by is None and got.expires_at is None
    # The pending notice tells the held client who can approve and how.
    assert req.id in req.pending_notice and "dba" in req.pending_notice
    assert "p@ssw0rd" not in req.pending_notice
    # Logging a request object never logs the SQL.
    assert "p@ssw0rd" not in repr(req)


async def test_approve_flow_wakes_the_waiter_at_once(
    make_service: Callable[..., ApprovalService],
) -> None:
    svc = make_service(poll_interval=30)  # in-process wake-up, not polling
    rid = await file_request(svc)
    waiter = asyncio.create_task(svc.wait(rid, timeout=20))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = time.monotonic()
    decided = await svc.approve(rid, CAROL, "plan reviewed, 12 rows")
    outcome = await asyncio.wait_for(waiter, 2)
    assert time.monotonic() - started < 1
    assert outcome.approved and outcome.status == "approved"
    assert outcome.request == decided
    assert (decided.decided_by, decided.decided_by_credential_id) == ("carol", "token:tok_carol")
    assert decided.decision_reason == "plan reviewed, 12 rows"
    assert decided.decided_at is not None
    assert (
        outcome.message == f"approval request {rid} was approved by carol: plan reviewed, 12 rows"
    )
    assert [r.id for r in await svc.list(status="approved")] == [rid]
    assert await svc.list(status="pending") == []


async def test_deny_flow(make_service: Callable[..., ApprovalService]) -> None:
    svc = make_service()
    rid = await file_request(svc)
    waiter = asyncio.create_task(svc.wait(rid, timeout=20))
    await asyncio.sleep(0.05)
    await svc.deny(rid, CAROL, "use a WHERE on the partition key")
    outcome = await asyncio.wait_for(waiter, 2)
    assert not outcome.approved and outcome.status == "denied"
    assert outcome.message == (
        f"approval request {rid} was denied by carol: use a WHERE on the partition key"
    )


# -- who may decide -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approver", "needle"),
    [
        # same name, even holding the approver group
        (
            Principal(name="erin", groups=frozenset({"dba"}), auth_method="jwt",
                      subject="erin", issuer="https://idp"),
            "it was requested by erin, and a requester can never decide their own request",
        ),
        (Approver(name="ERIN", groups=frozenset({"dba"})), "it was requested by erin"),
        # same credential under another name
        (
            Principal(name="erin-alt", groups=frozenset({"dba"}), auth_method="token",
                      token_id="tok_erin"),
            "it was requested with the same credential",
        ),
        # not in the approver group
        (BOB, "it needs a member of dba (rule role:engineer-demo), and bob is in engineers"),
        (Approver(name="nobody", groups=frozenset()), "and nobody is in no groups"),
    ],
    ids=["same-name", "same-name-other-case", "same-credential", "not-approver", "no-groups"],
)  # fmt: skip
async def test_who_may_not_decide(
    make_service: Callable[..., ApprovalService], approver: Principal | Approver, needle: str
) -> None:
    svc = make_service()
    rid = await file_request(svc)
    for decide in (svc.approve, svc.deny):
        with pytest.raises(AuthorizationError) as info:
            await decide(rid, approver, "looks fine to me")
        assert needle in str(info.value)
        assert rid in str(info.value)
        assert "tok_erin" not in str(info.value)
    assert (await svc.get(rid)).status == "pending"


async def test_only_pending_requests_can_be_decided(
    make_service: Callable[..., ApprovalService],
) -> None:
    svc = make_service()
    rid = await file_request(svc)
    await svc.approve(rid, CAROL, "ok")
    dave = Approver(name="dave", groups=frozenset({"dba"}))
    for decide in (svc.approve, svc.deny):
        with pytest.raises(ApprovalConflictError, match=r"is already approved by carol at .* UTC"):
            await decide(rid, dave, "me too")
    after = await svc.get(rid)
    assert (after.status, after.decided_by) == ("approved", "carol")


async def test_two_nodes_deciding_at_once_one_wins(
    make_service: Callable[..., ApprovalService],
) -> None:
    a, b = make_service(), make_service()
    rid = await file_request(a)
    dave = Approver(name="dave", groups=frozenset({"dba"}))
    results = await asyncio.gather(
        a.approve(rid, CAROL, "ok"), b.deny(rid, dave, "no"), return_exceptions=True
    )
    conflicts = [r for r in results if isinstance(r, ApprovalConflictError)]
    assert len(conflicts) == 1, results
    final = await a.get(rid)
    assert final.status in ("approved", "denied")


async def test_reason_is_required_and_unknown_ids_are_reported(
    make_service: Callable[..., ApprovalService],
) -> None:
    svc = make_service()
    rid = await file_request(svc)
    with pytest.raises(ValueError, match="give a reason"):
        await svc.approve(rid, CAROL, "  ")
    with pytest.raises(ApprovalNotFoundError, match="no approval request apr_NOPE22"):
        await svc.approve("apr_NOPE22", CAROL, "ok")
    with pytest.raises(ApprovalNotFoundError):
        await svc.get("apr_NOPE22")
    with pytest.raises(ValueError, match="only review decisions"):
        await svc.request(
            ERIN, "demo", SQL, CLASSIFICATION, Decision.allow(rule="role:x"), session_id=None
        )


# -- timeouts and cancellation -------------------------------------------------------------


async def test_timeout_expires_the_request(make_service: Callable[..., ApprovalService]) -> None:
    svc = make_service()
    rid = await file_request(svc)
    started = time.monotonic()
    outcome = await svc.wait(rid, timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2
    assert outcome.status == "expired" and not outcome.approved
    assert "expired without a decision from dba" in outcome.message
    assert "no decision within 0.3 s" in outcome.message
    with pytest.raises(ApprovalConflictError, match="already expired"):
        await svc.approve(rid, CAROL, "too late")


async def test_default_wait_runs_until_the_configured_deadline(
    make_service: Callable[..., ApprovalService],
) -> None:
    svc = make_service(ApprovalsConfig(timeout_seconds=0.3))
    rid = await file_request(svc)
    outcome = await asyncio.wait_for(svc.wait(rid), 3)
    assert outcome.status == "expired"


async def test_cancel_wakes_the_waiter_and_blocks_later_approval(
    make_service: Callable[..., ApprovalService],
) -> None:
    svc = make_service(poll_interval=30)
    rid = await file_request(svc)
    waiter = asyncio.create_task(svc.wait(rid, timeout=20))
    await asyncio.sleep(0.05)
    cancelled = await svc.cancel(rid, "client sent CancelRequest")
    outcome = await asyncio.wait_for(waiter, 2)
    assert cancelled.status == outcome.status == "cancelled"
    assert outcome.message == (
        f"approval request {rid} was cancelled: client sent CancelRequest; "
        "the statement did not run"
    )
    with pytest.raises(ApprovalConflictError, match="already cancelled"):
        await svc.approve(rid, CAROL, "ok")
    # Cancelling a decided request leaves it as it is.
    assert (await svc.cancel(rid, "again")).decision_reason == "client sent CancelRequest"


async def test_client_disconnect_while_waiting_cancels_the_request(
    make_service: Callable[..., ApprovalService],
) -> None:
    svc = make_service()
    rid = await file_request(svc)
    waiter = asyncio.create_task(svc.wait(rid, timeout=20))
    await asyncio.sleep(0.1)
    waiter.cancel()  # the session task is torn down when its client goes away
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await svc.flush()
    req = await svc.get(rid)
    assert req.status == "cancelled"
    assert req.decision_reason == "the client disconnected while waiting for approval"
    with pytest.raises(ApprovalConflictError):
        await svc.approve(rid, CAROL, "ok")


async def test_stale_pending_request_cannot_be_approved_after_its_deadline(
    make_service: Callable[..., ApprovalService],
) -> None:
    clock = Clock()
    svc = make_service(ApprovalsConfig(timeout_seconds=60), clock=clock)
    rid = await file_request(svc)  # its gateway node then dies: nobody waits or expires it
    clock.advance(61)
    with pytest.raises(ApprovalConflictError, match=r"expired at .* its client is no longer"):
        await svc.approve(rid, CAROL, "ok")
    assert (await svc.get(rid)).status == "expired"


async def test_expire_overdue_sweeps_only_past_deadline(
    make_service: Callable[..., ApprovalService],
) -> None:
    clock = Clock()
    svc = make_service(ApprovalsConfig(timeout_seconds=60), clock=clock)
    old = await file_request(svc)
    clock.advance(30)
    fresh = await file_request(svc)
    clock.advance(31)
    assert await svc.expire_overdue() == 1
    assert (await svc.get(old)).status == "expired"
    assert (await svc.get(fresh)).status == "pending"
    expired = await svc.expire(fresh)
    assert expired.status == "expired"


# -- across nodes and processes ------------------------------------------------------------


async def test_approval_on_another_node_reaches_the_waiter(
    make_service: Callable[..., ApprovalService],
) -> None:
    node_a = make_service(poll_interval=0.1)
    node_b = make_service()
    rid = await file_request(node_a)
    waiter = asyncio.create_task(node_a.wait(rid, timeout=20))
    await asyncio.sleep(0.15)
    await node_b.approve(rid, CAROL, "approved from node b")
    outcome = await asyncio.wait_for(waiter, 2)
    assert outcome.approved
    assert outcome.request.decision_reason == "approved from node b"


CLI_APPROVE = textwrap.dedent(
    """
    import asyncio, sys
    from wardgate.policy.approvals import ApprovalService, Approver
    from wardgate.storage.db import make_engine, session_factory

    async def main() -> None:
        svc = ApprovalService(session_factory(make_engine(sys.argv[1])))
        carol = Approver(name="carol", groups=frozenset({"dba"}), credential_id="token:tok_c")
        req = await svc.approve(sys.argv[2], carol, "approved from a shell")
        print(req.status)

    asyncio.run(main())
    """
)


async def test_approval_from_another_process_reaches_the_waiter(
    make_service: Callable[..., ApprovalService], store: Store
) -> None:
    svc = make_service(poll_interval=0.1)
    rid = await file_request(svc)
    waiter = asyncio.create_task(svc.wait(rid, timeout=30))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI_APPROVE, store.url, rid,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "approved"
    outcome = await asyncio.wait_for(waiter, 3)
    assert outcome.approved and outcome.request.decided_by == "carol"


def test_the_subprocess_script_refuses_self_approval(store: Store) -> None:
    # The separate-process path enforces the same rules (no in-process shortcut).
    svc = ApprovalService(store.sessions())
    rid = asyncio.run(file_request(svc))
    script = CLI_APPROVE.replace('name="carol"', 'name="erin"')
    proc = subprocess.run(
        [sys.executable, "-c", script, store.url, rid], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "a requester can never decide their own request" in proc.stderr


# -- fingerprint scope -----------------------------------------------------------------------


async def test_fingerprint_grant_covers_repeats_until_its_ttl(
    make_service: Callable[..., ApprovalService],
) -> None:
    clock = Clock()
    cfg = ApprovalsConfig(scope="fingerprint", fingerprint_ttl_seconds=900)
    node_a = make_service(cfg, clock=clock)
    node_b = make_service(cfg, clock=clock)
    assert await node_a.preapproved(ERIN, "demo", "fp-delete-orders") is None
    rid = await file_request(node_a)
    assert (await node_a.get(rid)).scope == "fingerprint"
    assert await node_a.preapproved(ERIN, "demo", "fp-delete-orders") is None  # pending
    approved = await node_a.approve(rid, CAROL, "fine for the next 15 minutes")
    assert approved.expires_at == clock.now + timedelta(seconds=900)

    assert await node_a.preapproved(ERIN, "demo", "fp-delete-orders") == rid
    assert await node_b.preapproved(ERIN, "demo", "fp-delete-orders") == rid  # other node
    # Only the same requester (name and credential), target and fingerprint.
    assert await node_a.preapproved(BOB, "demo", "fp-delete-orders") is None
    same_name_new_token = Principal(
        name="erin", groups=ERIN.groups, auth_method="token", token_id="tok_erin_2"
    )
    assert await node_a.preapproved(same_name_new_token, "demo", "fp-delete-orders") is None
    assert await node_a.preapproved(ERIN, "demo_mysql", "fp-delete-orders") is None
    assert await node_a.preapproved(ERIN, "demo", "fp-other") is None
    assert await node_a.preapproved(ERIN, "demo", "") is None

    clock.advance(899)
    assert await node_a.preapproved(ERIN, "demo", "fp-delete-orders") == rid
    clock.advance(2)
    assert await node_a.preapproved(ERIN, "demo", "fp-delete-orders") is None
    assert await node_b.preapproved(ERIN, "demo", "fp-delete-orders") is None


async def test_denied_or_statement_scope_approvals_grant_nothing(
    make_service: Callable[..., ApprovalService],
) -> None:
    fp = make_service(ApprovalsConfig(scope="fingerprint"))
    rid = await file_request(fp)
    await fp.deny(rid, CAROL, "no")
    assert await fp.preapproved(ERIN, "demo", "fp-delete-orders") is None

    stmt = make_service(ApprovalsConfig(scope="statement"))
    rid2 = await file_request(stmt)
    approved = await stmt.approve(rid2, CAROL, "once")
    assert approved.expires_at is None
    assert await stmt.preapproved(ERIN, "demo", "fp-delete-orders") is None


async def test_fingerprint_scope_without_a_fingerprint_falls_back_to_statement(
    make_service: Callable[..., ApprovalService],
) -> None:
    svc = make_service(ApprovalsConfig(scope="fingerprint"))
    bare = Classification(
        statements=CLASSIFICATION.statements,
        classes=CLASSIFICATION.classes,
        tables=CLASSIFICATION.tables,
    )
    req = await svc.request(ERIN, "demo", SQL, bare, DECISION)
    assert req.scope == "statement"


# -- webhook ---------------------------------------------------------------------------------


@dataclass
class Hook:
    url: str
    received: list[tuple[str, dict[str, Any]]]
    delay: float = 0.0
    status: int = 200


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook(url="", received=[])
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if state.delay:
                time.sleep(state.delay)
            with lock:
                state.received.append((self.path, body))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0/B0/s3cr3t"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def hook_config(url: str, **kw: Any) -> ApprovalsConfig:
    return ApprovalsConfig.model_validate({"webhook": {"url": url, **kw}})


async def test_webhook_json_announces_requests_and_decisions(
    make_service: Callable[..., ApprovalService], hook: Hook
) -> None:
    svc = make_service(hook_config(hook.url))
    rid = await file_request(svc)
    await svc.flush()
    assert len(hook.received) == 1
    path, body = hook.received[0]
    assert path == "/hooks/T0/B0/s3cr3t"
    assert body["event"] == "approval.requested"
    assert (body["id"], body["status"], body["requester"], body["target"]) == (
        rid,
        "pending",
        "erin",
        "demo",
    )
    assert body["classes"] == ["write-unbounded"]
    assert body["approvers"] == ["dba"]
    assert body["rule"] == "role:engineer-demo"
    assert body["approve_command"] == f"wardgate approvals approve {rid}"
    assert "statement" not in body
    assert "p@ssw0rd" not in json.dumps(body)

    await svc.approve(rid, CAROL, "ok")
    await svc.flush()
    assert [b["event"] for _, b in hook.received] == ["approval.requested", "approval.approved"]
    assert hook.received[1][1]["decided_by"] == "carol"


async def test_webhook_can_include_the_statement_when_asked(
    make_service: Callable[..., ApprovalService], hook: Hook
) -> None:
    svc = make_service(hook_config(hook.url, include_statement=True))
    await file_request(svc)
    await svc.flush()
    assert hook.received[0][1]["statement"] == SQL


async def test_webhook_slack_format(
    make_service: Callable[..., ApprovalService], hook: Hook
) -> None:
    svc = make_service(hook_config(hook.url, format="slack"))
    rid = await file_request(svc)
    await svc.deny(rid, CAROL, "not <today>")
    await svc.flush()
    assert [set(b) for _, b in hook.received] == [{"text"}, {"text"}]
    first, second = (b["text"] for _, b in hook.received)
    assert rid in first and "*erin*" in first and "*demo*" in first and "dba" in first
    assert f"wardgate approvals approve {rid}" in first
    assert "p@ssw0rd" not in first
    assert second == f"Approval {rid} (erin on *demo*) denied by *carol*: not &lt;today&gt;"


async def test_slow_webhook_never_delays_the_request(
    make_service: Callable[..., ApprovalService], hook: Hook
) -> None:
    hook.delay = 1.5
    svc = make_service(hook_config(hook.url))
    started = time.monotonic()
    rid = await file_request(svc)
    assert time.monotonic() - started < 0.5
    await svc.approve(rid, CAROL, "ok")
    assert time.monotonic() - started < 1.0
    await svc.flush()
    # Deliveries stay in event order even when the first one is slow.
    assert [b["event"] for _, b in hook.received] == ["approval.requested", "approval.approved"]


async def test_broken_webhook_is_logged_without_its_secret(
    make_service: Callable[..., ApprovalService],
    hook: Hook,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="wardgate.policy.approvals")
    hook.status = 500
    svc = make_service(hook_config(hook.url))
    rid = await file_request(svc)
    await svc.flush()
    # And one that refuses connections outright (nothing listens on port 9 here).
    down = make_service(hook_config("http://127.0.0.1:9/hooks/T0/B0/s3cr3t", timeout_seconds=1))
    rid2 = await file_request(down)
    await down.flush()
    assert (await svc.get(rid)).status == "pending"
    assert (await down.get(rid2)).status == "pending"
    messages = [r.getMessage() for r in caplog.records]
    assert any("answered HTTP 500" in m and rid in m for m in messages), messages
    assert any("ConnectError" in m and rid2 in m for m in messages), messages
    assert all("s3cr3t" not in m and "p@ssw0rd" not in m for m in messages)


# -- ids and storage -----------------------------------------------------------------------


def test_request_ids_are_short_and_unambiguous() -> None:
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) > 1990
    for rid in ids:
        assert rid.startswith("apr_") and len(rid) == 10
        assert not set(rid[4:]) & set("01ILOU")


async def test_timestamps_are_stored_as_utc(
    make_service: Callable[..., ApprovalService], store: Store
) -> None:
    clock = Clock()
    svc = make_service(clock=clock)
    rid = await file_request(svc)
    engine = make_engine(store.url)
    store.engines.append(engine)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT created_at FROM approval_requests WHERE id = :id"), {"id": rid}
        ).scalar_one()
    if isinstance(stored, str):  # SQLite keeps text
        stored = datetime.fromisoformat(stored)
    stored = stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored
    assert abs(stored - clock.now) < timedelta(milliseconds=1)
    assert (await svc.get(rid)).created_at == clock.now
