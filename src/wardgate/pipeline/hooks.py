"""The seam between protocol adapters and the decision stages.

An adapter hands every statement to ``StatementGate.judge`` and acts on the returned
``Verdict``; it never knows *why* (policy, guardrails, recorder health). Stages never
know which protocol asked. A gate that cannot decide returns a deny: fail closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from wardgate.core.model import Principal

VerdictKind = Literal["allow", "deny", "review"]
StatementPath = Literal["simple", "extended"]


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    rule: str = ""
    reason: str = ""
    sqlstate: str = "42501"
    classes: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.kind == "allow"


ALLOW = Verdict("allow", rule="allow-all", reason="no policy configured")


@dataclass(slots=True)
class SessionInfo:
    """What stages know about the session an action belongs to."""

    id: str
    principal: Principal
    target: str
    protocol: str
    client_addr: str
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApprovalOutcome:
    approved: bool
    request_id: str
    by: str = ""
    reason: str = ""


class StatementGate(Protocol):
    """Per-session judge of statements. ``judge`` must be cheap (it runs on the hot path)."""

    def judge(self, sql: str, path: StatementPath) -> Verdict: ...

    def statement_name_prepared(self, name: str, sql: str) -> None: ...

    def admit(self) -> Verdict | None:
        """Checked at every execution (e.g. Execute of a prepared statement): a Verdict
        refuses it (fail closed on recording trouble), None lets it run."""
        ...

    def request_approval(
        self, sql: str, verdict: Verdict, notify: Callable[[str], None]
    ) -> Awaitable[ApprovalOutcome]: ...

    def cancel_approval(self) -> None: ...


class AllowAllGate:
    """Used when no policy section is configured: everything runs (and is still recorded)."""

    def judge(self, sql: str, path: StatementPath) -> Verdict:
        return ALLOW

    def statement_name_prepared(self, name: str, sql: str) -> None:
        return None

    def admit(self) -> Verdict | None:
        return None

    async def request_approval(
        self, sql: str, verdict: Verdict, notify: Callable[[str], None]
    ) -> ApprovalOutcome:
        return ApprovalOutcome(False, "", reason="approvals are not configured")

    def cancel_approval(self) -> None:
        return None
