"""Least-privilege evaluation: who may connect to which target, and what each statement gets.

``PolicyEngine`` is built once from ``PolicyConfig`` and is immutable; a configuration
reload builds a new engine. It is pure (no I/O) and protocol-neutral: it sees a
``Principal``'s groups, a target name and a ``Classification``, never bytes or SQL text.

How a statement is judged
-------------------------
1. The roles in play are those bound to any of the principal's groups whose ``targets``
   match the target. None: ``default-deny`` (the same answer ``can_connect`` gives).
2. Each statement of the string is judged separately (so a rule about ``payroll.*`` does
   not fire because a *different* statement in the same string touched payroll), and
   each of its classes separately. A statement with no classes, or a string the parser
   rejected, is ``unclassified``.
3. For one class of one statement:
   a. ``rules`` come first, in file order; the first rule whose targets, groups, roles,
      classes and tables all match decides (allow, deny or review). A deny/review rule
      with ``tables`` matches when *any* table of the statement matches (conservative);
      an allow rule with ``tables`` matches only when *every* table does, so an allow for
      ``scratch.*`` never lets a statement also touching ``public.accounts`` through.
   b. Otherwise the roles decide, and roles are **additive grants**: if any role allows
      the class it is allowed; else if any role sends it to review it goes to review,
      approvable by the union of those roles' approvers; else it is denied (naming the
      role that denies it explicitly, or ``default-deny`` when no role mentions it, or
      ``unclassified``).
4. The strictest verdict over all classes of all statements wins: deny > review > allow.
   A review needs one approver group that may approve *every* class under review (the
   intersection); when there is none the statement is denied (``review-conflict``)
   rather than letting one group approve what only another may.

Why roles are additive and rules are not: a role is a grant scoped to a job (agent,
engineer, dba). If a deny inside one role could override another role's allow, adding a
person to a group would take rights away — e.g. a DBA who is also in ``engineers`` would
lose ``destructive``. Restrictions that must hold whatever else a principal holds belong
in ``rules``, which are checked first and can only be bypassed by an earlier rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase, translate

from wardgate.core.model import Principal
from wardgate.policy.config import PolicyConfig, RuleConfig, expand_classes
from wardgate.policy.decision import Decision, Verdict
from wardgate.sql.classes import Classification, StatementClass

UNCLASSIFIED = StatementClass.UNCLASSIFIED
_ORDER = {c: i for i, c in enumerate(StatementClass)}
_UNCLASSIFIED_ONLY = frozenset({UNCLASSIFIED})

_Unit = tuple[frozenset[StatementClass], frozenset[str]]
_DecideKey = tuple[
    frozenset[str],
    str,
    frozenset[StatementClass],
    frozenset[str],
    bool,
    tuple[_Unit, ...],
]


def _names(items: Iterable[str], limit: int = 8) -> str:
    """``a, b, c`` — capped, because a JWT can carry dozens of groups."""
    items = sorted(items)
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _quoted(items: Iterable[str]) -> str:
    return ", ".join(f"'{i}'" for i in sorted(items))


@dataclass(frozen=True, slots=True)
class _Role:
    name: str
    targets: tuple[str, ...]
    verdicts: dict[StatementClass, Verdict]
    approvers: frozenset[str]

    def covers(self, target: str) -> bool:
        return any(fnmatchcase(target, p) for p in self.targets)


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    action: Verdict
    reason: str
    classes: frozenset[StatementClass]
    targets: tuple[str, ...]
    groups: frozenset[str]
    roles: frozenset[str]
    tables: tuple[str, ...]
    approvers: frozenset[str]
    # The table globs compiled once: whole-name matching, and (deny/review only) matching
    # an unqualified name against the globs' table parts that name something.
    table_re: re.Pattern[str] | None
    table_part_re: re.Pattern[str] | None

    @classmethod
    def build(cls, rule: RuleConfig) -> _Rule:
        parts = [g.rsplit(".", 1)[1] for g in rule.tables if "." in g]
        parts = [p for p in parts if p.strip("*?")]
        return cls(
            name=rule.name,
            action=rule.action,
            reason=rule.reason,
            classes=expand_classes(rule.classes),
            targets=tuple(rule.targets),
            groups=frozenset(rule.groups),
            roles=frozenset(rule.roles),
            tables=tuple(rule.tables),
            approvers=frozenset(rule.approvers),
            table_re=_glob_re(rule.tables),
            table_part_re=_glob_re(parts) if rule.action != "allow" else None,
        )

    def applies(self, groups: frozenset[str], role_names: frozenset[str], target: str) -> bool:
        return (
            any(fnmatchcase(target, p) for p in self.targets)
            and (not self.groups or not self.groups.isdisjoint(groups))
            and (not self.roles or not self.roles.isdisjoint(role_names))
        )


@dataclass(frozen=True, slots=True)
class _Context:
    """Everything about (groups, target) that does not depend on the statement."""

    roles: tuple[_Role, ...]
    role_names: frozenset[str]
    rules: tuple[_Rule, ...]
    # What the roles say per class, filled on first use (roles ignore tables).
    by_class: dict[StatementClass, Decision] = field(default_factory=dict)


class PolicyEngine:
    """Decides connections and statements from a ``PolicyConfig``. Pure and memoized."""

    def __init__(self, config: PolicyConfig, *, cache_size: int = 65_536) -> None:
        self.config = config
        self._roles = {
            name: _Role(
                name=name,
                targets=tuple(role.targets),
                verdicts=role.verdicts(),
                approvers=frozenset(role.approvers),
            )
            for name, role in config.roles.items()
        }
        self._bindings = {g: tuple(names) for g, names in config.bindings.items()}
        self._rules = tuple(_Rule.build(r) for r in config.rules)
        self._default_schemas = tuple(config.default_schemas)
        self._cache_size = max(1, cache_size)
        self._decisions: dict[_DecideKey, Decision] = {}
        self._contexts: dict[tuple[frozenset[str], str], _Context] = {}

    # -- connections --------------------------------------------------------------

    def roles_for(self, principal: Principal, target_name: str) -> list[str]:
        """Names of the principal's roles that cover ``target_name`` (for logs and errors)."""
        return [r.name for r in self._context(principal.groups, target_name).roles]

    def can_connect(self, principal: Principal, target_name: str) -> Decision:
        ctx = self._context(principal.groups, target_name)
        if not ctx.roles:
            return self._no_grant(principal, target_name)
        names = _quoted(ctx.role_names)
        return Decision.allow(
            rule=f"role:{ctx.roles[0].name}",
            reason=f"role(s) {names} grant target '{target_name}'",
        )

    def targets_for(self, principal: Principal, all_target_names: Iterable[str]) -> list[str]:
        """The targets, out of ``all_target_names``, that some role of the principal covers."""
        return sorted(t for t in set(all_target_names) if self._context(principal.groups, t).roles)

    # -- statements ---------------------------------------------------------------

    def decide(
        self, principal: Principal, target_name: str, classification: Classification
    ) -> Decision:
        # The decision depends only on groups, target and the shape of the classification,
        # so a repeated statement (or any statement shaped like it) is one dict lookup.
        stmts = classification.statements
        key: _DecideKey = (
            principal.groups,
            target_name,
            classification.classes,
            classification.tables,
            classification.error is not None,
            tuple([(s.classes, s.tables) for s in stmts]),
        )
        cached = self._decisions.get(key)
        if cached is not None:
            return cached
        decision = self._decide(principal, target_name, classification)
        if len(self._decisions) >= self._cache_size:
            # Evict the oldest entry; dicts keep insertion order, so this is FIFO.
            self._decisions.pop(next(iter(self._decisions)), None)
        self._decisions[key] = decision
        return decision

    def cache_clear(self) -> None:
        self._decisions.clear()
        self._contexts.clear()

    # -- internals ----------------------------------------------------------------

    def _context(self, groups: frozenset[str], target: str) -> _Context:
        key = (groups, target)
        ctx = self._contexts.get(key)
        if ctx is None:
            seen: dict[str, _Role] = {}
            for group in sorted(groups):
                for name in self._bindings.get(group, ()):
                    role = self._roles[name]
                    if name not in seen and role.covers(target):
                        seen[name] = role
            roles = tuple(seen.values())
            role_names = frozenset(seen)
            rules = tuple(r for r in self._rules if r.applies(groups, role_names, target))
            ctx = _Context(roles, role_names, rules)
            if len(self._contexts) >= self._cache_size:
                self._contexts.pop(next(iter(self._contexts)), None)
            self._contexts[key] = ctx
        return ctx

    def _no_grant(self, principal: Principal, target: str) -> Decision:
        if not principal.groups:
            reason = (
                f"identity '{principal.name}' belongs to no groups, so no role grants it "
                f"access to target '{target}'; ask an administrator to add it to a group "
                f"bound to a role for '{target}'"
            )
        else:
            reason = (
                f"no role grants group(s) {_names(principal.groups)} access to target "
                f"'{target}'; an administrator can bind one of these groups to a role whose "
                f"targets include '{target}' under policy.bindings"
            )
        return Decision.deny(rule="default-deny", reason=reason)

    def _decide(self, principal: Principal, target: str, c: Classification) -> Decision:
        ctx = self._context(principal.groups, target)
        if not ctx.roles:
            return self._no_grant(principal, target)
        verdicts: list[Decision] = []
        for classes, tables in _units(c):
            for cls in sorted(classes, key=_ORDER.__getitem__):
                verdicts.append(self._judge(ctx, target, cls, tables))
        return _combine(verdicts)

    def _judge(
        self, ctx: _Context, target: str, cls: StatementClass, tables: frozenset[str]
    ) -> Decision:
        for rule in ctx.rules:
            if cls in rule.classes and self._tables_match(rule, tables):
                return _rule_decision(rule, target, cls)
        decision = ctx.by_class.get(cls)
        if decision is None:
            decision = ctx.by_class[cls] = self._role_verdict(ctx, target, cls)
        return decision

    def _role_verdict(self, ctx: _Context, target: str, cls: StatementClass) -> Decision:
        only = frozenset({cls})
        allowing = [r for r in ctx.roles if r.verdicts.get(cls) == "allow"]
        if allowing:
            return Decision.allow(
                rule=f"role:{allowing[0].name}",
                reason=f"role '{allowing[0].name}' allows {cls} on target '{target}'",
                classes=only,
            )
        reviewing = [r for r in ctx.roles if r.verdicts.get(cls) == "review"]
        if reviewing:
            approvers = frozenset().union(*(r.approvers for r in reviewing))
            return Decision.review(
                rule=f"role:{reviewing[0].name}",
                reason=(
                    f"{cls} on target '{target}' needs approval by a member of "
                    f"{_names(approvers)} (role '{reviewing[0].name}')"
                ),
                approvers=approvers,
                classes=only,
            )
        if cls is UNCLASSIFIED:
            return Decision.deny(
                rule="unclassified",
                reason=(
                    f"the statement could not be classified, and none of your roles "
                    f"({_quoted(ctx.role_names)}) allows unclassified statements on target "
                    f"'{target}'; rewrite it as plain SQL or ask a policy administrator"
                ),
                classes=only,
            )
        denying = [r for r in ctx.roles if r.verdicts.get(cls) == "deny"]
        if denying:
            return Decision.deny(
                rule=f"role:{denying[0].name}",
                reason=(
                    f"{cls} is denied on target '{target}' by role '{denying[0].name}'; "
                    "ask a policy administrator if your work needs it"
                ),
                classes=only,
            )
        return Decision.deny(
            rule="default-deny",
            reason=(
                f"{cls} is not granted on target '{target}' by any of your roles "
                f"({_quoted(ctx.role_names)}); ask a policy administrator for a role "
                "that allows it"
            ),
            classes=only,
        )

    def _tables_match(self, rule: _Rule, tables: frozenset[str]) -> bool:
        if rule.table_re is None:
            return True
        if rule.action == "allow":
            # Permissive direction: every table must be inside the allowed set, and a
            # statement whose tables we do not know is not "inside" anything.
            return bool(tables) and all(self._table_matches(t, rule) for t in tables)
        return any(self._table_matches(t, rule) for t in tables)

    def _table_matches(self, table: str, rule: _Rule) -> bool:
        assert rule.table_re is not None
        match = rule.table_re.match
        parts = table.split(".")
        if len(parts) == 1:
            if any(match(f"{schema}.{table}") for schema in self._default_schemas):
                return True
            # An unqualified name may resolve into any schema on the search path, so a
            # guardrail naming a specific table catches it whatever the schema.
            if rule.table_part_re is not None and rule.table_part_re.match(table):
                return True
        # `db.schema.table` is also `schema.table` and `table`.
        return any(match(".".join(parts[i:])) for i in range(len(parts)))


