"""Sensitive-value detectors: a cheap gate, a candidate regex, then a real validator.

This module owns *finding* sensitive values inside a byte string; it never decides who
may see them (``engine``/``config``) nor what they turn into (``formats``).

Every detector works on UTF-8 ``bytes`` exactly as they arrive on the wire, so the common
case ("nothing here") never pays for a decode. Each detector declares a gate the engine can
check with C-speed operations before any regex runs:

* ``digit_rules`` — for number-shaped values: at least N ASCII digits, optionally one of
  some bytes (``+`` for an international phone, ``-`` for an SSN) or upper-case letters
  (an IBAN's country code). One ``bytes.translate`` per value counts digits and keeps those bytes;
* ``signals`` — bytes of which every match holds one (``@`` for e-mail, ``_`` for
  GitHub/Stripe tokens); absent signals skip the detector before any literal search;
* ``triggers`` — at least one of these literals must occur (``bytes.find``);
* ``folded_triggers`` — as ``triggers`` but looked for in ``value.lower()``, and for
  ``assignment`` detectors only when the value holds ``=`` or ``:``.

Candidates that pass the regex are *validated* (Luhn and issuer ranges for cards, mod-97
and the country length table for IBANs, SSA rules for SSNs, libphonenumber's metadata for
phones, a decodable header for JWTs) so order numbers, UUIDs, timestamps, versions, IPv4
addresses and prices survive untouched.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

import phonenumbers
from phonenumbers import PhoneMetadata

__all__ = [
    "BUILTIN_KINDS",
    "SECRET_KINDS",
    "VALIDATORS",
    "CustomDetector",
    "Detector",
    "Finding",
    "build_detectors",
    "card_brand",
    "card_ok",
    "iban_ok",
    "luhn_ok",
    "mod97_ok",
    "normalize",
    "phone_e164",
    "ssn_ok",
]


class Finding(NamedTuple):
    """One sensitive value at ``value[start:end]``.

    ``normal`` is the canonical text a pseudonym is derived from (digits only for a card,
    lower-case e-mail, E.164 phone) so that the same value written two ways still joins.
    A NamedTuple because findings are built on the hot path and a frozen dataclass is
    several times slower to construct.
    """

    start: int
    end: int
    kind: str
    normal: str


class DigitRule(NamedTuple):
    """Passes when a value holds ``min_digits`` ASCII digits, and one of ``any_of`` (if
    given), and at least ``upper`` upper-case ASCII letters, and (with ``run``) a run of
    that many digits broken only by ASCII non-alphanumeric bytes (separators).

    ``run`` is what keeps hex and base64 (md5 sums, tokens, UUIDs: plenty of digits, but
    rarely 10 in a row) from reaching the detectors' regexes at all. ``bounded`` says the
    detector's regex only matches between ``(?<![0-9A-Za-z])`` and ``(?![0-9A-Za-z])``
    (its first and last digits are not glued to a letter or digit), so the digits glued to
    an ASCII letter at either end of a run cannot be part of a match and do not count:
    ``9f4567890b`` inside an md5 sum has no run at all for such a detector.
    """

    min_digits: int
    any_of: bytes = b""
    upper: int = 0
    run: int = 0
    bounded: bool = False


class Detector:
    """A named finder. Subclasses set the gate attributes and implement :meth:`find`.

    A detector with ``digit_rules`` is gated by them (and its ``triggers``, if any);
    otherwise by ``signals``/``triggers``/``folded_triggers``; with none of these it runs
    on every value.
    """

    kind: str = ""
    digit_rules: tuple[DigitRule, ...] = ()
    triggers: tuple[bytes, ...] = ()
    folded_triggers: tuple[bytes, ...] = ()
    # The folded triggers only matter when the value holds '=' or ':' (key/value forms).
    assignment: bool = False
    # Bytes of which every match holds at least one ('@' for e-mail). The whole-value gate
    # deletes everything but digits and signal bytes in one translate; a detector whose
    # signals are all absent is skipped without looking for its literals.
    signals: bytes = b""

    def find(self, value: bytes) -> list[Finding]:
        raise NotImplementedError


# --------------------------------------------------------------------------- validators

# Digit d doubled, with the digits of the product summed (Luhn), as an ASCII digit.
_LUHN_DOUBLE = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_ok(digits: bytes | str) -> bool:
    """Luhn mod-10 check over a string of ASCII digits (anything else fails)."""
    raw = digits.encode("ascii") if isinstance(digits, str) else digits
    if not raw or not raw.isdigit():
        return False
    # Odd positions from the right count as-is, even positions doubled; sum() over bytes
    # adds the ASCII codes, so subtract 48 per digit.
    total = sum(raw[-1::-2]) + sum(raw[-2::-2].translate(_LUHN_DOUBLE)) - 48 * len(raw)
    return total % 10 == 0


# (first-digits range, allowed lengths, brand). Ordered: the first match wins.
_CARD_RANGES: tuple[tuple[int, int, int, frozenset[int], str], ...] = (
    # prefix length, low, high, lengths, brand
    (1, 4, 4, frozenset({13, 16, 19}), "visa"),
    (2, 51, 55, frozenset({16}), "mastercard"),
    (4, 2221, 2720, frozenset({16}), "mastercard"),
    (2, 34, 34, frozenset({15}), "amex"),
    (2, 37, 37, frozenset({15}), "amex"),
    (4, 6011, 6011, frozenset({16, 17, 18, 19}), "discover"),
    (3, 644, 649, frozenset({16, 17, 18, 19}), "discover"),
    (2, 65, 65, frozenset({16, 17, 18, 19}), "discover"),
    (4, 3528, 3589, frozenset({16, 17, 18, 19}), "jcb"),
    (3, 300, 305, frozenset({14, 15, 16, 17, 18, 19}), "diners"),
    (4, 3095, 3095, frozenset({14, 15, 16, 17, 18, 19}), "diners"),
    (2, 36, 36, frozenset({14, 15, 16, 17, 18, 19}), "diners"),
    (2, 38, 39, frozenset({14, 15, 16, 17, 18, 19}), "diners"),
    (2, 62, 62, frozenset({16, 17, 18, 19}), "unionpay"),
)


def card_brand(digits: bytes | str) -> str | None:
    """The issuer whose prefix range *and* length rules ``digits`` fits, else None."""
    text = digits.decode("ascii") if isinstance(digits, bytes) else digits
    n = len(text)
    if not 13 <= n <= 19 or not text.isdigit():
        return None
    p4 = int(text[:4])
    prefixes = (0, p4 // 1000, p4 // 100, p4 // 10, p4)
    for plen, low, high, lengths, brand in _CARD_RANGES:
        if low <= prefixes[plen] <= high:
            return brand if n in lengths else None
    return None


def card_ok(digits: bytes | str) -> bool:
    """A payment card number: a known issuer range, a length that issuer uses, and Luhn."""
    return card_brand(digits) is not None and luhn_ok(digits)


# ISO 13616 registry: country code -> total IBAN length.
IBAN_LENGTHS: Mapping[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip


def mod97_ok(text: bytes | str) -> bool:
    """ISO 13616 / ISO 7064 mod 97-10: move the first four characters to the end,
    letters become 10..35, and the resulting integer is 1 modulo 97."""
    s = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    s = s.replace(" ", "").upper()
    if len(s) < 5 or not s.isalnum() or not s.isascii():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def iban_ok(text: bytes | str) -> bool:
    """An IBAN: known country, that country's exact length, numeric check digits, mod-97."""
    s = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    s = s.replace(" ", "")
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit():
        return False
    return mod97_ok(s)


