"""The masking engine: one value (:class:`ValueMasker`), one result set
(:class:`ResultMaskPlan`) and one identity (:class:`MaskingPolicy`).

It owns the *decisions* on the data path: which columns of a result are scanned, which are
replaced whole by a column rule, which are skipped by type, and how a finding is spliced
back into a value of that column's type and wire format. It does not parse protocol
messages (``pg_rows``) nor read configuration (``config``).

Cost model, cheapest first:

1. An identity whose policy masks nothing gets no :class:`MaskingPolicy` at all.
2. A result whose columns cannot hold anything we look for (``int4``, ``bool``,
   ``timestamptz``, ``uuid``, ...) gets no :class:`ResultMaskPlan`; the caller forwards
   rows without calling us.
3. A row whose scanned values fail :meth:`ValueMasker.may_contain` (digit count,
   ``@``, a handful of literal prefixes — all C-speed ``bytes`` operations) is returned
   unchanged without running any regex.
4. Only then do the gated detectors run, and only the ones whose own gate passes.

Type decisions worth knowing:

* ``int8``/``numeric`` columns are scanned for cards only (a 16-digit card fits); the
  replacement must stay a number of that type, see ``formats`` (``last4`` of
  ``4111111111111111`` is the integer ``1111``). ``int2``/``int4`` cannot hold a card and
  are skipped.
* ``jsonb`` in binary format is a version byte then JSON text; ``json`` text is scanned as
  text, and a finding *outside* a JSON string (a bare number) is replaced by a JSON string
  so the document still parses.
* Binary arrays and records are walked element by element with their own element types.
* A column rule on a type whose masked form cannot be written (``date``, ``uuid``,
  arrays, an unknown binary type) replaces the value with SQL NULL: valid for every
  type, and it reveals nothing.
* Unknown type OIDs (extensions such as ``citext``, enums, composites) and record literals
  are scanned as text in text format, but a card found there becomes digits (``1111``)
  because a composite's field may be an integer. In binary format they are scanned as
  text when the bytes are NUL-free valid UTF-8; otherwise a value with a finding becomes
  NULL (fail closed, never corrupt). A binary array or record that does not parse is
  treated the same way.
"""

from __future__ import annotations

import fnmatch
import json
import re
import struct
from collections.abc import Iterable, Sequence
from typing import Final, Literal, NamedTuple

from wardgate.masking.detectors import (
    CardDetector,
    Detector,
    EmailDetector,
    Finding,
    card_ok,
    normalize,
)
from wardgate.masking.formats import Formatter, MaskFormat

__all__ = [
    "SQL_NULL",
    "ColumnInfo",
    "MaskingPolicy",
    "ResultMaskPlan",
    "SqlNull",
    "ValueMasker",
]

_DIGITS: Final = b"0123456789"
_UPPER: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CARD_CHARS: Final = b"0123456789 -"


class SqlNull:
    """The value must become SQL NULL (see module docstring). Use :data:`SQL_NULL`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SQL_NULL"


SQL_NULL: Final = SqlNull()

MaskedValue = bytes | SqlNull | None
"""``None``: unchanged (forward the original bytes); ``bytes``: replacement; ``SQL_NULL``."""


class GateSpec(NamedTuple):
    """:meth:`ValueMasker.may_contain`'s tables in plain values (see ``native_spec``)."""

    unconditional: bool
    keep: bytes  # 256 flags: 1 for a byte value the gates look at
    min_digits: int
    rules: tuple[tuple[int, bytes, int, int, bool], ...]  # (digits, any of, upper, run, bounded)
    signals: tuple[tuple[int, tuple[bytes, ...], tuple[bytes, ...], bool], ...]
    plain: tuple[bytes, ...]
    plain_folded: tuple[bytes, ...]


class _Span(NamedTuple):
    start: int
    end: int
    kind: str
    normal: str
    merged: bool


# ------------------------------------------------------------------------ ValueMasker


# Digit runs, at C speed: digits become '0', letters and non-ASCII bytes become 'x' (they
# break a run), ASCII punctuation and spaces are dropped (separators inside a run). A run
# of N digits is then a find of N zeros. Dropping separators makes the gate a superset of
# what the detectors' own regexes accept, which is all a gate may be.
_RUN_TABLE = bytes(
    0x30 if 0x30 <= b <= 0x39 else (0x78 if (chr(b).isalpha() or b >= 0x80) else b)
    for b in range(256)
)
_RUN_SEPARATORS = bytes(b for b in range(128) if not chr(b).isalnum())


# Bounded runs (DigitRule.bounded): the value's shape keeps separators ('s') and tells
# ASCII letters ('x') from other non-ASCII bytes ('h'); a run then has to start at a digit
# not glued to a letter or digit and end at one, as the detectors' regexes must.
_SHAPE_TABLE = bytes(
    0x30 if 0x30 <= b <= 0x39
    else 0x78 if (0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A)
    else 0x68 if b >= 0x80
    else 0x73
    for b in range(256)
)  # fmt: skip

class _BoundedRun(NamedTuple):
    """A bounded rule's run check: the plain needle first (a run that is not there even
    counting glued digits is not there bounded either), then the pattern over the shape."""

    needle: bytes
    pattern: re.Pattern[bytes]


