"""Masking on the MySQL wire: column definitions → plan, text and binary rows → masked rows.

The plan for a result is built once per column layout (``MaskingPolicy`` caches it) and
says which columns can hold sensitive data at all; a result with none gets no plan and its
rows are forwarded without being looked at.

Every column is planned as *text*: in the text protocol every value is a length-encoded
string, and in the binary protocol every type the engine can scan (strings, BLOBs, JSON,
DECIMAL, ENUM/SET) is a length-encoded string too. The exception is binary integers
(fixed width, little-endian), which the engine's binary ``int8`` path would read
big-endian: they are converted to their decimal text, masked as a number of that column
(``last4`` of card ``4111111111111111`` in a BIGINT is the integer ``1111``) and written
back at the column's width and signedness, so a masked value is always valid for its type.
A masked value that no longer fits becomes NULL (reveals nothing, valid for every type).

A row with nothing to mask is never re-encoded: the caller forwards the original bytes.
Any row that does not parse raises :class:`~wardgate.core.errors.ProtocolViolationError`;
the relay then ends the session rather than forward a row it could not check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from wardgate.core.errors import ProtocolViolationError
from wardgate.masking.engine import SKIP, TEXT, ColumnInfo, MaskingPolicy, ResultMaskPlan, SqlNull
from wardgate.masking.native import native_gate
from wardgate.proto.mysql import ColumnDefinition
from wardgate.proto.mysql.constants import ColumnFlag, FieldType

__all__ = ["MySqlMaskPlan", "MySqlRowMasker", "mysql_type_name"]

#: Payloads at or above this size travel as several physical packets.
_MAX_PHYSICAL: Final = 0xFFFFFF
_UNSIGNED: Final = int(ColumnFlag.UNSIGNED)  # int & IntFlag would build a flag object
_NULL: Final = 0xFB

_TYPE_NAMES: dict[int, str] = {
    FieldType.DECIMAL: "decimal",
    FieldType.TINY: "tiny",
    FieldType.SHORT: "short",
    FieldType.LONG: "long",
    FieldType.FLOAT: "float",
    FieldType.DOUBLE: "double",
    FieldType.NULL: "null",
    FieldType.TIMESTAMP: "timestamp",
    FieldType.LONGLONG: "longlong",
    FieldType.INT24: "int24",
    FieldType.DATE: "date",
    FieldType.TIME: "time",
    FieldType.DATETIME: "datetime",
    FieldType.YEAR: "year",
    FieldType.NEWDATE: "date",
    FieldType.VARCHAR: "varchar",
    FieldType.BIT: "bit",
    FieldType.TIMESTAMP2: "timestamp",
    FieldType.DATETIME2: "datetime",
    FieldType.TIME2: "time",
    FieldType.VECTOR: "binary",  # packed floats: cannot hold text
    FieldType.JSON: "json",
    FieldType.NEWDECIMAL: "newdecimal",
    FieldType.ENUM: "enum",
    FieldType.SET: "set",
    FieldType.TINY_BLOB: "tinyblob",
    FieldType.MEDIUM_BLOB: "mediumblob",
    FieldType.LONG_BLOB: "longblob",
    FieldType.BLOB: "blob",
    FieldType.VAR_STRING: "var_string",
    FieldType.STRING: "string",
    FieldType.GEOMETRY: "geometry",
}

# Binary-protocol value layouts.
_INT_WIDTH: dict[int, int] = {
    FieldType.TINY: 1,
    FieldType.SHORT: 2,
    FieldType.YEAR: 2,
    FieldType.LONG: 4,
    FieldType.INT24: 4,
    FieldType.LONGLONG: 8,
}
_FIXED_WIDTH: dict[int, int] = {**_INT_WIDTH, FieldType.FLOAT: 4, FieldType.DOUBLE: 8}
_LENGTH_PREFIXED: frozenset[int] = frozenset(
    {FieldType.DATE, FieldType.DATETIME, FieldType.TIMESTAMP, FieldType.NEWDATE, FieldType.TIME}
)


def mysql_type_name(field_type: int) -> str:
    """The engine's name for a MYSQL_TYPE (unknown types are scanned as text)."""
    return _TYPE_NAMES.get(field_type, f"mysql_type_{field_type}")


def _lenenc(n: int) -> bytes:
    if n < 0xFB:
        return bytes((n,))
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def _read_lenenc(data: bytes, off: int) -> tuple[int, int]:
    """(value, offset after it); raises IndexError on a truncated integer."""
    first = data[off]
    if first < 0xFB:
        return first, off + 1
    if first == 0xFC:
        end = off + 3
    elif first == 0xFD:
        end = off + 4
    elif first == 0xFE:
        end = off + 9
    else:
        raise ProtocolViolationError(f"invalid length-encoded integer header 0x{first:02x}")
    if end > len(data):
        raise IndexError
    return int.from_bytes(data[off + 1 : end], "little"), end


