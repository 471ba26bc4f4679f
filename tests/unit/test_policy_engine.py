"""PolicyEngine: connections, per-statement decisions, rules, role combination, memoization.

The policy under test is the quickstart reference policy from issue 4 (agents, engineers,
dba on target ``demo``), plus a few rules added per test where a rule is the subject.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from wardgate.core.model import Principal
from wardgate.policy.config import PolicyConfig
from wardgate.policy.decision import Decision
from wardgate.policy.engine import PolicyEngine
from wardgate.sql.classes import Classification, StatementClass, StatementInfo

S = StatementClass

QUICKSTART = """
policy:
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
  approvals:
    timeout_seconds: 300
    scope: statement
"""

PAYROLL_RULE: dict[str, Any] = {
    "name": "no-touching-payroll",
    "targets": ["demo"],
    "tables": ["payroll.*", "*.salaries"],
    "classes": ["write", "write-unbounded", "destructive"],
    "groups": ["engineers", "agents"],
    "action": "deny",
    "reason": "payroll data is changed only through the HR app",
}


def policy(*rules: dict[str, Any], **extra: Any) -> PolicyConfig:
    raw = yaml.safe_load(QUICKSTART)["policy"]
    raw["rules"] = list(rules)
    raw.update(extra)
    return PolicyConfig.model_validate(raw)


def who(*groups: str, name: str = "ci-job") -> Principal:
    return Principal(name=name, groups=frozenset(groups), auth_method="token", token_id=name)


def stmt(*classes: StatementClass, tables: tuple[str, ...] = (), text: str = "") -> StatementInfo:
    return StatementInfo(
        kind="Test", classes=frozenset(classes), tables=frozenset(tables), text=text
    )


def sql(*statements: StatementInfo, error: str | None = None) -> Classification:
    classes: frozenset[StatementClass] = frozenset().union(*(s.classes for s in statements))
    if error is not None:
        classes |= {S.UNCLASSIFIED}
    return Classification(
        statements=statements,
        classes=classes,
        tables=frozenset().union(*(s.tables for s in statements)),
        error=error,
        fingerprint="fp",
    )


def one(*classes: StatementClass, tables: tuple[str, ...] = ()) -> Classification:
    return sql(stmt(*classes, tables=tables))


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(policy())


AGENT, ENGINEER, DBA = who("agents"), who("engineers", name="erin"), who("dba", name="dana")

# (principal, class, verdict, rule) — the quickstart reference policy, class by class.
QUICKSTART_TABLE = [
    *[(AGENT, c, "allow", "role:agent-demo") for c in (S.READ, S.WRITE, S.DDL)],
    *[(AGENT, c, "allow", "role:agent-demo") for c in (S.TRANSACTION, S.SESSION, S.UTILITY)],
    (AGENT, S.WRITE_UNBOUNDED, "deny", "role:agent-demo"),
    (AGENT, S.DESTRUCTIVE, "deny", "role:agent-demo"),
    (AGENT, S.PRIVILEGE, "deny", "role:agent-demo"),
    (AGENT, S.SERVER_ESCAPE, "deny", "role:agent-demo"),
    (AGENT, S.DYNAMIC, "deny", "role:agent-demo"),
    (AGENT, S.UNCLASSIFIED, "deny", "unclassified"),
    *[(ENGINEER, c, "allow", "role:engineer-demo") for c in (S.READ, S.WRITE, S.DDL)],
    *[(ENGINEER, c, "allow", "role:engineer-demo") for c in (S.TRANSACTION, S.SESSION, S.UTILITY)],
    (ENGINEER, S.WRITE_UNBOUNDED, "review", "role:engineer-demo"),
    (ENGINEER, S.DESTRUCTIVE, "review", "role:engineer-demo"),
    (ENGINEER, S.PRIVILEGE, "deny", "role:engineer-demo"),
    (ENGINEER, S.SERVER_ESCAPE, "deny", "role:engineer-demo"),
    (ENGINEER, S.DYNAMIC, "deny", "role:engineer-demo"),
    (ENGINEER, S.UNCLASSIFIED, "deny", "unclassified"),
    *[(DBA, c, "allow", "role:dba-full") for c in StatementClass],
]


@pytest.mark.parametrize(
    ("principal", "cls", "verdict", "rule"),
    QUICKSTART_TABLE,
    ids=[f"{p.name}-{c}-{v}" for p, c, v, _ in QUICKSTART_TABLE],
)
def test_quickstart_policy_per_class(
    engine: PolicyEngine, principal: Principal, cls: StatementClass, verdict: str, rule: str
) -> None:
    d = engine.decide(principal, "demo", one(cls))
    assert (d.verdict, d.rule) == (verdict, rule)
    assert cls in d.classes
    assert d.reason
    if verdict == "review":
        assert d.approvers == {"dba"}
        assert "dba" in d.reason
    else:
        assert d.approvers == frozenset()


def test_deny_reason_names_class_role_and_target(engine: PolicyEngine) -> None:
    d = engine.decide(AGENT, "demo", one(S.DESTRUCTIVE))
    assert "destructive" in d.reason
    assert "agent-demo" in d.reason
    assert "'demo'" in d.reason


# (principal, statements, verdict, rule, classes-in-decision, approvers)
MULTI_TABLE: list[tuple[str, Principal, Classification, str, str, set[StatementClass]]] = [
    ("agent read+destructive", AGENT, one(S.READ, S.DESTRUCTIVE), "deny", "role:agent-demo",
     {S.DESTRUCTIVE}),
    ("engineer read+destructive", ENGINEER, one(S.READ, S.DESTRUCTIVE), "review",
     "role:engineer-demo", {S.DESTRUCTIVE}),
    ("engineer destructive+privilege: deny beats review", ENGINEER,
     one(S.READ, S.DESTRUCTIVE, S.PRIVILEGE), "deny", "role:engineer-demo", {S.PRIVILEGE}),
    ("engineer two reviewed classes", ENGINEER, one(S.WRITE_UNBOUNDED, S.DESTRUCTIVE), "review",
     "role:engineer-demo", {S.WRITE_UNBOUNDED, S.DESTRUCTIVE}),
    ("agent multi-statement: a later statement is destructive", AGENT,
     sql(stmt(S.READ), stmt(S.WRITE), stmt(S.DESTRUCTIVE)), "deny", "role:agent-demo",
     {S.DESTRUCTIVE}),
    ("engineer multi-statement with a review", ENGINEER,
     sql(stmt(S.TRANSACTION), stmt(S.WRITE_UNBOUNDED), stmt(S.TRANSACTION)), "review",
     "role:engineer-demo", {S.WRITE_UNBOUNDED}),
    ("agent all statements allowed", AGENT,
     sql(stmt(S.TRANSACTION), stmt(S.WRITE, tables=("t",)), stmt(S.READ)), "allow",
     "role:agent-demo", {S.TRANSACTION, S.WRITE, S.READ}),
    ("agent read+unclassified", AGENT, one(S.READ, S.UNCLASSIFIED), "deny", "unclassified",
     {S.UNCLASSIFIED}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("principal", "classification", "verdict", "rule", "classes"),
    [m[1:] for m in MULTI_TABLE],
    ids=[m[0] for m in MULTI_TABLE],
)
def test_multi_class_and_multi_statement(
    engine: PolicyEngine,
    principal: Principal,
    classification: Classification,
    verdict: str,
    rule: str,
    classes: set[StatementClass],
) -> None:
    d = engine.decide(principal, "demo", classification)
    assert (d.verdict, d.rule, set(d.classes)) == (verdict, rule, classes)


# -- unclassified fails closed ---------------------------------------------------------


def test_parse_error_is_unclassified_even_if_the_classifier_guessed_classes(
    engine: PolicyEngine,
) -> None:
    # The classifier reports an error but only "read" classes: policy adds unclassified.
    c = Classification(
        statements=(stmt(S.READ),),
        classes=frozenset({S.READ}),
        tables=frozenset(),
        error="syntax error at or near 'SELEC'",
    )
    d = engine.decide(AGENT, "demo", c)
    assert (d.verdict, d.rule) == ("deny", "unclassified")
    assert "SELEC" not in d.reason


@pytest.mark.parametrize(
    "classification",
    [
        Classification(statements=(), classes=frozenset(), tables=frozenset()),
        sql(stmt()),  # a statement the classifier gave no class
        Classification(statements=(), classes=frozenset(), tables=frozenset(), error="x"),
    ],
    ids=["empty", "statement-without-classes", "error-without-statements"],
)
def test_nothing_known_is_unclassified(
    engine: PolicyEngine, classification: Classification
) -> None:
    assert engine.decide(AGENT, "demo", classification).rule == "unclassified"
    assert engine.decide(ENGINEER, "demo", classification).verdict == "deny"
    assert engine.decide(DBA, "demo", classification).verdict == "allow"


def test_aggregate_classes_missing_from_statements_are_still_judged(
    engine: PolicyEngine,
) -> None:
    # A classifier that put "destructive" only on the aggregate must not slip it past.
    c = Classification(
        statements=(stmt(S.READ),),
        classes=frozenset({S.READ, S.DESTRUCTIVE}),
        tables=frozenset(),
    )
    assert engine.decide(AGENT, "demo", c).verdict == "deny"


def test_unclassified_allowed_only_when_a_role_says_so() -> None:
    cfg = policy(
        roles={
            "loose": {"targets": ["demo"], "allow": ["read", "unclassified"]},
            "strict": {"targets": ["demo"], "allow": ["read"]},
        },
        bindings={"loose": ["loose"], "strict": ["strict"]},
    )
    eng = PolicyEngine(cfg)
    assert eng.decide(who("loose"), "demo", one(S.UNCLASSIFIED)).verdict == "allow"
    d = eng.decide(who("strict"), "demo", one(S.UNCLASSIFIED))
    assert (d.verdict, d.rule) == ("deny", "unclassified")


def test_class_not_mentioned_by_any_role_is_denied() -> None:
    cfg = policy(
        roles={"reader": {"targets": ["demo"], "allow": ["read"]}},
        bindings={"readers": ["reader"]},
    )
    d = PolicyEngine(cfg).decide(who("readers"), "demo", one(S.WRITE))
    assert (d.verdict, d.rule) == ("deny", "default-deny")
    assert "write" in d.reason and "'reader'" in d.reason


# -- connections and default deny -------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "target", "allowed"),
    [
        (AGENT, "demo", True),
        (AGENT, "demo_mysql", True),
        (AGENT, "prod", False),
        (ENGINEER, "demo_mysql", True),
        (ENGINEER, "demo_other", False),
        (DBA, "demo_other", True),
        (DBA, "prod", False),
        (who("strangers"), "demo", False),
        (who(), "demo", False),
    ],
)
def test_can_connect(
    engine: PolicyEngine, principal: Principal, target: str, allowed: bool
) -> None:
    d = engine.can_connect(principal, target)
    assert d.allowed is allowed
    if not allowed:
        assert d.rule == "default-deny"
        assert f"'{target}'" in d.reason


def test_default_deny_reason_names_the_missing_grant(engine: PolicyEngine) -> None:
    d = engine.can_connect(who("agents", "ci"), "prod")
    assert d.reason.startswith("no role grants group(s) agents, ci access to target 'prod'")
    nobody = engine.can_connect(who(name="orphan"), "demo")
    assert "'orphan' belongs to no groups" in nobody.reason


def test_statement_on_ungranted_target_is_default_deny(engine: PolicyEngine) -> None:
    d = engine.decide(AGENT, "prod", one(S.READ))
    assert (d.verdict, d.rule) == ("deny", "default-deny")


def test_targets_for_lists_what_the_identity_may_use(engine: PolicyEngine) -> None:
    names = ["prod", "demo_mysql", "demo", "demo_ssh"]
    assert engine.targets_for(AGENT, names) == ["demo", "demo_mysql", "demo_ssh"]
    assert engine.targets_for(ENGINEER, names) == ["demo", "demo_mysql"]
    assert engine.targets_for(who("nobody"), names) == []
    assert engine.roles_for(who("agents", "dba"), "demo") == ["agent-demo", "dba-full"]


# -- several roles ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "cls", "verdict"),
    [
        # union of grants: the most permissive role's verdict per class
        (("agents", "engineers"), S.DESTRUCTIVE, "review"),
        (("agents", "engineers"), S.WRITE_UNBOUNDED, "review"),
        (("agents", "engineers"), S.PRIVILEGE, "deny"),
        (("agents", "dba"), S.DESTRUCTIVE, "allow"),
        (("engineers", "dba"), S.PRIVILEGE, "allow"),
        (("agents", "unbound-group"), S.DESTRUCTIVE, "deny"),
    ],
)
def test_several_roles_are_additive(
    engine: PolicyEngine, groups: tuple[str, ...], cls: StatementClass, verdict: str
) -> None:
    assert engine.decide(who(*groups), "demo", one(cls)).verdict == verdict


def test_role_only_counts_on_its_own_targets(engine: PolicyEngine) -> None:
    # engineer-demo does not cover demo_other, so only agent-demo speaks there.
    d = engine.decide(who("agents", "engineers"), "demo_other", one(S.DESTRUCTIVE))
    assert (d.verdict, d.rule) == ("deny", "role:agent-demo")


def test_reviews_from_several_roles_union_their_approvers() -> None:
    cfg = policy(
        roles={
            "a": {"targets": ["demo"], "review": ["destructive"], "approvers": ["dba"]},
            "b": {"targets": ["demo"], "review": ["destructive"], "approvers": ["sre"]},
        },
        bindings={"ga": ["a"], "gb": ["b"]},
    )
    d = PolicyEngine(cfg).decide(who("ga", "gb"), "demo", one(S.DESTRUCTIVE))
    assert d.verdict == "review"
    assert d.approvers == {"dba", "sre"}


# -- rules -----------------------------------------------------------------------------------

RULE_TABLE = [
    # (groups, class, tables, verdict, rule)
    (("engineers",), S.WRITE, ("payroll.salaries",), "deny", "rule:no-touching-payroll"),
    (("engineers",), S.WRITE, ("payroll.bonus",), "deny", "rule:no-touching-payroll"),
    (("agents",), S.WRITE, ("hr.salaries",), "deny", "rule:no-touching-payroll"),
    (("agents",), S.WRITE, ("salaries",), "deny", "rule:no-touching-payroll"),  # unqualified
    (("agents",), S.WRITE, ("SALARIES",), "allow", "role:agent-demo"),  # classifier lowercases
    (("agents",), S.WRITE, ("demo.payroll.salaries",), "deny", "rule:no-touching-payroll"),
    (("engineers",), S.DESTRUCTIVE, ("payroll.runs",), "deny", "rule:no-touching-payroll"),
    (("engineers",), S.READ, ("payroll.salaries",), "allow", "role:engineer-demo"),
    (("engineers",), S.WRITE, ("public.accounts",), "allow", "role:engineer-demo"),
    (("engineers",), S.WRITE, ("accounts",), "allow", "role:engineer-demo"),
    (("engineers",), S.WRITE, ("accounts", "payroll.x"), "deny", "rule:no-touching-payroll"),
    (("dba",), S.WRITE, ("payroll.salaries",), "allow", "role:dba-full"),  # not in rule groups
    (("engineers",), S.WRITE, (), "allow", "role:engineer-demo"),  # no tables known
]


@pytest.mark.parametrize(
    ("groups", "cls", "tables", "verdict", "rule"),
    RULE_TABLE,
    ids=[f"{g[0]}-{c}-{'+'.join(t) or 'none'}" for g, c, t, _, _ in RULE_TABLE],
)
def test_rule_with_table_globs(
    groups: tuple[str, ...],
    cls: StatementClass,
    tables: tuple[str, ...],
    verdict: str,
    rule: str,
) -> None:
    eng = PolicyEngine(policy(PAYROLL_RULE))
    d = eng.decide(who(*groups), "demo", one(cls, tables=tables))
    assert (d.verdict, d.rule) == (verdict, rule)


def test_rule_reason_is_the_operators_words_not_the_sql() -> None:
    eng = PolicyEngine(policy(PAYROLL_RULE))
    secret_sql = "UPDATE payroll.salaries SET amount = 999999 WHERE name = 'Hunter2'"
    c = sql(stmt(S.WRITE, tables=("payroll.salaries",), text=secret_sql))
    d = eng.decide(ENGINEER, "demo", c)
    assert d.reason == (
        "rule 'no-touching-payroll' denies write on target 'demo' on tables matching "
        "payroll.*, *.salaries: payroll data is changed only through the HR app"
    )
    for leak in ("999999", "Hunter2", "payroll.salaries", "UPDATE"):
        assert leak not in d.reason


def test_rule_judges_each_statement_on_its_own() -> None:
    eng = PolicyEngine(policy(PAYROLL_RULE))
    c = sql(stmt(S.READ, tables=("payroll.salaries",)), stmt(S.WRITE, tables=("public.t",)))
    assert eng.decide(ENGINEER, "demo", c).verdict == "allow"
    c2 = sql(stmt(S.READ, tables=("public.t",)), stmt(S.WRITE, tables=("payroll.salaries",)))
    assert eng.decide(ENGINEER, "demo", c2).rule == "rule:no-touching-payroll"


def test_rule_applies_only_to_its_targets() -> None:
    eng = PolicyEngine(policy(PAYROLL_RULE))
    d = eng.decide(ENGINEER, "demo_mysql", one(S.WRITE, tables=("payroll.salaries",)))
    assert d.verdict == "allow"


SCRATCH_ALLOW = {
    "name": "agents-own-scratch",
    "tables": ["scratch.*"],
    "classes": ["destructive", "write-unbounded"],
    "groups": ["agents"],
    "action": "allow",
    "reason": "scratch is rebuilt nightly",
}


@pytest.mark.parametrize(
    ("tables", "verdict", "rule"),
    [
        (("scratch.tmp",), "allow", "rule:agents-own-scratch"),
        (("scratch.a", "scratch.b"), "allow", "rule:agents-own-scratch"),
        # an allow rule needs every table inside its globs
        (("scratch.tmp", "public.accounts"), "deny", "role:agent-demo"),
        # an unqualified name could resolve anywhere: not inside scratch.* for an allow
        (("tmp",), "deny", "role:agent-demo"),
        ((), "deny", "role:agent-demo"),
    ],
)
def test_allow_rule_is_strict_about_tables(
    tables: tuple[str, ...], verdict: str, rule: str
) -> None:
    eng = PolicyEngine(policy(SCRATCH_ALLOW))
    d = eng.decide(AGENT, "demo", one(S.DESTRUCTIVE, tables=tables))
    assert (d.verdict, d.rule) == (verdict, rule)


def test_first_matching_rule_wins() -> None:
    deny_all_destructive = {
        "name": "freeze",
        "classes": ["destructive"],
        "action": "deny",
        "reason": "change freeze",
    }
    assert (
        PolicyEngine(policy(SCRATCH_ALLOW, deny_all_destructive))
        .decide(AGENT, "demo", one(S.DESTRUCTIVE, tables=("scratch.t",)))
        .rule
        == "rule:agents-own-scratch"
    )
    d = PolicyEngine(policy(deny_all_destructive, SCRATCH_ALLOW)).decide(
        AGENT, "demo", one(S.DESTRUCTIVE, tables=("scratch.t",))
    )
    assert (d.verdict, d.rule) == ("deny", "rule:freeze")
    assert "change freeze" in d.reason


def test_deny_rule_beats_every_role_including_all() -> None:
    freeze = {"name": "freeze", "classes": ["ddl"], "action": "deny", "reason": "release day"}
    d = PolicyEngine(policy(freeze)).decide(DBA, "demo", one(S.DDL))
    assert (d.verdict, d.rule) == ("deny", "rule:freeze")


def test_rule_selected_by_role() -> None:
    by_role = {
        "name": "agents-no-ddl-on-mysql",
        "targets": ["demo_mysql"],
        "roles": ["agent-demo"],
        "classes": ["ddl"],
        "action": "deny",
        "reason": "schema changes on MySQL go through migrations",
    }
    eng = PolicyEngine(policy(by_role))
    assert eng.decide(AGENT, "demo_mysql", one(S.DDL)).rule == "rule:agents-no-ddl-on-mysql"
    assert eng.decide(ENGINEER, "demo_mysql", one(S.DDL)).verdict == "allow"


def test_review_rule_and_its_approvers() -> None:
    audit = {
        "name": "audit-log-review",
        "tables": ["audit.*"],
        "classes": ["write"],
        "action": "review",
        "approvers": ["security"],
        "reason": "audit rows are evidence",
    }
    eng = PolicyEngine(policy(audit))
    d = eng.decide(AGENT, "demo", one(S.WRITE, tables=("audit.log",)))
    assert (d.verdict, d.rule) == ("review", "rule:audit-log-review")
    assert d.approvers == {"security"}
    assert "security" in d.reason and "audit rows are evidence" in d.reason


def test_review_without_a_common_approver_group_is_denied() -> None:
    audit = {
        "name": "audit-log-review",
        "tables": ["audit.*"],
        "classes": ["write"],
        "action": "review",
        "approvers": ["security"],
        "reason": "audit rows are evidence",
    }
    eng = PolicyEngine(policy(audit))
    c = sql(stmt(S.WRITE, tables=("audit.log",)), stmt(S.DESTRUCTIVE, tables=("public.t",)))
    d = eng.decide(ENGINEER, "demo", c)
    assert (d.verdict, d.rule) == ("deny", "review-conflict")
    assert "security" in d.reason and "dba" in d.reason
    assert d.classes == {S.WRITE, S.DESTRUCTIVE}


def test_default_schemas_place_unqualified_tables() -> None:
    public_guard = {
        "name": "public-read-only",
        "tables": ["public.*"],
        "classes": ["write"],
        "action": "deny",
        "reason": "public is replicated read-only",
    }
    eng = PolicyEngine(policy(public_guard))
    assert eng.decide(AGENT, "demo", one(S.WRITE, tables=("accounts",))).verdict == "deny"
    assert eng.decide(AGENT, "demo", one(S.WRITE, tables=("app.accounts",))).verdict == "allow"
    other = PolicyEngine(policy(public_guard, default_schemas=["app"]))
    assert other.decide(AGENT, "demo", one(S.WRITE, tables=("accounts",))).verdict == "allow"


# -- memoization and speed --------------------------------------------------------------------


def test_decide_is_memoized_per_group_set_and_shape(engine: PolicyEngine) -> None:
    eng = PolicyEngine(policy())
    first = eng.decide(who("agents", name="a"), "demo", one(S.READ, tables=("t",)))
    again = eng.decide(who("agents", name="b"), "demo", one(S.READ, tables=("t",)))
    assert again is first  # same groups, target and shape: one dict lookup
    other = eng.decide(who("agents"), "demo", one(S.READ, tables=("u",)))
    assert other is not first


def test_decision_cache_is_bounded() -> None:
    eng = PolicyEngine(policy(), cache_size=4)
    decisions = [eng.decide(AGENT, "demo", one(S.READ, tables=(f"t{i}",))) for i in range(20)]
    assert all(d.allowed for d in decisions)
    assert len(eng._decisions) <= 4
    # The newest entries survive FIFO eviction.
    assert eng.decide(AGENT, "demo", one(S.READ, tables=("t19",))) is decisions[19]


def test_decide_speed(capsys: pytest.CaptureFixture[str]) -> None:
    eng = PolicyEngine(policy(PAYROLL_RULE, SCRATCH_ALLOW))
    shapes = [
        one(S.READ, tables=("public.accounts",)),
        one(S.WRITE, tables=("payroll.salaries",)),
        sql(stmt(S.TRANSACTION), stmt(S.WRITE_UNBOUNDED, tables=("t",)), stmt(S.TRANSACTION)),
    ]
    n = 20_000
    misses = [one(S.READ, tables=(f"t{i}",)) for i in range(n)]  # every one a new shape
    start = time.perf_counter()
    for c in misses:
        eng.decide(ENGINEER, "demo", c)
    uncached_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for i in range(n):
        eng.decide(ENGINEER, "demo", shapes[i % 3])
    cached_us = (time.perf_counter() - start) / n * 1e6
    with capsys.disabled():
        print(f"\ndecide: cached {cached_us:.2f} µs, uncached {uncached_us:.2f} µs")
    # Generous ceilings so a loaded CI box passes; the numbers above are the report.
    assert cached_us < 20
    assert uncached_us < 200


def test_allow_decision_shape(engine: PolicyEngine) -> None:
    d = engine.decide(AGENT, "demo", one(S.READ, S.WRITE))
    assert d == Decision.allow(
        rule="role:agent-demo",
        reason="role 'agent-demo' allows read on target 'demo'; "
        "role 'agent-demo' allows write on target 'demo'",
        classes=frozenset({S.READ, S.WRITE}),
    )
