"""Literal-blind shapes of PostgreSQL statements: one classification for all the texts that
differ only in their literals (what ``pgbench -M simple`` and most ORMs send).

Owns ``PostgresShapeCache``, a stand-in for ``classify_postgres`` (the same answer for every
text) meant to sit behind the exact-text cache::

    ClassificationCache(PostgresShapeCache().classify)

Soundness -- this is a security gate: nothing here may change a classification
------------------------------------------------------------------------------
* The key is libpg_query's own JSON parse tree of the text, with the values of string,
  number and bit-string constants (``A_Const``) and the source offsets replaced by ``NaN``
  (``shape_key``). Texts with one key parse to trees that differ only in those values. A
  text that does not parse, or holds a NUL, has no key and is classified as ever. What the
  parser makes of a literal other than a constant -- ``float(30)`` naming float8, a
  ``UESCAPE`` changing an identifier, a ``DO`` body, a ``COPY`` file name, an option value
  -- is not a constant's value, so it stays in the key.
* The first text of a key is classified from the key itself: ``NaN`` decodes to a
  ``_Blinded`` object whose every use (comparison, hashing, truth, conversion, formatting,
  attribute access) raises ``LiteralRead``, and the walk gets no statement text. A walk
  that completes has therefore not looked at a blanked value, so it yields the same
  statement shapes (kind, classes, tables) for every text of the key. ``LiteralRead`` is a
  ``BaseException``: no ``except Exception`` in the classifier can hide such a read. Any
  exception at all marks the key literal-sensitive (``WHERE 1 = 1``, ``SET x = 'y'``,
  ``set_config('role', ...)``) and its texts are classified in full, every time.
* An answer from a stored shape is put together by ``postgres.assemble``, the code that
  ``classify_postgres`` uses, from this text: its statements' texts (from its own offsets)
  and PREPARE fingerprints. The whole string's fingerprint is the first text's, which
  saves a second parse: blanked are only what libpg_query's fingerprint ignores
  (constants, by its contract, and the source offsets in its skip list; the tests hold
  every shared answer to ``classify_postgres`` of its own text, fingerprint included).
* Never shared, though the above would allow it: shapes with a class where a literal is
  the danger (``EXACT_FINGERPRINT_CLASSES``: server-escape, privilege, dynamic,
  unclassified; their fingerprint is of the exact text) or with PREPARE / EXECUTE /
  DEALLOCATE. They are rare, and every such text is classified in full.

A second map, by *layout* (the tree with only the constants blanked, so offsets included),
skips blanking the offsets for a text laid out like one before -- same spacing, literals
of the same lengths, as pgbench's mostly are. A layout determines the key, so it is only
a shortcut to the key's shapes, plus the statements' offsets, which it also determines.

A third map, by *text*, skips the parse too, for the texts clients send over and over
with other values (``pgbench -M simple``, an ORM that inlines its literals): the text with
its plain literals blanked -- decimal integers of 1 to 9 digits and single-quoted strings
without a quote or backslash inside, each standing apart from identifier characters,
``$``, ``.``, quotes and ``&`` (so not ``E'..'``, ``U&'..'``, ``$1``, ``1.5``, ``1e5``, ``t1``).
An ASCII text's entry is made only from a text whose one statement was answered from a
stored shape, and only if every literal blanked is exactly where the parser put an
``A_Const`` of that value (its ``location``): a literal the grammar uses otherwise
(``float(30)``, ``FETCH 5``, ``- 5`` folded into ``-5``, ``'a'`` continued on the next
line, a "literal" in a comment or a quoted name) has none, and its text key is classified
as before, every time. Texts of one text key differ only in such literals, which the
lexer reads as the same tokens whatever their values (an integer of at most 9 digits is
always an int4 ``ICONST``; zero and the empty string, which libpg_query writes apart, are
blanked as kinds of their own), so they parse to trees that differ only in those
constants' values and offsets: trees of one shape key, which is where the answer comes
from. The statement's span shifts by the difference in length.

Bounds: each map holds at most ``max_entries`` keys, keys longer than ``max_key_chars``
are not stored, and each map's keys together stay under ``max_total_chars`` (non-ASCII
keys count four per character). Thread-compatible like ``ClassificationCache``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from json import JSONDecoder
from typing import Any, Generic, NamedTuple, TypeVar

from pglast import parser as _pg

from wardgate.sql.blind import LiteralRead, raise_on_every_use
from wardgate.sql.classes import Classification
from wardgate.sql.postgres import (
    EXACT_FINGERPRINT_CLASSES,
    StatementShape,
    assemble,
    classify_postgres,
    classify_postgres_tree,
    statement_shape,
    statement_texts,
)

# --------------------------------------------------------------------------------------
# The key
# --------------------------------------------------------------------------------------

# What is blanked: the values that differ between texts of one shape, and that
# libpg_query's fingerprint ignores, so that the texts of a key share it too (constants and
# formatting: its documented contract).
# * A constant's value: '"ival":{"ival":' is A_Const's own (an Integer node, as in an
#   option, is '"Integer":{"ival":' and stays in the key), likewise sval, fval, bsval.
#   libpg_query leaves out an ival of 0 and an empty string ('"ival":{}'): such texts
#   keep a key of their own. true, false and NULL are keywords and stay.
# * Source offsets, which shift with the lengths of the literals before them: "location"
#   and "(rexpr_)list_start/_end". RawStmt's "stmt_location" / "stmt_len" are cut out
#   whole: only ``_spans`` reads them. Other offsets ("arg_location", ...) are rare and
#   stay in the key, like any value not blanked: that only makes the key narrower.
# Every marker has a letter just before a '"' that is followed by ':'. Such a quote is not
# an escaped one, so it closes an object key: they find structure, never string content.
_CONSTANTS = (  # (marker, the value after it, what replaces both)
    ('"ival":{"ival":', re.compile(r"-?\d+\}"), '"ival":{"ival":NaN}'),
    *(
        (
            f'"{kind}":{{"{kind}":',
            re.compile(r'"(?:[^"\\]|\\.)*"\}'),
            f'"{kind}":{{"{kind}":NaN}}',
        )
        for kind in ("sval", "fval", "bsval")
    ),
)
_RAW_STMT_SPAN = re.compile(r',"stmt_(location|len)":(\d+)')
_LOCATION = re.compile(r'"location":-?\d+')
_LIST_START = re.compile(r'list_start":-?\d+')
_LIST_END = re.compile(r'list_end":-?\d+')


def shape_key(tree_json: str) -> str:
    """The key of a text with this ``parse_sql_json``: its tree with constants' values and
    source offsets as ``NaN`` and without its statements' spans."""
    return _cut_offsets(_layout(tree_json))[0]


