"""MySqlShapeCache: texts that differ only in literals share one classification where it
provably does not depend on them, and every answer is exactly ``classify_mysql`` of that
very text (classes, tables, statements and their texts, error, fingerprint)."""

from __future__ import annotations

import copy
import itertools
import operator
import re
from collections.abc import Callable

import pytest
import test_sql_mysql as cases
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.sql import ClassificationCache, StatementClass, classify_mysql
from wardgate.sql import mysql as my
from wardgate.sql.blind import LiteralRead
from wardgate.sql.classes import Classification
from wardgate.sql.mysql import NUM, STRING, BlindLiteral, _lex
from wardgate.sql.mysql_shapes import MySqlShapeCache, classify_blind, shape_key

R = StatementClass.READ
W = StatementClass.WRITE
WU = StatementClass.WRITE_UNBOUNDED

CORPUS = [s for _, s, _ in (*cases.EVASIONS, *cases.LOOK_ALIKES, *cases.TABLES)]


def through(cache: MySqlShapeCache, sql: str) -> Classification:
    """The cache's answer, checked against a fresh classification of the same text."""
    got = cache.classify(sql)
    assert got == classify_mysql(sql), sql
    return got


def variant(sql: str, n: int) -> str:
    """``sql`` with every number and string literal replaced (the ``n``-th filling), as
    our lexer finds them; the rest of the text as it was."""
    lexed = _lex(sql)
    out, pos = [], 0
    for i, t in enumerate(t for t in lexed.tokens if t.kind in (NUM, STRING)):
        out.append(sql[pos : t.start])
        if t.kind == NUM:
            out.append(str(n * 7919 + i) if t.text.isdigit() else t.text)
        else:
            q = t.text[0]
            body = ["", "zq", "it''s" if q == "'" else "x", "$.a", "%Y", "1 DAY", "é ü"][n % 7]
            out.append(f"{q}{body}{q}")
        pos = t.end
    out.append(sql[pos:])
    return "".join(out)


# --------------------------------------------------------------------------------------
# The answers: always classify_mysql's, whichever text of a shape came first


@pytest.mark.parametrize("first", [0, 1, 2])
def test_every_corpus_text_and_its_literal_variants_get_their_own_full_answer(first: int) -> None:
    cache = MySqlShapeCache()
    for sql in CORPUS:
        for n in (first, first + 1, first + 2, 3, 4, 5, 6):
            through(cache, variant(sql, n))
        through(cache, sql)


TEMPLATES = [
    "SELECT t FROM rows_10k WHERE id = {n}",
    "SELECT id, name FROM users WHERE email = {s} AND age > {n} ORDER BY id LIMIT {n}",
    "select * from shop.orders o join shop.items i on i.order_id = o.id where o.id = {n}",
    "INSERT INTO t (a, b, c) VALUES ({n}, {s}, {s}), ({n}, {s}, NULL)",
    "UPDATE accounts SET balance = balance - {n} WHERE id = {n}",
    "UPDATE accounts SET note = {s} WHERE {n} = {n}",
    "DELETE FROM sessions WHERE id = {n} LIMIT {n}",
    "DELETE FROM sessions WHERE {n} = {n}",
    "DELETE FROM sessions WHERE {n}",
    "DELETE FROM sessions WHERE {s} = {s}",
    "SELECT JSON_EXTRACT(doc, {s}) FROM t WHERE id = {n}",
    "SELECT DATE_FORMAT(created, {s}) FROM t",
    "SELECT * FROM t WHERE created > NOW() - INTERVAL {s} DAY",
    "SELECT * FROM t WHERE a IN ({n}, {n}, {n}) AND b BETWEEN {n} AND {n}",
    "SET autocommit = {n}",
    "SET sql_mode = {s}",
    "SET @x = {s}",
    "SET SESSION wait_timeout = {n}",
    "PREPARE s FROM {s}",
    "SELECT {s} INTO OUTFILE {s}",
    "SELECT LOAD_FILE({s})",
    "SELECT {n}; DELETE FROM t WHERE id = {n}",
    "SELECT * FROM t WHERE a = {s} /* note */ AND b = {n} -- tail\n",
    "/*!50000 DELETE FROM t WHERE id = {n} */",
    "SELECT {n}{s}",
    "SELECT {n}.5",
    "SELECT a FROM t WHERE b = -{n}",
]
_SAMPLE_STRINGS = [
    "''", "'x'", '"x"', "'$.a.b'", "'$[0]'", "'%Y-%m-%d'", "'1 2'", "'it''s'",
    "'a\\'b'", "'*/'", "'-- x'", "'; DROP TABLE t'", "'é'", "_utf8'x'", "X'0F'",
    "'SELECT * FROM mysql.user'", "'ANSI_QUOTES'", "'NO_BACKSLASH_ESCAPES'", "'/tmp/x'",
]  # fmt: skip
STRINGS = st.one_of(
    st.sampled_from(_SAMPLE_STRINGS),
    st.text(st.characters(blacklist_characters="'\\\x00"), max_size=8).map(lambda b: f"'{b}'"),
)
NUMBERS = st.one_of(
    st.integers(0, 10**20).map(str), st.sampled_from(["0", "1", "1e5", "0x1F", "1.5", ".5"])
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TEMPLATES), st.data())
def test_any_fillings_of_a_template_get_their_own_full_answers(
    template: str, data: st.DataObject
) -> None:
    cache = MySqlShapeCache()
    for _ in range(3):
        sql = template
        while "{n}" in sql or "{s}" in sql:
            i, j = sql.find("{n}"), sql.find("{s}")
            if j < 0 or 0 <= i < j:
                sql = sql.replace("{n}", data.draw(NUMBERS), 1)
            else:
                sql = sql.replace("{s}", data.draw(STRINGS), 1)
        through(cache, sql)


