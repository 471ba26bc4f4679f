"""The MySQL lexer against the straightforward version it replaced (one ``match`` call
per token and per run of whitespace): the same tokens, markers and errors, on hostile
input too. The reference is kept here, verbatim but for its names."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from wardgate.sql.mysql import (
    NUM,
    PUNCT,
    QIDENT,
    SEMI,
    STRING,
    VAR,
    WORD,
    LexError,
    _decode_string,
    _lex,
    _Lexed,
    _Tok,
    _token_regex,
)


def reference_token_regex(single_backslash: bool, double_backslash: bool) -> re.Pattern[str]:
    sq = r"'(?:[^'\\]|\\.|'')*'" if single_backslash else r"'(?:[^']|'')*'"
    dq = r'"(?:[^"\\]|\\.|"")*"' if double_backslash else r'"(?:[^"]|"")*"'
    bq = r"`(?:[^`]|``)*`"
    return re.compile(
        rf"""
          (?P<ws>\s+)
        | (?P<line>\#[^\n]*|--(?=[\x01-\x20]|\Z)[^\n]*)
        | (?P<exec>/\*M?!(?:\d{{5,6}})?)
        | (?P<comment>/\*.*?\*/)
        | (?P<close>\*/)
        | (?P<sq>{sq})
        | (?P<dq>{dq})
        | (?P<bq>{bq})
        | (?P<var>@@?(?:[A-Za-z0-9_$.\x80-\U0010ffff]+|{bq}|{sq}|{dq})?)
        | (?P<num>0[xX][0-9a-fA-F]+\b|0[bB][01]+\b|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
        | (?P<word>[A-Za-z0-9_$\x80-\U0010ffff]+)
        | (?P<semi>;)
        | (?P<bad>['"`]|/\*)
        | (?P<punct>.)
        """,
        re.VERBOSE | re.DOTALL,
    )


def reference_lex(text: str, pattern: re.Pattern[str]) -> _Lexed:
    tokens: list[_Tok] = []
    markers: list[tuple[str, int]] = []
    pos, n = 0, len(text)
    in_exec = -1  # start of the executable comment we are inside, or -1
    match = pattern.match
    while pos < n:
        m = match(text, pos)
        if m is None:  # cannot happen: (?P<punct>.) matches anything
            return _Lexed(tuple(tokens), tuple(markers), LexError(pos, "unreadable text"))
        kind = m.lastgroup
        end = m.end()
        tok = m.group()
        if kind == "ws":
            pass
        elif kind in ("line", "comment"):
            markers.append(("comment", pos))
        elif kind == "exec":
            if in_exec >= 0:
                return _Lexed(
                    tuple(tokens), tuple(markers), LexError(pos, "nested executable comment")
                )
            in_exec = pos
            markers.append(("exec", pos))
        elif kind == "close" and in_exec >= 0:
            in_exec = -1
            markers.append(("close", pos))
        elif kind == "bad":
            what = "comment" if tok == "/*" else "quoted string or identifier"
            return _Lexed(tuple(tokens), tuple(markers), LexError(pos, f"unterminated {what}"))
        elif kind == "word":
            tokens.append(_Tok(WORD, pos, end, tok, tok.upper()))
        elif kind == "bq":
            tokens.append(_Tok(QIDENT, pos, end, tok, tok[1:-1].replace("``", "`")))
        elif kind in ("sq", "dq"):
            tokens.append(_Tok(STRING, pos, end, tok, _decode_string(tok)))
        elif kind == "semi":
            markers.append((";", pos))
            tokens.append(_Tok(SEMI, pos, end, tok, tok))
        elif kind == "var":
            tokens.append(_Tok(VAR, pos, end, tok, tok.lower()))
        elif kind == "num":
            tokens.append(_Tok(NUM, pos, end, tok, tok))
        else:  # punct, or a "*/" outside an executable comment (the server sees * and /)
            for i, ch in enumerate(tok):
                tokens.append(_Tok(PUNCT, pos + i, pos + i + 1, ch, ch))
        pos = end
    if in_exec >= 0:
        return _Lexed(
            tuple(tokens), tuple(markers), LexError(in_exec, "unterminated executable comment")
        )
    return _Lexed(tuple(tokens), tuple(markers), None)


_PATTERNS = [(reference_token_regex(a, b), _token_regex(a, b)) for a, b in
             ((True, True), (False, False), (True, False))]  # fmt: skip
_PIECES = [
    "SELECT", " ", "  ", "\n", "\t", "a", "1", "1.5", ".5", "1e5", "0x1F", "0b101", "'x'",
    "'a''b'", "'a\\'b'", '"q"', "`c`", "``", "@v", "@@g", "@'q'", ";", "/*", "*/", "/*!",
    "/*!50000", "/*M!100100", "/* c */", "-- c\n", "--x", "--", "#h\n", "'", '"', "`",
    "\\", "(", ")", ",", "=", "*", "/", "é", "\u2003", "\x00", "-", "+", ".",
]  # fmt: skip


def same(text: str) -> None:
    for ref, new in _PATTERNS:
        want, got = reference_lex(text, ref), _lex(text, new)
        assert got.tokens == want.tokens, text
        assert got.markers == want.markers, text
        assert (got.error is None) == (want.error is None), text
        if want.error is not None:
            assert got.error is not None
            assert (str(got.error), got.error.position) == (str(want.error), want.error.position)


@settings(max_examples=1500, deadline=None)
@example("SELECT 1  ")
@example("a */ b")
@example("/*!50000 SELECT 1 */ */")
@example("/*! /*! x */")
@example(" \t\n")
@given(st.lists(st.sampled_from(_PIECES), max_size=24).map("".join))
def test_the_lexer_lexes_as_the_reference_on_sql_shaped_text(text: str) -> None:
    same(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_the_lexer_lexes_as_the_reference_on_any_text(text: str) -> None:
    same(text)
