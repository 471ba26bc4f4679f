"""The verdict policy hands back for one connection or one statement: ``Decision``.

A Decision is what adapters turn into protocol-native bytes (a PostgreSQL ErrorResponse
with SQLSTATE 42501, a MySQL ERR packet, a NoticeResponse for a pending approval), and
what recordings store. Its ``reason`` is shown to the client and written to logs, so it is
built only from policy vocabulary (class names, rule and role names, target names, the
operator's configured reason text) — never from the SQL text, its literals or its
identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wardgate.sql.classes import StatementClass

Verdict = Literal["allow", "deny", "review"]

# Strictest wins when a statement carries several classes: deny > review > allow.
SEVERITY: dict[Verdict, int] = {"allow": 0, "review": 1, "deny": 2}

_NO_CLASSES: frozenset[StatementClass] = frozenset()
_NO_GROUPS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Decision:
    """What policy decided, which rule decided it, and why — in words a user can act on.

    ``rule`` is a stable name for audit and metrics: ``role:<role>``, ``rule:<rule>``,
    ``default-deny``, ``unclassified`` or ``review-conflict``. ``classes`` are the statement
    classes that produced the verdict (for a deny: the denied classes; for a review: the
    classes needing approval; for an allow: every class of the statement). ``approvers``
    are the groups whose members may approve a review; it is empty otherwise.
    """

    verdict: Verdict
    rule: str
    reason: str
    classes: frozenset[StatementClass] = _NO_CLASSES
    approvers: frozenset[str] = _NO_GROUPS

    def __post_init__(self) -> None:
        if self.verdict == "review" and not self.approvers:
            # A review nobody can approve would hold the client until the timeout;
            # policy must say deny instead.
            raise ValueError(f"review decision from {self.rule} names no approver groups")
        if self.verdict != "review" and self.approvers:
            raise ValueError(f"{self.verdict} decision from {self.rule} cannot carry approvers")

    @classmethod
    def allow(
        cls, *, rule: str, reason: str = "", classes: frozenset[StatementClass] = _NO_CLASSES
    ) -> Decision:
        return cls("allow", rule, reason, classes)

    @classmethod
    def deny(
        cls, *, rule: str, reason: str, classes: frozenset[StatementClass] = _NO_CLASSES
    ) -> Decision:
        return cls("deny", rule, reason, classes)

    @classmethod
    def review(
        cls,
        *,
        rule: str,
        reason: str,
        approvers: frozenset[str],
        classes: frozenset[StatementClass] = _NO_CLASSES,
    ) -> Decision:
        return cls("review", rule, reason, classes, frozenset(approvers))

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"

    @property
    def denied(self) -> bool:
        return self.verdict == "deny"

    @property
    def needs_review(self) -> bool:
        return self.verdict == "review"

    @property
    def severity(self) -> int:
        return SEVERITY[self.verdict]