def _layout(tree_json: str) -> str:
    """``tree_json`` with constants' values as ``NaN``."""
    key = tree_json
    for marker, value, blank in _CONSTANTS:
        pieces = key.split(marker)  # str.split finds a marker faster than re does
        if len(pieces) > 1:
            out = [pieces[0]]
            for piece in pieces[1:]:
                found = value.match(piece)
                out.append(marker + piece if found is None else blank + piece[found.end() :])
            key = "".join(out)
    return key


def _cut_offsets(layout: str) -> tuple[str, list[int], list[int]]:
    """The key of a ``layout``, and the stmt_location and stmt_len values cut out of it."""
    parts = _RAW_STMT_SPAN.split(layout)
    starts: list[int] = []
    lengths: list[int] = []
    for field, value in zip(parts[1::3], parts[2::3], strict=True):
        (starts if field == "location" else lengths).append(int(value))
    key = _LOCATION.sub('"location":NaN', "".join(parts[::3]))
    if 'list_start":' in key:
        key = _LIST_END.sub('list_end":NaN', _LIST_START.sub('list_start":NaN', key))
    return key, starts, lengths


def _spans(starts: list[int], lengths: list[int], n: int) -> list[tuple[int, int]] | None:
    """The (stmt_location, stmt_len) of each of ``n`` statements. libpg_query leaves out
    zeros, which only the first location and the last length can be."""
    if len(starts) == n - 1:
        starts = [0, *starts]
    if len(lengths) == n - 1:
        lengths = [*lengths, 0]
    if len(starts) != n or len(lengths) != n:
        return None
    return list(zip(starts, lengths, strict=True))


