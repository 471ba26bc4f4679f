"""Mask formats: the exact replacement bytes, and the properties clients rely on."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.masking.detectors import card_ok
from wardgate.masking.formats import (
    DEFAULT_FORMATS,
    Formatter,
    MaskFormat,
    last4_number,
    last4_text,
    pseudonym_digits,
    pseudonym_token,
    redact_token,
)

KEY = b"test-key-0123456789abcdef"


def test_redact_is_a_fixed_token_naming_the_kind() -> None:
    assert redact_token("card") == b"[REDACTED:card]"
    assert redact_token("aws_secret_key") == b"[REDACTED:aws_secret_key]"


def test_redact_token_is_safe_in_json_arrays_and_copy_fields() -> None:
    token = redact_token("password")
    assert not set(token) & set(b'"\\,{}\t\n\r ')
    assert json.loads(b'["' + token + b'"]') == [token.decode()]


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (b"4111 1111 1111 1111", b"**** **** **** 1111"),
        (b"4111-1111-1111-1111", b"****-****-****-1111"),
        (b"4111111111111111", b"************1111"),
        (b"3782 822463 10005", b"**** ****** *0005"),
        (b"123-45-6789", b"***-**-6789"),
        (b"GB82 WEST 1234 5698 7654 32", b"**** **** **** **** **54 32"),
        (b"+1 (415) 555-2671", b"+* (***) ***-2671"),
        (b"alice@example.com", b"*****@******e.com"),
        (b"hunter2", b"*******"),  # fewer than 8 letters/digits: nothing kept
        (b"abc", b"***"),
        (b"", b""),
        ("josé.garcía@example.com".encode(), b"****.******@******e.com"),
        ("ünï-cödé-1234".encode(), b"***-****-1234"),
    ],
)
def test_last4_keeps_separators_and_the_last_four(raw: bytes, masked: bytes) -> None:
    assert last4_text(raw) == masked


@given(st.text(max_size=60))
def test_last4_is_valid_utf8_and_keeps_every_separator(text: str) -> None:
    out = last4_text(text.encode("utf-8")).decode("utf-8")  # raises if not UTF-8
    assert len(out) == len(text)
    assert [c for c in out if not c.isalnum() and c != "*"] == [
        c for c in text if not c.isalnum() and c != "*"
    ]
    alnum = sum(c.isalnum() for c in text)
    assert sum(c.isalnum() for c in out) == (4 if alnum >= 8 else 0)


def test_pseudonym_is_deterministic_and_keyed() -> None:
    a = pseudonym_token(KEY, "card", "4111111111111111")
    assert a == pseudonym_token(KEY, "card", "4111111111111111")
    assert re.fullmatch(rb"tok_[0-9a-f]{16}", a)
    assert a != pseudonym_token(KEY, "card", "5555555555554444")
    assert a != pseudonym_token(b"another-key-0123456789", "card", "4111111111111111")
    # the kind is part of the message: the same string as two kinds does not link
    assert a != pseudonym_token(KEY, "iban", "4111111111111111")


def test_email_pseudonym_keeps_an_email_shape() -> None:
    token = pseudonym_token(KEY, "email", "alice@example.com")
    assert re.fullmatch(rb"u_[0-9a-f]{16}@masked\.invalid", token)


@given(st.text(min_size=1, max_size=30), st.integers(min_value=2, max_value=19))
def test_pseudonym_digits_have_the_width_and_are_never_a_card(normal: str, width: int) -> None:
    digits = pseudonym_digits(KEY, "card", normal, width)
    assert len(digits) == width
    assert digits.isdigit() and digits[0] == "9"
    assert not card_ok(digits)
    assert digits == pseudonym_digits(KEY, "card", normal, width)


@pytest.mark.parametrize(
    ("digits", "out"),
    [("4111111111111111", "1111"), ("5555555555554444", "4444"), ("4000000000000002", "2"),
     ("1234567", "0"), ("123-45-6789", "6789")],
)  # fmt: skip
def test_last4_number(digits: str, out: str) -> None:
    assert last4_number(digits) == out


def test_formatter_uses_configured_formats_and_defaults() -> None:
    fmt = Formatter({"email": MaskFormat.PSEUDONYM}, KEY)
    assert DEFAULT_FORMATS["card"] is MaskFormat.LAST4
    assert fmt.format_of("card") is MaskFormat.LAST4
    assert fmt.format_of("ssn") is MaskFormat.REDACT
    assert fmt.text("card", b"4111 1111 1111 1111", "4111111111111111") == b"**** **** **** 1111"
    assert fmt.text("ssn", b"123-45-6789", "123456789") == b"[REDACTED:ssn]"
    assert fmt.text("email", b"A@x.com", "a@x.com") == pseudonym_token(KEY, "email", "a@x.com")
    assert fmt.redact("card") == b"[REDACTED:card]"


def test_formatter_numbers_fit_the_column_type() -> None:
    fmt = Formatter({"card": MaskFormat.PSEUDONYM, "ssn": MaskFormat.LAST4}, KEY)
    assert len(fmt.number("card", "4111111111111111", 16, 18)) == 16
    assert len(fmt.number("card", "4111111111111111", 16, 9)) == 9  # int4 column
    assert len(fmt.number("card", "4111111111111111", 16, None)) == 16
    assert fmt.number("ssn", "123456789", 9, 9) == "6789"
    assert Formatter({}, None).number("iban", "1234", 4, 9) == "0"


def test_formatter_refuses_pseudonym_without_a_key() -> None:
    with pytest.raises(ValueError, match="pseudonym_key_env"):
        Formatter({"email": MaskFormat.PSEUDONYM}, None)