RunCheck = bytes | _BoundedRun | None


def _run_regex(run: int, bounded: bool = False) -> RunCheck:
    """What a value must show for a rule with ``run`` digits: a needle in its run form
    (``_RUN_TABLE``), and for a bounded rule also a pattern over its shape
    (``_SHAPE_TABLE``)."""
    if run <= 1:
        return None
    needle = b"0" * run
    if not bounded:
        return needle
    return _BoundedRun(
        needle, re.compile(rb"(?<![0x])0(?:s*0){%d}(?:s*0)*(?![0x])" % (run - 1))
    )


def _run_ok(value: bytes, check: bytes | _BoundedRun, forms: list[bytes | None]) -> bool:
    """``check`` against ``value``'s run form or shape, computed once per value in
    ``forms`` ([run form, shape])."""
    runs = forms[0]
    if runs is None:
        runs = forms[0] = value.translate(_RUN_TABLE, _RUN_SEPARATORS)
    if type(check) is bytes:
        return runs.find(check) != -1
    assert isinstance(check, _BoundedRun)
    if runs.find(check.needle) == -1:
        return False
    shape = forms[1]
    if shape is None:
        shape = forms[1] = value.translate(_SHAPE_TABLE)
    return check.pattern.search(shape) is not None


class ValueMasker:
    """Finds and masks sensitive values inside one wire value (UTF-8 bytes)."""

    __slots__ = (
        "_card",
        "_detectors",
        "_digit_rules",
        "_drop",
        "_email",
        "_min_digits",
        "_plain",
        "_plain_folded",
        "_plain_index",
        "_signal_index",
        "_signalled_gates",
        "_table",
        "_unconditional",
        "formatter",
        "kinds",
    )

    def __init__(self, detectors: Sequence[Detector], formatter: Formatter) -> None:
        self._detectors = tuple(detectors)
        self.formatter = formatter
        self.kinds = frozenset(d.kind for d in detectors)
        self._card: CardDetector | None = next(
            (d for d in detectors if isinstance(d, CardDetector)), None
        )
        self._email: EmailDetector | None = next(
            (d for d in detectors if isinstance(d, EmailDetector)), None
        )
        self._table = tuple((d, d.triggers, d.folded_triggers, d.assignment) for d in detectors)
        # Dispatch tables; detector indices keep priority order.
        # Flat (index, min digits, any-of bytes, upper-case letters) rows; a detector with two
        # rules has two rows.
        self._digit_rules = tuple(
            (i, r.min_digits, tuple(r.any_of), r.upper, _run_regex(r.run, r.bounded))
            for i, d in enumerate(detectors)
            for r in d.digit_rules
        )
        self._min_digits = min((row[1] for row in self._digit_rules), default=0)
        signal_index: dict[int, list[int]] = {}
        signalled: dict[int, list[tuple[tuple[bytes, ...], tuple[bytes, ...], bool]]] = {}
        plain_index: list[int] = []
        plain: list[bytes] = []
        plain_folded: list[bytes] = []
        unconditional = False
        for i, d in enumerate(detectors):
            if d.digit_rules:
                continue
            if d.signals:
                for sig in d.signals:
                    signal_index.setdefault(sig, []).append(i)
                    signalled.setdefault(sig, []).append(
                        (d.triggers, d.folded_triggers, d.assignment)
                    )
                continue
            plain_index.append(i)
            if not d.triggers and not d.folded_triggers:
                unconditional = True
            plain.extend(t for t in d.triggers if t not in plain)
            plain_folded.extend(t for t in d.folded_triggers if t not in plain_folded)
        self._signal_index = {k: tuple(v) for k, v in signal_index.items()}
        self._signalled_gates = {k: tuple(v) for k, v in signalled.items()}
        self._plain_index = tuple(plain_index)
        self._plain = tuple(plain)
        self._plain_folded = tuple(plain_folded)
        self._unconditional = unconditional
        # One translate keeps only what the gates look at: digits, signal bytes and the
        # extra bytes digit rules ask for ('+', '-').
        keep = set(signal_index)
        if self._digit_rules:
            keep |= set(_DIGITS)
            for _, _, any_of, _, _ in self._digit_rules:
                keep |= set(any_of)
        self._drop = bytes(b for b in range(256) if b not in keep)

    def may_contain(self, data: bytes, framing_upper: int = 0) -> bool:
        """False only when no detector could find anything in ``data`` (a superset test:
        it may say True for bytes that hold nothing). C-level ``bytes`` operations only;
        ``bytes.find`` rather than ``in``, which is several times slower for bytes.

        ``framing_upper`` is how many upper-case letters ``data`` holds that are not
        content (the ``D`` of a whole DataRow message).
        """
        if self._unconditional:
            return True
        kept = data.translate(None, self._drop)
        if kept:
            marks = kept.translate(None, _DIGITS)  # signal and rule bytes
            nd = len(kept) - len(marks)
            if nd >= self._min_digits > 0:
                upper = -1
                forms: list[bytes | None] = [None, None]
                for _, min_digits, any_of, needs_upper, run in self._digit_rules:
                    if nd < min_digits:
                        continue
                    if any_of and not _any_byte(marks, any_of):
                        continue
                    if run is not None and not _run_ok(data, run, forms):
                        continue
                    if needs_upper:
                        if upper < 0:
                            upper = len(data) - len(data.translate(None, _UPPER)) - framing_upper
                        if upper < needs_upper:
                            continue
                    return True
            if marks and self._signalled(data, marks):
                return True
        for lit in self._plain:
            if data.find(lit) != -1:
                return True
        if self._plain_folded:
            low = data.lower()
            for lit in self._plain_folded:
                if low.find(lit) != -1:
                    return True
        return False

    def native_spec(self) -> GateSpec:
        """The gate's tables in the plain form ``wardgate._rowscan.Gate`` takes: the compiled
        copy of :meth:`may_contain` (see ``masking/native.py``)."""
        drop = set(self._drop)
        keep = bytes(0 if b in drop else 1 for b in range(256))
        rules = tuple(
            (r.min_digits, bytes(r.any_of), r.upper, r.run if r.run > 1 else 0, r.bounded)
            for d in self._detectors
            for r in d.digit_rules
        )
        signals = tuple(
            (sig, tuple(triggers), tuple(folded), bool(assignment))
            for sig, gates in self._signalled_gates.items()
            for triggers, folded, assignment in gates
        )
        return GateSpec(
            self._unconditional,
            keep,
            self._min_digits,
            rules,
            signals,
            tuple(self._plain),
            tuple(self._plain_folded),
        )

    def _signalled(self, data: bytes, marks: bytes) -> bool:
        low: bytes | None = None
        for sig in set(marks):
            for triggers, folded, assignment in self._signalled_gates.get(sig, ()):
                for lit in triggers:
                    if data.find(lit) != -1:
                        return True
                if folded and (not assignment or data.find(b"=") != -1 or data.find(b":") != -1):
                    if low is None:
                        low = data.lower()
                    for lit in folded:
                        if low.find(lit) != -1:
                            return True
        return False

    def findings(self, value: bytes) -> list[Finding]:
        """Every finding of every detector whose own gate passes, in priority order."""
        kept = value.translate(None, self._drop)
        marks = kept.translate(None, _DIGITS)
        nd = len(kept) - len(marks)
        # Whole-value fast paths for the common column shapes (an e-mail column, a card
        # column): a value that is exactly one address or one card number has nothing
        # else outside that span, so the other detectors need not run.
        if self._email is not None and marks.find(b"@") != -1:
            whole = self._email.whole(value)
            if whole is not None:
                return [whole]
        if (
            self._card is not None
            and nd >= 13
            and len(value) <= 23
            and not value.translate(None, _CARD_CHARS)
        ):
            cards = self._card.find(value)
            if cards and cards[0].start == 0 and cards[-1].end == len(value):
                return cards
        run: list[int] = []
        if nd >= self._min_digits > 0:
            upper = -1
            forms: list[bytes | None] = [None, None]
            for i, min_digits, any_of, needs_upper, run_re in self._digit_rules:
                if nd < min_digits:
                    continue
                if any_of and not _any_byte(marks, any_of):
                    continue
                if run_re is not None and not _run_ok(value, run_re, forms):
                    continue
                if needs_upper:
                    if upper < 0:
                        upper = len(value) - len(value.translate(None, _UPPER))
                    if upper < needs_upper:
                        continue
                run.append(i)
        if marks:
            for sig in set(marks):
                run.extend(self._signal_index.get(sig, ()))
        run.extend(self._plain_index)
        if not run:
            return []
        if len(run) > 1:
            run = sorted(set(run))
        low: bytes | None = None
        has_assign: bool | None = None
        out: list[Finding] = []
        for i in run:
            det, triggers, folded, assign = self._table[i]
            if triggers or folded:
                hit = False
                for t in triggers:
                    if value.find(t) != -1:
                        hit = True
                        break
                if not hit and folded:
                    if assign:
                        if has_assign is None:
                            has_assign = value.find(b"=") != -1 or value.find(b":") != -1
                        if not has_assign:
                            continue
                    if low is None:
                        low = value.lower()
                    for t in folded:
                        if low.find(t) != -1:
                            hit = True
                            break
                if not hit:
                    continue
            out.extend(det.find(value))
        return out

    def mask_text(self, value: bytes) -> bytes | None:
        """``value`` with every finding replaced; None when nothing was found (the caller
        forwards the original object)."""
        # findings() gates every detector itself, as cheaply as may_contain() would.
        found = self.findings(value)
        return self._render(value, found, in_json=False) if found else None

    def mask_json(self, value: bytes) -> bytes | None:
        """As :meth:`mask_text`, for JSON text: replacements outside strings are quoted."""
        found = self.findings(value)
        return self._render(value, found, in_json=True) if found else None

    def mask_composite_text(self, value: bytes) -> bytes | None:
        """As :meth:`mask_text`, for the text form of a value whose fields we cannot type
        (a record literal, an extension type): a card becomes digits (``1111``), which
        parses whether the field turns out to be ``int8``, ``numeric`` or text."""
        found = self.findings(value)
        return self._render(value, found, in_json=False, cards_as_numbers=True) if found else None

    def mask_number_text(self, value: bytes, capacity: int | None) -> bytes | None:
        """A number (or integer-array literal) in text form: cards only, masked to digits
        that still fit the column type (``capacity`` digits; None = unbounded)."""
        card = self._card
        if card is None or len(value) < 13:
            return None
        if value.isdigit():
            if len(value) <= 19 and card_ok(value):
                digits = value.decode("ascii")
                return self.formatter.number("card", digits, len(digits), capacity).encode()
            return None
        found = [f for f in card.find(value) if value[f.start : f.end].isdigit()]
        if not found:
            return None
        parts: list[bytes] = []
        pos = 0
        for f in found:
            parts.append(value[pos : f.start])
            parts.append(self.formatter.number("card", f.normal, len(f.normal), capacity).encode())
            pos = f.end
        parts.append(value[pos:])
        return b"".join(parts)

    def mask_integer(self, number: int, capacity: int | None) -> int | None:
        """A binary integer that may be a card number; the masked integer, or None."""
        if self._card is None or not 10**12 <= number < 10**19:
            return None
        digits = str(number)
        if not card_ok(digits):
            return None
        return int(self.formatter.number("card", digits, len(digits), capacity))

    def _render(
        self, value: bytes, found: list[Finding], *, in_json: bool, cards_as_numbers: bool = False
    ) -> bytes | None:
        spans = _resolve(value, found)
        inside = _json_string_flags(value, [s.start for s in spans]) if in_json else None
        parts: list[bytes] = []
        pos = 0
        fmt = self.formatter
        for n, span in enumerate(spans):
            parts.append(value[pos : span.start])
            if span.merged:
                rep = fmt.redact(span.kind)
            elif cards_as_numbers and span.kind == "card":
                rep = fmt.number("card", span.normal, len(span.normal), 18).encode("ascii")
            else:
                rep = fmt.text(span.kind, value[span.start : span.end], span.normal)
            if inside is not None and not inside[n]:
                rep = json.dumps(rep.decode("utf-8"), ensure_ascii=False).encode("utf-8")
            parts.append(rep)
            pos = span.end
        parts.append(value[pos:])
        out = b"".join(parts)
        return None if out == value else out


