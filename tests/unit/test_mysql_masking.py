"""MySQL row masking (text protocol) with the compiled whole-row gate and without it:
the same answer for every row, byte for byte, and sensitive values never pass."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.masking.detectors import BUILTIN_KINDS, build_detectors
from wardgate.masking.engine import MaskingPolicy, ValueMasker
from wardgate.masking.formats import Formatter
from wardgate.proto.mysql import ColumnDefinition
from wardgate.proto.mysql.constants import FieldType
from wardgate.server.mysql_masking import MySqlMaskPlan, MySqlRowMasker

POLICY = MaskingPolicy(
    ValueMasker(build_detectors(BUILTIN_KINDS), Formatter({}, b"k" * 32)), kinds=BUILTIN_KINDS
)
COLUMNS = [
    ColumnDefinition("id", FieldType.LONG, schema="s", org_table="t", org_name="id"),
    ColumnDefinition("note", FieldType.VAR_STRING, schema="s", org_table="t", org_name="note"),
]


def text_row(values: list[bytes | None]) -> bytes:
    out = b""
    for v in values:
        if v is None:
            out += b"\xfb"
        else:
            assert len(v) < 0xFB
            out += bytes([len(v)]) + v
    return out


def plans() -> tuple[MySqlMaskPlan, MySqlMaskPlan]:
    # Two maskers: one masker hands the same columns the same (remembered) plan.
    native = MySqlRowMasker(POLICY).plan(COLUMNS, binary=False)
    pure = MySqlRowMasker(POLICY).plan(COLUMNS, binary=False)
    assert native is not None and pure is not None and native is not pure
    pure.gate = None
    assert native.gate is not None
    return native, pure


def test_a_result_with_the_same_columns_reuses_its_plan() -> None:
    masker = MySqlRowMasker(POLICY)
    first = masker.plan(COLUMNS, binary=False)
    assert first is not None
    assert masker.plan(list(COLUMNS), binary=False) is first  # same objects, new list
    assert masker.plan(COLUMNS, binary=True) is not first  # another protocol
    # Equal but distinct definitions (not from the tracker's cache) get a plan made anew,
    # and a different layout gets its own.
    twins = [
        ColumnDefinition(
            c.name, c.type, schema=c.schema, org_table=c.org_table, org_name=c.org_name
        )
        for c in COLUMNS
    ]
    again = masker.plan(twins, binary=False)
    assert again is not None and again is not first
    assert masker.plan(COLUMNS[:1], binary=False) is None  # an int column holds nothing
    ssn = [ColumnDefinition("x", FieldType.VAR_STRING, schema="s", org_table="t", org_name="ssn")]
    assert masker.plan(ssn, binary=False) is not None


NOTES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            b"card 4111 1111 1111 1111",
            b"jane.doe@example.com",
            b"call +1 415 555 2671",
            b"ssn 123-45-6789",
            b"AKIAIOSFODNN7EXAMPLE",
            b"nothing here",
        ]
    ),
    st.integers(1, 10**6).map(lambda i: hashlib.md5(str(i).encode()).hexdigest().encode()),
    st.binary(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(ident=st.integers(0, 10**9), note=NOTES)
def test_the_compiled_gate_changes_nothing(ident: int, note: bytes | None) -> None:
    native, pure = plans()
    if native.gate is None:
        pytest.skip("the compiled module is not built")
    masker = MySqlRowMasker(POLICY)
    row = text_row([str(ident).encode(), note])
    assert masker.mask_row(memoryview(row), native) == masker.mask_row(row, pure)


def test_sensitive_values_are_masked_and_clean_rows_pass() -> None:
    native, _ = plans()
    masker = MySqlRowMasker(POLICY)
    out = masker.mask_row(text_row([b"1", b"mail jane.doe@example.com"]), native)
    assert out is not None and b"jane.doe@example.com" not in out
    clean = text_row([b"2", hashlib.md5(b"2").hexdigest().encode()])
    assert masker.mask_row(clean, native) is None
