"""PostgreSQL wire rewriting: DataRow messages and COPY TO STDOUT rows, byte for byte."""

from __future__ import annotations

import string
import struct
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wardgate.core.errors import ProtocolViolationError
from wardgate.masking.detectors import BUILTIN_KINDS, build_detectors
from wardgate.masking.engine import ColumnInfo, MaskingPolicy, ResultMaskPlan, ValueMasker
from wardgate.masking.formats import Formatter, MaskFormat
from wardgate.masking.pg_rows import mask_copy_line, mask_datarow

KEY = b"test-key-0123456789abcdef"


def policy(rules: Sequence[tuple[str, str]] = (), **formats: MaskFormat) -> MaskingPolicy:
    masker = ValueMasker(build_detectors(BUILTIN_KINDS), Formatter(formats, KEY))
    return MaskingPolicy(masker, rules, kinds=BUILTIN_KINDS)


POLICY = policy([("*.ssn", "ssn"), ("*.born", "ssn")])


def plan_or_none(*columns: tuple[str, int] | tuple[str, int, str]) -> ResultMaskPlan | None:
    infos = [
        ColumnInfo(c[0], "public.people", c[1], "binary" if c[2:] == ("binary",) else "text")
        for c in columns
    ]
    return POLICY.plan_for_result(infos)


def plan(*columns: tuple[str, int] | tuple[str, int, str]) -> ResultMaskPlan:
    p = plan_or_none(*columns)
    assert p is not None
    return p


def datarow(values: Sequence[bytes | None]) -> bytes:
    body = struct.pack(">h", len(values)) + b"".join(
        struct.pack(">i", -1) if v is None else struct.pack(">i", len(v)) + v for v in values
    )
    return b"D" + struct.pack(">i", len(body) + 4) + body


def parse_datarow(msg: bytes) -> list[bytes | None]:
    """An independent, strict parser: every length must add up."""
    assert msg[:1] == b"D"
    (length,) = struct.unpack_from(">i", msg, 1)
    assert length == len(msg) - 1
    (n,) = struct.unpack_from(">h", msg, 5)
    off = 7
    out: list[bytes | None] = []
    for _ in range(n):
        (ln,) = struct.unpack_from(">i", msg, off)
        off += 4
        if ln == -1:
            out.append(None)
            continue
        assert ln >= 0 and off + ln <= len(msg)
        out.append(msg[off : off + ln])
        off += ln
    assert off == len(msg)
    return out


TEXT, INT4, INT8, TSTZ, JSONB, UUID = 25, 23, 20, 1184, 3802, 2950

# ---------------------------------------------------------------- DataRow


def test_clean_row_returns_none_so_the_original_object_is_forwarded() -> None:
    p = plan(("id", INT4), ("name", TEXT), ("email", TEXT))
    assert mask_datarow(datarow([b"42", b"Alice Johnson", b"no address"]), p) is None


def test_sensitive_values_are_replaced_and_every_length_rewritten() -> None:
    p = plan(("id", INT4), ("name", TEXT), ("email", TEXT), ("card", TEXT), ("note", TEXT))
    msg = datarow([b"42", b"Alice", b"alice@example.com", b"4111 1111 1111 1111", None])
    out = mask_datarow(msg, p)
    assert out is not None
    assert parse_datarow(out) == [
        b"42",
        b"Alice",
        b"[REDACTED:email]",
        b"**** **** **** 1111",
        None,
    ]


def test_memoryview_input_is_accepted() -> None:
    p = plan(("email", TEXT))
    msg = datarow([b"alice@example.com"])
    assert mask_datarow(memoryview(msg), p) == mask_datarow(msg, p)


def test_column_rule_masks_whole_values_and_nulls_unrepresentable_types() -> None:
    p = plan(("ssn", TEXT), ("born", 1082), ("name", TEXT))
    out = mask_datarow(datarow([b"123456789", b"1980-01-01", b"Bob"]), p)
    assert out is not None
    assert parse_datarow(out) == [b"[REDACTED:ssn]", None, b"Bob"]
    # NULL stays NULL; an empty string has nothing to hide
    assert mask_datarow(datarow([None, None, b"Bob"]), p) is None
    assert mask_datarow(datarow([b"", None, b"Bob"]), p) is None