def ssn_ok(text: bytes | str) -> bool:
    """US SSN by the SSA's rules: area not 000/666/900-999, group not 00, serial not 0000."""
    s = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    digits = s.replace("-", "").replace(" ", "")
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = int(digits[:3]), digits[3:5], digits[5:]
    return area not in (0, 666) and area < 900 and group != "00" and serial != "0000"


# ------------------------------------------------------------------ phone validation
# phonenumbers.parse + is_valid_number costs ~40 µs, which is more than a whole row may
# cost. We use libphonenumber's *metadata* instead: the same per-region number patterns
# is_valid_number checks, compiled once into one regex per region, cached per candidate.

_PHONE_TYPE_FIELDS = (
    "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
    "voip", "pager", "uan", "voicemail",
)  # fmt: skip


@functools.cache
def _region_pattern(region: str) -> re.Pattern[str] | None:
    md = PhoneMetadata.metadata_for_region(region)
    if md is None:
        return None
    parts = []
    for name in _PHONE_TYPE_FIELDS:
        desc = getattr(md, name, None)
        pattern = getattr(desc, "national_number_pattern", None) if desc else None
        if pattern:
            parts.append(f"(?:{pattern})")
    return re.compile("|".join(parts)) if parts else None


def _nsn_valid(region: str, nsn: str) -> bool:
    pattern = _region_pattern(region)
    return pattern is not None and pattern.fullmatch(nsn) is not None


