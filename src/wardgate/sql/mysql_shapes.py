"""Literal-blind shapes of MySQL statements: one classification for all the texts that
differ only in their literals (what PyMySQL, mysqlclient, the ``mysql`` CLI and most
ORMs send: parameters interpolated into the text on the client).

Owns ``MySqlShapeCache``, a stand-in for ``classify_mysql`` (the same answer for every
text it answers) meant to sit behind the exact-text cache::

    ClassificationCache(MySqlShapeCache().classify)

``classify_mysql`` parses each text with sqlglot, ~170 µs for a one-line SELECT; this
lexes it (our MySQL-faithful lexer, ~17 µs) and, for a text shaped like one before,
answers from the stored shape.

Soundness -- this is a security gate: nothing here may change a classification
------------------------------------------------------------------------------
* The key is the text's token stream (``_lex``: comments dropped, executable comments
  opened) with every literal's value left out: kind and text of every other token, where
  whitespace or a comment separates tokens (``_canonical`` puts a space there), and per
  literal only its form. Texts with one key differ only in the values of their literals.
* Only plain literals are blanked: decimal integers (``42``) and quoted strings without a
  backslash or a doubled quote, with whitespace, a comment or punctuation other than
  ``.`` on both sides (so that sqlglot, too, reads them as one literal of that form --
  ``1e5``, ``0x1F``, ``_utf8'a'``, ``X'0F'``, ``1.5``, ``t.1`` and ``'it''s'`` are not
  plain). A text with any other literal, a backslash anywhere, a NUL or a lexer error is
  classified in full, every time.
* The first text of a key is classified in full and kept with its answer; when a second
  text of the key comes, the key is classified blind (``classify_blind``), so a client of
  one-off statements pays nothing on top of the full classification. Blind: the
  literals become ``BlindLiteral`` tokens, sqlglot parses the statement with stand-in
  literals of the same form, and the literals of the trees it makes are blinded in turn.
  Every use of a blind literal raises ``LiteralRead``, a ``BaseException`` no
  ``except Exception`` in the classifier can hide; a classification that completes has
  therefore not looked at a literal's value, and yields the same answer for every text
  of the key. Any exception at all marks the key literal-sensitive (``WHERE 1 = 1``,
  ``SET sql_mode = '...'``, ``PREPARE s FROM '...'``) and its texts are classified in full.
* sqlglot itself reads some string literals while it parses (a JSON path, a date
  format). So the blind classification runs twice, with two unlike stand-ins (``'x'`` and
  a string that reads as a JSON path, a format and an interval), and the key is shared
  only when both give the same answer from trees of the same node types -- and when the
  blind answer, spelled for the first text, is that text's full answer.
* Never shared, though the above would allow it: shapes with a class where a literal is
  the danger (``EXACT_FINGERPRINT_CLASSES``: server-escape, privilege, dynamic,
  unclassified; their fingerprint is of the exact text), a statement with an error, or a
  PREPARE / EXECUTE / DEALLOCATE. An answer from a stored shape takes each statement's
  text from this text (its own token offsets); the fingerprint, which hashes the tokens
  with ``?`` for literals, is the same for every text of a key.

A second map, by *text*, skips the lexer too (~10 µs of a new text's ~17): the text with
its plain literals blanked -- runs of digits, and strings in ``''`` or ``""`` without their
quote or a backslash inside, standing apart from identifier characters, ``$ . @ ' " ` &``
and ``!`` -- for ASCII texts (``!``: the lexer reads ``/*!`` and five or six digits as an
executable comment's version and fewer digits as a number, so there the number of digits
would change the tokens). An entry is made from a text whose shape is shared, and only
if every literal blanked is exactly a literal token of the lexer (same start and end):
digits inside a comment or a quoted name have none, and their text key keeps the lexer
every time. Texts of one text key differ only
in such literals, whose contents cannot end them early or start a comment, so they lex to
the same tokens with other literal values: one shape key, which is where the answer comes
from. The statements' texts are cut from this text at offsets shifted by the literals'
differences in length.

Bounds: at most ``max_entries`` keys, keys longer than ``max_key_chars`` are not stored,
and the keys together stay under ``max_total_chars`` (non-ASCII keys count four per
character). Thread-compatible like ``ClassificationCache``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from sqlglot import exp

from wardgate.sql.blind import LiteralRead
from wardgate.sql.classes import Classification, StatementClass, StatementInfo
from wardgate.sql.mysql import (
    _BLIND,
    EXACT_FINGERPRINT_CLASSES,
    NUM,
    PARSED,
    PUNCT,
    SEMI,
    STRING,
    BlindLiteral,
    _lex,
    _split,
    _statement,
    _Tok,
    classify_mysql,
)
from wardgate.sql.pg_shapes import _Lru

_PLAIN_NUMBER = re.compile(r"[0-9]+")
# A text's plain literals for the text map: group 1 digits, 2 a '' string, 3 a "" string.
_TEXT_LITERAL = re.compile(
    r"""(?=[\d'"])(?<![\w$.@'"`&!])(?:(\d+)|'([^'\\]*)'|"([^"\\]*)")(?![\w$.'"`])"""
)


def text_key(sql: str) -> tuple[str, list[tuple[int, int]]] | None:
    """``sql`` with its plain literals blanked (see the module doc) and their spans; None
    when it has none or is not ASCII. NUL (never in a text that gets here) marks them."""
    if not sql.isascii():
        return None
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _TEXT_LITERAL.finditer(sql):
        start, end = m.span()
        out.append(sql[pos:start])
        out.append("\x00n\x00" if m.group(1) is not None else f"\x00{sql[start]}\x00")
        spans.append((start, end))
        pos = end
    if not spans:
        return None
    out.append(sql[pos:])
    return "".join(out), spans
# The stand-ins for a blank literal, by its form: a number, a string in '' or "".
# The second set is unlike the first in every way sqlglot might read a string's content.
_STAND_INS = {
    "n": ("7", "12345678901234567890"),
    "'": ("'x'", "'$.a[0] %Y-%m-%d 1 DAY'"),
    '"': ('"x"', '"$.a[0] %Y-%m-%d 1 DAY"'),
}


class _Shape(NamedTuple):
    """Per key. ``statements`` None: the key's texts are classified in full."""

    # (kind, classes, tables, first token, last token) per statement
    statements: tuple[tuple[str, frozenset[StatementClass], frozenset[str], int, int], ...] | None
    classes: frozenset[StatementClass]
    tables: frozenset[str]
    fingerprint: str


_IN_FULL = _Shape(None, frozenset(), frozenset(), "")


def _literal_form(tokens: Sequence[_Tok], i: int) -> str | None:
    """The form of the plain literal at ``tokens[i]`` ("n", "'" or '"'), or None when it is
    not plain (see the module's notes)."""
    t = tokens[i]
    if t.kind == NUM:
        if _PLAIN_NUMBER.fullmatch(t.text) is None:
            return None
        form = "n"
    else:
        quote = t.text[0]
        if quote not in "'\"" or quote in t.text[1:-1] or "\\" in t.text:
            return None
        form = quote
    if i > 0:
        prev = tokens[i - 1]
        if prev.end == t.start and not (prev.kind in (PUNCT, SEMI) and prev.text != "."):
            return None
    if i + 1 < len(tokens):
        nxt = tokens[i + 1]
        if nxt.start == t.end and not (nxt.kind in (PUNCT, SEMI) and nxt.text != "."):
            return None
    return form


def shape_key(tokens: Sequence[_Tok]) -> tuple[str, list[str]] | None:
    """The key of a text with these tokens, and the form of each literal in order; None
    when a literal is not plain (the text is then classified in full)."""
    parts: list[str] = []
    forms: list[str] = []
    prev_end = -1
    for i, t in enumerate(tokens):
        gap = "\x01" if t.start > prev_end and i else ""
        prev_end = t.end
        if t.kind in (NUM, STRING):
            form = _literal_form(tokens, i)
            if form is None:
                return None
            forms.append(form)
            parts.append(f"{gap}?{form}")
        else:
            parts.append(f"{gap}{t.kind}\x02{t.text}")
    return "\x00".join(parts), forms


def classify_blind(tokens: Sequence[_Tok], forms: Sequence[str], stand_in: int) -> _Shape:
    """Classify the statements of ``tokens`` with their literals blind (stand-in ``0`` or
    ``1`` for sqlglot); raises ``LiteralRead`` (or anything else) where the answer
    depends on a literal's value."""
    blind: list[_Tok] = []
    literals = iter(forms)
    for t in tokens:
        if t.kind in (NUM, STRING):
            b = BlindLiteral(_STAND_INS[next(literals)])
            blind.append(_Tok(t.kind, t.start, t.end, b, b))  # type: ignore[arg-type]
        else:
            blind.append(t)
    index = {id(t): i for i, t in enumerate(blind)}
    statements = []
    blind_token = _BLIND.set(stand_in)
    try:
        for stmt_tokens in _split(blind):
            st = _statement(stmt_tokens, "", 0)
            if st.error is not None or st.prepared is not None:
                return _IN_FULL
            classes = frozenset(st.classes)
            if not classes or classes & EXACT_FINGERPRINT_CLASSES:
                return _IN_FULL
            first, last = index[id(stmt_tokens[0])], index[id(stmt_tokens[-1])]
            statements.append((st.kind, classes, frozenset(st.tables), first, last))
    finally:
        _BLIND.reset(blind_token)
    if not statements:
        return _IN_FULL
    return _Shape(
        tuple(statements),
        frozenset().union(*(s[1] for s in statements)),
        frozenset().union(*(s[2] for s in statements)),
        "",
    )


def _tree_signature(trees: Sequence[exp.Expression]) -> list[list[str]]:
    return [[type(n).__name__ for n in tree.walk()] for tree in trees]


class _Text(NamedTuple):
    """Per text key: the shape, and where the text it was learnt from had its literals
    and each statement (start, end); ``shape`` None: lexed every time, as before."""

    shape: _Shape | None
    literals: list[tuple[int, int]]
    statements: list[tuple[int, int]]


_LEX_EVERY_TIME = _Text(None, [], [])


class _Seen(NamedTuple):
    """A key met once: its text and that text's full answer. The key is classified blind
    when a second text of it comes (a client of one-off statements pays nothing extra)."""

    sql: str
    full: Classification


class MySqlShapeCache:
    """``classify_mysql`` that classifies each literal-blind shape once, when it recurs."""

    __slots__ = ("_max_key_chars", "_shapes", "_texts", "hits", "misses")

    def __init__(
        self,
        max_entries: int = 10_000,
        max_key_chars: int = 64_000,
        *,
        max_total_chars: int = 16_000_000,
    ) -> None:
        if max_entries < 1 or max_key_chars < 0 or max_total_chars < 0:
            raise ValueError(
                "MySqlShapeCache: max_entries must be >= 1 and the size limits >= 0 "
                f"(got {max_entries}, {max_key_chars}, {max_total_chars})"
            )
        self._shapes: _Lru[_Shape | _Seen] = _Lru(max_entries, max_total_chars)
        self._texts: _Lru[_Text] = _Lru(max_entries, max_total_chars)
        self._max_key_chars = max_key_chars
        self.hits = 0  # answered from a stored shape
        self.misses = 0  # classified in full

    def classify(self, sql: str) -> Classification:
        """``classify_mysql(sql)``: the same answer, from a stored shape when one fits.
        Never raises."""
        if "\x00" in sql or "\\" in sql:
            self.misses += 1
            return classify_mysql(sql)
        texted = text_key(sql) if len(sql) <= self._max_key_chars else None
        known = None if texted is None else self._texts.get(texted[0])
        if known is not None and known.shape is not None:
            assert texted is not None
            self.hits += 1
            return _answer_from_text(sql, texted[1], known)
        try:
            lexed = _lex(sql)
            keyed = shape_key(lexed.tokens) if lexed.error is None else None
        except Exception:  # a bug here must not become an answer
            keyed = None
        if keyed is None:
            self.misses += 1
            return classify_mysql(sql)
        key, forms = keyed
        found = self._shapes.get(key)
        if found is None:
            # The first text of its key: classified in full, remembered with its answer.
            self.misses += 1
            full = classify_mysql(sql)
            if len(key) <= self._max_key_chars:
                self._shapes.put(key, _Seen(sql, full))
            return full
        if type(found) is _Seen:
            found = self._learn(key, lexed.tokens, forms, found)
        assert type(found) is _Shape
        if texted is not None and known is None:
            self._texts.put(texted[0], _text_entry(texted[1], lexed.tokens, found))
        if found.statements is None:
            self.misses += 1
            return classify_mysql(sql)
        self.hits += 1
        return _answer(sql, lexed.tokens, found)

    def _learn(self, key: str, tokens: Sequence[_Tok], forms: list[str], seen: _Seen) -> _Shape:
        """The second text of a key: classify the key blind and store its shape, when the
        blind answer is the first text's full answer (else the key is classified in full
        from now on)."""
        shape = _learn(tokens, forms)
        if shape.statements is not None:
            shape = shape._replace(fingerprint=seen.full.fingerprint)
            try:
                first = _answer(seen.sql, _lex(seen.sql).tokens, shape)
            except Exception:  # cannot happen: the first text lexed to this very key
                first = None
            if first != seen.full:  # a blind answer is never used unchecked
                shape = _IN_FULL
        self._shapes.put(key, shape)
        return shape

    def shared(self, sql: str) -> bool:
        """Whether texts shaped like ``sql`` are answered from a stored shape."""
        try:
            lexed = _lex(sql)
            keyed = shape_key(lexed.tokens) if lexed.error is None else None
        except Exception:
            return False
        found = None if keyed is None else self._shapes.get(keyed[0])
        return type(found) is _Shape and found.statements is not None

    def clear(self) -> None:
        self._shapes.clear()
        self._texts.clear()

    def __len__(self) -> int:
        """The number of shape keys stored (shared or classified in full)."""
        return len(self._shapes)


def _learn(tokens: Sequence[_Tok], forms: list[str]) -> _Shape:
    """The key's shape, when the two blind classifications agree; else ``_IN_FULL``."""
    answers: list[tuple[_Shape, list[list[str]]]] = []
    for stand_in in (0, 1):
        parsed: list[exp.Expression] = []
        token = PARSED.set(parsed)
        try:
            shape = classify_blind(tokens, forms, stand_in)
        except (LiteralRead, Exception):
            return _IN_FULL
        finally:
            PARSED.reset(token)
        if shape.statements is None:
            return _IN_FULL
        answers.append((shape, _tree_signature(parsed)))
    (a, a_trees), (b, b_trees) = answers
    return a if a == b and a_trees == b_trees else _IN_FULL


def _text_entry(literals: list[tuple[int, int]], tokens: Sequence[_Tok], shape: _Shape) -> _Text:
    """The text map's entry for a text with these blanked ``literals`` and ``tokens``,
    whose shape is ``shape``: shared only if each literal blanked is a literal token."""
    if shape.statements is None:
        return _LEX_EVERY_TIME
    by_start = {t.start: t for t in tokens if t.kind in (NUM, STRING)}
    for start, end in literals:
        t = by_start.get(start)
        if t is None or t.end != end:
            return _LEX_EVERY_TIME
    spans = [(tokens[a].start, tokens[b].end) for _, _, _, a, b in shape.statements]
    return _Text(shape, literals, spans)


def _answer_from_text(sql: str, literals: list[tuple[int, int]], known: _Text) -> Classification:
    """``_answer`` for a text of ``known``'s text key: its statements cut at the learnt
    offsets, each moved by how much longer this text's literals before it are."""
    shape = known.shape
    assert shape is not None and shape.statements is not None
    moves: list[tuple[int, int]] = []  # (end of a learnt literal, total shift from there)
    shift = 0
    for (s1, e1), (s2, e2) in zip(known.literals, literals, strict=True):
        shift += (e2 - s2) - (e1 - s1)
        moves.append((e1, shift))

    def moved(offset: int) -> int:
        by = 0
        for end, total in moves:
            if end > offset:
                break
            by = total
        return offset + by

    return Classification(
        statements=tuple(
            StatementInfo(kind, classes, tables, sql[moved(start) : moved(end)], None)
            for (kind, classes, tables, _, _), (start, end) in zip(
                shape.statements, known.statements, strict=True
            )
        ),
        classes=shape.classes,
        tables=shape.tables,
        error=None,
        fingerprint=shape.fingerprint,
    )


def _answer(sql: str, tokens: Sequence[_Tok], shape: _Shape) -> Classification:
    assert shape.statements is not None
    return Classification(
        statements=tuple(
            StatementInfo(kind, classes, tables, sql[tokens[a].start : tokens[b].end], None)
            for kind, classes, tables, a, b in shape.statements
        ),
        classes=shape.classes,
        tables=shape.tables,
        error=None,
        fingerprint=shape.fingerprint,
    )


__all__ = ["MySqlShapeCache", "classify_blind", "shape_key", "text_key"]
