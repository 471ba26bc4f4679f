"""The masking: section — what operators write, who sees what, and the errors they get."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import wardgate.masking
from wardgate.core.errors import ConfigError
from wardgate.masking.config import EXAMPLE_YAML, MaskingConfig
from wardgate.masking.detectors import BUILTIN_KINDS, SECRET_KINDS
from wardgate.masking.engine import ColumnInfo
from wardgate.masking.formats import MaskFormat

KEY_ENV = "WARDGATE_TEST_MASKING_KEY"


def config(**section: Any) -> MaskingConfig:
    return MaskingConfig.model_validate(section)


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> MaskingConfig:
    monkeypatch.setenv("WARDGATE_MASKING_KEY", "k" * 32)
    return MaskingConfig.model_validate(yaml.safe_load(EXAMPLE_YAML)["masking"])


def test_public_surface() -> None:
    assert set(wardgate.masking.__all__) == {
        "EXAMPLE_YAML", "SQL_NULL", "ColumnInfo", "MaskFormat", "MaskingConfig",
        "MaskingPolicy", "ResultMaskPlan", "ValueMasker", "mask_copy_line", "mask_datarow",
    }  # fmt: skip
    for name in wardgate.masking.__all__:
        assert getattr(wardgate.masking, name) is not None


def test_quickstart_agents_and_engineers_masked_dba_clear(example: MaskingConfig) -> None:
    for groups in ({"agents"}, {"engineers"}, {"agents", "engineers"}, set()):
        p = example.masking_plan_for(frozenset(groups))
        assert p is not None
        assert p.kinds == example.known_kinds()
        assert p.masker.mask_text(b"alice@example.com") is not None
    assert example.masking_plan_for(frozenset({"dba"})) is None
    # visibility is granted: a dba who is also an engineer sees clear text
    assert example.masking_plan_for(frozenset({"dba", "engineers"})) is None


def test_quickstart_formats_and_rules(example: MaskingConfig) -> None:
    p = example.masking_plan_for(frozenset({"agents"}))
    assert p is not None
    assert p.masker.mask_text(b"4111 1111 1111 1111") == b"**** **** **** 1111"
    out = p.masker.mask_text(b"alice@example.com")
    assert out is not None and out.endswith(b"@masked.invalid")
    assert p.masker.mask_text(b"EMP-123456") is not None
    assert p.masker.mask_text(b"020 7946 0958") == b"*** **** 0958"
    plan = p.plan_for_result([ColumnInfo("ssn", "public.people", 25)])
    assert plan is not None and plan.mask_value(0, b"123456789") == b"[REDACTED:ssn]"


def test_group_rule_narrows_what_is_masked(example: MaskingConfig) -> None:
    p = example.masking_plan_for(frozenset({"support"}))
    assert p is not None
    assert p.kinds == frozenset({"card", "ssn"}) | SECRET_KINDS
    assert p.masker.mask_text(b"alice@example.com") is None
    assert p.masker.mask_text(b"4111111111111111") is not None
    # a column rule for a kind support may see does not apply to support
    plan = p.plan_for_result([ColumnInfo("email", "customers", 25)])
    assert plan is not None and plan.mask_value(0, b"alice@example.com") is None


def test_several_group_rules_intersect() -> None:
    c = config(groups={"a": {"mask": ["card", "email"]}, "b": {"mask": ["email", "ssn"]}})
    assert c.masked_kinds_for(frozenset({"a", "b"})) == {"email"}
    assert c.masked_kinds_for(frozenset({"a", "unlisted"})) == {"card", "email"}
    assert c.masking_plan_for(frozenset({"z"})) is not None  # default: everything masked
    c2 = config(groups={"a": {"mask": []}})
    assert c2.masking_plan_for(frozenset({"a"})) is None


def test_default_is_everything_masked() -> None:
    c = config()
    assert c.masked_kinds_for(frozenset()) == set(BUILTIN_KINDS)
    p = c.masking_plan_for(frozenset({"anyone"}))
    assert p is not None and p.kinds == set(BUILTIN_KINDS)


def test_disabled_masking_and_disabled_detectors() -> None:
    assert config(enabled=False).masking_plan_for(frozenset()) is None
    c = config(
        detectors={"email": {"enabled": False}}, columns=[{"column": "*.email", "kind": "email"}]
    )
    p = c.masking_plan_for(frozenset())
    assert p is not None
    assert p.masker.mask_text(b"alice@example.com") is None  # not detected in content
    plan = p.plan_for_result([ColumnInfo("email", "customers", 25)])
    assert plan is not None and plan.mask_value(0, b"alice@example.com") == b"[REDACTED:email]"


def test_secrets_alias_sets_every_secret_format() -> None:
    c = config(
        pseudonym_key="x" * 32,
        detectors={"secrets": {"format": "pseudonym"}, "jwt": {"format": "redact"}},
    )
    formats = c.formats()
    assert formats["password"] is MaskFormat.PSEUDONYM
    assert formats["jwt"] is MaskFormat.REDACT
    assert formats["card"] is MaskFormat.LAST4
    c2 = config(detectors={"secrets": {"enabled": False}})
    assert not (c2.enabled_kinds() & SECRET_KINDS)


def test_policies_are_shared_and_cached() -> None:
    c = config(groups={"a": {"mask": ["card"]}, "b": {"mask": ["card"]}})
    pa = c.masking_plan_for(frozenset({"a"}))
    assert pa is c.masking_plan_for(frozenset({"a"}))
    assert pa is c.masking_plan_for(frozenset({"b"}))  # same masked kinds, same policy


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    c = config(pseudonym_key_env=KEY_ENV, detectors={"email": {"format": "pseudonym"}})
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=KEY_ENV):
        c.masking_plan_for(frozenset())
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ConfigError, match="shorter than 16 bytes"):
        c.prepare()
    monkeypatch.setenv(KEY_ENV, "k" * 32)
    c.prepare()
    p = c.masking_plan_for(frozenset())
    assert p is not None
    out = p.masker.mask_text(b"alice@example.com")
    assert out is not None and out.startswith(b"u_")


def test_pseudonym_without_any_key_is_a_config_error() -> None:
    c = config(detectors={"card": {"format": "pseudonym"}})
    with pytest.raises(ConfigError, match="pseudonym_key_env"):
        c.prepare()


def test_pseudonym_key_is_never_printed() -> None:
    c = config(pseudonym_key="super-secret-key-material-123")
    assert "super-secret" not in repr(c)
    assert "super-secret" not in str(c.model_dump())


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"detectors": {"cc": {}}}, "unknown detector"),
        ({"detectors": {"card": {"format": "blur"}}}, "format"),
        ({"detectors": {"card": {"enabled": True, "colour": "red"}}}, "Extra inputs"),
        ({"surprise": 1}, "Extra inputs"),
        ({"custom": [{"name": "card", "pattern": "x"}]}, "already taken"),
        (
            {"custom": [{"name": "a", "pattern": "x"}, {"name": "a", "pattern": "y"}]},
            "already taken",
        ),
        ({"custom": [{"name": "Bad Name", "pattern": "x"}]}, "pattern"),
        ({"custom": [{"name": "a", "pattern": "("}]}, "does not compile"),
        ({"custom": [{"name": "a", "pattern": "x*"}]}, "empty string"),
        ({"custom": [{"name": "a", "pattern": "(x)", "group": 2}]}, "only 1 group"),
        ({"custom": [{"name": "a", "pattern": "x", "validator": "crc"}]}, "unknown validator"),
        ({"columns": [{"column": "*.ssn", "kind": "socialsec"}]}, "unknown kind"),
        ({"columns": [{"column": "*.ssn"}]}, "kind"),
        ({"groups": {"support": {"mask": ["cards"]}}}, "unknown kind"),
        ({"groups": {"dba": {"mask": []}}, "unmasked_groups": ["dba"]}, "also has a groups rule"),
        ({"phone_regions": ["XX"]}, "region"),
        ({"pseudonym_key": "a" * 32, "pseudonym_key_env": "K"}, "not both"),
    ],
)
def test_config_errors_name_the_key_and_the_fix(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MaskingConfig.model_validate(section)


def test_custom_detector_from_config_masks_with_its_format() -> None:
    c = config(
        pseudonym_key="k" * 32,
        custom=[{"name": "employee_id", "pattern": "EMP-[0-9]{6}", "contains": ["EMP-"],
                 "format": "pseudonym"}],
    )  # fmt: skip
    p = c.masking_plan_for(frozenset())
    assert p is not None
    out = p.masker.mask_text(b"badge EMP-123456")
    assert out is not None and out.startswith(b"badge tok_")
    assert p.masker.mask_text(b"badge EMP-12") is None