def _any_byte(data: bytes, candidates: tuple[int, ...]) -> bool:
    for b in candidates:  # noqa: SIM110 - a generator costs more than the search here
        if data.find(b) != -1:
            return True
    return False


def _utf8_widen(value: bytes, start: int, end: int) -> tuple[int, int]:
    """Never cut a multi-byte UTF-8 character (custom regexes can): widen to boundaries."""
    if start < len(value) and 0x80 <= value[start] < 0xC0:
        while start > 0 and 0x80 <= value[start] < 0xC0:
            start -= 1
    if end < len(value) and 0x80 <= value[end] < 0xC0:
        while end < len(value) and 0x80 <= value[end] < 0xC0:
            end += 1
    return start, end


def _resolve(value: bytes, found: Sequence[Finding]) -> list[_Span]:
    """Overlap policy: findings arrive in detector priority order. One inside an earlier
    one is dropped; one that partly overlaps is merged into it (the union is redacted, so
    no fragment of either survives)."""
    if len(found) == 1:
        f = found[0]
        start, end = _utf8_widen(value, f.start, f.end)
        return [_Span(start, end, f.kind, f.normal, False)]
    accepted: list[list[object]] = []
    for f in found:
        start, end = _utf8_widen(value, f.start, f.end)
        for a in accepted:
            a_start, a_end = a[0], a[1]
            assert isinstance(a_start, int) and isinstance(a_end, int)
            if start < a_end and a_start < end:
                if not (a_start <= start and end <= a_end):
                    a[0], a[1], a[4] = min(a_start, start), max(a_end, end), True
                break
        else:
            accepted.append([start, end, f.kind, f.normal, False])
    spans = sorted(_Span(*a) for a in accepted)  # type: ignore[arg-type]
    # Merging can make two accepted spans touch; coalesce until stable.
    out: list[_Span] = []
    for s in spans:
        if out and s.start < out[-1].end:
            last = out[-1]
            out[-1] = _Span(last.start, max(last.end, s.end), last.kind, last.normal, True)
        else:
            out.append(s)
    return out