@functools.lru_cache(maxsize=16384)
def _international_e164(digits: str) -> str | None:
    """``digits`` follow a ``+``: split off the calling code and check the rest."""
    for cc_len in (1, 2, 3):
        cc = int(digits[:cc_len])
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc)
        if regions:
            nsn = digits[cc_len:]
            if any(_nsn_valid(r, nsn) for r in regions if r != "001"):
                return "+" + digits
            return None  # calling codes are prefix-free: no other split can be right
    return None


@functools.lru_cache(maxsize=16384)
def _national_e164(digits: str, regions: tuple[str, ...], *, trunk: bool) -> str | None:
    """A national-format number (no ``+``) valid in one of ``regions``. With ``trunk``,
    a region that has a national (trunk) prefix requires it: ``020 7946 0958`` is a UK
    number, ``1234567890`` written without the ``0`` is not."""
    for region in regions:
        md = PhoneMetadata.metadata_for_region(region)
        if md is None:
            continue
        prefix = md.national_prefix
        if prefix and digits.startswith(prefix):
            nsn = digits[len(prefix) :]
        elif prefix and trunk:
            continue
        else:
            nsn = digits
        if _nsn_valid(region, nsn):
            return f"+{md.country_code}{nsn}"
    return None


_NANP_REGIONS: tuple[str, ...] = tuple(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])
_NON_DIGITS = bytes(b for b in range(256) if not 48 <= b <= 57)


@functools.lru_cache(maxsize=16384)
def _phone_lookup(raw: bytes, nanp: bool, others: tuple[str, ...]) -> str | None:
    digits = raw.translate(None, _NON_DIGITS).decode("ascii")
    if not 7 <= len(digits) <= 15:
        return None
    if raw.lstrip().startswith(b"+"):
        return _international_e164(digits)
    if nanp:
        national = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
        if len(national) == 10 and (found := _national_e164(national, _NANP_REGIONS, trunk=False)):
            return found
    return _national_e164(digits, others, trunk=True) if others else None


def _split_regions(regions: Sequence[str]) -> tuple[bool, tuple[str, ...]]:
    upper = [r.upper() for r in regions]
    return any(r in _NANP_REGIONS for r in upper), tuple(r for r in upper if r not in _NANP_REGIONS)


