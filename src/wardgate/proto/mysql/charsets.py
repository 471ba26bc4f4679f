"""Collation ids on the wire → character set names → Python codecs.

Owns the one question the codec cannot answer from bytes alone: how to turn the text a
peer sent (user names, schema names, SQL, column names) into ``str``. The handshake
carries a one-byte collation id, column definitions a two-byte one. The table below was
taken from MariaDB 10.11's ``information_schema.COLLATIONS`` plus MySQL 8's additions
(``utf8mb4_0900_*`` at 255-323, ``gb18030`` at 248-250); MariaDB's NO PAD variants are
their PAD collation's id + 1024.
"""

from __future__ import annotations

from functools import cache

#: The collation wardgate announces and uses upstream by default: utf8mb4_general_ci.
UTF8MB4_GENERAL_CI = 45
#: The ``binary`` pseudo-charset: bytes, not text.
BINARY = 63

_IDS_BY_CHARSET: dict[str, str] = {
    "armscii8": "32,64",
    "ascii": "11,65",
    "big5": "1,84",
    "binary": "63",
    "cp1250": "26,34,44,66,99",
    "cp1251": "14,23,50-52",
    "cp1256": "57,67",
    "cp1257": "29,58-59",
    "cp850": "4,80",
    "cp852": "40,81",
    "cp866": "36,68",
    "cp932": "95-96",
    "dec8": "3,69",
    "eucjpms": "97-98",
    "euckr": "19,85",
    "gb18030": "248-250",
    "gb2312": "24,86",
    "gbk": "28,87",
    "geostd8": "92-93",
    "greek": "25,70",
    "hebrew": "16,71",
    "hp8": "6,72",
    "keybcs2": "37,73",
    "koi8r": "7,74",
    "koi8u": "22,75",
    "latin1": "5,8,15,31,47-49,94",
    "latin2": "2,9,21,27,77",
    "latin5": "30,78",
    "latin7": "20,41-42,79",
    "macce": "38,43",
    "macroman": "39,53",
    "sjis": "13,88",
    "swe7": "10,82",
    "tis620": "18,89",
    "ucs2": "35,90,128-151,159,640-642",
    "ujis": "12,91",
    "utf16": "54-55,101-124,672-674",
    "utf16le": "56,62",
    "utf32": "60-61,160-183,736-738",
    "utf8mb3": "33,76,83,192-215,223,576-578",
    "utf8mb4": "45-46,224-247,255-323,608-610",
}

# MySQL's "latin1" is Windows-1252, not ISO-8859-1. Charsets without a Python codec
# (armscii8, dec8, geostd8, hp8, keybcs2, swe7) map to None: treat their text as bytes.
_PYTHON_CODEC: dict[str, str | None] = {
    "armscii8": None,
    "ascii": "ascii",
    "big5": "big5",
    "binary": None,
    "cp1250": "cp1250",
    "cp1251": "cp1251",
    "cp1256": "cp1256",
    "cp1257": "cp1257",
    "cp850": "cp850",
    "cp852": "cp852",
    "cp866": "cp866",
    "cp932": "cp932",
    "dec8": None,
    "eucjpms": "euc_jis_2004",
    "euckr": "euc_kr",
    "gb18030": "gb18030",
    "gb2312": "gb2312",
    "gbk": "gbk",
    "geostd8": None,
    "greek": "iso8859_7",
    "hebrew": "iso8859_8",
    "hp8": None,
    "keybcs2": None,
    "koi8r": "koi8_r",
    "koi8u": "koi8_u",
    "latin1": "cp1252",
    "latin2": "iso8859_2",
    "latin5": "iso8859_9",
    "latin7": "iso8859_13",
    "macce": "mac_latin2",
    "macroman": "mac_roman",
    "sjis": "shift_jis",
    "swe7": None,
    "tis620": "tis_620",
    "ucs2": "utf_16_be",
    "ujis": "euc_jp",
    "utf16": "utf_16_be",
    "utf16le": "utf_16_le",
    "utf32": "utf_32_be",
    "utf8mb3": "utf-8",
    "utf8mb4": "utf-8",
}


@cache
def _charset_by_id() -> dict[int, str]:
    table: dict[int, str] = {}
    for name, spec in _IDS_BY_CHARSET.items():
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            for cid in range(int(lo), int(hi or lo) + 1):
                table[cid] = name
    return table


def charset_name(collation_id: int) -> str | None:
    """The character set of a collation id, e.g. 45 → ``"utf8mb4"``; None if unknown."""
    table = _charset_by_id()
    name = table.get(collation_id)
    if name is None and 1024 <= collation_id < 2048:
        name = table.get(collation_id - 1024)  # MariaDB NO PAD variant
    return name


def python_codec(collation_id: int) -> str | None:
    """The Python codec for text in that collation, or None (binary / no codec / unknown)."""
    name = charset_name(collation_id)
    return None if name is None else _PYTHON_CODEC[name]


def text_codec(collation_id: int) -> str:
    """The codec to decode identifiers and SQL with: the collation's, else UTF-8."""
    return python_codec(collation_id) or "utf-8"