def _json_string_flags(value: bytes, positions: list[int]) -> list[bool]:
    """For each (sorted) position: is it inside a JSON string literal?"""
    flags: list[bool] = []
    inside = False
    q = value.find(b'"')
    for p in positions:
        while q != -1 and q < p:
            if inside:
                k = q - 1
                while k >= 0 and value[k] == 0x5C:
                    k -= 1
                if (q - 1 - k) % 2 == 0:  # an even run of backslashes: a real quote
                    inside = False
            else:
                inside = True
            q = value.find(b'"', q + 1)
        flags.append(inside)
    return flags


# -------------------------------------------------------------------- column typing

# Type families (what a column can hold) ...
_F_OTHER, _F_TEXT, _F_JSON, _F_JSONB, _F_INT2, _F_INT4, _F_INT8, _F_NUMERIC = range(8)
_F_ARRAY, _F_RECORD, _F_UNKNOWN = 8, 9, 10

# ... and actions (what we do to a value of that family in that wire format).
SKIP: Final = 0
TEXT: Final = 1
JSON_TEXT: Final = 2
JSONB_BIN: Final = 3
NUM_TEXT: Final = 4
INT8_BIN: Final = 5
NUMERIC_BIN: Final = 6
ARRAY_BIN: Final = 7
RECORD_BIN: Final = 8
UNKNOWN_BIN: Final = 9
WHOLE: Final = 10
COMPOSITE_TEXT: Final = 11