def phone_e164(text: bytes | str, regions: Sequence[str] = ("US",)) -> str | None:
    """E.164 form of a phone number written with ``+`` or in a national format of one of
    ``regions``; None when libphonenumber's metadata says it is not a valid number."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return _phone_lookup(raw, *_split_regions(regions))


VALIDATORS: Mapping[str, Callable[[bytes], bool]] = {
    "luhn": lambda raw: luhn_ok(bytes(c for c in raw if 48 <= c <= 57)),
    "card": lambda raw: card_ok(bytes(c for c in raw if 48 <= c <= 57)),
    "mod97": mod97_ok,
    "iban": iban_ok,
    "ssn": ssn_ok,
    "phone": lambda raw: phone_e164(raw) is not None,
}
"""Validators a custom detector may name in config (``validator: luhn``)."""


# ------------------------------------------------------------------------- detectors

_NOT_ALNUM_BEFORE = rb"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = rb"(?![0-9A-Za-z])"


class CardDetector(Detector):
    """Payment cards: contiguous 13-19 digits, or printed groups (4-4-4-4[-1..3], 4-6-4,
    4-6-5, 4-3-3-3) joined by one kind of separator (space or dash).

    Grouping is restricted to how cards are printed so that UUID-like or date-like digit
    runs can never be stitched into a Luhn-valid 16-digit window.
    """

    kind = "card"
    digit_rules = (DigitRule(13, run=13, bounded=True),)
    # A maximal run of digit groups. Letters glued on either side (hex, base64) or a
    # decimal point (prices, versions, IPs) disqualify the run.
    # The regex itself demands 13+ digits so short runs (dates, times) cost nothing more.
    _RUN = re.compile(
        _NOT_ALNUM_BEFORE
        + rb"(?<![0-9]\.)(?:[0-9][ \-]?){12,}[0-9]"
        + _NOT_ALNUM_AFTER
        + rb"(?!\.[0-9])"
    )
    _GROUP = re.compile(rb"[0-9]+")
    _SHAPES: tuple[tuple[int, ...], ...] = (
        (4, 4, 4, 4, 3), (4, 4, 4, 4, 2), (4, 4, 4, 4, 1), (4, 4, 4, 4),
        (4, 6, 5), (4, 6, 4), (4, 3, 3, 3),
    )  # fmt: skip
    _SHAPE_SET = frozenset(_SHAPES)

    def find(self, value: bytes) -> list[Finding]:
        out: list[Finding] = []
        for m in self._RUN.finditer(value):
            run = m.group()
            base = m.start()
            if run.isdigit():
                if 13 <= len(run) <= 19 and card_ok(run):
                    out.append(Finding(base, base + len(run), "card", run.decode()))
                continue
            out.extend(self._grouped(run, base))
        return out

    def _grouped(self, run: bytes, base: int) -> list[Finding]:
        has_space = run.find(b" ") != -1
        if has_space and run.find(b"-") != -1:
            return self._windows(run, base)  # mixed separators: only windows can match
        groups = run.split(b" " if has_space else b"-")
        if tuple(len(g) for g in groups) in self._SHAPE_SET:
            # The common case: the whole run is one printed card.
            digits = b"".join(groups)
            if card_ok(digits):
                return [Finding(base, base + len(run), "card", digits.decode())]
        return self._windows(run, base)

    def _windows(self, run: bytes, base: int) -> list[Finding]:
        """Every window of consecutive groups that is printed like a card."""
        spans = [(g.start(), g.end()) for g in self._GROUP.finditer(run)]
        sizes = [e - s for s, e in spans]
        out: list[Finding] = []
        i = 0
        while i < len(spans):
            hit = None
            if 13 <= sizes[i] <= 19:
                digits = run[spans[i][0] : spans[i][1]]
                if card_ok(digits):
                    hit = (i, i, digits)
            if hit is None and sizes[i] == 4:
                for shape in self._SHAPES:
                    j = i + len(shape) - 1
                    if j >= len(spans) or tuple(sizes[i : j + 1]) != shape:
                        continue
                    seps = {run[spans[k][1]] for k in range(i, j)}
                    if len(seps) != 1:
                        continue
                    digits = b"".join(run[s:e] for s, e in spans[i : j + 1])
                    if card_ok(digits):
                        hit = (i, j, digits)
                        break
            if hit is None:
                i += 1
                continue
            first, last, digits = hit
            out.append(
                Finding(base + spans[first][0], base + spans[last][1], "card", digits.decode())
            )
            i = last + 1
        return out


class IbanDetector(Detector):
    """IBANs in electronic (``GB82WEST1234...``) or printed (``GB82 WEST 1234 ...``) form.

    Upper-case only: lower-case IBANs are rare and allowing them would let ordinary words
    followed by digits reach the validator.
    """

    kind = "iban"
    # Every IBAN in practice carries at least 6 digits (2 check digits + bank/account
    # digits; all-letter BBANs are allowed by a few formats but are not issued) and
    # always a two-letter upper-case country code.
    digit_rules = (DigitRule(6, upper=2),)
    _CANDIDATE = re.compile(
        _NOT_ALNUM_BEFORE
        + rb"[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{1,4}){3,8})"
        + _NOT_ALNUM_AFTER
    )

    def find(self, value: bytes) -> list[Finding]:
        out: list[Finding] = []
        for m in self._CANDIDATE.finditer(value):
            text = m.group().decode("ascii")
            expected = IBAN_LENGTHS.get(text[:2])
            if expected is None:
                continue
            if " " not in text:
                if iban_ok(text):
                    out.append(Finding(m.start(), m.end(), "iban", text))
                continue
            # Printed form: the greedy match may have swallowed a trailing word ("EUR");
            # cut at the group boundary where the country's length is reached.
            count = 0
            for pos, ch in enumerate(text):
                if ch != " ":
                    count += 1
                if count == expected:
                    end = pos + 1
                    if end < len(text) and text[end] != " ":
                        break  # length reached inside a group: not this IBAN
                    compact = text[:end].replace(" ", "")
                    if iban_ok(compact):
                        out.append(Finding(m.start(), m.start() + end, "iban", compact))
                    break
        return out


class SsnDetector(Detector):
    """US SSNs in dashed form only; undashed SSNs need a column rule (``*.ssn``) because
    every 9-digit number would otherwise be a candidate."""

    kind = "ssn"
    digit_rules = (DigitRule(9, b"-", run=9, bounded=True),)
    _CANDIDATE = re.compile(
        rb"(?<![0-9A-Za-z\-])[0-9]{3}-[0-9]{2}-[0-9]{4}" + _NOT_ALNUM_AFTER + rb"(?!-[0-9])"
    )

    def find(self, value: bytes) -> list[Finding]:
        out: list[Finding] = []
        for m in self._CANDIDATE.finditer(value):
            text = m.group().decode("ascii")
            if ssn_ok(text):
                out.append(Finding(m.start(), m.end(), "ssn", text.replace("-", "")))
        return out


class EmailDetector(Detector):
    """E-mail addresses, found by expanding around each ``@`` (linear time, unlike a
    leftmost-match regex which retries every start position of a long word)."""

    kind = "email"
    triggers = (b"@",)
    signals = b"@"
    # RFC 5322 allows more, but '/', '=' and friends would swallow the "email=" of a query
    # string; the apostrophe stays because names like o'neil use it.
    _LOCAL_CHARS = rb"A-Za-z0-9._%+'\-\x80-\xff"
    # Applied to the *reversed* bytes before the '@' so a plain anchored match finds the
    # local part in one pass.
    _LOCAL_REVERSED = re.compile(rb"[" + _LOCAL_CHARS + rb"]{1,256}")
    _DOMAIN = re.compile(rb"[A-Za-z0-9\-\x80-\xff]+(?:\.[A-Za-z0-9\-\x80-\xff]+)+")
    _URL_USERINFO = re.compile(rb"://[^\s/?#@]*:\Z")
    _WHOLE = re.compile(
        rb"[A-Za-z0-9_%+\-][A-Za-z0-9._%+'\-]{0,63}@([A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})+)"
    )

    def whole(self, value: bytes) -> Finding | None:
        """The value *is* one plain ASCII address (an e-mail column): one regex instead
        of the general search. None means "use :meth:`find`", not "no address"."""
        m = self._WHOLE.fullmatch(value)
        if m is None or value.find(b".@") != -1 or value.find(b"..") != -1:
            return None
        domain = m.group(1)
        if not _tld_ok(domain[domain.rfind(b".") + 1 :]) or not _labels_ok(domain):
            return None
        return Finding(0, len(value), "email", value.decode("ascii").lower())

    def find(self, value: bytes) -> list[Finding]:
        out: list[Finding] = []
        at = value.find(b"@")
        while at != -1:
            finding = self._at(value, at)
            if finding is not None:
                out.append(finding)
                at = value.find(b"@", finding.end)
            else:
                at = value.find(b"@", at + 1)
        return out

    def _at(self, value: bytes, at: int) -> Finding | None:
        window = value[max(0, at - 256) : at][::-1]
        lm = self._LOCAL_REVERSED.match(window)
        dm = self._DOMAIN.match(value, at + 1)
        if lm is None or dm is None:
            return None
        local = lm.group()[::-1].lstrip(b".'")  # a quote before the address is syntax
        if not local or local.endswith(b".") or local.find(b"..") != -1:
            return None
        start = at - len(local)
        # 'scheme://user:password@host' is a URL's userinfo, not an address.
        if value.find(b"://", 0, start) != -1 and self._URL_USERINFO.search(
            value, max(0, start - 256), start
        ):
            return None
        domain = dm.group()
        if not _tld_ok(domain[domain.rfind(b".") + 1 :]) or not _labels_ok(domain):
            labels = domain.split(b".")
            while len(labels) >= 2 and not _tld_ok(labels[-1]):
                labels.pop()  # 'a@b.com.2024' -> 'a@b.com'
            if len(labels) < 2 or not all(_label_ok(lb) for lb in labels):
                return None
            domain = b".".join(labels)
        end = at + 1 + len(domain)
        return Finding(start, end, "email", value[start:end].decode("utf-8", "replace").lower())


def _labels_ok(domain: bytes) -> bool:
    """All labels of a dotted domain are 1-63 bytes without a leading/trailing hyphen."""
    if domain.startswith(b"-") or domain.endswith(b"-"):
        return False
    if domain.find(b".-") != -1 or domain.find(b"-.") != -1 or domain.find(b"..") != -1:
        return False
    return len(domain) <= 63 or all(len(lb) <= 63 for lb in domain.split(b"."))


def _label_ok(label: bytes) -> bool:
    return 0 < len(label) <= 63 and not label.startswith(b"-") and not label.endswith(b"-")


def _tld_ok(label: bytes) -> bool:
    if label.startswith(b"xn--"):
        return len(label) > 4
    if not label.isascii():
        return True  # an internationalized TLD in UTF-8
    return len(label) >= 2 and label.isalpha()


class PhoneDetector(Detector):
    """Phone numbers: ``+`` international numbers, NANP national formats
    (``(415) 555-2671``, ``415-555-2671``, ``415.555.2671``) and trunk-``0`` national
    formats (``020 7946 0958``) for the configured regions.

    Bare digit strings without ``+`` are never candidates: a 10-digit order id is not a
    phone. Each candidate is validated against libphonenumber's per-region patterns.
    """

    kind = "phone"
    _EDGE_BEFORE = rb"(?<![0-9A-Za-z+])(?<![0-9][.\-/:])"
    _EDGE_AFTER = rb"(?![0-9A-Za-z])(?![.\-/:][0-9])"
    _INTL = rb"\+[1-9](?:[ .\-]?\(?[0-9]\)?){6,14}"
    # An optional leading 1 needs a separator or '(' after it ("1540.359.8137" is not).
    _NANP = (
        rb"(?:1(?:[ .\-]|(?=\()))?"
        rb"(?:\([2-9][0-9]{2}\)|[2-9][0-9]{2})[ .\-]?[2-9][0-9]{2}[ .\-][0-9]{4}"
    )
    _TRUNK = rb"(?:\(0[0-9]{1,4}\)|0[0-9]{1,4})(?:[ .\-][0-9]{2,4}){2,4}"

    def __init__(self, regions: Sequence[str] = ("US",)) -> None:
        self.regions = tuple(r.upper() for r in regions)
        alternatives = [self._INTL]
        if any(r in _NANP_REGIONS for r in self.regions):
            alternatives.append(self._NANP)
        trunk = any(r not in _NANP_REGIONS for r in self.regions)
        if trunk:
            alternatives.append(self._TRUNK)
            self.digit_rules = (DigitRule(7, run=7, bounded=True),)
        else:
            # Without '+' only NANP formats remain, and those carry 10 digits.
            self.digit_rules = (
                DigitRule(7, b"+", run=7, bounded=True),
                DigitRule(10, run=10, bounded=True),
            )
        self._nanp, self._others = _split_regions(self.regions)
        self._candidate = re.compile(
            self._EDGE_BEFORE + rb"(?:" + b"|".join(alternatives) + rb")" + self._EDGE_AFTER
        )

    def find(self, value: bytes) -> list[Finding]:
        out: list[Finding] = []
        nanp, others = self._nanp, self._others
        for m in self._candidate.finditer(value):
            raw = m.group()
            e164 = _phone_lookup(raw, nanp, others)
            end = len(raw)
            # The candidate regex is greedy: "+14155552671 2 times" takes the " 2" too.
            # Drop trailing groups, longest prefix first, until a valid number remains.
            while e164 is None:
                cut = max(raw.rfind(sep, 0, end) for sep in (b" ", b".", b"-", b"("))
                if cut <= 1:
                    break
                end = len(raw[:cut].rstrip(b" .-("))
                e164 = _phone_lookup(raw[:end], nanp, others)
            if e164 is not None:
                out.append(Finding(m.start(), m.start() + end, "phone", e164))
        return out


# ---------------------------------------------------------------------------- secrets


class RegexSecretDetector(Detector):
    """A secret with a distinctive literal shape; ``group`` selects what is masked (the
    password, not the ``password=`` key)."""

    def __init__(
        self,
        kind: str,
        pattern: bytes,
        *,
        triggers: tuple[bytes, ...] = (),
        folded_triggers: tuple[bytes, ...] = (),
        flags: int = 0,
        validate: Callable[[bytes], bool] | None = None,
        assignment: bool = False,
        signals: bytes = b"",
    ) -> None:
        self.kind = kind
        self.assignment = assignment
        self.signals = signals
        self.triggers = triggers
        self.folded_triggers = folded_triggers
        self._re = re.compile(pattern, flags)
        self._validate = validate

    def find(self, value: bytes) -> list[Finding]:
        out: list[Finding] = []
        for m in self._re.finditer(value):
            # Mask the first group that took part in the match (alternative value shapes
            # are separate groups), or the whole match when the pattern has none.
            idx = next((g for g in range(1, (self._re.groups or 0) + 1) if m.start(g) >= 0), 0)
            start, end = m.span(idx)
            if start == end:
                continue
            raw = value[start:end]
            if self._validate is not None and not self._validate(raw):
                continue
            out.append(Finding(start, end, self.kind, raw.decode("utf-8", "replace")))
        return out


def _jwt_header_ok(raw: bytes) -> bool:
    """A JWT's first segment must decode to a JSON object naming an algorithm or type."""
    head = raw.split(b".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(head + b"=" * (-len(head) % 4))
        obj = json.loads(decoded)
    except (binascii.Error, ValueError):
        return False
    return isinstance(obj, dict) and ("alg" in obj or "typ" in obj)


class PrivateKeyDetector(Detector):
    """PEM private key blocks (RSA, EC, OpenSSH, PKCS#8, PGP). A block without its END
    line (a truncated value) is masked to the end of the value."""

    kind = "private_key"
    triggers = (b"-----BEGIN",)
    signals = b"-"
    _BEGIN = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
    _END = re.compile(rb"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")

    def find(self, value: bytes) -> list[Finding]:
        out: list[Finding] = []
        pos = 0
        while (begin := self._BEGIN.search(value, pos)) is not None:
            end_m = self._END.search(value, begin.end())
            end = end_m.end() if end_m is not None else len(value)
            block = value[begin.start() : end].decode("utf-8", "replace")
            out.append(Finding(begin.start(), end, self.kind, block))
            pos = end
        return out


_KV_KEYS = rb"(?:password|passwd|passphrase|(?<![a-z])pwd|(?<![a-z])secret|token|api_?key|apikey)"
_QUOTED = rb"\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)'"


def _secret_detectors() -> list[Detector]:
    return [
        PrivateKeyDetector(),
        RegexSecretDetector(
            "jwt",
            rb"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]*",
            triggers=(b"eyJ",),
            signals=b".",
            validate=_jwt_header_ok,
        ),
        RegexSecretDetector(
            "aws_secret_key",
            rb"(?:aws_?)?secret_?access_?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
            folded_triggers=(b"secret",),
            signals=b"=:",
            flags=re.IGNORECASE,
            assignment=True,
        ),
        RegexSecretDetector(
            "aws_access_key",
            rb"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
            # 'IA' is the part both prefixes share: one search instead of two.
            triggers=(b"IA",),
        ),
        RegexSecretDetector(
            "github_token",
            rb"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,242})"
            rb"(?![A-Za-z0-9_])",
            triggers=(b"_",),
            signals=b"_",
        ),
        RegexSecretDetector(
            "slack_token",
            rb"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9\-]{10,250}",
            triggers=(b"xox",),
            signals=b"-",
        ),
        RegexSecretDetector(
            "stripe_key",
            rb"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,247}(?![A-Za-z0-9])",
            triggers=(b"_",),
            signals=b"_",
        ),
        RegexSecretDetector(
            "password",
            # scheme://user:PASSWORD@host — the password may hold ':' but not '/', '?',
            # '#' or '@' (those are percent-encoded in a valid URL).
            rb"[A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s:/?#@\"'<>]*:([^\s@/?#\"'<>]+)@",
            triggers=(b"://",),
            signals=b"@",
        ),
        RegexSecretDetector(
            "password",
            # JSON / Python-dict form: "db_password": "x", including JSON that was itself
            # escaped into a string (\"password\": \"x\").
            rb"\\?[\"'][A-Za-z0-9_.\-]*"
            + _KV_KEYS
            + rb"\\?[\"']\s*:\s*(?:"
            + _QUOTED
            + rb"|\\\"((?:[^\"\\]|\\[^\"])*)\\\")",
            folded_triggers=(b"pass", b"pwd", b"secret", b"token", b"key"),
            signals=b"=:",
            flags=re.IGNORECASE,
            assignment=True,
        ),
        RegexSecretDetector(
            "password",
            # key=value / key: value (connection strings, env files, YAML, query strings).
            # Unquoted YAML/JSON literals (true, null, yes, ...) are configuration, not secrets.
            _KV_KEYS
            + rb"(?![a-z\"'\\])\s*[:=]\s*(?:"
            + _QUOTED
            + rb"|(?!(?:true|false|null|none|yes|no|on|off)(?![^\s;&,\"'{}\[\]()<>]))"
            + rb"([^\s;&,\"'{}\[\]()<>]+))",
            folded_triggers=(b"pass", b"pwd", b"secret", b"token", b"key"),
            signals=b"=:",
            flags=re.IGNORECASE,
            assignment=True,
        ),
    ]


SECRET_KINDS: frozenset[str] = frozenset(
    {
        "private_key", "jwt", "aws_secret_key", "aws_access_key", "github_token",
        "slack_token", "stripe_key", "password",
    }
)  # fmt: skip
"""Kinds that the config alias ``secrets`` stands for."""

BUILTIN_KINDS: tuple[str, ...] = (
    "private_key", "jwt", "aws_secret_key", "aws_access_key", "github_token",
    "slack_token", "stripe_key", "password", "card", "iban", "ssn", "email", "phone",
)  # fmt: skip
"""Built-in detector kinds in priority order: when two findings overlap the earlier kind
wins (a password inside a URL beats the e-mail-looking ``pass@host``)."""


class CustomDetector(Detector):
    """A detector from config: a regex (compiled as a *bytes* pattern, so ``\\d`` and
    classes are ASCII), an optional validator from :data:`VALIDATORS`, and a gate.

    A custom detector with neither ``min_digits`` nor ``contains`` runs its regex on every
    scanned value; the config docs say so.
    """

    def __init__(
        self,
        kind: str,
        pattern: str,
        *,
        validator: str | None = None,
        group: int = 0,
        min_digits: int = 0,
        contains: Iterable[str] = (),
        ignore_case: bool = False,
    ) -> None:
        self.kind = kind
        self._re = re.compile(pattern.encode("utf-8"), re.IGNORECASE if ignore_case else 0)
        self._group = group
        self._validate = VALIDATORS[validator] if validator else None
        if min_digits:
            self.digit_rules = (DigitRule(min_digits),)
        literals = tuple(c.encode("utf-8") for c in contains)
        if ignore_case:
            self.folded_triggers = tuple(lit.lower() for lit in literals)
        else:
            self.triggers = literals

    def find(self, value: bytes) -> list[Finding]:
        out: list[Finding] = []
        for m in self._re.finditer(value):
            start, end = m.span(self._group)
            if start < 0 or start == end:
                continue
            raw = value[start:end]
            if self._validate is not None and not self._validate(raw):
                continue
            out.append(Finding(start, end, self.kind, raw.decode("utf-8", "replace")))
        return out


def build_detectors(
    kinds: Iterable[str],
    *,
    phone_regions: Sequence[str] = ("US",),
    custom: Sequence[CustomDetector] = (),
) -> list[Detector]:
    """The detectors for ``kinds`` (built-in or custom names) in priority order:
    secrets, then custom detectors, then cards, IBANs, SSNs, e-mail, phones."""
    wanted = set(kinds)
    out: list[Detector] = [d for d in _secret_detectors() if d.kind in wanted]
    out.extend(c for c in custom if c.kind in wanted)
    if "card" in wanted:
        out.append(CardDetector())
    if "iban" in wanted:
        out.append(IbanDetector())
    if "ssn" in wanted:
        out.append(SsnDetector())
    if "email" in wanted:
        out.append(EmailDetector())
    if "phone" in wanted:
        out.append(PhoneDetector(phone_regions))
    return out


def normalize(kind: str, raw: bytes, phone_regions: Sequence[str] = ("US",)) -> str:
    """The canonical form of a whole value masked by a column rule, matching what the
    detector of the same kind would produce, so pseudonyms join across both paths."""
    text = raw.decode("utf-8", "replace").strip()
    if kind in ("card", "ssn"):
        digits = "".join(c for c in text if c.isdigit())
        return digits or text
    if kind == "iban":
        return text.replace(" ", "").upper()
    if kind == "email":
        return text.lower()
    if kind == "phone":
        return phone_e164(text, phone_regions) or text
    return text
