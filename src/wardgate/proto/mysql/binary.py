"""Binary-protocol values: prepared-statement result rows and COM_STMT_EXECUTE parameters.

Owns how typed values travel in the binary protocol (integers by width and signedness,
IEEE floats, length-prefixed DATE/DATETIME/TIMESTAMP and TIME, length-encoded strings
for everything else), the NULL bitmaps of binary rows (bit offset 2) and of execute
parameters (offset 0), and the COM_STMT_EXECUTE layout.

Temporal values decode to :class:`DateTimeValue` / :class:`TimeValue` rather than
``datetime`` objects because MySQL permits values Python cannot hold (``0000-00-00``,
``2024-02-00``, ``TIME`` up to ±838 hours); both convert to Python types on request.
DECIMAL, strings, BLOBs, JSON, BIT, ENUM/SET and geometry stay ``bytes``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple

from wardgate.core.errors import ProtocolViolationError

from .constants import ColumnFlag, Command, FieldType
from .messages import ColumnDefinition
from .wire import Buffer, PayloadReader, lenenc_bytes

#: Flag bit in a parameter's 2-byte type: the value is unsigned.
PARAM_UNSIGNED = 0x80

_INT_WIDTH: dict[int, int] = {
    FieldType.TINY: 1,
    FieldType.SHORT: 2,
    FieldType.YEAR: 2,
    FieldType.LONG: 4,
    FieldType.INT24: 4,
    FieldType.LONGLONG: 8,
}
_DATETIME_TYPES: frozenset[int] = frozenset(
    {FieldType.DATE, FieldType.DATETIME, FieldType.TIMESTAMP, FieldType.NEWDATE}
)
_TIME_TYPES: frozenset[int] = frozenset({FieldType.TIME})


@dataclass(frozen=True, slots=True)
class DateTimeValue:
    """A binary DATE / DATETIME / TIMESTAMP exactly as sent (zero parts allowed)."""

    year: int = 0
    month: int = 0
    day: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    microsecond: int = 0

    @classmethod
    def from_python(cls, value: date) -> DateTimeValue:
        if isinstance(value, datetime):
            return cls(
                value.year,
                value.month,
                value.day,
                value.hour,
                value.minute,
                value.second,
                value.microsecond,
            )
        return cls(value.year, value.month, value.day)

    def to_python(self) -> date | datetime | None:
        """``datetime`` (or ``date`` when there is no time part); None for zero dates."""
        if not (self.year and self.month and self.day):
            return None
        if self.hour or self.minute or self.second or self.microsecond:
            return datetime(
                self.year,
                self.month,
                self.day,
                self.hour,
                self.minute,
                self.second,
                self.microsecond,
            )
        return date(self.year, self.month, self.day)


@dataclass(frozen=True, slots=True)
class TimeValue:
    """A binary TIME: a signed duration (MySQL allows -838:59:59 … 838:59:59)."""

    negative: bool = False
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    microseconds: int = 0

    @classmethod
    def from_timedelta(cls, value: timedelta) -> TimeValue:
        negative = value < timedelta(0)
        value = -value if negative else value
        secs = value.seconds
        return cls(
            negative, value.days, secs // 3600, secs // 60 % 60, secs % 60, value.microseconds
        )

    def to_timedelta(self) -> timedelta:
        delta = timedelta(
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
            microseconds=self.microseconds,
        )
        return -delta if self.negative else delta


BinaryValue = int | float | bytes | DateTimeValue | TimeValue | None


class ValueType(NamedTuple):
    """What decodes a binary value: the MYSQL_TYPE and whether integers are unsigned."""

    type: int
    unsigned: bool = False

    @classmethod
    def of_column(cls, column: ColumnDefinition) -> ValueType:
        return cls(column.type, bool(column.flags & ColumnFlag.UNSIGNED))

    @classmethod
    def of_param(cls, raw: int) -> ValueType:
        """From a COM_STMT_EXECUTE 2-byte parameter type."""
        return cls(raw & 0xFF, bool(raw >> 8 & PARAM_UNSIGNED))

    def encode_param(self) -> bytes:
        return bytes((self.type, PARAM_UNSIGNED if self.unsigned else 0))


def decode_value(r: PayloadReader, vtype: ValueType) -> BinaryValue:
    """Read one non-NULL binary value of type ``vtype`` from ``r``."""
    t = vtype.type
    width = _INT_WIDTH.get(t)
    if width is not None:
        return r.int_le(width, signed=not vtype.unsigned, field=f"{_type_name(t)} value")
    if t == FieldType.DOUBLE:
        return float(struct.unpack("<d", r.fixed_view(8, "DOUBLE value"))[0])
    if t == FieldType.FLOAT:
        return float(struct.unpack("<f", r.fixed_view(4, "FLOAT value"))[0])
    if t in _DATETIME_TYPES:
        return _decode_datetime(r)
    if t in _TIME_TYPES:
        return _decode_time(r)
    if t == FieldType.NULL:
        return None
    return r.lenenc_bytes(f"{_type_name(t)} value")


def _type_name(t: int) -> str:
    try:
        return FieldType(t).name
    except ValueError:
        return f"type {t}"


def _decode_datetime(r: PayloadReader) -> DateTimeValue:
    n = r.u8("DATETIME length")
    if n == 0:
        return DateTimeValue()
    if n not in (4, 7, 11):
        raise ProtocolViolationError(f"binary DATETIME has length {n}; 0, 4, 7 or 11 expected")
    year, month, day = r.u16("year"), r.u8("month"), r.u8("day")
    hour = minute = second = micro = 0
    if n >= 7:
        hour, minute, second = r.u8("hour"), r.u8("minute"), r.u8("second")
    if n == 11:
        micro = r.u32("microsecond")
    return DateTimeValue(year, month, day, hour, minute, second, micro)


def _decode_time(r: PayloadReader) -> TimeValue:
    n = r.u8("TIME length")
    if n == 0:
        return TimeValue()
    if n not in (8, 12):
        raise ProtocolViolationError(f"binary TIME has length {n}; 0, 8 or 12 expected")
    negative = r.u8("sign") == 1
    days, hours, minutes, seconds = r.u32("days"), r.u8("hours"), r.u8("minutes"), r.u8("sec")
    micro = r.u32("microseconds") if n == 12 else 0
    return TimeValue(negative, days, hours, minutes, seconds, micro)


def encode_value(value: BinaryValue, vtype: ValueType) -> bytes:
    """Encode one non-NULL value for type ``vtype`` (NULLs live in the bitmap)."""
    t = vtype.type
    width = _INT_WIDTH.get(t)
    if width is not None:
        if not isinstance(value, int):
            raise TypeError(f"{_type_name(t)} needs an int, got {type(value).__name__}")
        return value.to_bytes(width, "little", signed=not vtype.unsigned)
    if t == FieldType.DOUBLE:
        if not isinstance(value, int | float):
            raise TypeError(f"DOUBLE needs a float, got {type(value).__name__}")
        return struct.pack("<d", value)
    if t == FieldType.FLOAT:
        if not isinstance(value, int | float):
            raise TypeError(f"FLOAT needs a float, got {type(value).__name__}")
        return struct.pack("<f", value)
    if t in _DATETIME_TYPES:
        if not isinstance(value, DateTimeValue):
            raise TypeError(f"{_type_name(t)} needs a DateTimeValue")
        return _encode_datetime(value)
    if t in _TIME_TYPES:
        if not isinstance(value, TimeValue):
            raise TypeError("TIME needs a TimeValue")
        return _encode_time(value)
    if t == FieldType.NULL:
        return b""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{_type_name(t)} needs bytes, got {type(value).__name__}")
    return lenenc_bytes(value)


def _encode_datetime(v: DateTimeValue) -> bytes:
    ymd = v.year.to_bytes(2, "little") + bytes((v.month, v.day))
    hms = bytes((v.hour, v.minute, v.second))
    if v.microsecond:
        return b"\x0b" + ymd + hms + v.microsecond.to_bytes(4, "little")
    if v.hour or v.minute or v.second:
        return b"\x07" + ymd + hms
    if v.year or v.month or v.day:
        return b"\x04" + ymd
    return b"\x00"


def _encode_time(v: TimeValue) -> bytes:
    if not (v.days or v.hours or v.minutes or v.seconds or v.microseconds):
        return b"\x00"
    body = (
        bytes((1 if v.negative else 0,))
        + v.days.to_bytes(4, "little")
        + bytes((v.hours, v.minutes, v.seconds))
    )
    if v.microseconds:
        return b"\x0c" + body + v.microseconds.to_bytes(4, "little")
    return b"\x08" + body


# -- binary rows ------------------------------------------------------------------------------


def _row_types(columns: Sequence[ColumnDefinition | ValueType]) -> list[ValueType]:
    return [c if isinstance(c, ValueType) else ValueType.of_column(c) for c in columns]


def parse_binary_row(
    payload: Buffer, columns: Sequence[ColumnDefinition | ValueType]
) -> list[BinaryValue]:
    """A binary-protocol row (``0x00``, NULL bitmap with offset 2, values)."""
    types = _row_types(columns)
    r = PayloadReader(payload, "binary row")
    if r.u8("header") != 0x00:
        raise ProtocolViolationError("binary row must start with 0x00")
    bitmap = r.fixed((len(types) + 9) // 8, "NULL bitmap")
    values: list[BinaryValue] = []
    for i, vtype in enumerate(types):
        bit = i + 2
        if bitmap[bit >> 3] & (1 << (bit & 7)):
            values.append(None)
        else:
            values.append(decode_value(r, vtype))
    r.expect_end()
    return values


def encode_binary_row(
    values: Sequence[BinaryValue], columns: Sequence[ColumnDefinition | ValueType]
) -> bytes:
    types = _row_types(columns)
    if len(values) != len(types):
        raise ValueError(f"{len(values)} values for {len(types)} columns")
    bitmap = bytearray((len(types) + 9) // 8)
    body: list[bytes] = []
    for i, (value, vtype) in enumerate(zip(values, types, strict=True)):
        if value is None:
            bit = i + 2
            bitmap[bit >> 3] |= 1 << (bit & 7)
        else:
            body.append(encode_value(value, vtype))
    return b"\x00" + bytes(bitmap) + b"".join(body)


# -- COM_STMT_EXECUTE -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StmtExecute:
    """COM_STMT_EXECUTE with its parameters decoded.

    Parsing needs context the packet does not carry: how many parameters the statement
    has (from its COM_STMT_PREPARE_OK), the types bound by an earlier execute when this
    one does not rebind them, and which parameters were streamed with
    COM_STMT_SEND_LONG_DATA (their values are absent here; they read as None and are
    listed in ``long_data_params``).
    """

    statement_id: int
    flags: int = 0
    iteration_count: int = 1
    types: tuple[ValueType, ...] = ()
    values: tuple[BinaryValue, ...] = ()
    new_params_bound: bool = True
    long_data_params: frozenset[int] = frozenset()

    COMMAND = Command.STMT_EXECUTE

    @staticmethod
    def peek_statement_id(payload: Buffer) -> int:
        """The statement id, readable before the parameter count is known."""
        r = PayloadReader(payload, "COM_STMT_EXECUTE")
        if r.u8("command byte") != Command.STMT_EXECUTE:
            raise ProtocolViolationError("COM_STMT_EXECUTE must start with 0x17")
        return r.u32("statement id")

    @classmethod
    def parse(
        cls,
        payload: Buffer,
        num_params: int,
        bound_types: Sequence[ValueType] | None = None,
        long_data_params: frozenset[int] = frozenset(),
    ) -> StmtExecute:
        r = PayloadReader(payload, "COM_STMT_EXECUTE")
        if r.u8("command byte") != Command.STMT_EXECUTE:
            raise ProtocolViolationError("COM_STMT_EXECUTE must start with 0x17")
        stmt_id = r.u32("statement id")
        flags = r.u8("flags")
        iterations = r.u32("iteration count")
        if num_params == 0:
            r.expect_end()
            return cls(stmt_id, flags, iterations, (), (), False, long_data_params)
        bitmap = r.fixed((num_params + 7) // 8, "NULL bitmap")
        bound = r.u8("new params bound flag")
        if bound:
            types = tuple(ValueType.of_param(r.u16("parameter type")) for _ in range(num_params))
        elif bound_types is not None and len(bound_types) == num_params:
            types = tuple(bound_types)
        else:
            types = ()
        values: list[BinaryValue] = []
        for i in range(num_params):
            if bitmap[i >> 3] & (1 << (i & 7)) or i in long_data_params:
                values.append(None)
                continue
            if not types:
                raise ProtocolViolationError(
                    f"COM_STMT_EXECUTE for statement {stmt_id} sends values without parameter "
                    "types and none were bound before"
                )
            values.append(decode_value(r, types[i]))
        r.expect_end()
        return cls(stmt_id, flags, iterations, types, tuple(values), bool(bound), long_data_params)

    def encode(self) -> bytes:
        out = [
            bytes((Command.STMT_EXECUTE,)),
            self.statement_id.to_bytes(4, "little"),
            bytes((self.flags,)),
            self.iteration_count.to_bytes(4, "little"),
        ]
        n = len(self.values)
        if n:
            bitmap = bytearray((n + 7) // 8)
            body: list[bytes] = []
            for i, value in enumerate(self.values):
                if value is None:
                    if i not in self.long_data_params:
                        bitmap[i >> 3] |= 1 << (i & 7)
                    continue
                body.append(encode_value(value, self.types[i]))
            out.append(bytes(bitmap))
            out.append(b"\x01" if self.new_params_bound else b"\x00")
            if self.new_params_bound:
                out.extend(t.encode_param() for t in self.types)
            out.extend(body)
        return b"".join(out)
