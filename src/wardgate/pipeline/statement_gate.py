"""The statement gate: classify → decide → (hold for approval) for one session.

Protocol-neutral: the PostgreSQL and MySQL adapters call ``judge`` with SQL text and act
on the ``Verdict``. Classification is cached per text, policy decisions per (groups,
target, classes, tables), so a repeated statement costs two dict lookups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from wardgate.core.model import Principal
from wardgate.pipeline.hooks import ApprovalOutcome, StatementPath, Verdict
from wardgate.policy.approvals import ApprovalService
from wardgate.policy.decision import Decision
from wardgate.policy.engine import PolicyEngine
from wardgate.sql.cache import ClassificationCache
from wardgate.sql.classes import Classification
from wardgate.sql.prepared import PreparedStatements

log = logging.getLogger("wardgate.gate")

StatementObserver = Callable[[str, StatementPath, Classification, Decision], None]


@dataclass(slots=True)
class Judged:
    sql: str
    classification: Classification
    decision: Decision


def verdict_of(decision: Decision) -> Verdict:
    return Verdict(
        decision.verdict,
        rule=decision.rule,
        reason=decision.reason,
        classes=tuple(sorted(str(c) for c in decision.classes)),
        approvers=tuple(sorted(decision.approvers)),
    )


class PolicyGate:
    """One per session: it remembers SQL-level PREPAREd statements of that session."""

    def __init__(
        self,
        *,
        principal: Principal,
        target: str,
        session_id: str,
        engine: PolicyEngine,
        cache: ClassificationCache,
        approvals: ApprovalService | None,
        approval_timeout: float,
        observer: StatementObserver | None = None,
        blocked: Callable[[], Verdict | None] | None = None,
    ) -> None:
        self.principal = principal
        self.target = target
        self.session_id = session_id
        self.engine = engine
        self.cache = cache
        self.prepared = PreparedStatements()
        self.approvals = approvals
        self.approval_timeout = approval_timeout
        self.observer = observer
        self.blocked = blocked
        self.last: Judged | None = None
        self._verdicts: dict[Decision, Verdict] = {}

    def judge(self, sql: str, path: StatementPath) -> Verdict:
        if self.blocked is not None:
            stop = self.blocked()
            if stop is not None:
                return stop
        classification = self.prepared.resolve(self.cache.classify(sql))
        if not classification.statements and classification.error is None:
            # Only whitespace/comments: the server answers EmptyQueryResponse, nothing runs.
            decision = Decision.allow(rule="empty", reason="empty statement")
        else:
            decision = self.engine.decide(self.principal, self.target, classification)
        self.last = Judged(sql, classification, decision)
        if self.observer is not None:
            self.observer(sql, path, classification, decision)
        v = self._verdicts.get(decision)
        if v is None:
            if len(self._verdicts) > 4096:
                self._verdicts.clear()
            v = self._verdicts[decision] = verdict_of(decision)
        return v

    def statement_name_prepared(self, name: str, sql: str) -> None:
        return None

    def admit(self) -> Verdict | None:
        return self.blocked() if self.blocked is not None else None

    async def request_approval(
        self, sql: str, verdict: Verdict, notify: Callable[[str], None]
    ) -> ApprovalOutcome:
        judged = self.last
        if self.approvals is None or judged is None or judged.sql != sql:
            return ApprovalOutcome(False, "", reason="approvals are not configured on this gateway")
        fp = judged.classification.fingerprint
        if fp:
            grant = await self.approvals.preapproved(self.principal, self.target, fp)
            if grant is not None:
                notify(
                    f"wardgate: running under approval {grant} (same statement shape, still valid)"
                )
                return ApprovalOutcome(True, grant, reason="fingerprint grant")
        req = await self.approvals.request(
            self.principal,
            self.target,
            sql,
            judged.classification,
            judged.decision,
            session_id=self.session_id,
        )
        notify(req.pending_notice)
        outcome = await self.approvals.wait(req.id, self.approval_timeout)
        r = outcome.request
        return ApprovalOutcome(
            outcome.approved,
            r.id,
            by=r.decided_by or "",
            reason=outcome.message,
        )

    def cancel_approval(self) -> None:
        # The relay cancels the waiting task; ApprovalService.wait cancels the request
        # itself when its waiter is cancelled, so a disconnected client's request never
        # runs later.
        return None
