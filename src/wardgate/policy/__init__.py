"""Least-privilege policy: who may reach which target, what each statement gets, and the
just-in-time approval of statements policy sends to review.

``PolicyEngine`` (pure, memoized) decides; ``ApprovalService`` holds and resumes; both are
protocol-neutral and built from the ``policy:`` section (``PolicyConfig``).
"""

from __future__ import annotations

from wardgate.policy.approvals import (
    ApprovalConflictError,
    ApprovalNotFoundError,
    ApprovalOutcome,
    ApprovalRequest,
    ApprovalScope,
    ApprovalService,
    ApprovalStatus,
    Approver,
)
from wardgate.policy.config import (
    ApprovalsConfig,
    PolicyConfig,
    RoleConfig,
    RuleConfig,
    WebhookConfig,
)
from wardgate.policy.decision import Decision, Verdict
from wardgate.policy.engine import PolicyEngine

__all__ = [
    "ApprovalConflictError",
    "ApprovalNotFoundError",
    "ApprovalOutcome",
    "ApprovalRequest",
    "ApprovalScope",
    "ApprovalService",
    "ApprovalStatus",
    "ApprovalsConfig",
    "Approver",
    "Decision",
    "PolicyConfig",
    "PolicyEngine",
    "RoleConfig",
    "RuleConfig",
    "Verdict",
    "WebhookConfig",
]