_OID_FAMILY: dict[int, int] = {
    19: _F_TEXT, 25: _F_TEXT, 142: _F_TEXT, 705: _F_TEXT, 1042: _F_TEXT, 1043: _F_TEXT,
    114: _F_JSON, 3802: _F_JSONB,
    21: _F_INT2, 23: _F_INT4, 20: _F_INT8, 1700: _F_NUMERIC,
    2249: _F_RECORD,
}  # fmt: skip
_ARRAY_ELEMENT: dict[int, int] = {
    1003: 19, 1009: 25, 143: 142, 1014: 1042, 1015: 1043, 199: 114, 3807: 3802,
    1005: 21, 1007: 23, 1016: 20, 1231: 1700, 2287: 2249,
}  # fmt: skip
_FIRST_USER_OID: Final = 16384  # OIDs below this are built-in types

_NAME_FAMILY: dict[str, int] = {
    **dict.fromkeys(
        ["text", "varchar", "character varying", "bpchar", "character", "char", "name",
         "unknown", "xml", "citext", "string", "var_string", "tinytext", "mediumtext",
         "longtext", "blob", "tinyblob", "mediumblob", "longblob", "enum", "set"],
        _F_TEXT,
    ),
    "json": _F_JSON, "jsonb": _F_JSONB,
    **dict.fromkeys(["int2", "smallint", "short", "tiny", "tinyint"], _F_INT2),
    **dict.fromkeys(["int4", "int", "integer", "long", "int24", "mediumint"], _F_INT4),
    **dict.fromkeys(["int8", "bigint", "longlong"], _F_INT8),
    **dict.fromkeys(["numeric", "decimal", "newdecimal"], _F_NUMERIC),
    "record": _F_RECORD,
    **dict.fromkeys(
        ["bool", "boolean", "bytea", "date", "time", "timetz", "timestamp", "timestamptz",
         "timestamp with time zone", "timestamp without time zone", "interval", "uuid",
         "float4", "float8", "real", "double precision", "double", "float", "money", "oid",
         "inet", "cidr", "macaddr", "bit", "varbit", "year", "datetime", "geometry",
         "binary", "varbinary", "null"],
        _F_OTHER,
    ),
}  # fmt: skip

_CAPACITY: dict[int, int | None] = {_F_INT2: 4, _F_INT4: 9, _F_INT8: 18, _F_NUMERIC: None}
_INT_STRUCT: dict[int, struct.Struct] = {
    _F_INT2: struct.Struct(">h"), _F_INT4: struct.Struct(">i"), _F_INT8: struct.Struct(">q"),
}  # fmt: skip


def _family_of(type_: int | str) -> tuple[int, int | str | None]:
    """(family, element type for arrays)."""
    if isinstance(type_, int):
        if type_ in _OID_FAMILY:
            return _OID_FAMILY[type_], None
        if type_ in _ARRAY_ELEMENT:
            return _F_ARRAY, _ARRAY_ELEMENT[type_]
        return (_F_OTHER if type_ < _FIRST_USER_OID else _F_UNKNOWN), None
    name = type_.strip().lower()
    if name.endswith("[]"):
        return _F_ARRAY, name[:-2]
    if name.startswith("_") and name[1:] in _NAME_FAMILY:
        return _F_ARRAY, name[1:]
    base = name.split("(", 1)[0].strip()  # varchar(20), numeric(20,0)
    return _NAME_FAMILY.get(base, _F_UNKNOWN), None


def _scan_action(family: int, element: int | str | None, binary: bool) -> tuple[int, object]:
    """The scanning action (and its argument) for a column of ``family``."""
    if family == _F_TEXT:
        return TEXT, None  # text types are UTF-8 in both wire formats
    if family == _F_UNKNOWN:
        return (UNKNOWN_BIN if binary else COMPOSITE_TEXT), None
    if family == _F_JSON or (family == _F_JSONB and not binary):
        return JSON_TEXT, None
    if family == _F_JSONB:
        return JSONB_BIN, None
    if family in (_F_INT8, _F_NUMERIC):
        capacity = _CAPACITY[family]
        if not binary:
            return NUM_TEXT, capacity
        return (INT8_BIN if family == _F_INT8 else NUMERIC_BIN), capacity
    if family == _F_RECORD:
        return (RECORD_BIN, None) if binary else (COMPOSITE_TEXT, None)
    if family == _F_ARRAY and element is not None:
        elem_family, _ = _family_of(element)
        if elem_family in (_F_OTHER, _F_INT2, _F_INT4, _F_ARRAY):
            return SKIP, None
        if binary:
            return ARRAY_BIN, None  # elements are typed by the OID in the array header
        if elem_family in (_F_INT8, _F_NUMERIC):
            return NUM_TEXT, _CAPACITY[elem_family]
        if elem_family in (_F_RECORD, _F_UNKNOWN):
            return COMPOSITE_TEXT, None
        return TEXT, None
    if family == _F_ARRAY:
        return (UNKNOWN_BIN, None) if binary else (COMPOSITE_TEXT, None)
    return SKIP, None