# A text's plain literals: group 1 an integer, group 2 a string's contents.
_TEXT_LITERAL = re.compile(r"(?=[\d'])(?<![\w$.'&])(?:(\d{1,9})|'([^'\\]*)')(?![\w$.'])")


def text_key_py(sql: str) -> str | None:
    """``sql`` with its plain literals blanked (see the module doc); None when it has none
    or is not ASCII (the parser's offsets are bytes). NUL never occurs in a text that gets
    here, so it marks the blanks. The reference for the compiled ``text_key``."""
    pieces = _TEXT_LITERAL.split(sql)
    if len(pieces) == 1 or not sql.isascii():
        return None
    out = [pieces[0]]
    for i in range(1, len(pieces), 3):
        digits = pieces[i]
        if digits is not None:
            out.append("\x00i\x00" if digits.strip("0") else "\x000\x00")
        else:
            out.append("\x00s\x00" if pieces[i + 1] else "\x00e\x00")
        out.append(pieces[i + 2])
    return "".join(out)


# ``text_key``: compiled (``_rowscan.pg_text_key``, ~10x faster) unless the extension is
# missing or ``WARDGATE_PURE_PYTHON=1``.
text_key: Callable[[str], str | None] = text_key_py
if os.environ.get("WARDGATE_PURE_PYTHON", "") in ("", "0"):
    with contextlib.suppress(ImportError):  # built without a compiler
        from wardgate._rowscan import pg_text_key as text_key


