"""What a sensitive value turns into: ``redact``, ``last4`` or ``pseudonym``.

This module owns the replacement bytes only; finding values is ``detectors``' job and
deciding who gets which format is ``config``'s.

Choices, and why:

* ``redact`` is a fixed token ``[REDACTED:<kind>]``, not same-length ``*``: a same-length
  mask still leaks the length (a 4-digit PIN versus a 12-character password) and the kind
  label tells the reader *why* the value is gone. The token is ASCII without quotes,
  backslashes, commas, braces or whitespace, so it stays valid inside UTF-8 text, JSON
  strings, array literals and COPY fields.
* ``last4`` keeps the last four letters/digits and replaces every other letter or digit
  with ``*``, keeping separators: ``**** **** **** 1111``, ``***-**-6789``. Values with
  fewer than 8 letters/digits are starred completely (keeping 4 of 6 would reveal most).
* ``pseudonym`` is a keyed HMAC-SHA256: the same value always gives the same token, so
  joins and GROUP BY still work, but without the key the token cannot be reversed or
  brute-forced from a dictionary of card numbers. E-mail keeps an e-mail shape
  (``u_<hex>@masked.invalid``; ``.invalid`` is reserved by RFC 2606) so validators and
  ORMs that insist on an address keep working.
* Numeric contexts (an ``int8``/``numeric`` column, a JSON-free integer array) must stay
  numbers: ``redact`` -> ``0``; ``last4`` -> the last four digits as an integer (a card
  ``4111111111111111`` becomes ``1111``, i.e. ``0000000000001111``); ``pseudonym`` ->
  ``9`` followed by keyed digits, same digit count where the type allows. No card brand
  starts with 9, so a masked number is never mistaken for a card again.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from enum import StrEnum

__all__ = [
    "DEFAULT_FORMATS",
    "Formatter",
    "MaskFormat",
    "last4_number",
    "last4_text",
    "pseudonym_digits",
    "pseudonym_token",
    "redact_token",
]


class MaskFormat(StrEnum):
    REDACT = "redact"
    LAST4 = "last4"
    PSEUDONYM = "pseudonym"


DEFAULT_FORMATS: Mapping[str, MaskFormat] = {"card": MaskFormat.LAST4}
"""Formats used when config names none: cards keep their last four, everything else is
redacted (``pseudonym`` needs a key, so it is never a silent default)."""

EMAIL_KINDS = frozenset({"email"})


def redact_token(kind: str) -> bytes:
    return b"[REDACTED:" + kind.encode("ascii") + b"]"


_ASCII_ALNUM = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_STAR_ALNUM = bytes.maketrans(_ASCII_ALNUM, b"*" * len(_ASCII_ALNUM))


def last4_text(raw: bytes) -> bytes:
    """Star every letter/digit except the last four; separators and punctuation stay."""
    if raw.isascii():
        alnum = len(raw) - len(raw.translate(None, _ASCII_ALNUM))
        if alnum < 8:
            return raw.translate(_STAR_ALNUM)
        cut = len(raw)
        kept = 0
        while kept < 4:
            cut -= 1
            if raw[cut : cut + 1].isalnum():
                kept += 1
        return raw[:cut].translate(_STAR_ALNUM) + raw[cut:]
    text = raw.decode("utf-8", "replace")
    alnum = sum(1 for c in text if c.isalnum())
    budget = alnum - (4 if alnum >= 8 else 0)
    out = []
    for c in text:
        if c.isalnum() and budget > 0:
            out.append("*")
            budget -= 1
        else:
            out.append(c)
    return "".join(out).encode("utf-8")


def _digest(key: bytes, kind: str, normal: str) -> bytes:
    # The kind is part of the message so that the same string seen as two different kinds
    # (rare, but possible with custom detectors) does not link across them.
    return hmac.digest(key, kind.encode("utf-8") + b"\x00" + normal.encode("utf-8"), hashlib.sha256)


def pseudonym_token(key: bytes, kind: str, normal: str) -> bytes:
    """``tok_<16 hex>`` (64 bits: collision-free for joins at any realistic table size);
    e-mail kinds get ``u_<16 hex>@masked.invalid``."""
    hexed = _digest(key, kind, normal).hex()[:16].encode("ascii")
    if kind in EMAIL_KINDS:
        return b"u_" + hexed + b"@masked.invalid"
    return b"tok_" + hexed


def pseudonym_digits(key: bytes, kind: str, normal: str, ndigits: int) -> str:
    """``9`` followed by ``ndigits - 1`` keyed digits (at least 2 digits in total)."""
    ndigits = max(ndigits, 2)
    value = int.from_bytes(_digest(key, kind, normal)[:16], "big") % 10 ** (ndigits - 1)
    return "9" + str(value).zfill(ndigits - 1)


def last4_number(digits: str) -> str:
    """The last four digits as an integer literal; ``0`` when there are fewer than 8."""
    only = "".join(c for c in digits if c.isdigit())
    if len(only) < 8:
        return "0"
    return str(int(only[-4:]))


class Formatter:
    """Renders replacements with the format configured for each kind."""

    __slots__ = ("_formats", "_key", "_tokens")

    def __init__(self, formats: Mapping[str, MaskFormat], key: bytes | None) -> None:
        self._formats = dict(formats)
        self._key = key
        self._tokens: dict[str, bytes] = {}
        if key is None and MaskFormat.PSEUDONYM in self._formats.values():
            kinds = sorted(k for k, f in self._formats.items() if f is MaskFormat.PSEUDONYM)
            raise ValueError(
                f"masking format 'pseudonym' for {', '.join(kinds)} needs a key: set "
                "masking.pseudonym_key_env (or masking.pseudonym_key)"
            )

    def format_of(self, kind: str) -> MaskFormat:
        return self._formats.get(kind) or DEFAULT_FORMATS.get(kind, MaskFormat.REDACT)

    def text(self, kind: str, raw: bytes, normal: str) -> bytes:
        """Replacement for ``raw`` inside text; always valid UTF-8."""
        fmt = self.format_of(kind)
        if fmt is MaskFormat.LAST4:
            return last4_text(raw)
        if fmt is MaskFormat.PSEUDONYM and self._key is not None:
            return pseudonym_token(self._key, kind, normal)
        return self.redact(kind)

    def number(self, kind: str, normal: str, ndigits: int, capacity: int | None) -> str:
        """Replacement digits for a value that must stay an integer.

        ``ndigits`` is the original digit count; ``capacity`` the most digits the column
        type can always hold (``int4``: 9), or None when unbounded (``numeric``).
        """
        fmt = self.format_of(kind)
        if fmt is MaskFormat.LAST4:
            return last4_number(normal)
        if fmt is MaskFormat.PSEUDONYM and self._key is not None:
            width = ndigits if capacity is None else min(ndigits, capacity)
            return pseudonym_digits(self._key, kind, normal, width)
        return "0"

    def redact(self, kind: str) -> bytes:
        """The replacement for merged overlapping findings (always ``redact``: a
        ``last4`` of two stitched values could reveal part of either)."""
        token = self._tokens.get(kind)
        if token is None:
            token = self._tokens[kind] = redact_token(kind)
        return token
