"""The policy: section — what operators write, and the errors they get when it is wrong."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import wardgate.policy
from wardgate.policy.config import CLASS_NAMES, PolicyConfig, RoleConfig, expand_classes
from wardgate.sql.classes import StatementClass

S = StatementClass

QUICKSTART = """
roles:
  agent-demo:
    targets: ["demo", "demo_*"]
    allow: [read, write, ddl, transaction, session, utility]
    deny: [write-unbounded, destructive, privilege, server-escape, dynamic, unclassified]
  engineer-demo:
    targets: ["demo", "demo_mysql"]
    allow: [read, write, ddl, transaction, session, utility]
    review: [write-unbounded, destructive]
    deny: [privilege, server-escape, dynamic, unclassified]
    approvers: [dba]
  dba-full:
    targets: ["demo", "demo_*"]
    allow: [all]
bindings:
  agents: [agent-demo]
  engineers: [engineer-demo]
  dba: [dba-full]
rules:
  - name: no-touching-payroll
    targets: ["demo"]
    tables: ["Payroll.*", "*.salaries"]
    classes: [write, write-unbounded, destructive]
    groups: ["engineers", "agents"]
    action: deny
    reason: "payroll data is changed only through the HR app"
approvals:
  timeout_seconds: 300
  scope: fingerprint
  fingerprint_ttl_seconds: 900
  webhook: {url: "https://hooks.example.com/T0/B0/secret", format: slack, timeout_seconds: 5}
"""


def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(QUICKSTART)
    return data


def errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        PolicyConfig.model_validate(data)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors()]


def test_quickstart_parses() -> None:
    cfg = PolicyConfig.model_validate(raw())
    assert set(cfg.roles) == {"agent-demo", "engineer-demo", "dba-full"}
    assert cfg.bindings["engineers"] == ["engineer-demo"]
    assert cfg.rules[0].tables == ["payroll.*", "*.salaries"]  # lower-cased
    assert cfg.approvals.scope == "fingerprint"
    assert cfg.approvals.webhook.format == "slack"
    assert cfg.default_schemas == ["public"]


def test_empty_policy_is_valid_and_denies_by_having_no_roles() -> None:
    cfg = PolicyConfig.model_validate({})
    assert cfg.roles == {} and cfg.bindings == {} and cfg.rules == []
    assert cfg.approvals.timeout_seconds == 300
    assert cfg.approvals.scope == "statement"
    assert cfg.approvals.webhook.url is None


def test_role_verdicts_cover_listed_classes_and_leave_the_rest_out() -> None:
    cfg = PolicyConfig.model_validate(raw())
    agent = cfg.roles["agent-demo"].verdicts()
    assert agent[S.READ] == "allow" and agent[S.UNCLASSIFIED] == "deny"
    assert cfg.roles["engineer-demo"].verdicts()[S.DESTRUCTIVE] == "review"
    assert set(cfg.roles["dba-full"].verdicts().values()) == {"allow"}
    assert set(cfg.roles["dba-full"].verdicts()) == set(StatementClass)
    partial = RoleConfig(targets=["demo"], allow=["read"])
    assert partial.verdicts() == {S.READ: "allow"}  # everything else: denied by omission


def test_all_covers_only_classes_not_named_elsewhere() -> None:
    role = RoleConfig(targets=["*"], allow=["all"], deny=["server-escape", "unclassified"])
    v = role.verdicts()
    assert v[S.SERVER_ESCAPE] == "deny" and v[S.UNCLASSIFIED] == "deny"
    assert v[S.DESTRUCTIVE] == "allow"
    assert expand_classes(["read", "all"]) == frozenset(StatementClass)
    assert expand_classes(["read"]) == {S.READ}


def test_unknown_class_names_the_key_and_lists_valid_classes() -> None:
    data = raw()
    data["roles"]["agent-demo"]["allow"].append("wirte")
    [(loc, msg)] = errors(data)
    assert loc == "roles.agent-demo.allow.6"
    assert "unknown statement class 'wirte'" in msg
    for name in CLASS_NAMES:
        assert name in msg


def test_misspelt_key_is_rejected_with_its_path() -> None:
    data = raw()
    data["roles"]["engineer-demo"]["aprovers"] = ["dba"]
    locs = [loc for loc, _ in errors(data)]
    assert "roles.engineer-demo.aprovers" in locs


@pytest.mark.parametrize(
    ("change", "loc", "needle"),
    [
        (
            lambda d: d["roles"]["agent-demo"]["deny"].append("read"),
            "roles.agent-demo",
            "class 'read' is listed under both allow and deny",
        ),
        (
            lambda d: d["roles"]["dba-full"].update(review=["all"], approvers=["x"]),
            "roles.dba-full",
            "'all' appears in both allow and review",
        ),
        (
            lambda d: d["roles"]["engineer-demo"].pop("approvers"),
            "roles.engineer-demo",
            "review lists classes but approvers is empty",
        ),
        (
            lambda d: d["roles"]["agent-demo"].update(targets=[]),
            "roles.agent-demo.targets",
            "at least 1 item",
        ),
        (
            lambda d: d["bindings"].update(ops=["dba-ful"]),
            "bindings",
            "group 'ops' is bound to role 'dba-ful', which is not defined under policy.roles; "
            "defined roles: agent-demo, dba-full, engineer-demo",
        ),
        (
            lambda d: d["rules"].append(dict(d["rules"][0])),
            "rules",
            "two rules are named 'no-touching-payroll'",
        ),
        (
            lambda d: d["rules"][0].update(roles=["nope"]),
            "rules",
            "rule 'no-touching-payroll' names role 'nope', which is not defined",
        ),
        (
            lambda d: d["rules"][0].update(action="review"),
            "rules.0",
            "has action review but no approvers",
        ),
        (
            lambda d: d["rules"][0].update(approvers=["dba"]),
            "rules.0",
            "approvers only apply to action: review",
        ),
        (lambda d: d["rules"][0].update(action="maybe"), "rules.0.action", "'allow'"),
        (lambda d: d["rules"][0].pop("reason"), "rules.0.reason", "Field required"),
        (lambda d: d["rules"][0].update(classes=[]), "rules.0.classes", "at least 1 item"),
        (lambda d: d["rules"][0].update(tables=[" "]), "rules.0.tables.0", "must not be empty"),
        (
            lambda d: d["approvals"].update(scope="session"),
            "approvals.scope",
            "'statement' or 'fingerprint'",
        ),
        (
            lambda d: d["approvals"].update(timeout_seconds=0),
            "approvals.timeout_seconds",
            "greater than 0",
        ),
        (
            lambda d: d["approvals"]["webhook"].update(url="not a url"),
            "approvals.webhook.url",
            "URL",
        ),
        (
            lambda d: d["approvals"]["webhook"].update(format="teams"),
            "approvals.webhook.format",
            "'json' or 'slack'",
        ),
    ],
)
def test_invalid_policy_names_the_key(change: Any, loc: str, needle: str) -> None:
    data = raw()
    change(data)
    found = errors(data)
    assert any(where == loc and needle in msg for where, msg in found), found


def test_unmatched_target_patterns_catch_typos() -> None:
    cfg = PolicyConfig.model_validate(raw())
    assert cfg.unmatched_target_patterns(["demo", "demo_mysql"]) == []
    assert cfg.unmatched_target_patterns(["prod"]) == ["demo", "demo_*", "demo_mysql"]


def test_public_surface_is_deliberate() -> None:
    assert sorted(wardgate.policy.__all__) == [
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
    for name in wardgate.policy.__all__:
        assert hasattr(wardgate.policy, name)
