"""The ``policy:`` section of the configuration file: roles, bindings, rules, approvals.

Shape (see ``examples/quickstart.yaml``)::

    policy:
      roles:                     # what a role grants: targets + a verdict per statement class
        engineer-demo:
          targets: ["demo", "demo_*"]        # target names or fnmatch globs
          allow:  [read, write, ddl, transaction, session, utility]
          review: [write-unbounded, destructive]
          deny:   [privilege, server-escape, dynamic, unclassified]
          approvers: [dba]                   # who approves this role's reviews
      bindings:                  # identity groups -> roles
        engineers: [engineer-demo]
      rules:                     # guardrails checked before roles; first match wins
        - name: no-touching-payroll
          targets: ["demo"]
          tables: ["payroll.*", "*.salaries"]
          classes: [write, write-unbounded, destructive]
          groups: [engineers]
          action: deny
          reason: payroll data is changed only through the HR app
      approvals:
        timeout_seconds: 300
        scope: statement         # or fingerprint
        fingerprint_ttl_seconds: 900
        webhook: {url: null, format: json, timeout_seconds: 5}

Class names are the ``StatementClass`` values; ``all`` means every class, including
``unclassified``. In a role, ``all`` covers the classes the role does not name in another
list, so ``allow: [all]`` with ``deny: [server-escape]`` reads the way it sounds. A class a
role names nowhere is denied for that role. Every model forbids unknown keys, so a typo
(``aprovers``) fails at load time with the key's path instead of silently granting less
— or more — than the operator meant.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from wardgate.policy.decision import Verdict
from wardgate.sql.classes import StatementClass

ALL = "all"
CLASS_NAMES: tuple[str, ...] = (*(c.value for c in StatementClass), ALL)


def _class_name(value: str) -> str:
    if value not in CLASS_NAMES:
        raise ValueError(
            f"unknown statement class {value!r}; valid classes: {', '.join(CLASS_NAMES)}"
        )
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _table_glob(value: str) -> str:
    # Classifiers lower-case table names; lower-casing the glob keeps `Payroll.*` working.
    return _non_blank(value).lower()


ClassName = Annotated[str, AfterValidator(_class_name)]
Name = Annotated[str, AfterValidator(_non_blank)]
TableGlob = Annotated[str, AfterValidator(_table_glob)]


def expand_classes(names: Iterable[str]) -> frozenset[StatementClass]:
    """``["read", "all"]`` -> the StatementClass set those names mean."""
    names = list(names)
    if ALL in names:
        return frozenset(StatementClass)
    return frozenset(StatementClass(n) for n in names)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleConfig(_Strict):
    """A grant: the targets it covers and what it says about each statement class."""

    targets: list[Name] = Field(min_length=1)
    allow: list[ClassName] = Field(default_factory=list)
    review: list[ClassName] = Field(default_factory=list)
    deny: list[ClassName] = Field(default_factory=list)
    approvers: list[Name] = Field(default_factory=list)
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> RoleConfig:
        lists = {"allow": self.allow, "review": self.review, "deny": self.deny}
        with_all = [k for k, v in lists.items() if ALL in v]
        if len(with_all) > 1:
            raise ValueError(
                f"'all' appears in both {with_all[0]} and {with_all[1]}; keep it in one list"
            )
        seen: dict[str, str] = {}
        for key, names in lists.items():
            for name in names:
                if name != ALL and name in seen and seen[name] != key:
                    raise ValueError(
                        f"class {name!r} is listed under both {seen[name]} and {key}; "
                        "a role says one thing per class"
                    )
                seen[name] = key
        if self.review and not self.approvers:
            raise ValueError(
                "review lists classes but approvers is empty; name the group(s) whose "
                "members may approve, e.g. approvers: [dba]"
            )
        return self

    def verdicts(self) -> dict[StatementClass, Verdict]:
        """Per class, what this role says. Classes absent from the result are denied."""
        out: dict[StatementClass, Verdict] = {}
        lists: dict[Verdict, list[str]] = {
            "allow": self.allow,
            "review": self.review,
            "deny": self.deny,
        }
        for verdict, names in lists.items():
            for name in names:
                if name != ALL:
                    out[StatementClass(name)] = verdict
        for verdict, names in lists.items():
            if ALL in names:
                for cls in StatementClass:
                    out.setdefault(cls, verdict)
        return out


class RuleConfig(_Strict):
    """A guardrail checked before roles. It applies when target, group/role, class and
    table all match; the first applicable rule decides that class."""

    name: Name
    action: Literal["allow", "deny", "review"]
    reason: Name
    classes: list[ClassName] = Field(min_length=1)
    targets: list[Name] = Field(default_factory=lambda: ["*"], min_length=1)
    groups: list[Name] = Field(default_factory=list)  # empty: every group
    roles: list[Name] = Field(default_factory=list)  # empty: every role
    tables: list[TableGlob] = Field(default_factory=list)  # empty: any table, or none
    approvers: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _approvers_match_action(self) -> RuleConfig:
        if self.action == "review" and not self.approvers:
            raise ValueError(
                f"rule {self.name!r} has action review but no approvers; "
                "name the group(s) whose members may approve"
            )
        if self.action != "review" and self.approvers:
            raise ValueError(
                f"rule {self.name!r} has approvers but action {self.action}; "
                "approvers only apply to action: review"
            )
        return self


class WebhookConfig(_Strict):
    """Where approval requests are announced. The URL often embeds a secret (Slack), so
    wardgate never logs it; the statement text is left out unless asked for, because
    chat channels are not where SQL literals should end up."""

    url: AnyHttpUrl | None = None
    format: Literal["json", "slack"] = "json"
    timeout_seconds: float = Field(default=5.0, gt=0)
    include_statement: bool = False


class ApprovalsConfig(_Strict):
    timeout_seconds: float = Field(default=300.0, gt=0)
    scope: Literal["statement", "fingerprint"] = "statement"
    fingerprint_ttl_seconds: float = Field(default=900.0, gt=0)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)


class PolicyConfig(_Strict):
    """The whole ``policy:`` section. An empty section denies everything."""

    roles: dict[str, RoleConfig] = Field(default_factory=dict)
    bindings: dict[str, list[Name]] = Field(default_factory=dict)
    rules: list[RuleConfig] = Field(default_factory=list)
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)
    # Where an unqualified table name (`accounts`) is assumed to live when matching rule
    # table globs, so `public.*` also catches `UPDATE accounts ...`. Deny and review
    # rules additionally match an unqualified name against a glob's table part when that
    # part names something (`*.salaries` catches `salaries` in any schema).
    default_schemas: list[TableGlob] = Field(default_factory=lambda: ["public"])

    @field_validator("bindings")
    @classmethod
    def _bound_roles_exist(
        cls, bindings: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        if "roles" not in info.data:
            return bindings  # roles failed validation; that error is the one to read
        roles: dict[str, RoleConfig] = info.data["roles"]
        for group, names in bindings.items():
            for name in names:
                if name not in roles:
                    raise ValueError(
                        f"group {group!r} is bound to role {name!r}, which is not defined "
                        f"under policy.roles; defined roles: {', '.join(sorted(roles)) or '(none)'}"
                    )
        return bindings

    @field_validator("rules")
    @classmethod
    def _rules_consistent(cls, rules: list[RuleConfig], info: ValidationInfo) -> list[RuleConfig]:
        roles: dict[str, RoleConfig] | None = info.data.get("roles")
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}; rule names must be unique")
            seen.add(rule.name)
            for name in rule.roles:
                if roles is not None and name not in roles:
                    raise ValueError(
                        f"rule {rule.name!r} names role {name!r}, which is not defined under "
                        f"policy.roles; defined roles: {', '.join(sorted(roles)) or '(none)'}"
                    )
        return rules

    def unmatched_target_patterns(self, target_names: Iterable[str]) -> list[str]:
        """Target names/globs in roles and rules that match no configured target.

        The loader can warn about these: a typo in a grant is otherwise silent.
        """
        names = list(target_names)
        patterns = {p for r in self.roles.values() for p in r.targets}
        patterns |= {p for r in self.rules for p in r.targets}
        return sorted(p for p in patterns if not any(fnmatchcase(n, p) for n in names))
