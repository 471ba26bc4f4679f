"""Binary-protocol rows and COM_STMT_EXECUTE parameters, against a captured MariaDB row."""

from __future__ import annotations

import contextlib
import math
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.core.errors import ProtocolViolationError
from wardgate.proto.mysql.binary import (
    BinaryValue,
    DateTimeValue,
    StmtExecute,
    TimeValue,
    ValueType,
    encode_binary_row,
    parse_binary_row,
)
from wardgate.proto.mysql.constants import ColumnFlag, CursorType, FieldType
from wardgate.proto.mysql.messages import ColumnDefinition

U = ColumnFlag.UNSIGNED

# SELECT * FROM a table of 20 columns (TINYINT … DATETIME), executed as a prepared
# statement on MariaDB 10.11: the column types/flags it reported and the row it sent.
COLUMNS = [
    ColumnDefinition(name=n, type=t, flags=f)
    for n, t, f in [
        ("a", 1, 0), ("b", 2, 32), ("c", 9, 0), ("d", 3, 0), ("e", 8, 32), ("f", 4, 0),
        ("g", 5, 0), ("h", 246, 0), ("i", 10, 128), ("j", 12, 128), ("k", 7, 160),
        ("l", 11, 128), ("m", 13, 96), ("n", 253, 0), ("o", 252, 144), ("p", 16, 32),
        ("q", 254, 256), ("r", 3, 0), ("s", 10, 128), ("t", 12, 128),
    ]
]
ROW = bytes.fromhex(
    "00000008fbffff000080ffffffff7fffffffffffffffff0000c03f00000000000002c00831323334352e36"
    "3704e807021d0be807021d0d0e0f40e2010004e40701010c0122000000163b3a583e0f006b080668c3a96c"
    "6c6f0200ff01a501790004e8070102"
)
VALUES: list[BinaryValue] = [
    -5,
    65535,
    -8388608,
    2147483647,
    18446744073709551615,
    1.5,
    -2.25,
    b"12345.67",
    DateTimeValue(2024, 2, 29),
    DateTimeValue(2024, 2, 29, 13, 14, 15, 123456),
    DateTimeValue(2020, 1, 1),
    TimeValue(True, 34, 22, 59, 58, 999000),
    2155,
    "héllo".encode(),
    b"\x00\xff",
    b"\xa5",
    b"y",
    None,
    DateTimeValue(),
    DateTimeValue(2024, 1, 2),
]


def test_captured_row_decodes_to_the_inserted_values() -> None:
    assert parse_binary_row(ROW, COLUMNS) == VALUES


def test_captured_row_re_encodes_byte_for_byte() -> None:
    assert encode_binary_row(VALUES, COLUMNS) == ROW


def test_temporal_values_convert_to_python() -> None:
    assert DateTimeValue(2024, 2, 29).to_python() == date(2024, 2, 29)
    assert DateTimeValue(2024, 2, 29, 13, 14, 15, 123456).to_python() == datetime(
        2024, 2, 29, 13, 14, 15, 123456
    )
    assert DateTimeValue().to_python() is None  # 0000-00-00 has no Python equivalent
    assert DateTimeValue(2024, 2, 0).to_python() is None
    t = TimeValue(True, 34, 22, 59, 58, 999000)
    assert t.to_timedelta() == -timedelta(hours=838, minutes=59, seconds=58, milliseconds=999)
    assert TimeValue.from_timedelta(t.to_timedelta()) == t
    assert DateTimeValue.from_python(datetime(2020, 1, 1, 1, 2, 3)) == DateTimeValue(
        2020, 1, 1, 1, 2, 3
    )
    assert DateTimeValue.from_python(date(2020, 1, 1)) == DateTimeValue(2020, 1, 1)


def test_malformed_rows_are_protocol_violations() -> None:
    with pytest.raises(ProtocolViolationError, match="0x00"):
        parse_binary_row(b"\x01" + ROW[1:], COLUMNS)
    with pytest.raises(ProtocolViolationError):
        parse_binary_row(ROW[:-1], COLUMNS)
    with pytest.raises(ProtocolViolationError, match="DATETIME has length 5"):
        parse_binary_row(b"\x00\x00\x05" + bytes(5), [ValueType(FieldType.DATE)])
    with pytest.raises(ProtocolViolationError, match="TIME has length 3"):
        parse_binary_row(b"\x00\x00\x03" + bytes(3), [ValueType(FieldType.TIME)])


def test_encoding_checks_python_types() -> None:
    with pytest.raises(TypeError, match="LONG needs an int"):
        encode_binary_row([b"1"], [ValueType(FieldType.LONG)])
    with pytest.raises(ValueError, match="1 values for 2 columns"):
        encode_binary_row([1], [ValueType(FieldType.LONG)] * 2)


