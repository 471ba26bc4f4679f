"""MySQL statement classification: a MySQL-faithful lexer in front of sqlglot's MySQL parser.

Owns ``classify_mysql``: SQL text in, ``Classification`` out, never an exception.

Why a lexer of our own
----------------------
sqlglot parses SQL well but lexes it like a transpiler, not like the MySQL server:

* ``/*!50000 DROP TABLE t */`` is a comment to sqlglot and *code* to MySQL (MariaDB also
  runs ``/*M! ... */``). Our lexer opens executable comments, so their content is
  classified like any other text (whatever the version number: a server too old to run it
  makes us stricter than needed, never laxer).
* ``--`` starts a comment only when followed by whitespace or a control character, ``#``
  always does, ``/* */`` does not nest. The lexer follows the server's rules and drops
  comments; sqlglot then parses comment-free text and cannot disagree about them.
* Statements are split at ``;`` by the lexer (``BEGIN ... END`` blocks of stored programs
  are kept whole).

The server's lexing of strings depends on ``sql_mode``: with NO_BACKSLASH_ESCAPES or
ANSI_QUOTES, ``'a\\'`` or ``"a\\"`` end earlier than by default, so the same bytes can be
one harmless string or a string followed by more statements. We classify with MySQL's
default modes, make a session change of ``sql_mode`` that is not a literal free of those
modes ``server-escape``, and refuse (unclassified) a string whose statement boundaries or
comments would differ under those modes. Deployment requirement: the server's *global*
sql_mode must not include NO_BACKSLASH_ESCAPES or ANSI_QUOTES.

Each statement's first keywords choose the rule. Statements sqlglot understands well
(SELECT, INSERT, REPLACE, UPDATE, DELETE, CREATE TABLE ... SELECT, CREATE VIEW, SET with a
subquery, DO) are parsed to find tables and to judge WHERE clauses; statements it does not
(LOAD DATA, HANDLER, INSTALL PLUGIN, GRANT, ...) are classified from their keywords, with
the tables they name. Whatever the statement, calls to ``LOAD_FILE()`` / ``sys_exec()``
and ``INTO OUTFILE`` / ``INTO DUMPFILE`` are found at token level.

Fail closed: a lexer error (unterminated string or comment), a NUL byte, a statement
kind without a rule, an ambiguous string, a statement that needs sqlglot and does not
parse, or an internal error -> ``UNCLASSIFIED``.

Judgements: ``HANDLER`` is read (it reads rows with the SELECT privilege and cannot
write); ``CALL`` is dynamic; ``RENAME TABLE`` / ``ALTER ... RENAME`` / ``MODIFY`` /
``CHANGE`` are DDL + destructive; ``KILL``, ``SHUTDOWN``, ``FLUSH``, ``RESET``, ``PURGE``,
replication control, ``SET GLOBAL``/``PERSIST`` and log-silencing session variables
(``sql_log_bin``, ``sql_log_off``) are server-escape; ``DELETE ... LIMIT n`` without WHERE
is unbounded.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL

from wardgate.sql.blind import LiteralRead, raise_on_every_use
from wardgate.sql.classes import Classification, PreparedOp, StatementClass, StatementInfo

READ = StatementClass.READ
WRITE = StatementClass.WRITE
WRITE_UNBOUNDED = StatementClass.WRITE_UNBOUNDED
DDL = StatementClass.DDL
DESTRUCTIVE = StatementClass.DESTRUCTIVE
PRIVILEGE = StatementClass.PRIVILEGE
SERVER_ESCAPE = StatementClass.SERVER_ESCAPE
DYNAMIC = StatementClass.DYNAMIC
TRANSACTION = StatementClass.TRANSACTION
SESSION = StatementClass.SESSION
UTILITY = StatementClass.UTILITY
UNCLASSIFIED = StatementClass.UNCLASSIFIED

EXACT_FINGERPRINT_CLASSES = frozenset({SERVER_ESCAPE, PRIVILEGE, DYNAMIC, UNCLASSIFIED})
_MAX_DEPTH = 4  # PREPARE ... FROM '<text>' classifies <text>, which may PREPARE again

# sqlglot logs the SQL text of every statement it falls back on ("contains unsupported
# syntax"). SQL with literals must not reach logs, so its warnings are silenced.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_DIALECT = MySQL()

# --------------------------------------------------------------------------------------
# Literal-blind classification (``wardgate.sql.mysql_shapes``)
# --------------------------------------------------------------------------------------

# While set: the classification is literal-blind, and this says which of a blind
# literal's two stand-in texts sqlglot gets (``_canonical``); the literals of the trees it
# parses are blinded too (``_parse``).
_BLIND: ContextVar[int | None] = ContextVar("wardgate_mysql_blind", default=None)
# The trees a literal-blind classification parsed, in order (their shapes are compared
# between the two stand-ins).
PARSED: ContextVar[list[exp.Expression]] = ContextVar("wardgate_mysql_parsed")


@raise_on_every_use
class BlindLiteral:
    """Stands for a literal's value in a literal-blind classification: in the ``text`` and
    ``up`` of a STRING or NUM token, and in the ``this`` of a parsed ``exp.Literal``.

    Every use raises ``LiteralRead`` (a ``BaseException``: no ``except Exception`` can
    turn it into an answer). What it lets through says nothing about the value it stands
    for, because it is the same for every string: ``isinstance(x, str)`` is true
    (``__class__`` is ``str``), and asking for an attribute a ``str`` does not have raises
    ``AttributeError`` (so sqlglot's ``hasattr(v, "parent")`` walks pass it by). Only
    ``_canonical`` looks inside: it writes a stand-in literal of the same form for sqlglot.
    """

    __slots__ = ("_forms",)

    def __init__(self, forms: tuple[str, str]) -> None:
        object.__setattr__(self, "_forms", forms)

    def __getattribute__(self, name: str) -> Any:
        if name == "__class__":
            return str
        if hasattr(str, name):
            raise LiteralRead(name)
        raise AttributeError(name)


def _blind_tree(tree: exp.Expression) -> None:
    """Blind every literal of a tree parsed from stand-in literals (so a rule that reads
    one raises). Kept: the tree's shape, which must not depend on the values."""
    for node in list(tree.walk()):
        if isinstance(node, exp.Literal):
            node.args["this"] = BlindLiteral(("", ""))

# --------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------

WORD, QIDENT, STRING, VAR, NUM, PUNCT, SEMI = "word", "qident", "string", "var", "num", "p", ";"


class _Tok(NamedTuple):  # (a tuple: made in C, ~0.4 us cheaper per token than a dataclass)
    kind: str
    start: int
    end: int
    text: str
    up: str  # WORD: upper-cased text; QIDENT: the identifier; STRING: decoded; else text


class LexError(ValueError):
    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"{message} at character {position + 1}")
        self.position = position