def test_binary_int8_card_in_a_row() -> None:
    p = plan(("id", INT8, "binary"), ("card", INT8, "binary"))
    out = mask_datarow(datarow([struct.pack(">q", 7), struct.pack(">q", 4111111111111111)]), p)
    assert out is not None
    assert parse_datarow(out) == [struct.pack(">q", 7), struct.pack(">q", 1111)]


def test_more_columns_than_described_are_scanned_as_text() -> None:
    p = ResultMaskPlan([0], [None], POLICY.masker, default_action=1)  # 0: skip, 1: text
    out = mask_datarow(datarow([b"1", b"alice@example.com"]), p)
    assert out is not None and parse_datarow(out) == [b"1", b"[REDACTED:email]"]


@pytest.mark.parametrize(
    "msg",
    [
        b"T\x00\x00\x00\x06\x00\x00",  # not a DataRow
        b"D\x00\x00",  # too short
    ],
)
def test_not_a_datarow_is_a_protocol_violation(msg: bytes) -> None:
    with pytest.raises(ProtocolViolationError, match="DataRow"):
        mask_datarow(msg, plan(("email", TEXT)))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m[:-2],  # truncated value
        lambda m: m + b"xx",  # trailing bytes
        lambda m: m[:1] + struct.pack(">i", 99) + m[5:],  # wrong message length
        lambda m: m[:5] + struct.pack(">h", 3) + m[7:],  # more columns than present
    ],
)
def test_inconsistent_lengths_are_refused_not_forwarded(mutate: Any) -> None:
    msg = datarow([b"alice@example.com", b"x"])
    with pytest.raises(ProtocolViolationError, match="lengths are inconsistent"):
        mask_datarow(mutate(msg), plan(("email", TEXT), ("x", TEXT)))


# ---------------------------------------------------------------- properties

WORDS = st.text(alphabet=string.ascii_letters + " ", max_size=24)
# Integers up to 13 digits: a 16-digit Luhn-valid number *is* indistinguishable from a card.
INTS = st.integers(min_value=-(10**12), max_value=10**12).map(str)
UUIDS = st.uuids().map(str)
TIMESTAMPS = st.datetimes().map(lambda d: d.isoformat(sep=" ") + "+00")
PRICES = st.decimals(min_value=0, max_value=10**7, places=2).map(lambda d: f"${d:,.2f}")
VERSIONS = st.lists(st.integers(0, 999), min_size=2, max_size=4).map(
    lambda xs: ".".join(map(str, xs))
)
CLEAN = st.one_of(WORDS, INTS, UUIDS, TIMESTAMPS, PRICES, VERSIONS).map(str.encode)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), CLEAN), min_size=1, max_size=8))
def test_rows_with_nothing_sensitive_are_never_changed(values: list[bytes | None]) -> None:
    # every column typed text, so every value is scanned by every detector
    p = plan(*[(f"c{i}", TEXT) for i in range(len(values))])
    assert mask_datarow(datarow(values), p) is None


@settings(max_examples=100)
@given(st.lists(st.one_of(st.none(), CLEAN), min_size=1, max_size=8))
def test_clean_copy_lines_are_never_changed(values: list[bytes | None]) -> None:
    p = POLICY.plan_for_copy()
    line = b"\t".join(b"\\N" if v is None else v for v in values) + b"\n"
    assert mask_copy_line(line, p, "text") is None


SECRETS = [
    b"4111111111111111", b"5555 5555 5555 4444", b"alice@example.com", b"123-45-6789",
    b"GB82WEST12345698765432", b"+14155552671", b"AKIAIOSFODNN7EXAMPLE",
    b"postgres://app:s3cret@db/x", "josé@example.com".encode(),
]  # fmt: skip