def test_execute_vector_with_new_params_bound() -> None:
    # what a client sends for SELECT ? + 1, CAST(? AS CHAR) with (41, 'hello', NULL)
    raw = (
        b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00"
        b"\x04"  # NULL bitmap: third param
        b"\x01"  # new params bound
        b"\x08\x00\xfd\x00\x06\x00"  # LONGLONG, VAR_STRING, NULL
        b"\x29\x00\x00\x00\x00\x00\x00\x00"
        b"\x05hello"
    )
    execute = StmtExecute.parse(raw, num_params=3)
    assert execute.statement_id == 1
    assert execute.types == (
        ValueType(FieldType.LONGLONG), ValueType(FieldType.VAR_STRING), ValueType(FieldType.NULL)
    )
    assert execute.values == (41, b"hello", None)
    assert execute.encode() == raw
    assert StmtExecute.peek_statement_id(raw) == 1


def test_execute_reuses_earlier_types_and_skips_long_data() -> None:
    types = (ValueType(FieldType.LONG, unsigned=True), ValueType(FieldType.BLOB))
    first = StmtExecute(9, CursorType.READ_ONLY, 1, types, (7, b"x"))
    again = StmtExecute(9, 0, 1, types, (4294967295, None), new_params_bound=False,
                        long_data_params=frozenset({1}))
    raw = again.encode()
    assert raw[10:12] == b"\x00\x00"  # no NULL bit for the long-data param, types not rebound
    parsed = StmtExecute.parse(raw, 2, bound_types=first.types, long_data_params=frozenset({1}))
    assert parsed.values == (4294967295, None)
    assert parsed.types == types
    with pytest.raises(ProtocolViolationError, match="without parameter types"):
        StmtExecute.parse(raw, 2)


def test_execute_without_params() -> None:
    raw = StmtExecute(5).encode()
    assert raw == b"\x17\x05\x00\x00\x00\x00\x01\x00\x00\x00"
    assert StmtExecute.parse(raw, 0).values == ()
    with pytest.raises(ProtocolViolationError):
        StmtExecute.parse(raw + b"\x00", 0)


# -- properties -------------------------------------------------------------------------------

int_types = {
    FieldType.TINY: 8, FieldType.SHORT: 16, FieldType.YEAR: 16, FieldType.INT24: 32,
    FieldType.LONG: 32, FieldType.LONGLONG: 64,
}


@st.composite
def typed_value(draw: st.DrawFn) -> tuple[ValueType, BinaryValue]:
    kind = draw(st.sampled_from(["int", "float", "double", "datetime", "time", "bytes", "null"]))
    if kind == "int":
        t = draw(st.sampled_from(list(int_types)))
        unsigned = draw(st.booleans())
        bits = int_types[t]
        lo, hi = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return ValueType(t, unsigned), draw(st.integers(lo, hi))
    if kind == "float":
        return ValueType(FieldType.FLOAT), draw(st.floats(width=32, allow_nan=False))
    if kind == "double":
        return ValueType(FieldType.DOUBLE), draw(st.floats(allow_nan=False))
    if kind == "datetime":
        t = draw(st.sampled_from([FieldType.DATE, FieldType.DATETIME, FieldType.TIMESTAMP]))
        dt = DateTimeValue(
            draw(st.integers(0, 9999)), draw(st.integers(0, 12)), draw(st.integers(0, 31)),
            draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59)),
            draw(st.integers(0, 999999)),
        )
        return ValueType(t), dt
    if kind == "time":
        v = TimeValue(
            draw(st.booleans()), draw(st.integers(0, 34)), draw(st.integers(0, 23)),
            draw(st.integers(0, 59)), draw(st.integers(0, 59)), draw(st.integers(0, 999999)),
        )
        if v == TimeValue(negative=True):
            v = TimeValue()
        return ValueType(FieldType.TIME), v
    if kind == "null":
        return ValueType(draw(st.sampled_from(list(FieldType)))), None
    t = draw(st.sampled_from([FieldType.VAR_STRING, FieldType.BLOB, FieldType.NEWDECIMAL,
                              FieldType.JSON, FieldType.BIT, FieldType.GEOMETRY]))
    return ValueType(t), draw(st.binary(max_size=300))


def _same(a: BinaryValue, b: BinaryValue) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@given(st.lists(typed_value(), max_size=30))
def test_binary_rows_round_trip(cells: list[tuple[ValueType, BinaryValue]]) -> None:
    types = [t for t, _ in cells]
    values = [v for _, v in cells]
    decoded = parse_binary_row(encode_binary_row(values, types), types)
    assert all(_same(a, b) for a, b in zip(decoded, values, strict=True))


@given(st.lists(typed_value(), min_size=1, max_size=20), st.integers(0, 2**32 - 1))
def test_execute_round_trip(cells: list[tuple[ValueType, BinaryValue]], stmt_id: int) -> None:
    execute = StmtExecute(
        stmt_id, 0, 1, tuple(t for t, _ in cells), tuple(v for _, v in cells)
    )
    parsed = StmtExecute.parse(execute.encode(), len(cells))
    assert parsed.types == execute.types
    assert all(_same(a, b) for a, b in zip(parsed.values, execute.values, strict=True))


@given(st.binary(max_size=80), st.lists(st.sampled_from(list(FieldType)), max_size=8))
def test_binary_row_parser_raises_only_protocol_violations(
    data: bytes, types: list[FieldType]
) -> None:
    with contextlib.suppress(ProtocolViolationError):
        parse_binary_row(data, [ValueType(t) for t in types])