def _literals_are_constants(sql: str, tree_json: str) -> bool:
    """Every literal ``text_key`` blanks in ``sql`` is an ``A_Const`` of its value that
    starts where it does in the parse tree."""
    consts: dict[int, tuple[str, object]] = {}
    stack: list[object] = [json.loads(tree_json)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            const = node.get("A_Const")
            if isinstance(const, dict) and isinstance(const.get("location"), int):
                if "ival" in const:
                    value: tuple[str, object] = ("i", const["ival"].get("ival", 0))
                elif "sval" in const:
                    value = ("s", const["sval"].get("sval", ""))
                else:
                    value = ("other", None)
                consts[const["location"]] = value
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    for m in _TEXT_LITERAL.finditer(sql):
        digits = m.group(1)
        want = ("i", int(digits)) if digits is not None else ("s", m.group(2))
        if consts.get(m.start()) != want:
            return False
    return True


# --------------------------------------------------------------------------------------
# Classifying a key
# --------------------------------------------------------------------------------------


@raise_on_every_use
class _Blinded:
    """Stands where the key has ``NaN``. Every use raises ``LiteralRead``; only ``type()``
    and ``is`` see it, and those say nothing about the value it replaced."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        raise LiteralRead(name)


def _blinded(_constant: str) -> _Blinded:
    return _Blinded()  # a new one each time: "x is y" must not find two of them equal


# One decoder: json.loads(..., parse_constant=...) would build one per call.
_BLIND_DECODER = JSONDecoder(parse_constant=_blinded)


def blind_shapes(key: str) -> tuple[StatementShape, ...]:
    """The shapes of the statements of every text with this ``key``; raises
    ``LiteralRead`` (or any other exception) where they depend on a blanked value."""
    tree = _BLIND_DECODER.decode(key)
    return tuple(statement_shape(None, item["stmt"]) for item in tree["stmts"])


def _shareable(shapes: tuple[StatementShape, ...]) -> bool:
    return all(
        s.classes
        and not s.classes & EXACT_FINGERPRINT_CLASSES
        and s.prepared is None
        and s.executes is None
        for s in shapes
    )


# --------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------


class _Shape(NamedTuple):
    """Per key. ``shapes`` None: the key's texts are classified in full."""

    shapes: tuple[StatementShape, ...] | None
    fingerprint: str  # of the first text; all the key's texts have it (see _CONSTANTS)


class _Offsets(NamedTuple):
    """The stmt_location and stmt_len values of a tree, as cut out of its key."""

    starts: list[int]
    lengths: list[int]


class _Layout(NamedTuple):
    """Per layout: its key's shapes and fingerprint, and the statements' spans."""

    shapes: tuple[StatementShape, ...] | None  # None: classified in full, as for its key
    fingerprint: str
    spans: list[tuple[int, int]]


_CLASSIFY_IN_FULL = _Layout(None, "", [])


class _Text(NamedTuple):
    """Per text key: its one statement's shape and fingerprint, and the span of the text
    it was learnt from, with that text's length."""

    shapes: tuple[StatementShape, ...] | None  # None: parsed every time, as before
    fingerprint: str
    start: int
    length: int  # stmt_len; 0: to the end of the text
    text_length: int


_PARSE_EVERY_TIME = _Text(None, "", 0, 0, 0)


_V = TypeVar("_V")


class _Lru(Generic[_V]):
    """A bounded LRU map from str: at most ``max_entries``, sizes summing to ``max_total``."""

    __slots__ = ("_entries", "_max_entries", "_max_total", "_total")

    def __init__(self, max_entries: int, max_total: int) -> None:
        self._entries: OrderedDict[str, tuple[_V, int]] = OrderedDict()
        self._max_entries = max_entries
        self._max_total = max_total
        self._total = 0

    def get(self, key: str) -> _V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        try:  # noqa: SIM105 -- contextlib.suppress costs more than the lookup itself
            self._entries.move_to_end(key)
        except KeyError:  # evicted by another thread in between: still a valid answer
            pass
        return found[0]

    def put(self, key: str, value: _V) -> None:
        size = len(key) if key.isascii() else 4 * len(key)
        entries = self._entries
        old = entries.pop(key, None)
        if old is not None:
            self._total -= old[1]
        entries[key] = (value, size)
        self._total += size
        while entries and (len(entries) > self._max_entries or self._total > self._max_total):
            try:
                _, (_, evicted) = entries.popitem(last=False)
            except KeyError:
                break
            self._total -= evicted

    def clear(self) -> None:
        self._entries.clear()
        self._total = 0

    def __len__(self) -> int:
        return len(self._entries)


class PostgresShapeCache:
    """``classify_postgres`` that classifies each literal-blind shape once."""

    __slots__ = ("_layouts", "_max_key_chars", "_shapes", "_texts", "hits", "misses")

    def __init__(
        self,
        max_entries: int = 10_000,
        max_key_chars: int = 256_000,
        *,
        max_total_chars: int = 16_000_000,
    ) -> None:
        if max_entries < 1 or max_key_chars < 0 or max_total_chars < 0:
            raise ValueError(
                "PostgresShapeCache: max_entries must be >= 1 and the size limits >= 0 "
                f"(got {max_entries}, {max_key_chars}, {max_total_chars})"
            )
        self._shapes: _Lru[_Shape] = _Lru(max_entries, max_total_chars)
        self._layouts: _Lru[_Layout] = _Lru(max_entries, max_total_chars)
        self._texts: _Lru[_Text] = _Lru(max_entries, max_total_chars)
        self._max_key_chars = max_key_chars
        self.hits = 0  # answered from a stored shape
        self.misses = 0  # classified in full, or the first text of its shape

    def classify(self, sql: str) -> Classification:
        """``classify_postgres(sql)``: the same answer, from a stored shape when one fits.
        Never raises."""
        if "\x00" in sql:
            return classify_postgres(sql)
        key = text_key(sql) if len(sql) <= self._max_key_chars else None
        known = None if key is None else self._texts.get(key)
        if known is not None and known.shapes is not None:
            answer = self._from_text(sql, known)
            if answer is not None:
                return answer
        try:
            tree_json = _pg.parse_sql_json(sql)
        except Exception:
            return classify_postgres(sql)  # the same failure, reported the same way
        try:
            result = self._classify(sql, tree_json)
            if key is not None and known is None:
                self._learn_text(key, sql, tree_json)
            return result
        except (LiteralRead, Exception):  # a bug here must not become an answer
            return classify_postgres_tree(sql, tree_json)

    def _from_text(self, sql: str, known: _Text) -> Classification | None:
        assert known.shapes is not None
        length = known.length + len(sql) - known.text_length if known.length else 0
        try:
            texts = statement_texts(sql, [(known.start, length)])
            result = assemble(sql, texts, known.shapes, known.fingerprint)
        except Exception:  # as classify_postgres would fail: the parse path says so
            return None
        self.hits += 1
        return result

    def _learn_text(self, key: str, sql: str, tree_json: str) -> None:
        """After ``sql`` was classified: its text key's entry (see the module doc)."""
        laid = self._layouts.get(_layout(tree_json))
        entry = _PARSE_EVERY_TIME
        if (
            laid is not None
            and laid.shapes is not None
            and len(laid.shapes) == 1
            and _literals_are_constants(sql, tree_json)
        ):
            (start, length), *_ = laid.spans
            entry = _Text(laid.shapes, laid.fingerprint, start, length, len(sql))
        self._texts.put(key, entry)

    def _classify(self, sql: str, tree_json: str) -> Classification:
        layout = _layout(tree_json)
        laid = self._layouts.get(layout)
        if laid is not None:
            if laid.shapes is None:
                self.misses += 1
                return classify_postgres_tree(sql, tree_json)
            return self._from_shape(sql, tree_json, laid.shapes, laid.fingerprint, laid.spans)
        key, starts, lengths = _cut_offsets(layout)
        found = self._shapes.get(key)
        if found is None:
            return self._first(sql, tree_json, layout, key, _Offsets(starts, lengths))
        spans = None if found.shapes is None else _spans(starts, lengths, len(found.shapes))
        if found.shapes is None or spans is None:
            if found.shapes is None:
                self._remember_layout(layout, _CLASSIFY_IN_FULL)
            self.misses += 1
            return classify_postgres_tree(sql, tree_json)
        self._remember_layout(layout, _Layout(found.shapes, found.fingerprint, spans))
        return self._from_shape(sql, tree_json, found.shapes, found.fingerprint, spans)

    def _first(
        self, sql: str, tree_json: str, layout: str, key: str, offsets: _Offsets
    ) -> Classification:
        """The first text of its key: classify the key, store it, answer from it."""
        self.misses += 1
        if len(key) > self._max_key_chars:
            return classify_postgres_tree(sql, tree_json)
        try:
            shapes: tuple[StatementShape, ...] | None = blind_shapes(key)
        except (LiteralRead, Exception):
            shapes = None
        spans = None if shapes is None else _spans(offsets.starts, offsets.lengths, len(shapes))
        if shapes is None or spans is None:
            self._shapes.put(key, _Shape(None, ""))
            self._remember_layout(layout, _CLASSIFY_IN_FULL)
            return classify_postgres_tree(sql, tree_json)
        try:
            result = assemble(sql, statement_texts(sql, spans), shapes)
        except Exception:  # as classify_postgres would fail: let it say so
            return classify_postgres_tree(sql, tree_json)
        if _shareable(shapes):
            self._shapes.put(key, _Shape(shapes, result.fingerprint))
            self._remember_layout(layout, _Layout(shapes, result.fingerprint, spans))
        else:
            self._shapes.put(key, _Shape(None, ""))
            self._remember_layout(layout, _CLASSIFY_IN_FULL)
        return result

    def _remember_layout(self, layout: str, laid: _Layout) -> None:
        if len(layout) <= self._max_key_chars:
            self._layouts.put(layout, laid)

    def _from_shape(
        self,
        sql: str,
        tree_json: str,
        shapes: tuple[StatementShape, ...],
        fingerprint: str,
        spans: list[tuple[int, int]],
    ) -> Classification:
        try:
            result = assemble(sql, statement_texts(sql, spans), shapes, fingerprint)
        except Exception:  # as classify_postgres would fail: let it say so
            self.misses += 1
            return classify_postgres_tree(sql, tree_json)
        self.hits += 1
        return result

    def shared(self, sql: str) -> bool:
        """Whether texts shaped like ``sql`` are answered from a stored shape."""
        try:
            found = self._shapes.get(shape_key(_pg.parse_sql_json(sql)))
        except Exception:
            return False
        return found is not None and found.shapes is not None

    def clear(self) -> None:
        self._shapes.clear()
        self._layouts.clear()
        self._texts.clear()

    def __len__(self) -> int:
        """The number of shape keys stored (shared or classified in full)."""
        return len(self._shapes)