class ColumnInfo(NamedTuple):
    """What the masking plan needs to know about one result column.

    ``table`` is ``schema.table``, ``table`` or None when the column is an expression
    (PostgreSQL reports table OID 0); ``type`` is a PostgreSQL type OID or a type name
    (PostgreSQL or MySQL spelling); ``format`` is ``text``/``binary`` or the wire format
    code 0/1.
    """

    name: str
    table: str | None = None
    type: int | str = 25
    format: Literal["text", "binary"] | int = "text"


# ---------------------------------------------------------------- ResultMaskPlan

_I32 = struct.Struct(">i")
_ARRAY_HEAD = struct.Struct(">iiI")
_NUMERIC_HEAD = struct.Struct(">hhHh")
_NULL_LEN: Final = b"\xff\xff\xff\xff"


class ResultMaskPlan:
    """Per-result-set decisions, built once from the column descriptions.

    ``actions[i]`` is 0 (skip) or the action for column ``i``; ``row_gate`` says that a
    row whose scanned values all fail :meth:`ValueMasker.may_contain` is unchanged (false
    when a column rule replaces whole values or a binary number column is scanned, since
    a binary integer holds no ASCII digits to gate on).
    """

    __slots__ = ("_args", "actions", "default_action", "masker", "native", "row_gate")

    def __init__(
        self,
        actions: Sequence[int],
        args: Sequence[object],
        masker: ValueMasker,
        *,
        default_action: int = SKIP,
    ) -> None:
        self.actions = tuple(actions)
        self._args = tuple(args)
        self.masker = masker
        self.default_action = default_action
        gated = {TEXT, JSON_TEXT, JSONB_BIN, NUM_TEXT, UNKNOWN_BIN, COMPOSITE_TEXT, SKIP}
        self.row_gate = all(a in gated for a in self.actions) and default_action in gated
        # The compiled gate for this plan, built on first use by ``masking.native``.
        self.native: object | None = None

    @property
    def scans_anything(self) -> bool:
        return any(self.actions) or bool(self.default_action)

    def mask_value(self, index: int, value: bytes) -> MaskedValue:
        """Mask the (non-NULL) value of column ``index``."""
        if index < len(self.actions):
            action, arg = self.actions[index], self._args[index]
        else:
            action, arg = self.default_action, None
        if action == TEXT:
            return self.masker.mask_text(value)
        if action == SKIP:
            return None
        if action == WHOLE:
            assert isinstance(arg, _Whole)
            return arg.render(value, self.masker.formatter)
        return self._apply(action, arg, value)

    def _apply(self, action: int, arg: object, value: bytes) -> MaskedValue:
        masker = self.masker
        if action == TEXT:
            return masker.mask_text(value)
        if action == JSON_TEXT:
            return masker.mask_json(value)
        if action == COMPOSITE_TEXT:
            return masker.mask_composite_text(value)
        if action == NUM_TEXT:
            assert arg is None or isinstance(arg, int)
            return masker.mask_number_text(value, arg)
        if action == JSONB_BIN:
            if value[:1] != b"\x01":
                return self._apply(UNKNOWN_BIN, None, value)
            inner = masker.mask_json(value[1:])
            return None if inner is None else b"\x01" + inner
        if action == INT8_BIN:
            if len(value) != 8:
                return None
            masked = masker.mask_integer(int.from_bytes(value, "big", signed=True), 18)
            return None if masked is None else masked.to_bytes(8, "big", signed=True)
        if action == NUMERIC_BIN:
            number = _numeric_to_int(value)
            masked = None if number is None else masker.mask_integer(number, None)
            return None if masked is None else _int_to_numeric(masked)
        if action == ARRAY_BIN:
            return self._array_bin(value)
        if action == RECORD_BIN:
            return self._record_bin(value)
        if action == UNKNOWN_BIN:
            return self._unknown_bin(value)
        return None

    def _unknown_bin(self, value: bytes) -> MaskedValue:
        if not self.masker.may_contain(value):
            return None
        # PostgreSQL text never holds NUL; binary structures (lengths, OIDs) nearly always
        # do. Anything that is not NUL-free UTF-8 is a structure we cannot splice into.
        if value.find(b"\x00") == -1:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                return self.masker.mask_composite_text(value)
        return SQL_NULL if self.masker.findings(value) else None

    def _element_action(self, oid: int) -> tuple[int, object]:
        family, element = _family_of(oid)
        return _scan_action(family, element, binary=True)

    def _array_bin(self, value: bytes) -> MaskedValue:
        try:
            ndim, has_null, elem_oid = _ARRAY_HEAD.unpack_from(value, 0)
            if ndim <= 0:
                return None
            count = 1
            for d in range(ndim):
                (dim,) = _I32.unpack_from(value, 12 + 8 * d)
                count *= dim
            action, arg = self._element_action(elem_oid)
            if action == SKIP:
                return None
            off = 12 + 8 * ndim
            parts: list[bytes] = [b""]  # header placeholder (the null flag may change)
            changed = False
            for _ in range(count):
                (n,) = _I32.unpack_from(value, off)
                off += 4
                if n < 0:
                    parts.append(_NULL_LEN)
                    continue
                elem = value[off : off + n]
                if len(elem) != n:
                    raise ValueError("array element overruns the value")
                off += n
                new = self._apply(action, arg, elem)
                if new is None:
                    parts.append(value[off - n - 4 : off])
                elif isinstance(new, SqlNull):
                    parts.append(_NULL_LEN)
                    has_null = 1
                    changed = True
                else:
                    parts.append(_I32.pack(len(new)) + new)
                    changed = True
            if off != len(value):
                raise ValueError("array has trailing bytes")
        except (struct.error, ValueError):
            return self._unknown_bin(value)
        if not changed:
            return None
        parts[0] = _ARRAY_HEAD.pack(ndim, has_null, elem_oid) + value[12 : 12 + 8 * ndim]
        return b"".join(parts)

    def _record_bin(self, value: bytes) -> MaskedValue:
        try:
            (nfields,) = _I32.unpack_from(value, 0)
            off = 4
            parts: list[bytes] = [value[:4]]
            changed = False
            for _ in range(nfields):
                oid, n = struct.unpack_from(">Ii", value, off)
                head = value[off : off + 4]
                off += 8
                if n < 0:
                    parts.append(value[off - 8 : off])
                    continue
                field = value[off : off + n]
                if len(field) != n:
                    raise ValueError("record field overruns the value")
                off += n
                action, arg = self._element_action(oid)
                new = None if action == SKIP else self._apply(action, arg, field)
                if new is None:
                    parts.append(value[off - n - 8 : off])
                elif isinstance(new, SqlNull):
                    parts.append(head + _NULL_LEN)
                    changed = True
                else:
                    parts.append(head + _I32.pack(len(new)) + new)
                    changed = True
            if off != len(value):
                raise ValueError("record has trailing bytes")
        except (struct.error, ValueError):
            return self._unknown_bin(value)
        return b"".join(parts) if changed else None


