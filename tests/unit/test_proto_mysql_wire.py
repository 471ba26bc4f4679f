"""Length-encoded integers and strings: boundaries, truncation, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.core.errors import ProtocolViolationError
from wardgate.proto.mysql.wire import (
    LENENC_MAX,
    PayloadReader,
    lenenc_bytes,
    lenenc_bytes_or_null,
    lenenc_int,
    null_terminated,
)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (250, b"\xfa"),
        (251, b"\xfc\xfb\x00"),
        (0xFFFF, b"\xfc\xff\xff"),
        (0x10000, b"\xfd\x00\x00\x01"),
        (0xFFFFFF, b"\xfd\xff\xff\xff"),
        (0x1000000, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00"),
        (LENENC_MAX, b"\xfe" + b"\xff" * 8),
    ],
)
def test_lenenc_int_boundaries(value: int, encoded: bytes) -> None:
    assert lenenc_int(value) == encoded
    r = PayloadReader(encoded)
    assert r.lenenc_int() == value
    assert r.at_end


def test_lenenc_int_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        lenenc_int(-1)
    with pytest.raises(ValueError, match="out of range"):
        lenenc_int(LENENC_MAX + 1)


def test_lenenc_null_and_invalid_prefix() -> None:
    assert PayloadReader(b"\xfb").lenenc_int_or_null() is None
    assert PayloadReader(b"\xfb").lenenc_bytes_or_null() is None
    with pytest.raises(ProtocolViolationError, match="NULL"):
        PayloadReader(b"\xfb").lenenc_int()
    with pytest.raises(ProtocolViolationError, match="0xFF"):
        PayloadReader(b"\xff").lenenc_int()


def test_truncation_names_the_message_and_field() -> None:
    r = PayloadReader(b"\xfc\x01", "column definition")
    with pytest.raises(ProtocolViolationError, match=r"truncated column definition: reading"):
        r.lenenc_int("catalog")
    with pytest.raises(ProtocolViolationError, match="only 2 left"):
        PayloadReader(b"\x05ab").lenenc_bytes()


def test_null_terminated_strings() -> None:
    r = PayloadReader(b"root\x00test\x00tail")
    assert r.null_terminated() == b"root"
    assert r.null_terminated() == b"test"
    with pytest.raises(ProtocolViolationError, match="no NUL terminator"):
        r.null_terminated()
    assert r.null_terminated_or_rest() == b"tail"
    assert r.at_end
    assert null_terminated(b"abc") == b"abc\x00"
    with pytest.raises(ValueError, match="NUL"):
        null_terminated(b"a\x00b", "user name")


def test_fixed_ints_are_little_endian() -> None:
    r = PayloadReader(bytes(range(1, 20)))
    assert r.u8() == 1
    assert r.u16() == 0x0302
    assert r.u24() == 0x060504
    assert r.u32() == 0x0A090807
    assert r.u64() == 0x1211100F0E0D0C0B
    assert r.remaining == 1
    with pytest.raises(ProtocolViolationError):
        r.u16()


def test_expect_end_reports_trailing_bytes() -> None:
    r = PayloadReader(b"\x01\x02")
    r.u8()
    with pytest.raises(ProtocolViolationError, match="1 unexpected trailing bytes"):
        r.expect_end()


def test_text_row_null_encoding() -> None:
    assert lenenc_bytes_or_null(None) == b"\xfb"
    assert lenenc_bytes_or_null(b"") == b"\x00"


@given(st.integers(min_value=0, max_value=LENENC_MAX))
def test_lenenc_int_round_trip(value: int) -> None:
    r = PayloadReader(lenenc_int(value) + b"rest")
    assert r.lenenc_int() == value
    assert r.rest() == b"rest"


@given(st.binary(max_size=70000))
def test_lenenc_bytes_round_trip(value: bytes) -> None:
    r = PayloadReader(lenenc_bytes(value))
    assert r.lenenc_bytes() == value
    assert r.at_end


@given(st.binary(max_size=64))
def test_reader_never_raises_anything_but_protocol_violation(data: bytes) -> None:
    r = PayloadReader(data)
    try:
        while True:
            r.lenenc_bytes_or_null()
    except ProtocolViolationError:
        pass
