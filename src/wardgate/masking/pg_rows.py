"""PostgreSQL result rewriting for masking, sans-I/O: DataRow messages and COPY TO STDOUT
lines in, the same bytes (or None: "forward the original object") out.

This module owns the PostgreSQL framing of result values only; which values change and
into what is decided by :class:`~wardgate.masking.engine.ResultMaskPlan`.

Binary-format COPY is not handled here: with masking active the caller must refuse
``COPY ... (FORMAT binary) TO STDOUT`` (its rows are not one-per-message and a partial
parse would fail open).
"""

from __future__ import annotations

import re
import struct
from typing import Final, Literal

from wardgate.core.errors import ProtocolViolationError
from wardgate.masking.engine import TEXT, ResultMaskPlan, SqlNull

__all__ = ["mask_copy_line", "mask_datarow"]

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_NULL_LEN: Final = b"\xff\xff\xff\xff"


def mask_datarow(msg: bytes | memoryview, plan: ResultMaskPlan) -> bytes | None:
    """Mask one full DataRow message (``'D'``, int32 length, int16 column count, then per
    column an int32 length, -1 for NULL, and the value).

    Returns None when nothing changed, so the caller forwards ``msg`` itself; otherwise a
    new message with every length rewritten. Raises ProtocolViolationError for a message
    that is not a well-formed DataRow.
    """
    data = msg if type(msg) is bytes else bytes(msg)
    size = len(data)
    if size < 7 or data[0] != 0x44:
        raise ProtocolViolationError(
            "masking expected a DataRow ('D') message; the server sent something else. "
            "Check that the gateway frames results before masking them."
        )
    # Cheapest exit first: if nothing anywhere in the message (lengths included) passes
    # the gate, no value can hold a finding and there is no need to even walk the columns.
    # A row the server framed wrongly is then forwarded as is, which reveals nothing.
    if plan.row_gate and not plan.masker.may_contain(data, framing_upper=1):
        return None
    actions = plan.actions
    nactions = len(actions)
    default = plan.default_action
    hits: list[tuple[int, int, int, int]] = []  # (column, length offset, start, end)
    try:
        (ncols,) = _I16.unpack_from(data, 5)
        off = 7
        for i in range(ncols):
            (n,) = _I32.unpack_from(data, off)
            start = off + 4
            if n < 0:
                off = start
                continue
            end = start + n
            if (actions[i] if i < nactions else default) and end <= size:
                hits.append((i, off, start, end))
            off = end
    except struct.error:
        off = size + 1
    if off != size or _I32.unpack_from(data, 1)[0] != size - 1:
        raise ProtocolViolationError(
            f"DataRow lengths are inconsistent ({size} bytes on the wire); "
            "refusing to forward a row that could not be checked for sensitive values."
        )
    if not hits:
        return None
    if plan.row_gate and len(hits) < ncols:
        # Some columns are not scanned (ids, timestamps): gate again on scanned values only.
        if len(hits) == 1:
            blob = data[hits[0][2] : hits[0][3]]
        else:
            blob = b"\x00".join([data[s:e] for _, _, s, e in hits])
        if not plan.masker.may_contain(blob):
            return None
    changes: list[tuple[int, int, bytes | SqlNull]] = []
    mask_text = plan.masker.mask_text
    for i, lenpos, start, end in hits:
        # Text columns are the common case: skip one level of dispatch for them.
        if (actions[i] if i < nactions else default) == TEXT:
            new: bytes | SqlNull | None = mask_text(data[start:end])
        else:
            new = plan.mask_value(i, data[start:end])
        if new is not None:
            changes.append((lenpos, end, new))
    if not changes:
        return None
    parts: list[bytes] = []
    prev = 5
    for lenpos, end, new in changes:
        parts.append(data[prev:lenpos])
        if isinstance(new, SqlNull):
            parts.append(_NULL_LEN)
        else:
            parts.append(_I32.pack(len(new)))
            parts.append(new)
        prev = end
    parts.append(data[prev:])
    body = b"".join(parts)
    return b"D" + _I32.pack(len(body) + 4) + body


# ---------------------------------------------------------------------------- COPY

_TEXT_UNESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.DOTALL)
_TEXT_SIMPLE = {
    b"b": b"\x08", b"f": b"\x0c", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\x0b",
}  # fmt: skip


def _unescape_text(field: bytes) -> bytes:
    def repl(m: re.Match[bytes]) -> bytes:
        if m.group(1) is not None:
            return bytes([int(m.group(1), 8) & 0xFF])
        if m.group(2) is not None:
            return bytes([int(m.group(2), 16)])
        ch = m.group(3)
        return _TEXT_SIMPLE.get(ch, ch)

    return _TEXT_UNESCAPE.sub(repl, field)


def _escape_text(value: bytes, delimiter: bytes) -> bytes:
    # The same escapes PostgreSQL's COPY TO writes: backslash, the delimiter and the
    # control characters that would break the line structure.
    out = value.replace(b"\\", b"\\\\")
    for raw, esc in ((b"\n", b"\\n"), (b"\r", b"\\r"), (b"\t", b"\\t"), (b"\x08", b"\\b"),
                     (b"\x0c", b"\\f"), (b"\x0b", b"\\v")):  # fmt: skip
        if raw in out:
            out = out.replace(raw, esc)
    if delimiter not in (b"\t",) and delimiter in out:
        out = out.replace(delimiter, b"\\" + delimiter)
    return out