def _numeric_to_int(value: bytes) -> int | None:
    """A binary ``numeric`` that is a non-negative integer, else None."""
    if len(value) < 8:
        return None
    ndigits, weight, sign, dscale = _NUMERIC_HEAD.unpack_from(value, 0)
    if sign != 0 or dscale != 0 or ndigits <= 0 or len(value) != 8 + 2 * ndigits:
        return None
    if weight < ndigits - 1:
        return None  # has a fractional part
    number = 0
    for d in struct.unpack_from(f">{ndigits}h", value, 8):
        number = number * 10000 + int(d)
    scale: int = 10000 ** (weight - (ndigits - 1))
    return number * scale


def _int_to_numeric(number: int) -> bytes:
    """Encode a non-negative integer as binary ``numeric`` (base-10000 digits)."""
    if number == 0:
        return _NUMERIC_HEAD.pack(0, 0, 0, 0)
    groups: list[int] = []
    while number:
        number, rem = divmod(number, 10000)
        groups.append(rem)
    groups.reverse()
    weight = len(groups) - 1
    while groups[-1] == 0:  # PostgreSQL strips trailing zero digits
        groups.pop()
    return _NUMERIC_HEAD.pack(len(groups), weight, 0, 0) + struct.pack(f">{len(groups)}h", *groups)


class _Whole:
    """A column rule: the whole value is one finding of ``kind``."""

    __slots__ = ("binary", "family", "kind", "phone_regions")

    def __init__(self, kind: str, family: int, binary: bool, phone_regions: Sequence[str]):
        self.kind = kind
        self.family = family
        self.binary = binary
        self.phone_regions = tuple(phone_regions)

    def render(self, value: bytes, fmt: Formatter) -> MaskedValue:
        if not value:
            return None  # an empty value hides nothing; a token would suggest one
        family, binary = self.family, self.binary
        if family in (_F_TEXT, _F_JSON, _F_JSONB) or (family == _F_UNKNOWN and not binary):
            # Only a pseudonym reads the canonical form; normalizing a phone costs a lookup.
            normal = (
                normalize(self.kind, value, self.phone_regions)
                if fmt.format_of(self.kind) is MaskFormat.PSEUDONYM
                else ""
            )
            text = fmt.text(self.kind, value, normal)
            if family in (_F_TEXT, _F_UNKNOWN):
                return text
            quoted = json.dumps(text.decode("utf-8"), ensure_ascii=False).encode("utf-8")
            return b"\x01" + quoted if (family == _F_JSONB and binary) else quoted
        if family in _CAPACITY:
            if binary:
                number = self._binary_number(value)
                if number is None:
                    return SQL_NULL
                digits = str(abs(number))
            else:
                digits = value.decode("ascii", "replace").lstrip("-+").split(".", 1)[0]
                if not digits.isdigit():
                    return SQL_NULL
            masked = fmt.number(self.kind, digits, len(digits), _CAPACITY[family])
            if not binary:
                return masked.encode("ascii")
            if family == _F_NUMERIC:
                return _int_to_numeric(int(masked))
            return _INT_STRUCT[family].pack(int(masked))
        return SQL_NULL

    def _binary_number(self, value: bytes) -> int | None:
        if self.family == _F_NUMERIC:
            return _numeric_to_int(value)
        packer = _INT_STRUCT[self.family]
        return int(packer.unpack(value)[0]) if len(value) == packer.size else None