COLUMN = st.one_of(
    st.tuples(st.just(TEXT), st.one_of(st.none(), CLEAN, st.sampled_from(SECRETS))),
    st.tuples(
        st.just(TEXT),
        st.tuples(CLEAN, st.sampled_from(SECRETS), CLEAN).map(lambda t: b" ".join(t)),
    ),
    st.tuples(st.just(INT4), st.integers(-(2**31), 2**31 - 1).map(lambda i: str(i).encode())),
    st.tuples(st.just(TSTZ), TIMESTAMPS.map(str.encode)),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(COLUMN, min_size=1, max_size=8))
def test_masked_rows_reparse_with_consistent_lengths(
    columns: list[tuple[int, bytes | None]],
) -> None:
    p = plan_or_none(*[(f"c{i}", oid) for i, (oid, _) in enumerate(columns)])
    values = [v for _, v in columns]
    msg = datarow(values)
    out = None if p is None else mask_datarow(msg, p)
    if out is None:
        assert not any(v is not None and any(s in v for s in SECRETS) for v in values)
        return
    masked = parse_datarow(out)
    assert len(masked) == len(values)
    for (oid, before), after in zip(columns, masked, strict=True):
        if before is None or oid != TEXT:
            assert after == before  # NULLs and non-text columns untouched
            continue
        assert after is not None
        after.decode("utf-8")  # still valid UTF-8
        for secret in SECRETS:
            assert secret not in after


@settings(max_examples=100)
@given(st.lists(st.one_of(st.none(), CLEAN, st.sampled_from(SECRETS)), min_size=1, max_size=6))
def test_masking_is_idempotent(values: list[bytes | None]) -> None:
    p = plan(*[(f"c{i}", TEXT) for i in range(len(values))])
    once = mask_datarow(datarow(values), p)
    if once is not None:
        assert mask_datarow(once, p) is None


# ---------------------------------------------------------------- COPY text


def copy_plan(*columns: tuple[str, int]) -> ResultMaskPlan:
    return POLICY.plan_for_copy([ColumnInfo(n, "public.people", t) for n, t in columns])


def test_copy_text_masks_fields_and_keeps_null_markers() -> None:
    p = POLICY.plan_for_copy()
    out = mask_copy_line(b"1\talice@example.com\t\\N\n", p, "text")
    assert out == b"1\t[REDACTED:email]\t\\N\n"
    assert mask_copy_line(b"1\tAlice\t\\N\n", p, "text") is None
    assert mask_copy_line(b"\\.\n", p, "text") is None


def test_copy_text_unescapes_then_reescapes() -> None:
    p = POLICY.plan_for_copy()
    line = b"x\\tnote a@b.com\\nnext\tC:\\\\dir a@b.com\n"
    assert mask_copy_line(line, p, "text") == (
        b"x\\tnote [REDACTED:email]\\nnext\tC:\\\\dir [REDACTED:email]\n"
    )


def test_copy_text_octal_and_hex_escapes_are_decoded_before_scanning() -> None:
    p = POLICY.plan_for_copy()
    assert mask_copy_line(b"alice\\100example.com\n", p, "text") == b"[REDACTED:email]\n"
    assert mask_copy_line(b"alice\\x40example.com\n", p, "text") == b"[REDACTED:email]\n"


def test_copy_text_custom_delimiter_with_escaped_delimiter() -> None:
    p = POLICY.plan_for_copy()
    out = mask_copy_line(b"a\\|b a@b.com|c\n", p, "text", delimiter=b"|")
    assert out == b"a\\|b [REDACTED:email]|c\n"


def test_copy_text_column_rule_null_and_custom_null_string() -> None:
    p = copy_plan(("id", INT4), ("born", 1082), ("ssn", TEXT))
    assert mask_copy_line(b"1\t1980-01-01\t123456789\n", p, "text") == (b"1\t\\N\t[REDACTED:ssn]\n")
    assert mask_copy_line(b"1\t1980-01-01\tNULL\r\n", p, "text", null=b"NULL") == (
        b"1\tNULL\tNULL\r\n"
    )


