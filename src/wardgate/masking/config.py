"""The ``masking:`` section of the configuration and the per-identity policy built from it.

This module owns the schema (pydantic v2, unknown keys rejected) and the group semantics;
finding and rewriting values live in ``detectors``/``engine``.

Group semantics — visibility is *granted*, never taken away:

* By default every enabled detector and every column rule is masked for everyone.
* ``unmasked_groups``: a member of any of these sees clear text (``masking_plan_for``
  returns None and the gateway takes its zero-cost path).
* ``groups.<name>.mask``: members of that group get only these kinds masked. A caller in
  several such groups gets the intersection (each group's grant adds visibility), the
  same rule as ``unmasked_groups``. Groups not listed change nothing.

Kinds are the built-in detector names (``card``, ``email``, ``ssn``, ``iban``, ``phone``,
``private_key``, ``jwt``, ``aws_secret_key``, ``aws_access_key``, ``github_token``,
``slack_token``, ``stripe_key``, ``password``), custom detector names, and the aliases
``secrets`` (all secret kinds) and ``all``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Self

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from wardgate.core.errors import ConfigError
from wardgate.masking.detectors import (
    BUILTIN_KINDS,
    SECRET_KINDS,
    VALIDATORS,
    CustomDetector,
    build_detectors,
)
from wardgate.masking.engine import MaskingPolicy, ValueMasker
from wardgate.masking.formats import DEFAULT_FORMATS, Formatter, MaskFormat

__all__ = [
    "EXAMPLE_YAML",
    "ColumnRule",
    "CustomDetectorSettings",
    "DetectorSettings",
    "GroupRule",
    "MaskingConfig",
]

_ALIASES = frozenset({"secrets", "all"})
_KIND_NAME = r"^[a-z][a-z0-9_]{0,39}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectorSettings(_Strict):
    """One built-in detector (or ``secrets`` for all secret kinds at once)."""

    enabled: bool = True
    format: MaskFormat | None = None


class CustomDetectorSettings(_Strict):
    """A site-specific detector: a regex plus an optional validator and a cheap gate.

    Without ``min_digits`` or ``contains`` the regex runs on every scanned value, which
    costs a regex search per text value per row; set one of them whenever you can.
    """

    name: str = Field(pattern=_KIND_NAME)
    pattern: str
    validator: str | None = None
    group: int = Field(0, ge=0)
    min_digits: int = Field(0, ge=0)
    contains: list[str] = Field(default_factory=list)
    ignore_case: bool = False
    format: MaskFormat = MaskFormat.REDACT

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            compiled = re.compile(self.pattern.encode("utf-8"))
        except re.error as exc:
            raise ValueError(
                f"custom detector {self.name!r}: pattern does not compile ({exc}); it is "
                "compiled as a bytes regex, so use ASCII classes like [0-9]"
            ) from exc
        if self.group > compiled.groups:
            raise ValueError(
                f"custom detector {self.name!r}: group {self.group} but the pattern has "
                f"only {compiled.groups} group(s)"
            )
        if self.validator is not None and self.validator not in VALIDATORS:
            raise ValueError(
                f"custom detector {self.name!r}: unknown validator {self.validator!r}; "
                f"choose one of {', '.join(sorted(VALIDATORS))}"
            )
        if compiled.search(b"") is not None:
            raise ValueError(
                f"custom detector {self.name!r}: pattern matches the empty string, so it "
                "would match everywhere; make it require at least one character"
            )
        return self


class ColumnRule(_Strict):
    """Mask a whole column as ``kind``, whatever its content (undashed SSNs, names)."""

    column: str = Field(min_length=1)
    """fnmatch pattern over ``schema.table.column`` / ``table.column`` / ``column``."""
    kind: str


class GroupRule(_Strict):
    mask: list[str]
    """The kinds masked for members of this group (``[]`` = nothing)."""


class MaskingConfig(_Strict):
    """``masking:`` in the gateway configuration. See :data:`EXAMPLE_YAML`."""

    enabled: bool = True
    pseudonym_key: SecretStr | None = None
    pseudonym_key_env: str | None = None
    phone_regions: list[str] = Field(default_factory=lambda: ["US"])
    detectors: dict[str, DetectorSettings] = Field(default_factory=dict)
    custom: list[CustomDetectorSettings] = Field(default_factory=list)
    columns: list[ColumnRule] = Field(default_factory=list)
    unmasked_groups: list[str] = Field(default_factory=list)
    groups: dict[str, GroupRule] = Field(default_factory=dict)

    _policies: dict[frozenset[str], MaskingPolicy | None] = PrivateAttr(default_factory=dict)
    _by_kinds: dict[frozenset[str], MaskingPolicy] = PrivateAttr(default_factory=dict)
    _custom: list[CustomDetector] | None = PrivateAttr(default=None)
    _formatter: Formatter | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> Self:
        for name in self.detectors:
            if name not in BUILTIN_KINDS and name != "secrets":
                raise ValueError(
                    f"masking.detectors.{name}: unknown detector; built-in detectors are "
                    f"{', '.join(BUILTIN_KINDS)} (or 'secrets' for all secret kinds). "
                    "Site-specific patterns go under masking.custom"
                )
        seen: set[str] = set()
        for c in self.custom:
            if c.name in BUILTIN_KINDS or c.name in _ALIASES or c.name in seen:
                raise ValueError(
                    f"masking.custom: name {c.name!r} is already taken (built-in, alias or "
                    "duplicate); give the custom detector its own name"
                )
            seen.add(c.name)
        known = self.known_kinds()
        for rule in self.columns:
            if rule.kind not in known:
                raise ValueError(
                    f"masking.columns: rule for {rule.column!r} uses unknown kind "
                    f"{rule.kind!r}; use a detector name ({', '.join(sorted(known))})"
                )
        for group, grule in self.groups.items():
            for kind in grule.mask:
                if kind not in known and kind not in _ALIASES:
                    raise ValueError(
                        f"masking.groups.{group}.mask: unknown kind {kind!r}; use a detector "
                        f"name ({', '.join(sorted(known))}), 'secrets' or 'all'"
                    )
            if group in self.unmasked_groups:
                raise ValueError(
                    f"masking: group {group!r} is in unmasked_groups and also has a "
                    "groups rule; remove one of them"
                )
        for region in self.phone_regions:
            if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(
                    f"masking.phone_regions: {region!r} is not a region code libphonenumber "
                    "knows; use ISO 3166 alpha-2 codes such as US, GB, DE"
                )
        if self.pseudonym_key is not None and self.pseudonym_key_env is not None:
            raise ValueError(
                "masking: set either pseudonym_key or pseudonym_key_env, not both "
                "(prefer pseudonym_key_env so the key stays out of the file)"
            )
        return self

    # ---------------------------------------------------------------- derived views

    def known_kinds(self) -> frozenset[str]:
        return frozenset(BUILTIN_KINDS) | {c.name for c in self.custom}

    def enabled_kinds(self) -> frozenset[str]:
        """Kinds whose detector runs on content (column rules apply regardless)."""
        family = self.detectors.get("secrets")
        out = set()
        for kind in BUILTIN_KINDS:
            settings = self.detectors.get(kind)
            if settings is None and kind in SECRET_KINDS:
                settings = family
            if settings is None or settings.enabled:
                out.add(kind)
        out.update(c.name for c in self.custom)
        return frozenset(out)

    def formats(self) -> dict[str, MaskFormat]:
        family = self.detectors.get("secrets")
        out: dict[str, MaskFormat] = {}
        for kind in BUILTIN_KINDS:
            settings = self.detectors.get(kind)
            fmt = settings.format if settings is not None else None
            if fmt is None and kind in SECRET_KINDS and family is not None:
                fmt = family.format
            out[kind] = fmt or DEFAULT_FORMATS.get(kind, MaskFormat.REDACT)
        for c in self.custom:
            out[c.name] = c.format
        return out

    def _expand(self, kinds: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for kind in kinds:
            if kind == "all":
                out |= self.known_kinds()
            elif kind == "secrets":
                out |= SECRET_KINDS
            else:
                out.add(kind)
        return out

    def masked_kinds_for(self, groups: frozenset[str]) -> frozenset[str]:
        """The kinds masked for a caller in ``groups`` (see module docstring)."""
        if not self.enabled or groups & set(self.unmasked_groups):
            return frozenset()
        masked = self.enabled_kinds() | {r.kind for r in self.columns}
        for group in sorted(groups):
            rule = self.groups.get(group)
            if rule is not None:
                masked &= self._expand(rule.mask)
        return frozenset(masked)

    # ---------------------------------------------------------------- runtime

    def prepare(self) -> None:
        """Resolve the pseudonym key and compile custom detectors now, so a missing
        environment variable stops the gateway at startup, not at the first query."""
        if self._formatter is not None:
            return
        formats = self.formats()
        key: bytes | None = None
        if self.pseudonym_key is not None:
            key = self.pseudonym_key.get_secret_value().encode("utf-8")
        elif self.pseudonym_key_env is not None:
            env = os.environ.get(self.pseudonym_key_env)
            if not env:
                raise ConfigError(
                    f"masking.pseudonym_key_env names {self.pseudonym_key_env!r} but that "
                    "environment variable is not set or empty; export it (32+ random "
                    "characters) before starting the gateway"
                )
            key = env.encode("utf-8")
        if key is not None and len(key) < 16:
            raise ConfigError(
                "masking: the pseudonym key is shorter than 16 bytes; a short key lets "
                "anyone with a list of likely values reverse the pseudonyms. Use 32+ "
                "random characters"
            )
        try:
            self._formatter = Formatter(formats, key)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        self._custom = [
            CustomDetector(
                c.name, c.pattern, validator=c.validator, group=c.group,
                min_digits=c.min_digits, contains=c.contains, ignore_case=c.ignore_case,
            )
            for c in self.custom
        ]  # fmt: skip

    def masking_plan_for(self, groups: frozenset[str]) -> MaskingPolicy | None:
        """The masking policy for a caller in ``groups``; None when nothing is masked for
        them (the gateway then never inspects their results)."""
        try:
            return self._policies[groups]
        except KeyError:
            pass
        kinds = self.masked_kinds_for(groups)
        policy = self._policy_for_kinds(kinds) if kinds else None
        if len(self._policies) >= 4096:
            self._policies.clear()
        self._policies[groups] = policy
        return policy

    def _policy_for_kinds(self, kinds: frozenset[str]) -> MaskingPolicy:
        cached = self._by_kinds.get(kinds)
        if cached is not None:
            return cached
        self.prepare()
        assert self._formatter is not None and self._custom is not None
        detectors = build_detectors(
            kinds & self.enabled_kinds(), phone_regions=self.phone_regions, custom=self._custom
        )
        policy = MaskingPolicy(
            ValueMasker(detectors, self._formatter),
            [(r.column, r.kind) for r in self.columns],
            kinds=kinds,
            phone_regions=self.phone_regions,
        )
        self._by_kinds[kinds] = policy
        return policy


EXAMPLE_YAML = """\
masking:
  # Quickstart: agents and engineers see every detector masked; dba sees clear text.
  unmasked_groups: [dba]
  pseudonym_key_env: WARDGATE_MASKING_KEY   # needed only for format: pseudonym
  phone_regions: [US, GB]
  detectors:
    card:  {format: last4}                  # **** **** **** 1111
    email: {format: pseudonym}              # u_3f9a1c0b2d4e6f70@masked.invalid
    ssn:   {format: redact}                 # [REDACTED:ssn]
    secrets: {format: redact}               # every secret kind at once
    phone: {enabled: true, format: last4}
  custom:
    - name: employee_id
      pattern: 'EMP-[0-9]{6}'
      contains: ['EMP-']                    # cheap gate: regex runs only if present
      format: pseudonym
  columns:
    - {column: '*.ssn', kind: ssn}          # undashed SSNs too
    - {column: 'customers.email', kind: email}
    - {column: 'public.customers.card_number', kind: card}
  groups:
    agents:    {mask: [all]}
    engineers: {mask: [all]}
    support:   {mask: [card, ssn, secrets]} # support sees e-mail and phone in clear
"""
"""A complete ``masking:`` section; the tests parse it, the docs quote it."""