class MySqlMaskPlan:
    """A :class:`ResultMaskPlan` plus what the binary protocol needs to walk a row."""

    __slots__ = ("binary", "gate", "ints", "ncols", "plan", "row_gate", "types", "unsigned")

    def __init__(
        self, plan: ResultMaskPlan, columns: Sequence[ColumnDefinition], binary: bool
    ) -> None:
        self.plan = plan
        self.binary = binary
        self.ncols = len(columns)
        self.types = tuple(c.type for c in columns)
        self.unsigned = tuple(bool(c.flags & _UNSIGNED) for c in columns)
        actions = plan.actions
        # Scanned binary integers hold no ASCII digits: the whole-row gate cannot see them.
        self.ints = binary and any(
            i < len(actions) and actions[i] != SKIP and t in _INT_WIDTH
            for i, t in enumerate(self.types)
        )
        self.row_gate = plan.row_gate and not self.ints
        # The compiled copy of the whole-row gate (None without the extension).
        self.gate = native_gate(plan) if self.row_gate else None


class MySqlRowMasker:
    """Masking for one identity's MySQL session (stateless apart from the policy)."""

    def __init__(self, policy: MaskingPolicy) -> None:
        self.policy = policy
        # The last result's columns, protocol and plan. The tracker hands out one
        # (immutable) ColumnDefinition per distinct definition, so a statement run again
        # brings the very same objects, and its plan is the one already made.
        self._last: tuple[tuple[ColumnDefinition, ...], bool, MySqlMaskPlan | None] | None = None

    def plan(self, columns: Sequence[ColumnDefinition], binary: bool) -> MySqlMaskPlan | None:
        """The plan for a result with ``columns``; None when no column can hold anything."""
        if not columns:
            return None
        last = self._last
        if (
            last is not None
            and last[1] == binary
            and len(last[0]) == len(columns)
            and all(a is b for a, b in zip(last[0], columns, strict=True))
        ):
            return last[2]
        plan = self._plan(columns, binary)
        self._last = (tuple(columns), binary, plan)
        return plan

    def _plan(self, columns: Sequence[ColumnDefinition], binary: bool) -> MySqlMaskPlan | None:
        policy = self.policy
        infos: list[ColumnInfo] = []
        for c in columns:
            table = f"{c.schema}.{c.org_table}" if c.org_table else None
            # A column rule follows the real column through an alias (``ssn AS x``) and
            # the alias through an expression (``concat(ssn) AS ssn``): mask more, never less.
            name = c.org_name or c.name
            if policy.rule_for(name, table) is None and policy.rule_for(c.name, table):
                name = c.name
            infos.append(ColumnInfo(name, table, mysql_type_name(c.type), "text"))
        plan = policy.plan_for_result(infos)
        if plan is None or not plan.scans_anything:
            return None
        return MySqlMaskPlan(plan, columns, binary)

    def mask_row(self, payload: bytes | memoryview, plan: MySqlMaskPlan) -> bytes | None:
        """The masked row payload, or None when it is unchanged."""
        gate = plan.gate
        if gate is not None:
            if not gate.may_contain(payload):  # the same answer as below, without a copy
                return None
            data = payload if type(payload) is bytes else bytes(payload)
        else:
            data = payload if type(payload) is bytes else bytes(payload)
            if plan.row_gate and not plan.plan.masker.may_contain(data):
                return None
        out = self._binary(data, plan) if plan.binary else self._text(data, plan)
        if out is not None and _physical(len(out)) != _physical(len(data)):
            raise ProtocolViolationError(
                "a masked row would need a different number of packets than the original "
                "(rows near 16 MiB); refusing to forward it"
            )
        return out

    # ------------------------------------------------------------------ text protocol
    def _text(self, data: bytes, mp: MySqlMaskPlan) -> bytes | None:
        plan = mp.plan
        actions = plan.actions
        nactions = len(actions)
        size = len(data)
        hits: list[tuple[int, int, int, int]] = []  # (column, value header, start, end)
        off = 0
        try:
            for i in range(mp.ncols):
                if data[off] == _NULL:
                    off += 1
                    continue
                n, start = _read_lenenc(data, off)
                end = start + n
                if end > size:
                    raise IndexError
                if i < nactions and actions[i]:
                    hits.append((i, off, start, end))
                off = end
        except IndexError:
            off = -1
        if off != size:
            raise ProtocolViolationError(
                f"text row does not match its {mp.ncols} columns ({size} bytes); refusing "
                "to forward a row that could not be checked for sensitive values"
            )
        if not hits:
            return None
        if plan.row_gate and len(hits) < mp.ncols:
            blob = b"\x00".join([data[s:e] for _, _, s, e in hits])
            if not plan.masker.may_contain(blob):
                return None
        mask_text = plan.masker.mask_text
        parts: list[bytes] = []
        prev = 0
        for i, head, start, end in hits:
            value = data[start:end]
            new = mask_text(value) if actions[i] == TEXT else plan.mask_value(i, value)
            if new is None:
                continue
            parts.append(data[prev:head])
            parts.append(b"\xfb" if isinstance(new, SqlNull) else _lenenc(len(new)) + new)
            prev = end
        if not parts:
            return None
        parts.append(data[prev:])
        return b"".join(parts)

    # ------------------------------------------------------------------ binary protocol
    def _binary(self, data: bytes, mp: MySqlMaskPlan) -> bytes | None:
        plan = mp.plan
        actions = plan.actions
        nactions = len(actions)
        ncols = mp.ncols
        size = len(data)
        nbitmap = (ncols + 9) // 8
        if size < 1 + nbitmap or data[0] != 0x00:
            raise ProtocolViolationError("binary row must start with 0x00 and a NULL bitmap")
        bitmap = bytearray(data[1 : 1 + nbitmap])
        off = 1 + nbitmap
        # (column, encoding start, value end, text to scan)
        hits: list[tuple[int, int, int, bytes]] = []
        try:
            for i, t in enumerate(mp.types):
                bit = i + 2
                if bitmap[bit >> 3] & (1 << (bit & 7)):
                    continue
                start = off
                width = _FIXED_WIDTH.get(t)
                if width is not None:
                    end = off + width
                elif t in _LENGTH_PREFIXED:
                    end = off + 1 + data[off]
                elif t == FieldType.NULL:
                    end = off
                else:
                    n, vstart = _read_lenenc(data, off)
                    start, end = vstart, vstart + n
                if end > size:
                    raise IndexError
                if i < nactions and actions[i]:
                    if t in _INT_WIDTH:
                        number = int.from_bytes(data[off:end], "little", signed=not mp.unsigned[i])
                        hits.append((i, off, end, str(number).encode("ascii")))
                    else:
                        hits.append((i, off, end, data[start:end]))
                off = end
        except IndexError:
            off = -1
        if off != size:
            raise ProtocolViolationError(
                f"binary row does not match its {ncols} columns ({size} bytes); refusing "
                "to forward a row that could not be checked for sensitive values"
            )
        if not hits:
            return None
        # The scanned values as text (integers in decimal): gate on them alone.
        if plan.row_gate and not plan.masker.may_contain(b"\x00".join([h[3] for h in hits])):
            return None
        # (encoding start, end, replacement encoding or None for NULL)
        changes: list[tuple[int, int, bytes | None]] = []
        for i, head, end, value in hits:
            t = mp.types[i]
            new = plan.mask_value(i, value)
            if new is None:
                continue
            encoded: bytes | None = None
            if isinstance(new, SqlNull):
                pass
            elif t in _INT_WIDTH:
                encoded = _int_bytes(new, _INT_WIDTH[t], mp.unsigned[i])
            elif t not in _FIXED_WIDTH and t not in _LENGTH_PREFIXED:
                encoded = _lenenc(len(new)) + new
            # else: floats and temporals hold no text; a column rule on one hides it whole.
            if encoded is None:
                bit = i + 2
                bitmap[bit >> 3] |= 1 << (bit & 7)
            changes.append((head, end, encoded))
        if not changes:
            return None
        parts: list[bytes] = [b"\x00", bytes(bitmap)]
        prev = 1 + nbitmap
        for head, end, new in changes:
            parts.append(data[prev:head])
            if new is not None:
                parts.append(new)
            prev = end
        parts.append(data[prev:])
        return b"".join(parts)


def _int_bytes(digits: bytes, width: int, unsigned: bool) -> bytes | None:
    """A masked number (ASCII digits) at the column's width; None when it does not fit."""
    text = digits.decode("ascii", "replace").strip()
    if not text.lstrip("-").isdigit():
        return None
    try:
        return int(text).to_bytes(width, "little", signed=not unsigned)
    except OverflowError:
        return None


def _physical(n: int) -> int:
    return n // _MAX_PHYSICAL + 1