def _units(c: Classification) -> list[_Unit]:
    """(classes, tables) per statement; plus the whole string when the per-statement view
    does not account for everything (a parse error, or a classifier that only filled the
    aggregate) — policy never judges less than the classification says."""
    units: list[_Unit] = [(s.classes or _UNCLASSIFIED_ONLY, s.tables) for s in c.statements]
    agg_classes = (c.classes | _UNCLASSIFIED_ONLY) if c.error is not None else c.classes
    covered_classes: frozenset[StatementClass] = frozenset().union(*(u[0] for u in units))
    covered_tables: frozenset[str] = frozenset().union(*(u[1] for u in units))
    if not units or not agg_classes <= covered_classes or not c.tables <= covered_tables:
        units.append((agg_classes or _UNCLASSIFIED_ONLY, c.tables))
    return units


def _rule_decision(rule: _Rule, target: str, cls: StatementClass) -> Decision:
    only = frozenset({cls})
    on_tables = f" on tables matching {', '.join(rule.tables)}" if rule.tables else ""
    where = f"{cls} on target '{target}'{on_tables}"
    name = f"rule:{rule.name}"
    if rule.action == "deny":
        return Decision.deny(
            rule=name,
            reason=f"rule '{rule.name}' denies {where}: {rule.reason}",
            classes=only,
        )
    if rule.action == "review":
        return Decision.review(
            rule=name,
            reason=(
                f"rule '{rule.name}' requires approval by a member of "
                f"{_names(rule.approvers)} for {where}: {rule.reason}"
            ),
            approvers=rule.approvers,
            classes=only,
        )
    return Decision.allow(
        rule=name, reason=f"rule '{rule.name}' allows {where}: {rule.reason}", classes=only
    )