def _token_regex(single_backslash: bool, double_backslash: bool) -> re.Pattern[str]:
    sq = r"'(?:[^'\\]|\\.|'')*'" if single_backslash else r"'(?:[^']|'')*'"
    dq = r'"(?:[^"\\]|\\.|"")*"' if double_backslash else r'"(?:[^"]|"")*"'
    bq = r"`(?:[^`]|``)*`"
    # Whitespace before a token is part of its match (half the matches of a typical
    # statement; possessive, so that ``punct`` never takes a trailing blank); the token
    # itself is the named group that matched (``lastindex``).
    return re.compile(
        rf"""
        \s*+(?:
          (?P<line>\#[^\n]*|--(?=[\x01-\x20]|\Z)[^\n]*)
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
        )""",
        re.VERBOSE | re.DOTALL,
    )


_DEFAULT_LEX = _token_regex(True, True)
# The lexings the server uses under NO_BACKSLASH_ESCAPES and under ANSI_QUOTES.
_OTHER_LEXES = (_token_regex(False, False), _token_regex(True, False))

_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _decode_string(text: str) -> str:
    quote, inner = text[0], text[1:-1]
    inner = inner.replace(quote * 2, quote)
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\" and i + 1 < len(inner):
            nxt = inner[i + 1]
            # \% and \_ keep their backslash (they are LIKE escapes)
            out.append(_ESCAPES.get(nxt, "\\" + nxt if nxt in "%_" else nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Lexed:
    tokens: tuple[_Tok, ...]
    markers: tuple[tuple[str, int], ...]  # statement-structure: comments, exec, ';'
    error: LexError | None


def _lex(text: str, pattern: re.Pattern[str] = _DEFAULT_LEX) -> _Lexed:
    # The pattern matches at every position but trailing whitespace (``punct`` takes any
    # one character), so ``finditer`` yields the text's tokens back to back.
    tokens: list[_Tok] = []
    markers: list[tuple[str, int]] = []
    append = tokens.append
    in_exec = -1  # start of the executable comment we are inside, or -1
    for m in pattern.finditer(text):
        kind = m.lastgroup
        pos, end = m.span(m.lastindex)  # type: ignore[arg-type]
        if kind == "word":
            tok = text[pos:end]
            append(_Tok(WORD, pos, end, tok, tok.upper()))
        elif kind == "punct":  # or a "*/" outside an executable comment (* and / to the server)
            tok = text[pos:end]
            if end - pos == 1:
                append(_Tok(PUNCT, pos, end, tok, tok))
            else:
                for i, ch in enumerate(tok):
                    append(_Tok(PUNCT, pos + i, pos + i + 1, ch, ch))
        elif kind == "num":
            tok = text[pos:end]
            append(_Tok(NUM, pos, end, tok, tok))
        elif kind in ("sq", "dq"):
            tok = text[pos:end]
            append(_Tok(STRING, pos, end, tok, _decode_string(tok)))
        elif kind == "bq":
            tok = text[pos:end]
            append(_Tok(QIDENT, pos, end, tok, tok[1:-1].replace("``", "`")))
        elif kind == "semi":
            markers.append((";", pos))
            append(_Tok(SEMI, pos, end, ";", ";"))
        elif kind == "var":
            tok = text[pos:end]
            append(_Tok(VAR, pos, end, tok, tok.lower()))
        elif kind in ("line", "comment"):
            markers.append(("comment", pos))
        elif kind == "exec":
            if in_exec >= 0:
                return _Lexed(
                    tuple(tokens), tuple(markers), LexError(pos, "nested executable comment")
                )
            in_exec = pos
            markers.append(("exec", pos))
        elif kind == "close":
            if in_exec >= 0:
                in_exec = -1
                markers.append(("close", pos))
            else:
                append(_Tok(PUNCT, pos, pos + 1, "*", "*"))
                append(_Tok(PUNCT, pos + 1, end, "/", "/"))
        else:  # bad
            what = "comment" if text[pos:end] == "/*" else "quoted string or identifier"
            return _Lexed(tuple(tokens), tuple(markers), LexError(pos, f"unterminated {what}"))
    if in_exec >= 0:
        return _Lexed(
            tuple(tokens), tuple(markers), LexError(in_exec, "unterminated executable comment")
        )
    return _Lexed(tuple(tokens), tuple(markers), None)


def _ambiguous(text: str, default: _Lexed) -> bool:
    """Would NO_BACKSLASH_ESCAPES or ANSI_QUOTES put statement boundaries or comments
    somewhere else? (Only possible when a backslash is inside a quoted string.)"""
    if "\\" not in text:
        return False
    for pattern in _OTHER_LEXES:
        other = _lex(text, pattern)
        # Where the other lexing fails, a server in that mode rejects the statement there;
        # compare what comes before.
        limit = other.error.position if other.error is not None else len(text)
        mine = [m for m in default.markers if m[1] < limit]
        theirs = [m for m in other.markers if m[1] < limit]
        if mine != theirs:
            return True
    return False


# --------------------------------------------------------------------------------------
# Statement splitting
# --------------------------------------------------------------------------------------

_CREATE_KINDS = frozenset(
    {
        "TABLE",
        "TEMPORARY",
        "VIEW",
        "INDEX",
        "UNIQUE",
        "FULLTEXT",
        "SPATIAL",
        "DATABASE",
        "SCHEMA",
        "PROCEDURE",
        "FUNCTION",
        "TRIGGER",
        "EVENT",
        "USER",
        "ROLE",
        "SERVER",
        "TABLESPACE",
        "LOGFILE",
        "RESOURCE",
        "UNDO",
    }
)
_ROUTINES = frozenset({"PROCEDURE", "FUNCTION", "TRIGGER", "EVENT"})
_BLOCK_ENDERS = frozenset({"IF", "LOOP", "WHILE", "REPEAT"})


def _object_kind(tokens: Sequence[_Tok], start: int = 1) -> tuple[str, int]:
    """After CREATE/ALTER/DROP [OR REPLACE] [DEFINER = ...] [ALGORITHM = ...] ...: the kind
    of object (TABLE, VIEW, PROCEDURE, ...) and its token index; ("", -1) when none."""
    for i in range(start, min(len(tokens), start + 16)):
        t = tokens[i]
        if t.kind == WORD and t.up in _CREATE_KINDS:
            prev = tokens[i - 1] if i > 0 else None
            if prev is not None and prev.kind == PUNCT and prev.text == "=":
                continue  # a value such as DEFINER = event@host, not the object kind
            return t.up, i
    return "", -1


def _split(tokens: Sequence[_Tok]) -> list[list[_Tok]]:
    statements: list[list[_Tok]] = []
    current: list[_Tok] = []
    depth = 0
    routine = False
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.kind == SEMI and depth <= 0:
            if current:
                statements.append(current)
            current, depth, routine = [], 0, False
            i += 1
            continue
        if not current and t.kind == WORD and t.up == "CREATE":
            kind, _ = _object_kind(tokens[i:])
            routine = kind in _ROUTINES
        current.append(t)
        if routine and t.kind == WORD:
            # Stored programs contain ';' inside BEGIN ... END (and CASE ... END CASE).
            if t.up in ("BEGIN", "CASE"):
                depth += 1
            elif t.up == "END":
                nxt = tokens[i + 1] if i + 1 < len(tokens) else None
                if nxt is not None and nxt.kind == WORD and nxt.up in _BLOCK_ENDERS:
                    current.append(nxt)  # END IF / END LOOP / ...: nothing was opened
                    i += 1
                else:
                    depth = max(depth - 1, 0)
                    if nxt is not None and nxt.kind == WORD and nxt.up == "CASE":
                        current.append(nxt)  # END CASE closes the CASE statement
                        i += 1
        i += 1
    if current:
        statements.append(current)
    return statements


def _canonical(tokens: Sequence[_Tok]) -> str:
    """The statement without comments (executable comments opened), for sqlglot. A blind
    literal is written as the stand-in literal the classification has chosen."""
    parts: list[str] = []
    prev_end = -1
    for t in tokens:
        if parts and t.start > prev_end:
            parts.append(" ")
        text: Any = t.text
        if type(text) is BlindLiteral:
            form = _BLIND.get()
            if form is None:
                raise LiteralRead("a blind literal outside a literal-blind classification")
            text = object.__getattribute__(text, "_forms")[form]
        parts.append(text)
        prev_end = t.end
    return "".join(parts)


# --------------------------------------------------------------------------------------
# Token-level facts, whatever the statement
# --------------------------------------------------------------------------------------

_SERVER_ESCAPE_FUNCTIONS = frozenset(
    {
        "load_file",
        # lib_mysqludf_sys and friends: shell commands from SQL
        "sys_exec",
        "sys_eval",
        "sys_get",
        "sys_set",
        "sys_bineval",
        "lib_mysqludf_sys_info",
    }
)


def _token_dangers(tokens: Sequence[_Tok]) -> set[StatementClass]:
    found: set[StatementClass] = set()
    for i, t in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if (
            t.kind in (WORD, QIDENT)
            and nxt.kind == PUNCT
            and nxt.text == "("
            and t.up.lower() in _SERVER_ESCAPE_FUNCTIONS
        ):
            found.add(SERVER_ESCAPE)
        if (
            t.kind == WORD
            and t.up == "INTO"
            and nxt.kind == WORD
            and nxt.up in ("OUTFILE", "DUMPFILE")
        ):
            found.add(SERVER_ESCAPE)  # writes a file on the server
    return found


def _has_word(tokens: Sequence[_Tok], *words: str) -> bool:
    wanted = set(words)
    return any(t.kind == WORD and t.up in wanted for t in tokens)


def _word_at(tokens: Sequence[_Tok], i: int) -> str:
    return tokens[i].up if 0 <= i < len(tokens) and tokens[i].kind == WORD else ""


def _name_at(tokens: Sequence[_Tok], i: int) -> tuple[str, int]:
    """A possibly qualified name (db.t, `db`.`t`) starting at token i -> (lower-case, next)."""
    parts: list[str] = []
    while i < len(tokens) and tokens[i].kind in (WORD, QIDENT):
        t = tokens[i]
        parts.append(t.text if t.kind == WORD else t.up)
        i += 1
        dot = tokens[i] if i < len(tokens) else None
        if dot is not None and dot.kind == PUNCT and dot.text == "." and dot.start == t.end:
            i += 1
            continue
        break
    return ".".join(parts).lower(), i


def _names_after(tokens: Sequence[_Tok], i: int, stop: frozenset[str] = frozenset()) -> set[str]:
    """Comma-separated names from token i on (stops at a word in ``stop`` or anything else)."""
    names: set[str] = set()
    while i < len(tokens):
        if _word_at(tokens, i) == "IF":  # IF [NOT] EXISTS
            while i < len(tokens) and _word_at(tokens, i) in ("IF", "NOT", "EXISTS"):
                i += 1
        if tokens[i : i + 1] and tokens[i].kind == WORD and tokens[i].up in stop:
            break
        name, i = _name_at(tokens, i)
        if not name:
            break
        names.add(name)
        # RENAME TABLE a TO b, c TO d / LOCK TABLES t READ, u AS x WRITE: skip to the comma
        while i < len(tokens) and not (tokens[i].kind == PUNCT and tokens[i].text == ","):
            if tokens[i].kind == PUNCT and tokens[i].text == "(":
                return names  # a column list or options: no more names
            if _word_at(tokens, i) == "TO":
                nxt, i = _name_at(tokens, i + 1)
                if nxt:
                    names.add(nxt)
                continue
            i += 1
        i += 1
    return names


def _first_name(tokens: Sequence[_Tok], i: int) -> list[_Tok]:
    """The tokens of the [IF NOT EXISTS] name starting at i (for CREATE TABLE name (...))."""
    start = i
    while _word_at(tokens, i) in ("IF", "NOT", "EXISTS"):
        i += 1
    _, end = _name_at(tokens, i)
    return list(tokens[start:end])


def _name_after_word(tokens: Sequence[_Tok], word: str) -> set[str]:
    for i, t in enumerate(tokens):
        if t.kind == WORD and t.up == word:
            name, _ = _name_at(tokens, i + 1)
            return {name} if name else set()
    return set()


# --------------------------------------------------------------------------------------
# WHERE folding on sqlglot trees
# --------------------------------------------------------------------------------------


class _Truth(Enum):
    TRUE = "true"
    FALSE = "false"
    NULL = "null"
    CONST = "const"  # the same for every row, value unknown (?, @var, RAND(), ...)
    ROW = "row"


_UNBOUNDED = (_Truth.TRUE, _Truth.CONST)
_ROW = object()
_CONST = object()
_NULL = object()
_LEADING_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_COMPARISONS: dict[type[exp.Expression], Callable[[Any, Any], bool]] = {
    exp.EQ: lambda a, b: bool(a == b),
    exp.NullSafeEQ: lambda a, b: bool(a == b),
    exp.NEQ: lambda a, b: bool(a != b),
    exp.GT: lambda a, b: bool(a > b),
    exp.GTE: lambda a, b: bool(a >= b),
    exp.LT: lambda a, b: bool(a < b),
    exp.LTE: lambda a, b: bool(a <= b),
}
_ARITHMETIC: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.Add: lambda a, b: a + b,
    exp.Sub: lambda a, b: a - b,
    exp.Mul: lambda a, b: a * b,
}
_REFLEXIVE = (exp.EQ, exp.NullSafeEQ, exp.GTE, exp.LTE)


def _mysql_number(value: object) -> float:
    """MySQL's string-to-number: the leading numeric part, else 0."""
    if isinstance(value, bool | int | float):
        return float(value)
    m = _LEADING_NUMBER.match(str(value))
    return float(m.group()) if m else 0.0


def _literal(node: exp.Literal) -> object:
    text = str(node.this)
    if node.is_string:
        return text
    try:
        return int(text, 16) if text.lower().startswith("0x") else float(text)
    except ValueError:
        return _CONST


def _row_or_const(node: exp.Expression) -> object:
    return _ROW if node.find(exp.Column) is not None else _CONST


def _value(node: exp.Expression | None) -> object:
    if node is None:
        return _CONST
    if isinstance(node, exp.Paren):
        return _value(node.this)
    if isinstance(node, exp.Literal):
        return _literal(node)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return _NULL
    if isinstance(node, exp.Column):
        return _ROW
    if isinstance(node, exp.Placeholder | exp.Parameter | exp.SessionParameter):
        return _CONST
    if isinstance(node, exp.Neg):
        inner = _value(node.this)
        return -_mysql_number(inner) if _is_plain(inner) else inner
    if isinstance(node, exp.And | exp.Or | exp.Not | exp.Xor | exp.Is):
        return {
            _Truth.TRUE: True,
            _Truth.FALSE: False,
            _Truth.NULL: _NULL,
            _Truth.CONST: _CONST,
            _Truth.ROW: _ROW,
        }[_truth(node)]
    compare = _COMPARISONS.get(type(node))
    arith = _ARITHMETIC.get(type(node))
    if compare is None and arith is None:
        return _row_or_const(node)
    left, right = node.args.get("this"), node.args.get("expression")
    if isinstance(node, _REFLEXIVE) and left is not None and left == right:
        return True  # "a = a": every row where a is not null
    if isinstance(left, exp.Column) or isinstance(right, exp.Column):
        return _ROW  # what the column's _value makes of it, without reading the other side
    lv, rv = _value(left), _value(right)
    if lv is _ROW or rv is _ROW:
        return _ROW
    if lv is _NULL or rv is _NULL:
        return _NULL
    if lv is _CONST or rv is _CONST:
        return _CONST
    try:
        if isinstance(lv, str) and isinstance(rv, str):
            # Default collations ignore case and trailing spaces, some ignore accents:
            # only "equal" is certain.
            if lv.casefold().rstrip() == rv.casefold().rstrip() and compare is not None:
                return compare(0, 0)
            return _CONST
        if compare is not None:
            return compare(_mysql_number(lv), _mysql_number(rv))
        assert arith is not None
        return arith(_mysql_number(lv), _mysql_number(rv))
    except Exception:
        return _CONST


def _is_plain(value: object) -> bool:
    return value is not _ROW and value is not _CONST and value is not _NULL


def _as_truth(value: object) -> _Truth:
    if value is _ROW:
        return _Truth.ROW
    if value is _CONST:
        return _Truth.CONST
    if value is _NULL:
        return _Truth.NULL
    return _Truth.TRUE if _mysql_number(value) != 0 else _Truth.FALSE


def _truth(node: exp.Expression | None) -> _Truth:
    if isinstance(node, exp.Paren):
        return _truth(node.this)
    if isinstance(node, exp.And | exp.Or | exp.Xor):
        parts = [_truth(node.this), _truth(node.expression)]
        if isinstance(node, exp.And):
            if _Truth.FALSE in parts or _Truth.NULL in parts:
                return _Truth.FALSE
            for weakest in (_Truth.ROW, _Truth.CONST):
                if weakest in parts:
                    return weakest
            return _Truth.TRUE
        if isinstance(node, exp.Or):
            for strongest in (_Truth.TRUE, _Truth.CONST, _Truth.ROW):
                if strongest in parts:
                    return strongest
            return _Truth.FALSE
        if _Truth.ROW in parts:  # XOR
            return _Truth.ROW
        if _Truth.CONST in parts:
            return _Truth.CONST
        if _Truth.NULL in parts:
            return _Truth.NULL
        return _Truth.TRUE if parts.count(_Truth.TRUE) == 1 else _Truth.FALSE
    if isinstance(node, exp.Not):
        inner = _truth(node.this)
        return {_Truth.TRUE: _Truth.FALSE, _Truth.FALSE: _Truth.TRUE}.get(inner, inner)
    if isinstance(node, exp.Is):
        subject = _value(node.this)
        if subject is _ROW or subject is _CONST:
            return _as_truth(subject)
        target = node.expression
        if isinstance(target, exp.Null):
            return _Truth.TRUE if subject is _NULL else _Truth.FALSE
        if isinstance(target, exp.Boolean):
            if subject is _NULL:
                return _Truth.FALSE
            actual = _mysql_number(subject) != 0
            return _Truth.TRUE if actual == bool(target.this) else _Truth.FALSE
        return _Truth.CONST
    if node is None:
        return _Truth.CONST
    return _as_truth(_value(node))


def _joins_bound(node: exp.Expression) -> bool:
    """UPDATE a JOIN b ON a.id = b.a_id touches only joined rows."""
    target = node.this
    joins = target.args.get("joins") if isinstance(target, exp.Table) else None
    return any(_truth(j.args.get("on")) is _Truth.ROW for j in joins or ())


def _write_is_unbounded(node: exp.Expression) -> bool:
    where = node.args.get("where")
    if where is None:
        return not _joins_bound(node)  # LIMIT without WHERE is still unbounded
    return _truth(where.this) in _UNBOUNDED


# --------------------------------------------------------------------------------------
# sqlglot tree facts
# --------------------------------------------------------------------------------------


def _arg(node: exp.Expression, name: str) -> Any:
    # sqlglot 30 names some args with a trailing underscore ("from_", "with_").
    value = node.args.get(name)
    return value if value is not None else node.args.get(name + "_")


def _table_name(table: exp.Table) -> str:
    if not isinstance(table.this, exp.Identifier):
        return ""  # SELECT ... INTO @var, table functions
    parts = [p for p in (table.text("catalog"), table.text("db"), table.name) if p]
    return ".".join(parts).lower()


def _tree_facts(
    node: exp.Expression, classes: set[StatementClass], tables: set[str], scope: frozenset[str]
) -> None:
    with_ = _arg(node, "with")
    if isinstance(with_, exp.With):
        ctes = list(with_.expressions)
        names = frozenset(c.alias_or_name.lower() for c in ctes)
        recursive = bool(with_.args.get("recursive"))
        visible = scope
        for cte in ctes:
            _tree_facts(cte.this, classes, tables, (scope | names) if recursive else visible)
            visible = visible | {cte.alias_or_name.lower()}
        scope = scope | names
    if isinstance(node, exp.Table):
        name = _table_name(node)
        if name and name != "dual" and not ("." not in name and name in scope):
            tables.add(name)
    elif isinstance(node, exp.Select) and _arg(node, "from") is not None:
        classes.add(READ)
    for key, child in node.args.items():
        if key in ("with", "with_"):
            continue
        if isinstance(child, exp.Expression):
            _tree_facts(child, classes, tables, scope)
        elif isinstance(child, list):
            for item in child:
                if isinstance(item, exp.Expression):
                    _tree_facts(item, classes, tables, scope)


class _NeedsParserError(ValueError):
    """sqlglot could not parse a statement whose tables or WHERE we need."""


def _parse(canonical: str) -> exp.Expression:
    try:
        parsed = [e for e in _DIALECT.parse(canonical) if e is not None]
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _NeedsParserError(
            f"the MySQL parser (sqlglot) could not parse this statement: {first}"
        ) from None
    tree = parsed[0] if len(parsed) == 1 else None
    if not isinstance(tree, exp.Expression) or isinstance(tree, exp.Command):
        raise _NeedsParserError("sqlglot (MySQL) does not understand this statement")
    if _BLIND.get() is not None:
        _blind_tree(tree)
        trees = PARSED.get(None)
        if trees is not None:
            trees.append(tree)
    return tree


# --------------------------------------------------------------------------------------
# Per-statement rules
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Stmt:
    kind: str
    classes: set[StatementClass]
    tables: set[str]
    prepared: PreparedOp | None = None
    error: str | None = None


_QUERY_TYPES: tuple[type[exp.Expression], ...] = (
    exp.Select,
    exp.SetOperation,
    exp.Subquery,
    exp.Values,
)


def _query(
    st: _Stmt,
    tokens: Sequence[_Tok],
    replace_first: str | None = None,
    expect: tuple[type[exp.Expression], ...] = (),
) -> exp.Expression:
    canonical = _canonical(tokens)
    if replace_first is not None:  # REPLACE -> INSERT, DO -> SELECT
        canonical = replace_first + canonical[tokens[0].end - tokens[0].start :]
    tree = _parse(canonical)
    if expect and not isinstance(tree, expect):
        # e.g. "WITH ... DELETE" handed to the query rule: judge it as what it is
        raise _NeedsParserError(f"parsed as {type(tree).__name__}, not the statement it starts as")
    _tree_facts(tree, st.classes, st.tables, frozenset())
    return tree


def _r_select(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    if any(t.kind == WORD and t.up == "INTO" for t in tokens) and _has_word(
        tokens, "OUTFILE", "DUMPFILE"
    ):
        st.classes |= {READ, SERVER_ESCAPE}
        # sqlglot cannot parse INTO OUTFILE: the tables are unknown, so it stays unclassified
    if tokens[0].up == "WITH":  # MySQL 8 allows WITH ... UPDATE / DELETE
        tree = _query(st, tokens, expect=(*_QUERY_TYPES, exp.Update, exp.Delete))
        if isinstance(tree, exp.Update | exp.Delete):
            st.kind = "UPDATE" if isinstance(tree, exp.Update) else "DELETE"
            st.classes.add(WRITE)
            if _write_is_unbounded(tree):
                st.classes.add(WRITE_UNBOUNDED)
            return
    else:
        _query(st, tokens, expect=_QUERY_TYPES)
    st.classes.add(READ)


def _r_insert(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes.add(WRITE)
    _query(st, tokens, "INSERT" if tokens[0].up == "REPLACE" else None, expect=(exp.Insert,))


def _r_update_delete(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes.add(WRITE)
    tree = _query(st, tokens, expect=(exp.Update, exp.Delete))
    if _write_is_unbounded(tree):
        st.classes.add(WRITE_UNBOUNDED)


def _r_do(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes.add(READ)  # DO evaluates expressions and discards the result
    _query(st, tokens, "SELECT", expect=(exp.Select,))


_SERVER_VARIABLES = frozenset(
    {
        "sql_log_bin",  # hides the statement from replicas and point-in-time recovery
        "sql_log_off",  # hides the session from the general query log
        "general_log",
        "general_log_file",
        "slow_query_log",
        "slow_query_log_file",
        "log_output",
        "debug",
        "debug_sync",
        "pseudo_thread_id",
        "pseudo_replica_mode",
        "pseudo_slave_mode",
        "gtid_next",
        "gtid_purged",
        "init_connect",
        "init_file",
        "local_infile",
        "secure_file_priv",
        "plugin_dir",
        "sql_replica_skip_counter",
        "sql_slave_skip_counter",
    }
)
_SERVER_VARIABLE_PREFIXES = ("audit_log", "server_audit", "log_")
# sql_mode values that change how the server lexes strings (see the module docstring).
_LEXER_MODES = (
    "NO_BACKSLASH_ESCAPES",
    "ANSI_QUOTES",
    "ANSI",
    "ORACLE",
    "MSSQL",
    "DB2",
    "POSTGRESQL",
    "MAXDB",
)


def _variable_class(name: str, value: Sequence[_Tok]) -> StatementClass:
    if name in _SERVER_VARIABLES or name.startswith(_SERVER_VARIABLE_PREFIXES):
        return SERVER_ESCAPE
    if name == "sql_mode":
        literal = len(value) == 1 and value[0].kind == STRING
        modes = value[0].up.upper() if literal else ""
        if not literal or any(m in modes.replace(" ", "").split(",") for m in _LEXER_MODES):
            return SERVER_ESCAPE
    return SESSION


def _top_level_items(tokens: Sequence[_Tok]) -> list[list[_Tok]]:
    items: list[list[_Tok]] = [[]]
    depth = 0
    for t in tokens:
        if t.kind == PUNCT and t.text in "([":
            depth += 1
        elif t.kind == PUNCT and t.text in ")]":
            depth -= 1
        if depth == 0 and t.kind == PUNCT and t.text == ",":
            items.append([])
        else:
            items[-1].append(t)
    return [i for i in items if i]


def _r_set(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    second = _word_at(tokens, 1)
    if second in ("PASSWORD", "ROLE", "DEFAULT"):  # SET DEFAULT ROLE
        st.classes.add(PRIVILEGE)
        return
    if second in ("NAMES", "CHARACTER", "CHARSET"):
        st.classes.add(SESSION)
        return
    if second == "TRANSACTION" or (
        second in ("SESSION", "LOCAL") and _word_at(tokens, 2) == "TRANSACTION"
    ):
        st.classes.add(TRANSACTION)
        return
    if second in ("GLOBAL", "PERSIST", "PERSIST_ONLY"):
        st.classes.add(SERVER_ESCAPE)
    if second == "RESOURCE":
        st.classes.add(SERVER_ESCAPE)
        return
    for item in _top_level_items(tokens[1:]):
        i = 0
        scope = "session"
        while i < len(item) and _word_at(item, i) in (
            "GLOBAL",
            "PERSIST",
            "PERSIST_ONLY",
            "SESSION",
            "LOCAL",
        ):
            scope = item[i].up.lower()
            i += 1
        if i >= len(item):
            st.classes.add(UNCLASSIFIED)
            continue
        target = item[i]
        eq = i + 1
        while eq < len(item) and item[eq].kind == PUNCT and item[eq].text in ":=":
            eq += 1
        value = item[eq:]
        if target.kind == VAR and not target.up.startswith("@@"):
            st.classes.add(SESSION)  # a user variable
            continue
        name = target.up.lower() if target.kind == VAR else target.text.lower()
        name = name.lstrip("@")
        if "." in name:
            scope, _, name = name.partition(".")
        if scope in ("global", "persist", "persist_only"):
            st.classes.add(SERVER_ESCAPE)
        else:
            st.classes.add(_variable_class(name.strip("`"), value))
    if _has_word(tokens, "SELECT"):  # a subquery: find its tables
        _query(st, tokens)


def _r_explain(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    i = 1
    analyze = False
    while i < len(tokens):
        word = _word_at(tokens, i)
        if word == "ANALYZE":
            analyze = True
        elif word in ("EXTENDED", "PARTITIONS", "FORMAT", "TREE", "JSON", "TRADITIONAL"):
            pass
        elif word == "INTO":  # EXPLAIN FORMAT=JSON INTO @var
            i += 1
        elif not (tokens[i].kind == PUNCT and tokens[i].text == "="):
            break
        i += 1
    rest = tokens[i:]
    if not rest or _word_at(rest, 0) == "FOR":  # EXPLAIN FOR CONNECTION n
        st.classes.add(READ)
        return
    if _word_at(rest, 0) not in _STATEMENT_WORDS and rest[0].text != "(":
        st.classes.add(READ)  # DESCRIBE t [column]
        name, _ = _name_at(rest, 0)
        if name:
            st.tables.add(name)
        return
    inner = _statement(rest, "", depth + 1)
    st.tables |= inner.tables
    if analyze:  # runs the statement
        st.classes |= inner.classes
        st.error = inner.error
    else:
        st.classes.add(READ)
        st.classes |= inner.classes & EXACT_FINGERPRINT_CLASSES


def _r_create(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    kind, at = _object_kind(tokens)
    explicit_definer = _has_word(tokens[:at], "DEFINER")
    if explicit_definer or _definer_security(tokens):
        st.classes.add(PRIVILEGE)
    if kind in ("TABLE", "TEMPORARY"):
        st.classes.add(DDL)
        table_at = at if kind == "TABLE" else at + 1
        st.tables |= _names_after(
            [*tokens[: table_at + 1], *_first_name(tokens, table_at + 1)], table_at + 1
        )
        st.tables |= _name_after_word(tokens, "LIKE")
        if _table_options_escape(tokens):
            st.classes.add(SERVER_ESCAPE)
        if _has_word(tokens, "SELECT"):
            st.classes.add(READ)
            _query(st, tokens)
    elif kind == "VIEW":
        st.classes.add(DDL)
        st.tables |= _names_after(tokens, at + 1, frozenset({"AS"}))
        # sqlglot does not know DEFINER / ALGORITHM / SQL SECURITY: parse from VIEW on.
        tree = _parse("CREATE VIEW " + _canonical(tokens[at + 1 :]))
        _tree_facts(tree, st.classes, st.tables, frozenset())
    elif kind in ("INDEX", "UNIQUE", "FULLTEXT", "SPATIAL"):
        st.classes.add(DDL)
        st.tables |= _name_after_word(tokens, "ON")
    elif kind in ("DATABASE", "SCHEMA"):
        st.classes.add(DDL)
    elif kind in _ROUTINES:
        st.classes |= {DDL, DYNAMIC}
        if kind == "TRIGGER":
            st.tables |= _name_after_word(tokens, "ON")
        if _has_word(tokens, "SONAME"):  # a UDF from a shared library
            st.classes.add(SERVER_ESCAPE)
    elif kind in ("USER", "ROLE"):
        st.classes.add(PRIVILEGE)
    elif kind in ("SERVER", "TABLESPACE", "LOGFILE", "UNDO", "RESOURCE"):
        st.classes |= {DDL, SERVER_ESCAPE}
    else:
        st.classes.add(UNCLASSIFIED)
        st.error = "a CREATE statement of a kind wardgate has no rule for"


def _definer_security(tokens: Sequence[_Tok]) -> bool:
    for i in range(len(tokens) - 2):
        if (
            _word_at(tokens, i) == "SQL"
            and _word_at(tokens, i + 1) == "SECURITY"
            and _word_at(tokens, i + 2) == "DEFINER"
        ):
            return True
    return False


def _table_options_escape(tokens: Sequence[_Tok]) -> bool:
    """FEDERATED / CONNECT engines, CONNECTION=, DATA|INDEX DIRECTORY: other servers, files."""
    for i, t in enumerate(tokens):
        if t.kind != WORD:
            continue
        if t.up == "CONNECTION" or (
            t.up == "DIRECTORY" and _word_at(tokens, i - 1) in ("DATA", "INDEX")
        ):
            return True
        if t.up == "ENGINE":
            j = i + 1
            if j < len(tokens) and tokens[j].text == "=":
                j += 1
            engine = tokens[j].up.upper() if j < len(tokens) else ""
            if engine in ("FEDERATED", "CONNECT", "SPIDER", "FEDERATEDX"):
                return True
    return False


# ALTER TABLE specifications: first word -> classes beyond DDL
_ALTER_SPEC_DESTRUCTIVE = frozenset(
    {"DROP", "RENAME", "MODIFY", "CHANGE", "DISCARD", "EXCHANGE", "TRUNCATE"}
)
_ALTER_SPEC_DDL = frozenset(
    {
        "ADD",
        "ALTER",
        "ALGORITHM",
        "AUTO_INCREMENT",
        "AVG_ROW_LENGTH",
        "CHARACTER",
        "CHARSET",
        "CHECKSUM",
        "COLLATE",
        "COMMENT",
        "COMPRESSION",
        "CONVERT",
        "DEFAULT",
        "DELAY_KEY_WRITE",
        "DISABLE",
        "ENABLE",
        "ENCRYPTION",
        "ENGINE",
        "ENGINE_ATTRIBUTE",
        "FORCE",
        "INSERT_METHOD",
        "KEY_BLOCK_SIZE",
        "LOCK",
        "MAX_ROWS",
        "MIN_ROWS",
        "ORDER",
        "PACK_KEYS",
        "PARTITION",
        "REMOVE",
        "REORGANIZE",
        "COALESCE",
        "REBUILD",
        "REPAIR",
        "OPTIMIZE",
        "ANALYZE",
        "CHECK",
        "ROW_FORMAT",
        "SECONDARY_ENGINE",
        "SECONDARY_ENGINE_ATTRIBUTE",
        "SECONDARY_LOAD",
        "SECONDARY_UNLOAD",
        "STATS_AUTO_RECALC",
        "STATS_PERSISTENT",
        "STATS_SAMPLE_PAGES",
        "TABLESPACE",
        "UNION",
        "UPGRADE",
        "VALIDATION",
        "WITH",
        "WITHOUT",
        "AUTOEXTEND_SIZE",
        "PASSWORD",
    }
)


def _r_alter(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    kind, at = _object_kind(tokens)
    if kind == "TABLE":
        st.classes.add(DDL)
        name, i = _name_at(tokens, at + 1)
        if name:
            st.tables.add(name)
        for spec in _top_level_items(tokens[i:]):
            first = _word_at(spec, 0)
            if first in _ALTER_SPEC_DESTRUCTIVE:
                st.classes.add(DESTRUCTIVE)
                if first == "RENAME":
                    renamed, _ = _name_at(spec, 2 if _word_at(spec, 1) in ("TO", "AS") else 1)
                    if renamed and _word_at(spec, 1) in ("TO", "AS", ""):
                        st.tables.add(renamed)
            elif first == "IMPORT":
                st.classes.add(SERVER_ESCAPE)  # reads tablespace files from the data dir
            elif first not in _ALTER_SPEC_DDL:
                st.classes.add(UNCLASSIFIED)
                st.error = f"ALTER TABLE {first or '...'}: no rule for this specification"
        if _table_options_escape(tokens):
            st.classes.add(SERVER_ESCAPE)
    elif kind == "VIEW":
        _r_create(st, tokens, depth)
    elif kind in ("DATABASE", "SCHEMA"):
        st.classes.add(DDL)
    elif kind in _ROUTINES:
        st.classes |= {DDL, DYNAMIC}
        if _definer_security(tokens) or _has_word(tokens[:at], "DEFINER"):
            st.classes.add(PRIVILEGE)
    elif kind in ("USER", "ROLE"):
        st.classes.add(PRIVILEGE)
    elif (
        kind in ("SERVER", "TABLESPACE", "LOGFILE", "UNDO", "RESOURCE")
        or _word_at(tokens, 1) == "INSTANCE"
    ):
        st.classes |= {DDL, SERVER_ESCAPE}
    else:
        st.classes.add(UNCLASSIFIED)
        st.error = "an ALTER statement of a kind wardgate has no rule for"


def _r_drop(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    second = _word_at(tokens, 1)
    if second == "PREPARE":  # DROP PREPARE s == DEALLOCATE PREPARE s
        _r_deallocate(st, tokens, depth)
        return
    kind, at = _object_kind(tokens)
    st.classes.add(DESTRUCTIVE)
    if kind in ("TABLE", "TEMPORARY", "VIEW") or second == "TABLES":
        start = at + 1 if kind != "TEMPORARY" else at + 2
        st.tables |= _names_after(tokens, start, frozenset({"RESTRICT", "CASCADE"}))
    elif kind == "INDEX":
        st.tables |= _name_after_word(tokens, "ON")
    elif kind in ("USER", "ROLE"):
        st.classes.add(PRIVILEGE)
    elif kind in ("SERVER", "TABLESPACE", "LOGFILE", "UNDO", "RESOURCE"):
        st.classes.add(SERVER_ESCAPE)
    elif not kind:
        st.classes.add(UNCLASSIFIED)
        st.error = "a DROP statement of a kind wardgate has no rule for"


def _r_truncate(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes |= {DESTRUCTIVE, WRITE, WRITE_UNBOUNDED}
    st.tables |= _names_after(tokens, 2 if _word_at(tokens, 1) == "TABLE" else 1)


def _r_rename(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    if _word_at(tokens, 1) == "USER":
        st.classes.add(PRIVILEGE)
        return
    st.classes |= {DDL, DESTRUCTIVE}
    st.tables |= _names_after(tokens, 2)


def _r_grant(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes.add(PRIVILEGE)
    for i, t in enumerate(tokens):
        if t.kind == WORD and t.up == "ON":
            j = i + 1
            if _word_at(tokens, j) in ("TABLE", "FUNCTION", "PROCEDURE"):
                j += 1
            name, end = _name_at(tokens, j)
            wildcard = end < len(tokens) and tokens[end].text in ("*", ".")
            if name and not wildcard:
                st.tables.add(name)
            break


def _r_load(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    if _word_at(tokens, 1) == "INDEX":  # LOAD INDEX INTO CACHE
        st.classes.add(UTILITY)
        return
    # LOAD DATA [LOCAL] INFILE: a server file, or (LOCAL) a file the server asks the
    # connecting client -- the gateway -- to send.
    st.classes |= {SERVER_ESCAPE, WRITE}
    for i in range(len(tokens) - 1):
        if _word_at(tokens, i) == "INTO" and _word_at(tokens, i + 1) == "TABLE":
            name, _ = _name_at(tokens, i + 2)
            if name:
                st.tables.add(name)


def _r_table_utility(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes.add(UTILITY)
    for i, t in enumerate(tokens):
        if t.kind == WORD and t.up in ("TABLE", "TABLES"):
            st.tables |= _names_after(
                tokens,
                i + 1,
                frozenset(
                    {
                        "QUICK",
                        "FAST",
                        "MEDIUM",
                        "EXTENDED",
                        "CHANGED",
                        "FOR",
                        "UPGRADE",
                        "UPDATE",
                        "DROP",
                        "USE_FRM",
                    }
                ),
            )
            break


def _r_lock(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    if _word_at(tokens, 1) == "INSTANCE":  # LOCK INSTANCE FOR BACKUP
        st.classes.add(SERVER_ESCAPE)
        return
    st.classes.add(UTILITY)
    st.tables |= _names_after(tokens, 2)


def _r_handler(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes.add(READ)
    name, i = _name_at(tokens, 1)
    if name and _word_at(tokens, i) == "OPEN":
        st.tables.add(name)


def _r_begin(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    if len(tokens) == 1 or (len(tokens) == 2 and _word_at(tokens, 1) == "WORK"):
        st.classes.add(TRANSACTION)
    else:  # MariaDB's BEGIN NOT ATOMIC ... END: an anonymous block
        st.classes.add(UNCLASSIFIED)
        st.error = "BEGIN ... : only BEGIN [WORK] (a transaction) has a rule"


def _r_start(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes.add(TRANSACTION if _word_at(tokens, 1) == "TRANSACTION" else SERVER_ESCAPE)


def _r_flush(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes.add(SERVER_ESCAPE)
    if _has_word(tokens, "PRIVILEGES"):
        st.classes.add(PRIVILEGE)


def _r_prepare(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes.add(UTILITY)
    name, i = _name_at(tokens, 1)
    if not name or _word_at(tokens, i) != "FROM" or i + 2 != len(tokens):
        st.classes.add(UNCLASSIFIED)
        st.error = "PREPARE: expected PREPARE name FROM 'statement' or FROM @variable"
        return
    source = tokens[i + 1]
    if source.kind == STRING and depth < _MAX_DEPTH:
        inner = _classify(source.up, depth + 1)
        body_classes, body_tables, body_fp = inner.classes, inner.tables, inner.fingerprint
        if inner.error is not None:
            st.error = f"PREPARE {name}: {inner.error}"
    else:
        # FROM @var: the text is only known to the server when it runs
        body_classes, body_tables, body_fp = frozenset({DYNAMIC}), frozenset(), ""
    st.classes |= body_classes
    st.tables |= body_tables
    st.prepared = PreparedOp(
        "prepare",
        name,
        classes=body_classes,
        tables=body_tables,
        fingerprint=body_fp or _exact(source.text),
        replaces=True,  # MySQL replaces an existing statement of the same name
    )


def _r_execute(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    if _word_at(tokens, 1) == "IMMEDIATE" and len(tokens) > 2:
        # MariaDB: EXECUTE IMMEDIATE 'text' | @var -- not a prepared name
        source = tokens[2]
        if len(tokens) == 3 and source.kind == STRING and depth < _MAX_DEPTH:
            inner = _classify(source.up, depth + 1)
            st.classes |= inner.classes
            st.tables |= inner.tables
            st.error = inner.error
        else:
            st.classes.add(DYNAMIC)
        return
    name, _ = _name_at(tokens, 1)
    st.prepared = PreparedOp("execute", name)


def _r_deallocate(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
    st.classes.add(UTILITY)
    name, _ = _name_at(tokens, 2 if _word_at(tokens, 1) == "PREPARE" else 1)
    st.prepared = PreparedOp("deallocate", name)


def _fixed(*classes: StatementClass) -> Callable[[_Stmt, Sequence[_Tok], int], None]:
    def rule(st: _Stmt, tokens: Sequence[_Tok], depth: int) -> None:
        st.classes.update(classes)

    return rule


_Rule = Callable[[_Stmt, Sequence[_Tok], int], None]
_RULES: dict[str, _Rule] = {
    "SELECT": _r_select,
    "WITH": _r_select,
    "TABLE": _r_select,
    "VALUES": _r_select,
    "(": _r_select,
    "INSERT": _r_insert,
    "REPLACE": _r_insert,
    "UPDATE": _r_update_delete,
    "DELETE": _r_update_delete,
    "DO": _r_do,
    "SET": _r_set,
    "EXPLAIN": _r_explain,
    "DESCRIBE": _r_explain,
    "DESC": _r_explain,
    "CREATE": _r_create,
    "ALTER": _r_alter,
    "DROP": _r_drop,
    "TRUNCATE": _r_truncate,
    "RENAME": _r_rename,
    "GRANT": _r_grant,
    "REVOKE": _r_grant,
    "LOAD": _r_load,
    "ANALYZE": _r_table_utility,
    "OPTIMIZE": _r_table_utility,
    "CHECK": _r_table_utility,
    "REPAIR": _r_table_utility,
    "CHECKSUM": _r_table_utility,
    "LOCK": _r_lock,
    "UNLOCK": _fixed(UTILITY),
    "HANDLER": _r_handler,
    "START": _r_start,
    "STOP": _fixed(SERVER_ESCAPE),
    "FLUSH": _r_flush,
    "PREPARE": _r_prepare,
    "EXECUTE": _r_execute,
    "DEALLOCATE": _r_deallocate,
    "SHOW": _fixed(READ),
    "HELP": _fixed(READ),
    "USE": _fixed(SESSION),
    "BEGIN": _r_begin,
    "COMMIT": _fixed(TRANSACTION),
    "ROLLBACK": _fixed(TRANSACTION),
    "SAVEPOINT": _fixed(TRANSACTION),
    "RELEASE": _fixed(TRANSACTION),
    "XA": _fixed(TRANSACTION),
    "CALL": _fixed(DYNAMIC),
    "CACHE": _fixed(UTILITY),
    "SIGNAL": _fixed(UTILITY),
    "RESIGNAL": _fixed(UTILITY),
    "GET": _fixed(UTILITY),
    "INSTALL": _fixed(SERVER_ESCAPE),
    "UNINSTALL": _fixed(SERVER_ESCAPE),
    "SHUTDOWN": _fixed(SERVER_ESCAPE),
    "RESTART": _fixed(SERVER_ESCAPE),
    "KILL": _fixed(SERVER_ESCAPE),
    "RESET": _fixed(SERVER_ESCAPE),
    "PURGE": _fixed(SERVER_ESCAPE, DESTRUCTIVE),
    "CHANGE": _fixed(SERVER_ESCAPE),
    "CLONE": _fixed(SERVER_ESCAPE),
    "BINLOG": _fixed(SERVER_ESCAPE),  # replays raw binary-log events: arbitrary writes
    "IMPORT": _fixed(SERVER_ESCAPE),
}
_STATEMENT_WORDS = frozenset(k for k in _RULES if k.isalpha())


def _statement(tokens: Sequence[_Tok], text: str, depth: int) -> _Stmt:
    first = tokens[0].up if tokens[0].kind == WORD else tokens[0].text
    st = _Stmt(kind=first, classes=set(), tables=set())
    rule = _RULES.get(first)
    if rule is None:
        st.classes.add(UNCLASSIFIED)
        st.error = f"{first[:40]}: not a statement wardgate has a rule for"
        return st
    try:
        rule(st, tokens, depth)
    except _NeedsParserError as exc:
        st.classes.add(UNCLASSIFIED)
        st.error = str(exc)
    st.classes |= _token_dangers(tokens)
    return st


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def _exact(text: str) -> str:
    return "exact:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _fingerprint(text: str, tokens: Sequence[_Tok], classes: frozenset[StatementClass]) -> str:
    if classes & EXACT_FINGERPRINT_CLASSES:
        return _exact(text)
    shape = " ".join(
        "?" if t.kind in (STRING, NUM) else (t.up if t.kind == WORD else t.text.lower())
        for t in tokens
    )
    digest = hashlib.sha256(shape.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"my:{digest}:{','.join(sorted(classes))}"


def _unclassified(text: str, error: str) -> Classification:
    return Classification(
        statements=(),
        classes=frozenset({UNCLASSIFIED}),
        tables=frozenset(),
        error=error,
        fingerprint=_exact(text),
    )


def _classify(sql: str, depth: int) -> Classification:
    if "\x00" in sql:
        return _unclassified(
            sql, "the SQL text contains a NUL character; remove it and send the statement again"
        )
    lexed = _lex(sql)
    if lexed.error is not None:
        return _unclassified(
            sql,
            f"MySQL lexer: {lexed.error}; the string was not run by wardgate and is treated as "
            "unclassified. Fix the quoting or comments, or ask for a review.",
        )
    if _ambiguous(sql, lexed):
        return _unclassified(
            sql,
            "this string splits into statements or comments differently under the sql_mode "
            "NO_BACKSLASH_ESCAPES or ANSI_QUOTES (a backslash before a quote); write quotes "
            "as '' instead of \\' so it means one thing",
        )
    statements: list[StatementInfo] = []
    errors: list[str] = []
    for tokens in _split(lexed.tokens):
        text = sql[tokens[0].start : tokens[-1].end]
        st = _statement(tokens, text, depth)
        classes = frozenset(st.classes) or frozenset({UNCLASSIFIED})
        prepared = st.prepared
        if prepared is not None and prepared.action == "execute":
            prepared = PreparedOp(
                "execute", prepared.name, frozenset(st.classes), frozenset(st.tables)
            )
            classes = classes | {UNCLASSIFIED}
        if st.error is not None:
            errors.append(st.error)
        statements.append(StatementInfo(st.kind, classes, frozenset(st.tables), text, prepared))
    if not statements:
        # Only whitespace/comments/';': nothing runs (the server answers "Query was empty").
        return Classification((), frozenset(), frozenset(), fingerprint="my:empty")
    classes = frozenset().union(*(s.classes for s in statements))
    return Classification(
        statements=tuple(statements),
        classes=classes,
        tables=frozenset().union(*(s.tables for s in statements)),
        error="; ".join(errors) if errors else None,
        fingerprint=_fingerprint(sql, lexed.tokens, classes),
    )


def classify_mysql(sql: str) -> Classification:
    """Classify a string of MySQL SQL (one or more statements). Never raises."""
    try:
        return _classify(sql, 0)
    except RecursionError:
        return _unclassified(sql, "the SQL is nested too deeply to classify; simplify it")
    except Exception as exc:  # fail closed on anything unexpected, never guess
        return _unclassified(
            sql, f"wardgate could not classify this SQL ({type(exc).__name__}); it fails closed"
        )