# ---------------------------------------------------------------- COPY CSV


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'1,alice@example.com,"x, y",,""\n', b'1,[REDACTED:email],"x, y",,""\n'),
        (b'"say ""hi"" a@b.com",2\n', b'"say ""hi"" [REDACTED:email]",2\n'),
        (b'"line1\nline2 a@b.com",3\n', b'"line1\nline2 [REDACTED:email]",3\n'),
        (b"4111 1111 1111 1111,x\n", b"**** **** **** 1111,x\n"),
        (b'"4111111111111111"\n', b'"************1111"\n'),
        (b"a,b,c\n", None),
        (b"a@b.com", b"[REDACTED:email]"),
        (b"x,a@b.com,\n", b"x,[REDACTED:email],\n"),
    ],
)
def test_copy_csv(line: bytes, expected: bytes | None) -> None:
    assert mask_copy_line(line, POLICY.plan_for_copy(), "csv") == expected


def test_copy_csv_null_versus_empty_string_and_rule_null() -> None:
    p = copy_plan(("born", 1082), ("ssn", TEXT), ("x", TEXT))
    assert mask_copy_line(b'1980-01-01,123456789,""\n', p, "csv") == b',[REDACTED:ssn],""\n'
    assert mask_copy_line(b",,\n", p, "csv") is None  # NULLs everywhere: nothing to mask


def test_copy_csv_custom_escape_character() -> None:
    p = POLICY.plan_for_copy()
    out = mask_copy_line(b'"a\\"b a@b.com",\\\n', p, "csv", escape=b"\\")
    assert out == b'"a\\"b [REDACTED:email]",\\\n'


def test_copy_csv_requotes_values_that_need_it() -> None:
    # a pseudonymised e-mail never needs quotes; a last4 of a quoted value stays quoted
    p = policy(email=MaskFormat.PSEUDONYM).plan_for_copy()
    out = mask_copy_line(b'"a@b.com"\n', p, "csv")
    assert out is not None and out.startswith(b'"u_') and out.endswith(b'@masked.invalid"\n')


@pytest.mark.parametrize("line", [b'"unterminated a@b.com\n', b'"a@b.com"x,1\n'])
def test_copy_csv_malformed_rows_are_refused(line: bytes) -> None:
    with pytest.raises(ProtocolViolationError, match="COPY CSV"):
        mask_copy_line(line, POLICY.plan_for_copy(), "csv")


def test_copy_binary_is_not_supported() -> None:
    with pytest.raises(ValueError, match="cannot be masked"):
        mask_copy_line(b"PGCOPY\n", POLICY.plan_for_copy(), "binary")  # type: ignore[arg-type]


# ---------------------------------------------------------------- fuzz


@settings(max_examples=300)
@given(st.binary(max_size=120), st.lists(st.sampled_from([TEXT, INT8, JSONB]), max_size=4))
def test_arbitrary_datarow_bytes_either_mask_or_raise_protocol_violation(
    body: bytes, oids: list[int]
) -> None:
    p = plan_or_none(*[(f"c{i}", oid, "binary") for i, oid in enumerate(oids)])
    if p is None:
        return
    msg = b"D" + struct.pack(">i", len(body) + 4) + body
    try:
        out = mask_datarow(msg, p)
    except ProtocolViolationError:
        return
    if out is not None:
        parse_datarow(out)


@settings(max_examples=300)
@given(
    st.lists(st.one_of(CLEAN, st.sampled_from(SECRETS), st.binary(max_size=12)), max_size=5),
    st.sampled_from(["text", "csv"]),
)
def test_arbitrary_copy_lines_either_mask_or_raise_protocol_violation(
    fields: list[bytes], fmt: str
) -> None:
    line = (b"\t" if fmt == "text" else b",").join(fields) + b"\n"
    try:
        out = mask_copy_line(line, POLICY.plan_for_copy(), fmt)  # type: ignore[arg-type]
    except ProtocolViolationError:
        return
    if out is not None:
        assert out.endswith(b"\n")
