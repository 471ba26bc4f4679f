"""Decision: the constructors adapters and recordings rely on, and the invariants they keep."""

from __future__ import annotations

import dataclasses

import pytest

from wardgate.policy.decision import SEVERITY, Decision
from wardgate.sql.classes import StatementClass


def test_constructors() -> None:
    a = Decision.allow(rule="role:x", reason="ok", classes=frozenset({StatementClass.READ}))
    assert (a.verdict, a.allowed, a.denied, a.needs_review) == ("allow", True, False, False)
    d = Decision.deny(rule="default-deny", reason="no grant")
    assert (d.verdict, d.denied, d.approvers) == ("deny", True, frozenset())
    r = Decision.review(rule="role:e", reason="needs dba", approvers=frozenset({"dba"}))
    assert (r.verdict, r.needs_review, r.approvers) == ("review", True, frozenset({"dba"}))


def test_strictest_wins_ordering() -> None:
    assert SEVERITY["deny"] > SEVERITY["review"] > SEVERITY["allow"]
    r = Decision.review(rule="r", reason="x", approvers=frozenset({"g"}))
    assert Decision.deny(rule="d", reason="x").severity > r.severity


def test_review_needs_approvers_and_others_carry_none() -> None:
    with pytest.raises(ValueError, match="names no approver groups"):
        Decision.review(rule="role:e", reason="x", approvers=frozenset())
    with pytest.raises(ValueError, match="cannot carry approvers"):
        Decision("allow", "role:x", "ok", frozenset(), frozenset({"dba"}))


def test_decisions_are_immutable_and_hashable() -> None:
    d = Decision.deny(rule="default-deny", reason="no grant")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.verdict = "allow"  # type: ignore[misc]
    assert {d, Decision.deny(rule="default-deny", reason="no grant")} == {d}