# ------------------------------------------------------------------ MaskingPolicy


class MaskingPolicy:
    """What one identity (a set of groups) gets masked: the detectors to run and the
    column rules that apply. Built by ``MaskingConfig.masking_plan_for``; shared by every
    identity with the same masked kinds."""

    __slots__ = ("_plan_cache", "column_rules", "kinds", "masker", "phone_regions")

    _PLAN_CACHE_SIZE: Final = 1024

    def __init__(
        self,
        masker: ValueMasker,
        column_rules: Sequence[tuple[str, str]] = (),
        *,
        kinds: Iterable[str] | None = None,
        phone_regions: Sequence[str] = ("US",),
    ) -> None:
        self.masker = masker
        self.kinds = frozenset(kinds) if kinds is not None else masker.kinds
        self.column_rules = tuple((p.lower(), k) for p, k in column_rules if k in self.kinds)
        self.phone_regions = tuple(phone_regions)
        self._plan_cache: dict[tuple[ColumnInfo, ...], ResultMaskPlan | None] = {}

    def rule_for(self, column: str, table: str | None) -> str | None:
        """The kind of the first column rule matching, or None.

        Patterns use fnmatch over ``schema.table.column`` and ``table.column`` (and the
        bare column for a pattern without a dot). When the table is unknown (an
        expression, a view PostgreSQL cannot attribute) only the pattern's column part is
        compared: ``SELECT lower(email) AS email`` is still masked by ``customers.email``.
        Masking too much is recoverable; leaking is not.
        """
        col = column.lower()
        names: list[str] = [col]
        if table:
            qualified = table.lower()
            names.append(f"{qualified}.{col}")
            if "." in qualified:
                names.append(f"{qualified.rsplit('.', 1)[1]}.{col}")
        for pattern, kind in self.column_rules:
            if "." not in pattern:
                if fnmatch.fnmatchcase(col, pattern):
                    return kind
            elif table:
                if any(fnmatch.fnmatchcase(n, pattern) for n in names[1:]):
                    return kind
            elif fnmatch.fnmatchcase(col, pattern.rsplit(".", 1)[1]):
                return kind
        return None

    def plan_for_result(
        self, columns: Sequence[ColumnInfo | tuple[object, ...]]
    ) -> ResultMaskPlan | None:
        """The plan for a result set, or None when no column needs looking at (the caller
        then forwards every row untouched without calling into masking)."""
        infos = tuple(c if isinstance(c, ColumnInfo) else ColumnInfo._make(c) for c in columns)
        try:
            return self._plan_cache[infos]
        except KeyError:
            pass
        plan = self._build(infos)
        if len(self._plan_cache) >= self._PLAN_CACHE_SIZE:
            self._plan_cache.clear()
        self._plan_cache[infos] = plan
        return plan

    def plan_for_copy(self, columns: Sequence[ColumnInfo] | None = None) -> ResultMaskPlan:
        """A plan for ``COPY ... TO STDOUT`` (text or CSV). With ``columns`` (the table's
        columns, when the caller knows them) types and rules apply; without, every field
        is scanned as text."""
        if columns is None:
            return ResultMaskPlan((), (), self.masker, default_action=TEXT)
        infos = [ColumnInfo(c.name, c.table, c.type, "text") for c in columns]
        plan = self._build(tuple(infos))
        if plan is None:
            return ResultMaskPlan([SKIP] * len(infos), [None] * len(infos), self.masker)
        return ResultMaskPlan(plan.actions, plan._args, self.masker, default_action=TEXT)

    def _build(self, infos: tuple[ColumnInfo, ...]) -> ResultMaskPlan | None:
        actions: list[int] = []
        args: list[object] = []
        for info in infos:
            binary = info.format in ("binary", 1)
            family, element = _family_of(info.type)
            kind = self.rule_for(info.name, info.table)
            if kind is not None:
                actions.append(WHOLE)
                args.append(_Whole(kind, family, binary, self.phone_regions))
                continue
            action, arg = _scan_action(family, element, binary)
            if not self.masker.kinds or (
                action in (NUM_TEXT, INT8_BIN, NUMERIC_BIN) and "card" not in self.masker.kinds
            ):
                action, arg = SKIP, None
            actions.append(action)
            args.append(arg)
        if not any(actions):
            return None
        return ResultMaskPlan(actions, args, self.masker)
