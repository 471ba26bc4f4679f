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
    masker = MySqlRowMasker(POLICY)
    native = masker.plan(COLUMNS, binary=False)
    pure = masker.plan(COLUMNS, binary=False)
    assert native is not None and pure is not None
    pure.gate = None
    return native, pure


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