def test_the_exact_text_cache_in_front_changes_nothing() -> None:
    front = ClassificationCache(MySqlShapeCache().classify)
    for sql in CORPUS:
        for text in (sql, variant(sql, 1), sql, variant(sql, 2)):
            assert front.classify(text) == classify_mysql(text), text


# --------------------------------------------------------------------------------------
# What is shared, and what never is


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT t FROM rows_10k WHERE id = 4242",
        "SELECT id, name FROM users WHERE email = 'a@b.c' AND age > 3 ORDER BY id LIMIT 10",
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, \"y\")",
        "UPDATE accounts SET balance = balance - 5 WHERE id = 7",
        "UPDATE t SET a = 1 WHERE 7 = id",
        "DELETE FROM sessions WHERE id = 3 LIMIT 1",
        "SELECT 1; SELECT a FROM t WHERE b = 'c'",
    ],
)
def test_ordinary_statements_are_answered_from_their_shape(sql: str) -> None:
    cache = MySqlShapeCache()
    first = through(cache, sql)
    assert not cache.shared(sql)  # met once: classified in full, not yet blind
    other = variant(sql, 3)
    assert other != sql
    got = through(cache, other)  # met twice: classified blind, answered from the shape
    assert cache.hits == 1 and cache.shared(sql) and cache.shared(other)
    assert got.classes == first.classes and got.fingerprint == first.fingerprint
    assert [s.text for s in got.statements] == [s.text for s in classify_mysql(other).statements]
    third = variant(sql, 5)
    through(cache, third)
    assert cache.hits == 2