def _split_text(body: bytes, delimiter: bytes) -> list[bytes]:
    # A raw tab never occurs inside a text-format field (it is written as \t), so for the
    # default delimiter a plain split is exact. Other delimiters are escaped as
    # backslash+delimiter inside fields and need a scan that honours escapes.
    if delimiter == b"\t" or b"\\" not in body:
        return body.split(delimiter)
    fields: list[bytes] = []
    start = 0
    i = 0
    n = len(body)
    d = delimiter[0]
    while i < n:
        c = body[i]
        if c == 0x5C:
            i += 2
            continue
        if c == d:
            fields.append(body[start:i])
            start = i + 1
        i += 1
    fields.append(body[start:])
    return fields


def _split_eol(line: bytes) -> tuple[bytes, bytes]:
    if line.endswith(b"\r\n"):
        return line[:-2], b"\r\n"
    if line.endswith(b"\n"):
        return line[:-1], b"\n"
    return line, b""


def _mask_copy_text(
    line: bytes, plan: ResultMaskPlan, delimiter: bytes, null: bytes
) -> bytes | None:
    body, eol = _split_eol(line)
    if body == b"\\.":
        return None  # end-of-data marker
    # An escape can hide a gate byte (\100 is '@'), so only an escape-free line may be
    # judged by the line-level gate; fields are gated again after unescaping.
    if plan.row_gate and body.find(b"\\") == -1 and not plan.masker.may_contain(body):
        return None
    fields = _split_text(body, delimiter)
    changed = False
    for i, field in enumerate(fields):
        if field == null:
            continue
        raw = _unescape_text(field) if b"\\" in field else field
        new = plan.mask_value(i, raw)
        if new is None:
            continue
        fields[i] = null if isinstance(new, SqlNull) else _escape_text(new, delimiter)
        changed = True
    return delimiter.join(fields) + eol if changed else None


def _parse_csv(
    body: bytes, delimiter: bytes, quote: bytes, escape: bytes
) -> list[tuple[bytes, bytes, bool]]:
    """Fields as (raw slice, unquoted value, was quoted)."""
    fields: list[tuple[bytes, bytes, bool]] = []
    n = len(body)
    i = 0
    while True:
        if i < n and body[i : i + 1] == quote:
            j = i + 1
            value = bytearray()
            while True:
                # Copy the run up to the next quote or escape character in one slice.
                stops = [k for k in (body.find(quote, j), body.find(escape, j)) if k != -1]
                if not stops:
                    raise ProtocolViolationError(
                        "COPY CSV row has an unterminated quoted field; refusing to forward "
                        "a row that could not be checked for sensitive values."
                    )
                k = min(stops)
                value += body[j:k]
                nxt = body[k + 1 : k + 2]
                if escape != quote and body[k : k + 1] == escape:
                    if nxt in (quote, escape):
                        value += nxt
                        j = k + 2
                    else:
                        value += escape
                        j = k + 1
                    continue
                if escape == quote and nxt == quote:
                    value += quote  # a doubled quote
                    j = k + 2
                    continue
                j = k + 1  # the closing quote
                break
            fields.append((body[i:j], bytes(value), True))
            i = j
        else:
            j = body.find(delimiter, i)
            j = n if j == -1 else j
            fields.append((body[i:j], body[i:j], False))
            i = j
        if i >= n:
            return fields
        if body[i : i + 1] != delimiter:
            raise ProtocolViolationError(
                "COPY CSV row has data after a closing quote; refusing to forward a row "
                "that could not be checked for sensitive values."
            )
        i += 1
        if i == n:
            fields.append((b"", b"", False))
            return fields


def _quote_csv(value: bytes, delimiter: bytes, quote: bytes, escape: bytes) -> bytes:
    if escape != quote:
        value = value.replace(escape, escape + escape)
    return quote + value.replace(quote, escape + quote) + quote


def _mask_copy_csv(
    line: bytes, plan: ResultMaskPlan, delimiter: bytes, null: bytes, quote: bytes, escape: bytes
) -> bytes | None:
    body, eol = _split_eol(line)
    if plan.row_gate and not plan.masker.may_contain(body):
        return None
    fields = _parse_csv(body, delimiter, quote, escape)
    out: list[bytes] = []
    changed = False
    for i, (raw, value, quoted) in enumerate(fields):
        if not quoted and value == null:
            out.append(raw)
            continue
        new = plan.mask_value(i, value)
        if new is None:
            out.append(raw)
            continue
        changed = True
        if isinstance(new, SqlNull):
            out.append(null)
        elif (
            quoted
            or any(ch in new for ch in (delimiter, quote, escape, b"\r", b"\n"))
            or new == null
            or new.startswith(b"\\.")
        ):
            out.append(_quote_csv(new, delimiter, quote, escape))
        else:
            out.append(new)
    return delimiter.join(out) + eol if changed else None


def mask_copy_line(
    line: bytes,
    plan: ResultMaskPlan,
    fmt: Literal["text", "csv"],
    *,
    delimiter: bytes | None = None,
    null: bytes | None = None,
    quote: bytes = b'"',
    escape: bytes | None = None,
) -> bytes | None:
    """Mask one row of ``COPY ... TO STDOUT`` output (one CopyData payload).

    ``fmt`` is the COPY format; ``delimiter``/``null``/``quote``/``escape`` are the COPY
    options when the statement set them (defaults: tab and ``\\N`` for text, comma and
    the empty string for CSV). Returns None when nothing changed. Masked fields are
    re-escaped (text) or re-quoted (CSV) so the row still parses; a field a column rule
    turns into NULL becomes the NULL marker.
    """
    if fmt == "text":
        return _mask_copy_text(line, plan, delimiter or b"\t", b"\\N" if null is None else null)
    if fmt == "csv":
        return _mask_copy_csv(
            line,
            plan,
            delimiter or b",",
            b"" if null is None else null,
            quote,
            escape or quote,
        )
    raise ValueError(f"COPY format {fmt!r} cannot be masked; use text or csv")