def _combine(verdicts: list[Decision]) -> Decision:
    worst = max(v.severity for v in verdicts)
    top = [v for v in verdicts if v.severity == worst]
    classes = frozenset().union(*(v.classes for v in top))
    first = top[0]
    if first.verdict == "allow":
        return Decision.allow(
            rule=first.rule,
            reason=first.reason if len(top) == 1 else _join(v.reason for v in top),
            classes=classes,
        )
    if first.verdict == "deny":
        return Decision.deny(rule=first.rule, reason=first.reason, classes=classes)
    approvers = frozenset.intersection(*(v.approvers for v in top))
    if not approvers:
        needs = "; ".join(f"{_quoted(v.classes)} by {_names(v.approvers)}" for v in _distinct(top))
        return Decision.deny(
            rule="review-conflict",
            reason=(
                f"the statement needs approvals no single group can give ({needs}); "
                "run its parts as separate statements"
            ),
            classes=classes,
        )
    return Decision.review(
        rule=first.rule,
        reason=_join(v.reason for v in top),
        approvers=approvers,
        classes=classes,
    )


def _distinct(decisions: list[Decision]) -> list[Decision]:
    seen: dict[tuple[str, frozenset[str], frozenset[StatementClass]], Decision] = {}
    for d in decisions:
        seen.setdefault((d.rule, d.approvers, d.classes), d)
    return list(seen.values())


def _join(reasons: Iterable[str]) -> str:
    return "; ".join(dict.fromkeys(reasons))


def _glob_re(globs: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for a list of fnmatch globs (case-sensitive, like ``fnmatchcase``)."""
    globs = list(globs)
    return re.compile("|".join(f"(?:{translate(g)})" for g in globs)) if globs else None