def test_a_text_met_once_costs_one_full_classification(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client of one-off statements (ad-hoc queries, each its own shape) pays the full
    classification and nothing more; the blind one runs when a shape recurs."""
    import wardgate.sql.mysql_shapes as shapes

    learned: list[int] = []
    learn = shapes._learn

    def counting(tokens, forms):  # type: ignore[no-untyped-def]
        learned.append(1)
        return learn(tokens, forms)

    monkeypatch.setattr(shapes, "_learn", counting)
    cache = MySqlShapeCache()
    for i in range(20):
        through(cache, f"SELECT c{i} FROM t WHERE id = {i}")
    assert learned == []
    through(cache, "SELECT c3 FROM t WHERE id = 77")
    assert learned == [1] and cache.shared("SELECT c3 FROM t WHERE id = 1")


@pytest.mark.parametrize(
    ("sql", "other"),
    [
        ("DELETE FROM t WHERE 1 = 1", "DELETE FROM t WHERE 1 = 0"),
        ("DELETE FROM t WHERE 0", "DELETE FROM t WHERE 1"),
        ("UPDATE t SET a = 1 WHERE 'a' = 'a'", "UPDATE t SET a = 1 WHERE 'a' = 'b'"),
        ("DELETE FROM t WHERE id = 1 OR 2 > 1", "DELETE FROM t WHERE id = 1 OR 1 > 2"),
        ("PREPARE s FROM 'SELECT 1'", "PREPARE s FROM 'DROP TABLE t'"),
        ("SET sql_mode = 'TRADITIONAL'", "SET sql_mode = 'ANSI_QUOTES'"),
        ("SELECT JSON_EXTRACT(d, '$.a') FROM t", "SELECT JSON_EXTRACT(d, 'bad') FROM t"),
        ("SELECT 'a' INTO OUTFILE '/tmp/a'", "SELECT 'b' INTO OUTFILE '/tmp/b'"),
        ("SELECT LOAD_FILE('/etc/hosts')", "SELECT LOAD_FILE('/etc/passwd')"),
        ("SET GLOBAL max_connections = 10", "SET GLOBAL max_connections = 20"),
    ],
)
def test_shapes_that_depend_on_a_literal_or_are_dangerous_are_never_shared(
    sql: str, other: str
) -> None:
    cache = MySqlShapeCache()
    through(cache, sql)
    assert not cache.shared(sql) and not cache.shared(other)
    hits = cache.hits
    through(cache, other)
    through(cache, sql)
    assert cache.hits == hits


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1e5", "SELECT 0x1F", "SELECT 1.5", "SELECT .5", "SELECT _utf8'a'",
        "SELECT X'0F'", "SELECT N'abc'", "SELECT 'it''s'", "SELECT 'a\\'b'", "SELECT 1a",
        "SELECT a FROM t.1", "SELECT 'a'\"b\"", "SELECT 'a'.b",
    ],
)  # fmt: skip
def test_literals_that_are_not_plain_are_never_blanked(sql: str) -> None:
    lexed = _lex(sql)
    assert lexed.error is not None or shape_key(lexed.tokens) is None
    cache = MySqlShapeCache()
    through(cache, sql)
    assert not cache.shared(sql)


def test_the_key_keeps_everything_but_plain_literal_values() -> None:
    def key(sql: str) -> str | None:
        keyed = shape_key(_lex(sql).tokens)
        return None if keyed is None else keyed[0]

    base = key("SELECT a FROM t WHERE b = 1")
    assert base == key("SELECT a FROM t WHERE b = 99") == key("SELECT a /* c */ FROM t WHERE b = 7")
    assert base != key("SELECT a FROM t WHERE b = '1'")  # a string, not a number
    assert key("SELECT 'x'") != key('SELECT "x"')
    assert base != key("SELECT a FROM u WHERE b = 1")
    assert base != key("select a FROM t WHERE b = 1")
    assert base != key("SELECT a FROM t WHERE b=1")  # where sqlglot gets spaces
    assert base != key("SELECT a FROM t WHERE b = @v")
    # the classifier sees tokens: an opened executable comment is its content
    assert key("/*!50000 SELECT 1 */") == key("SELECT 2")


# --------------------------------------------------------------------------------------
# The blind classification


def test_a_rule_that_reads_a_literal_makes_its_shape_classified_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What makes the cache sound: a rule that looks at a literal's value (here one
    planted for the test) fails the blind classification, whatever it does with it."""
    rule = my._RULES["SELECT"]

    def reads_the_last_token(st: my._Stmt, tokens: list[my._Tok], depth: int) -> None:
        rule(st, tokens, depth)
        if tokens[-1].up == "42":  # a rule may read a literal; then nothing is shared
            st.classes.add(WU)

    monkeypatch.setitem(my._RULES, "SELECT", reads_the_last_token)
    cache = MySqlShapeCache()
    for n in (41, 42, 43):
        through(cache, f"SELECT a FROM t WHERE b = {n}")
        assert not cache.shared(f"SELECT a FROM t WHERE b = {n}")
    assert cache.classify("SELECT a FROM t WHERE b = 42").classes == {R, WU}
    assert cache.classify("SELECT a FROM t WHERE b = 43").classes == {R}


def test_a_tree_rule_that_reads_a_literal_makes_its_shape_classified_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    facts = my._tree_facts

    def reads_literals(node, classes, tables, scope):  # type: ignore[no-untyped-def]
        facts(node, classes, tables, scope)
        for lit in node.find_all(my.exp.Literal):
            if lit.name == "42":
                classes.add(WU)

    monkeypatch.setattr(my, "_tree_facts", reads_literals)
    cache = MySqlShapeCache()
    for n in (41, 42):
        through(cache, f"SELECT a FROM t WHERE b = {n}")
    assert not cache.shared("SELECT a FROM t WHERE b = 7")


def test_blind_classification_answers_ordinary_statements_and_raises_on_literal_reads() -> None:
    def blind(sql: str, stand_in: int = 0) -> object:
        tokens = _lex(sql).tokens
        keyed = shape_key(tokens)
        assert keyed is not None
        return classify_blind(tokens, keyed[1], stand_in)

    shape = blind("UPDATE t SET a = 'x' WHERE id = 5")
    assert shape.statements == ((("UPDATE", frozenset({W}), frozenset({"t"}), 0, 9)),)  # type: ignore[attr-defined]
    for sql in ("DELETE FROM t WHERE 1 = 1", "SET sql_mode = 'x'", "PREPARE s FROM 'x'"):
        with pytest.raises(LiteralRead):
            blind(sql)
    assert blind("SET GLOBAL x = 1").statements is None  # type: ignore[attr-defined]


_USES: list[Callable[[BlindLiteral], object]] = [
    str, repr, hash, bool, len, int, float, iter,
    lambda b: b == "x", lambda b: operator.eq("x", b), lambda b: b < "x", lambda b: b + "x",
    lambda b: "x" + b, lambda b: b.upper(), lambda b: b.startswith("x"), lambda b: b[0],
    lambda b: "x" in b, lambda b: f"{b}", lambda b: b % 1, lambda b: {b: 1},
    lambda b: copy.copy(b), lambda b: b.__dict__, lambda b: b.lower,
]  # fmt: skip


@pytest.mark.parametrize("use", _USES)
def test_every_use_of_a_blind_literal_raises_literal_read(
    use: Callable[[BlindLiteral], object],
) -> None:
    with pytest.raises((LiteralRead, AttributeError)) as info:
        use(BlindLiteral(("'x'", "'y'")))
    if info.type is AttributeError:  # only for what a str does not have either
        assert not hasattr("x", "__dict__")


def test_a_blind_literal_looks_like_any_string_to_type_checks_and_walks() -> None:
    b = BlindLiteral(("'x'", "'y'"))
    assert isinstance(b, str) and not isinstance(b, my.exp.Expression | list)
    assert not hasattr(b, "parent")  # sqlglot's walks: as for a str
    with pytest.raises(LiteralRead):
        b.strip()
    assert issubclass(LiteralRead, BaseException) and not issubclass(LiteralRead, Exception)


def test_outside_a_blind_classification_a_blind_literal_is_refused() -> None:
    tok = my._Tok(STRING, 0, 3, BlindLiteral(("'x'", "'y'")), "")  # type: ignore[arg-type]
    with pytest.raises(LiteralRead):
        my._canonical([tok])


# --------------------------------------------------------------------------------------
# Bounds


def test_entries_are_bounded_and_long_keys_not_stored() -> None:
    cache = MySqlShapeCache(max_entries=3, max_key_chars=200)
    for i in range(6):
        through(cache, f"SELECT c{i} FROM t WHERE id = 1")
    assert len(cache) == 3
    long_sql = "SELECT " + ", ".join(f"c{i}" for i in range(60)) + " FROM t WHERE id = 1"
    through(cache, long_sql)
    assert not cache.shared(long_sql)
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize(
    "bad", [{"max_entries": 0}, {"max_key_chars": -1}, {"max_total_chars": -1}]
)
def test_invalid_limits_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="MySqlShapeCache"):
        MySqlShapeCache(**bad)


