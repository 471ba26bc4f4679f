"""Detectors: what each one finds, what it must leave alone, and the validators behind them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.masking.detectors import (
    BUILTIN_KINDS,
    SECRET_KINDS,
    VALIDATORS,
    CustomDetector,
    Finding,
    build_detectors,
    card_brand,
    card_ok,
    iban_ok,
    luhn_ok,
    mod97_ok,
    normalize,
    phone_e164,
    ssn_ok,
)
from wardgate.masking.engine import ValueMasker
from wardgate.masking.formats import Formatter

REGIONS = ("US", "GB")


def find(kind: str, text: str | bytes) -> list[Finding]:
    raw = text.encode() if isinstance(text, str) else text
    return [f for d in build_detectors([kind], phone_regions=REGIONS) for f in d.find(raw)]


def found_texts(kind: str, text: str | bytes) -> list[str]:
    raw = text.encode() if isinstance(text, str) else text
    return [raw[f.start : f.end].decode() for f in find(kind, raw)]


ALL = ValueMasker(build_detectors(BUILTIN_KINDS, phone_regions=REGIONS), Formatter({}, None))

GHP = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_RSA = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi..Z1BjP5CE8mYJq3RZ3z\n"
    "-----END RSA PRIVATE KEY-----"
)

# ------------------------------------------------------------------ positives
# (kind, text, the exact substring that must be found)
POSITIVES: list[tuple[str, str, str]] = [
    # cards: the published test numbers of every brand, in every printed form
    ("card", "4111111111111111", "4111111111111111"),
    ("card", "4111 1111 1111 1111", "4111 1111 1111 1111"),
    ("card", "4111-1111-1111-1111", "4111-1111-1111-1111"),
    ("card", "5555555555554444", "5555555555554444"),
    ("card", "5555 5555 5555 4444", "5555 5555 5555 4444"),
    ("card", "5105105105105100", "5105105105105100"),
    ("card", "2223003122003222", "2223003122003222"),
    ("card", "378282246310005", "378282246310005"),
    ("card", "3782 822463 10005", "3782 822463 10005"),
    ("card", "3714-496353-98431", "3714-496353-98431"),
    ("card", "6011111111111117", "6011111111111117"),
    ("card", "6011 0009 9013 9424", "6011 0009 9013 9424"),
    ("card", "6555900000604105", "6555900000604105"),
    ("card", "3530111333300000", "3530111333300000"),
    ("card", "3566002020360505", "3566002020360505"),
    ("card", "30569309025904", "30569309025904"),
    ("card", "3852 000002 3237", "3852 000002 3237"),
    ("card", "36227206271667", "36227206271667"),
    ("card", "6200000000000005", "6200000000000005"),
    ("card", "4222222222222", "4222222222222"),
    ("card", "4000056655665556", "4000056655665556"),
    ("card", "charge card 4111111111111111 now", "4111111111111111"),
    ("card", "card: 4242-4242-4242-4242.", "4242-4242-4242-4242"),
    ("card", '{"cc":"4111111111111111","exp":"12/29"}', "4111111111111111"),
    ("card", "order 12 4111 1111 1111 1111 x", "4111 1111 1111 1111"),
    ("card", "4111111111111111\tnext", "4111111111111111"),
    ("card", "(4111111111111111)", "4111111111111111"),
    ("card", "carte n° 4111 1111 1111 1111 — merci", "4111 1111 1111 1111"),
    # IBANs: registry examples, electronic and printed
    ("iban", "GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("iban", "GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "DE89370400440532013000", "DE89370400440532013000"),
    ("iban", "DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
    ("iban", "FR1420041010050500013M02606", "FR1420041010050500013M02606"),
    ("iban", "NL91ABNA0417164300", "NL91ABNA0417164300"),
    ("iban", "BE68539007547034", "BE68539007547034"),
    ("iban", "NO9386011117947", "NO9386011117947"),
    ("iban", "CH9300762011623852957", "CH9300762011623852957"),
    ("iban", "ES9121000418450200051332", "ES9121000418450200051332"),
    ("iban", "IT60X0542811101000000123456", "IT60X0542811101000000123456"),
    ("iban", "MT84MALT011000012345MTLCAST001S", "MT84MALT011000012345MTLCAST001S"),
    ("iban", "BR1800360305000010009795493C1", "BR1800360305000010009795493C1"),
    ("iban", "pay to IBAN GB29NWBK60161331926819 today", "GB29NWBK60161331926819"),
    ("iban", "GB82 WEST 1234 5698 7654 32 EUR", "GB82 WEST 1234 5698 7654 32"),
    # SSNs: dashed, valid under the SSA rules
    ("ssn", "123-45-6789", "123-45-6789"),
    ("ssn", "SSN: 078-05-1121", "078-05-1121"),
    ("ssn", "ssn=665-12-3456;", "665-12-3456"),
    ("ssn", "899-99-9999", "899-99-9999"),
    # phones: E.164 and national formats, validated against libphonenumber metadata
    ("phone", "+14155552671", "+14155552671"),
    ("phone", "+1 415 555 2671", "+1 415 555 2671"),
    ("phone", "+1 (415) 555-2671", "+1 (415) 555-2671"),
    ("phone", "(415) 555-2671", "(415) 555-2671"),
    ("phone", "415-555-2671", "415-555-2671"),
    ("phone", "415.555.2671", "415.555.2671"),
    ("phone", "call 415 555 2671 now", "415 555 2671"),
    ("phone", "1-415-555-2671", "1-415-555-2671"),
    ("phone", "+44 20 7946 0958", "+44 20 7946 0958"),
    ("phone", "+442079460958", "+442079460958"),
    ("phone", "020 7946 0958", "020 7946 0958"),
    ("phone", "+49 30 901820", "+49 30 901820"),
    ("phone", "+33 1 42 68 53 00", "+33 1 42 68 53 00"),
    ("phone", "+81 3-1234-5678", "+81 3-1234-5678"),
    ("phone", "+61 2 9876 5432", "+61 2 9876 5432"),
    ("phone", "tel:+12125550199;", "+12125550199"),
    # e-mail
    ("email", "alice@example.com", "alice@example.com"),
    ("email", "Bob.Smith+tag@sub.example.co.uk", "Bob.Smith+tag@sub.example.co.uk"),
    ("email", "mailto:carol@example.org", "carol@example.org"),
    ("email", "<dave_o'neil@example.io>", "dave_o'neil@example.io"),
    ("email", "{'to': 'gina@example.com'}", "gina@example.com"),
    ("email", "write to erin@example.com.", "erin@example.com"),
    ("email", "josé@example.com", "josé@example.com"),
    ("email", "first.last@例え.jp", "first.last@例え.jp"),
    ("email", "x@xn--bcher-kva.example", "x@xn--bcher-kva.example"),
    ("email", "a@b.com,c@d.org", "a@b.com"),
    ("email", '{"email":"frank@example.net"}', "frank@example.net"),
    ("email", "https://bob@example.com/path", "bob@example.com"),
    # secrets
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key", "ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
    ("aws_access_key", "key=AKIAIOSFODNN7EXAMPLE;", "AKIAIOSFODNN7EXAMPLE"),
    (
        "aws_secret_key",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "aws_secret_key",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "aws_secret_key",
        '"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("github_token", GHP, GHP),
    ("github_token", "token " + GHP.replace("ghp_", "gho_") + " end", GHP.replace("ghp_", "gho_")),
    ("github_token", GHP.replace("ghp_", "ghs_"), GHP.replace("ghp_", "ghs_")),
    ("github_token", GHP.replace("ghp_", "ghu_"), GHP.replace("ghp_", "ghu_")),
    (
        "github_token",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN",
    ),
    (
        "slack_token",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    ("slack_token", "SLACK=xoxp-1234-5678-abcdefghij", "xoxp-1234-5678-abcdefghij"),
    ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("stripe_key", "rk_live_51H8abcdefghijklmnop", "rk_live_51H8abcdefghijklmnop"),
    ("jwt", JWT, JWT),
    ("jwt", "Authorization: Bearer " + JWT, JWT),
    ("private_key", PEM_RSA, PEM_RSA),
    (
        "private_key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----",
    ),
    (
        "private_key",
        "key: -----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY----- ok",
        "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----",
    ),
    (
        "private_key",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI (truncated",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI (truncated",
    ),
    ("password", "postgres://app:s3cret@db/x", "s3cret"),
    ("password", "postgresql://app:s3cret@db.example.com:5432/x", "s3cret"),
    ("password", "mysql://root:p%40ss:w0rd@10.0.0.5:3306/app", "p%40ss:w0rd"),
    ("password", "redis://:hunter2@cache:6379/0", "hunter2"),
    ("password", "Server=db;User Id=sa;Password=Pa55w0rd!;", "Pa55w0rd!"),
    ("password", "host=db password=hunter2 user=x", "hunter2"),
    ("password", "PGPASSWORD=hunter2", "hunter2"),
    ("password", "password: 'hunter 2'", "hunter 2"),
    ("password", 'password = "with \\"quote\\""', 'with \\"quote\\"'),
    ("password", '{"password": "hunter2", "user": "x"}', "hunter2"),
    ("password", "{'db_password': 'hunter2'}", "hunter2"),
    ("password", '{\\"password\\": \\"hunter2\\"}', "hunter2"),
    ("password", "client_secret: abc123xyz", "abc123xyz"),
    ("password", "pwd=abc;", "abc"),
    ("password", "https://x.example/cb?access_token=ya29.a0AfH6&x=1", "ya29.a0AfH6"),
    ("password", "API_KEY=0123456789abcdef", "0123456789abcdef"),
]


@pytest.mark.parametrize(("kind", "text", "expected"), POSITIVES)
def test_detector_finds_exactly_the_sensitive_part(kind: str, text: str, expected: str) -> None:
    assert expected in found_texts(kind, text)


@pytest.mark.parametrize(("kind", "text", "expected"), POSITIVES)
def test_all_detectors_together_mask_every_positive(kind: str, text: str, expected: str) -> None:
    masked = ALL.mask_text(text.encode())
    assert masked is not None
    assert expected.encode() not in masked


def test_two_cards_in_an_array_literal() -> None:
    assert found_texts("card", "{4111111111111111,5555555555554444}") == [
        "4111111111111111",
        "5555555555554444",
    ]


def test_amex_grouping_and_visa_grouping_report_their_digits() -> None:
    (f,) = find("card", "3782 822463 10005")
    assert f.normal == "378282246310005"
    (g,) = find("card", "4111-1111-1111-1111")
    assert g.normal == "4111111111111111"


# ------------------------------------------------------------------ decoys
DECOYS: list[str] = [
    # numbers that look like cards
    "4111111111111112",
    "order 4111111111111121 shipped",
    "1234567812345670",
    "9111111111111111",
    "41111111111111111111111",
    "4111 1111 1111 111",
    "4111  1111  1111  1111",
    "tracking 1Z999AA10123456784",
    "12345678-1234-1234-1234-123456789012",
    # identifiers and machine values
    "123e4567-e89b-12d3-a456-426614174000",
    "550e8400-e29b-41d4-a716-446655440000",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "2024-01-15T10:30:00.123456Z",
    "2024-01-15 10:30:00+00",
    "2024-01-15 10:30:00.411111111111+00:00",
    "1.2.3.4",
    "10.0.19045.3693",
    "192.168.100.200",
    "10.0.0.1:5432",
    "123456789",
    "4155552671",
    "00000000000000000000",
    "$1,299.99",
    "$12,345,678.90",
    "1234567890123.45",
    "EUR 4111111111.11",
    "Version 4.11.1111.1111",
    # SSN look-alikes
    "000-12-3456",
    "666-12-3456",
    "900-12-3456",
    "999-12-3456",
    "123-00-4567",
    "123-45-0000",
    "123-45-67890",
    "1123-45-6789",
    # IBAN look-alikes
    "GB82WEST12345698765433",
    "DE89370400440532013001",
    "XX82WEST12345698765432",
    "GB82WEST1234569876543",
    "gb82west12345698765432",
    "GB82WEST12345698765432X",
    # phone look-alikes
    "555-2671",
    "(123) 456-7890",
    "+1 555 0100",
    "+999 1234 5678",
    "room 415 floor 5",
    # e-mail look-alikes
    "user@localhost",
    "@mention in a chat",
    "a@b",
    "foo@bar.c",
    "alice@192.168.1.1",
    "name@.com",
    "x@-bad.com",
    # secret look-alikes
    "password_hash",
    "password: true",
    "secret: null",
    "forgot password? click here",
    "passwords must be 8 characters",
    "the AKIA prefix",
    "ghp_short",
    "sk_live_",
    "eyJhbGciOiJIUzI1NiJ9",
    "eyJub3Q.anwt.ok",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----",
    "https://example.com/path?q=1",
    "see http://localhost:8080/x",
    "tokenizer: bert",
    # ordinary text
    "Alice Johnson",
    "Springfield, IL 62704",
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé text — with dashes and émojis 🎉",
    "",
]


@pytest.mark.parametrize("text", DECOYS)
def test_decoys_survive_every_detector(text: str) -> None:
    assert ALL.mask_text(text.encode()) is None
    assert ALL.findings(text.encode()) == []


def test_url_userinfo_is_a_password_not_an_email() -> None:
    assert find("email", "postgres://app:s3cret@db.example.com/x") == []
    assert found_texts("password", "postgres://app:s3cret@db.example.com/x") == ["s3cret"]


def test_email_local_part_is_found_in_linear_time() -> None:
    # 200 KB of local-part characters with one '@': a leftmost-match regex would retry
    # from every position; expanding around the '@' does not.
    text = b"a" * 200_000 + b"@example.com"
    (f,) = find("email", text)
    assert f.end == len(text)


# ------------------------------------------------------------------ validators


@pytest.mark.parametrize(
    ("digits", "brand"),
    [
        ("4111111111111111", "visa"),
        ("4222222222222", "visa"),
        ("5555555555554444", "mastercard"),
        ("2221000000000009", "mastercard"),
        ("2720990000000007", "mastercard"),
        ("378282246310005", "amex"),
        ("340000000000009", "amex"),
        ("6011111111111117", "discover"),
        ("6445644564456445", "discover"),
        ("6555900000604105", "discover"),
        ("3530111333300000", "jcb"),
        ("3589000000000003", "jcb"),
        ("30569309025904", "diners"),
        ("36227206271667", "diners"),
        ("6200000000000005", "unionpay"),
    ],
)
def test_card_brand_ranges(digits: str, brand: str) -> None:
    assert card_brand(digits) == brand


@pytest.mark.parametrize(
    "digits",
    [
        "41111111111111",  # Visa with 14 digits
        "55555555555544",  # Mastercard with 14 digits
        "3782822463100050",  # Amex with 16 digits
        "2220000000000000",  # just below the Mastercard 2-series
        "2721000000000000",  # just above it
        "3527000000000000",  # just below JCB
        "7111111111111111",  # no issuer starts with 7
        "411111111111",  # too short for any brand
        "41111111111111111111",  # too long
        "4111x11111111111",
    ],
)
def test_card_brand_rejects_wrong_range_or_length(digits: str) -> None:
    assert card_brand(digits) is None


@pytest.mark.parametrize(
    ("digits", "ok"),
    [("79927398713", True), ("79927398710", False), ("0", True), ("", False), ("12a4", False)],
)
def test_luhn(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok
    assert luhn_ok(digits.encode()) is ok


@given(st.text(alphabet="0123456789", min_size=1, max_size=25))
def test_luhn_matches_the_textbook_algorithm(digits: str) -> None:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    assert luhn_ok(digits) is (total % 10 == 0)


@given(st.text(alphabet="0123456789", min_size=12, max_size=18))
def test_appending_the_luhn_check_digit_validates(body: str) -> None:
    check = next(str(d) for d in range(10) if luhn_ok(body + str(d)))
    assert luhn_ok(body + check)
    assert not luhn_ok(body + str((int(check) + 1) % 10))


def test_card_ok_needs_both_luhn_and_brand() -> None:
    assert card_ok("4111111111111111")
    assert not card_ok("4111111111111112")  # Luhn
    assert luhn_ok("1234567812345670") and not card_ok("1234567812345670")  # no brand


def test_iban_and_mod97() -> None:
    assert iban_ok("GB82WEST12345698765432")
    assert iban_ok(b"GB82 WEST 1234 5698 7654 32")
    assert not iban_ok("GB82WEST12345698765433")
    assert not iban_ok("GB82WEST123456987654321")  # one character too many for GB
    assert not iban_ok("GBXXWEST12345698765432")
    assert mod97_ok("GB82WEST12345698765432")
    assert not mod97_ok("GB82")
    assert not mod97_ok("GB82WEST1234569876543é")


@pytest.mark.parametrize(
    ("ssn", "ok"),
    [
        ("123-45-6789", True),
        ("123456789", True),
        ("000-12-3456", False),
        ("666-12-3456", False),
        ("900-12-3456", False),
        ("123-00-6789", False),
        ("123-45-0000", False),
        ("12-345-6789", True),  # only digits count for the validator
        ("1234-56-789", True),
        ("123-45-678", False),
    ],
)
def test_ssn_rules(ssn: str, ok: bool) -> None:
    assert ssn_ok(ssn) is ok


def test_phone_validation_uses_region_rules() -> None:
    assert phone_e164("(415) 555-2671") == "+14155552671"
    assert phone_e164("+44 20 7946 0958") == "+442079460958"
    assert phone_e164("020 7946 0958") is None  # GB not configured
    assert phone_e164("020 7946 0958", ["GB"]) == "+442079460958"
    assert phone_e164("(123) 456-7890", ["US", "GB"]) is None  # no trunk 0, bad area code
    assert phone_e164("+1 555 0100") is None
    assert phone_e164("12") is None


def test_validator_registry_names() -> None:
    assert {"luhn", "card", "mod97", "iban", "ssn", "phone"} <= set(VALIDATORS)
    assert VALIDATORS["luhn"](b"4111-1111-1111-1111")
    assert VALIDATORS["card"](b"4111 1111 1111 1111")
    assert not VALIDATORS["card"](b"4111 1111 1111 1112")
    assert VALIDATORS["iban"](b"DE89370400440532013000")
    assert VALIDATORS["ssn"](b"123-45-6789")
    assert VALIDATORS["phone"](b"+14155552671")


# ------------------------------------------------------------------ custom detectors


def test_custom_detector_with_gate_and_validator() -> None:
    det = CustomDetector(
        "member_card", r"MC-([0-9]{16})", validator="luhn", group=1, contains=["MC-"]
    )
    assert det.triggers == (b"MC-",)
    found = det.find(b"member MC-4111111111111111 and MC-4111111111111112")
    assert [(f.kind, f.normal) for f in found] == [("member_card", "4111111111111111")]


def test_custom_detector_ignore_case_and_min_digits() -> None:
    det = CustomDetector("emp", r"emp-[0-9]{6}", ignore_case=True, contains=["EMP-"], min_digits=6)
    assert det.folded_triggers == (b"emp-",)
    assert det.digit_rules and det.digit_rules[0].min_digits == 6
    assert [f.normal for f in det.find(b"EMP-123456, Emp-654321")] == ["EMP-123456", "Emp-654321"]


def test_custom_detectors_run_after_secrets_and_before_builtin_numbers() -> None:
    custom = CustomDetector("emp", r"EMP-[0-9]{6}")
    kinds = [d.kind for d in build_detectors(["card", "emp", "password", "email"], custom=[custom])]
    assert kinds == ["password", "password", "password", "emp", "card", "email"]


def test_build_detectors_covers_every_builtin_kind() -> None:
    kinds = {d.kind for d in build_detectors(BUILTIN_KINDS)}
    assert kinds == set(BUILTIN_KINDS)
    assert kinds > SECRET_KINDS


@pytest.mark.parametrize(
    ("kind", "raw", "normal"),
    [
        ("card", b"4111 1111 1111 1111", "4111111111111111"),
        ("ssn", b"123456789", "123456789"),
        ("ssn", b" 123-45-6789 ", "123456789"),
        ("iban", b"gb82 west 1234 5698 7654 32", "GB82WEST12345698765432"),
        ("email", b"Alice@Example.COM", "alice@example.com"),
        ("phone", b"(415) 555-2671", "+14155552671"),
        ("phone", b"not a phone", "not a phone"),
        ("password", b" hunter2 ", "hunter2"),
    ],
)
def test_normalize_matches_what_detectors_report(kind: str, raw: bytes, normal: str) -> None:
    assert normalize(kind, raw) == normal


def test_detectors_report_the_same_normal_form_as_normalize() -> None:
    for kind, text in [("card", "4111-1111-1111-1111"), ("email", "Bob@Example.com")]:
        (f,) = find(kind, text)
        assert f.normal == normalize(kind, text.encode())
