"""Collation ids → charsets → Python codecs (table from MariaDB's information_schema)."""

from __future__ import annotations

import pytest

from wardgate.proto.mysql.charsets import charset_name, python_codec, text_codec


@pytest.mark.parametrize(
    ("collation", "charset", "codec"),
    [
        (45, "utf8mb4", "utf-8"),  # utf8mb4_general_ci: what wardgate announces
        (33, "utf8mb3", "utf-8"),
        (255, "utf8mb4", "utf-8"),  # MySQL 8's utf8mb4_0900_ai_ci
        (8, "latin1", "cp1252"),  # MySQL latin1 is Windows-1252
        (63, "binary", None),
        (1069, "utf8mb4", "utf-8"),  # MariaDB NO PAD variant: 45 + 1024
        (28, "gbk", "gbk"),
        (32, "armscii8", None),
    ],
)
def test_known_collations(collation: int, charset: str, codec: str | None) -> None:
    assert charset_name(collation) == charset
    assert python_codec(collation) == codec


def test_unknown_collations_fall_back_to_utf8_for_text() -> None:
    assert charset_name(4000) is None
    assert python_codec(4000) is None
    assert text_codec(4000) == "utf-8"
    assert text_codec(63) == "utf-8"
    assert text_codec(8) == "cp1252"