def test_a_client_of_unique_literals_is_answered_from_one_shape() -> None:
    cache = MySqlShapeCache()
    texts = [f"SELECT t FROM rows_10k WHERE id = {i}" for i in itertools.islice(itertools.count(), 50)]
    for sql in texts:
        through(cache, sql)
    assert len(cache) == 1 and cache.hits == 49


# --------------------------------------------------------------------------------------
# The text map: a text whose plain literals match a learnt one's is answered unlexed


def text_variant(sql: str, n: int) -> str:
    """``sql`` with every literal ``text_key`` blanks given another value (and length) of
    its form: one text key, other values."""
    from wardgate.sql.mysql_shapes import _TEXT_LITERAL

    def other(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return str(n * 7919 + len(m.group(1)))
        q = m.group(0)[0]
        return q + ["", "zq", "-- x", "/* $.a */", "# %Y", "1 DAY", ";"][n % 7] + q

    return _TEXT_LITERAL.sub(other, sql)


class _CountLexes:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import wardgate.sql.mysql_shapes as shapes

        self.count = 0
        real = shapes._lex

        def counting(sql: str, *a: object) -> object:
            self.count += 1
            return real(sql, *a)  # type: ignore[arg-type]

        monkeypatch.setattr(shapes, "_lex", counting)


def test_corpus_texts_and_their_text_variants_get_their_own_full_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lexes = _CountLexes(monkeypatch)
    unlexed = 0
    for i, sql in enumerate(CORPUS):
        cache = MySqlShapeCache()
        for n in (i, i + 1, i + 2, i + 3):  # the second text learns the shape and text
            before = lexes.count
            through(cache, text_variant(sql, n))
            unlexed += lexes.count == before
        through(cache, sql)
    assert unlexed >= 100, unlexed  # not vacuous


def test_a_client_of_unique_literals_is_answered_without_the_lexer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = MySqlShapeCache()
    for i in (1, 2):
        through(cache, f"SELECT t FROM rows_10k WHERE id = {i} LIMIT 1; SELECT 'a{i}'")
    lexes = _CountLexes(monkeypatch)
    for i in (3, 123456, 12345678901234567890, 0):
        got = through(cache, f"SELECT t FROM rows_10k WHERE id = {i} LIMIT 1; SELECT 'a{i}'")
        assert [s.text for s in got.statements] == [
            f"SELECT t FROM rows_10k WHERE id = {i} LIMIT 1",
            f"SELECT 'a{i}'",
        ]
    assert lexes.count == 0


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT /* 7 */ a FROM t WHERE id = 5",
        "SELECT `a 5 b` FROM t WHERE id = 5",
        "SELECT a FROM t WHERE id = 5 # 7",
        "SELECT a FROM t WHERE id = 5 -- 7",
        "SELECT a /* 'x' */ FROM t WHERE id = 5",
    ],
)
def test_blanks_that_are_not_literal_tokens_keep_the_lexer(
    sql: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wardgate.sql.mysql_shapes import text_key

    cache = MySqlShapeCache()
    through(cache, sql)
    through(cache, text_variant(sql, 1))
    keyed = text_key(sql)
    assert keyed is not None
    entry = cache._texts.get(keyed[0])
    assert entry is None or entry.shape is None, sql  # None: the shape was never shared
    lexes = _CountLexes(monkeypatch)
    through(cache, text_variant(sql, 2))
    assert lexes.count == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'é', 5 FROM t",  # not ASCII
        "SELECT 1e5, 0x1F, 1.5, .5, @a1, @@b2, t1.c, _utf8'a', N'b', X'0F', 'it''s', 1a FROM t1",
    ],
)
def test_what_is_not_plain_is_not_blanked_by_the_text_key(sql: str) -> None:
    from wardgate.sql.mysql_shapes import text_key

    assert text_key(sql) is None


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("SELECT /*!7920 */ a FROM t WHERE id = 5", "SELECT /*!50000 */ a FROM t WHERE id = 5"),
        ("SELECT /*!50000 */ a FROM t WHERE id = 5", "SELECT /*!7920 */ a FROM t WHERE id = 5"),
        ("SELECT /*!7920 1 */ a FROM t WHERE id = 5", "SELECT /*!50000 1 */ a FROM t WHERE id = 5"),
        ("SELECT /*M!100500 2 */ a FROM t", "SELECT /*M!12 2 */ a FROM t"),
    ],
)
def test_an_executable_comments_version_is_never_blanked(first: str, second: str) -> None:
    """Five or six digits after ``/*!`` are a version, fewer a number: the count of digits
    changes the tokens, so they are never a blank of the text key."""
    from wardgate.sql.mysql_shapes import text_key

    cache = MySqlShapeCache()
    for sql in (first, first.replace("id = 5", "id = 6"), second, first, second):
        through(cache, sql)
    assert text_key(first) != text_key(second)
