"""PostgreSQL statement classification with PostgreSQL's own parser (pglast / libpg_query).

Owns ``classify_postgres``: SQL text in, ``Classification`` out, never an exception.

How it works
------------
The text is parsed by libpg_query, the parser compiled out of the PostgreSQL server, so
what we see is what the server will see: ``DR/**/OP TABLE t`` is a syntax error here as
there, ``DROP/**/TABLE t`` is a DROP, ``U&"\\0064rop"`` is the identifier ``drop``. The
parse tree comes back as JSON (a few microseconds, versus ~70 µs to build pglast's Python
node objects) and is walked as plain dicts.

Every statement of the string is classified. A statement's classes are the union of:

* what its top-level node does (``DropStmt`` -> destructive, ``GrantStmt`` -> privilege);
* everything found anywhere below it: nested statements (a ``DELETE`` inside a CTE, the
  query of ``COPY (...) TO``, ``EXPLAIN ANALYZE``'s statement, ``PREPARE``'s body),
  calls to functions that escape the database (``pg_read_file``, ``dblink``, ``lo_export``;
  schema-qualified or quoted makes no difference, the parser has already resolved that),
  ``set_config('role', ...)``, ``nextval``/``setval``.

Each statement's walk yields a ``StatementShape`` (kind, own classes, tables) and
``assemble`` adds what comes from the text (statement texts, fingerprints).
``wardgate.sql.pg_shapes`` runs the same walk literal-blind, with no text and on a tree
whose constants are blanked: reading either raises ``LiteralRead``, which no handler here
catches. A rule added here that looks at a literal thus makes its statements unshared
there, never wrongly shared.

Fail closed: a parse error, a NUL byte, a node type this module does not know, an
``ALTER TABLE`` sub-command it does not know, an ``EXECUTE`` of a name the session's
``PreparedStatements`` has not seen, or any internal error -> ``UNCLASSIFIED``. Nothing is
ever guessed to be a read.

Judgements (documented in ``tests/unit/test_sql_postgres.py`` too):

* ``ALTER ... RENAME`` / ``SET SCHEMA`` are DDL + destructive: every query naming the old
  name breaks, and rename-then-recreate is a drop by another name.
* ``CALL`` is dynamic (a procedure can do anything, including COMMIT). Calls to functions
  in expressions are judged by the known-dangerous list only: a user-defined function is
  the database owner's own code and the database's EXECUTE privilege governs it.
* ``EXPLAIN`` without ``ANALYZE`` runs nothing: read, plus any server-escape / privilege /
  dynamic call in it (planning may fold functions). ``EXPLAIN ANALYZE`` carries its
  statement's classes.
* ``RESET ROLE`` and ``DISCARD ALL`` (which resets the session authorization) are
  privilege, like ``SET ROLE``. ``NOTIFY`` / ``pg_notify`` are write (other sessions act on
  them); ``LISTEN`` / ``UNLISTEN`` are session. ``SHOW`` is read. ``CHECKPOINT`` is utility.
* An unbounded UPDATE/DELETE is both write and write-unbounded; ``TRUNCATE`` is
  destructive, write and write-unbounded.
* An empty string (whitespace, comments, ``;``) has no statements, no classes and no
  error: nothing runs (the server answers EmptyQueryResponse; PgJDBC's ``isValid()``
  sends it). The statement gate allows exactly that shape; policy alone would call it
  unclassified.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from enum import Enum
from functools import lru_cache
from typing import Any, NamedTuple

from pglast import parser as _pg

from wardgate.sql.blind import LiteralRead
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

_Json = Any  # a value of libpg_query's JSON parse tree

# Classes for which a literal is the danger (the command of COPY PROGRAM, a DO body, the
# role of SET ROLE, the path of pg_read_file): their approval fingerprint is the exact text,
# so approving one does not approve every statement of the same shape.
EXACT_FINGERPRINT_CLASSES = frozenset({SERVER_ESCAPE, PRIVILEGE, DYNAMIC, UNCLASSIFIED})

# Body classification of functions / DO blocks recurses; bodies can nest bodies.
_MAX_BODY_DEPTH = 4

# --------------------------------------------------------------------------------------
# Settings (SET, RESET, set_config, ALTER SYSTEM/ROLE/DATABASE ... SET)
# --------------------------------------------------------------------------------------

_PRIVILEGE_SETTINGS = frozenset({"role", "session_authorization"})

# Settings that load code, touch server files or programs, silence the audit trail, or
# bypass integrity checks. Ordinary client settings (search_path, application_name,
# extra_float_digits, statement_timeout, custom "app.*" settings used by RLS) stay session.
_SERVER_SETTINGS = frozenset(
    {
        "session_preload_libraries",
        "local_preload_libraries",
        "shared_preload_libraries",
        "dynamic_library_path",
        "jit_provider",
        "archive_command",
        "archive_library",
        "restore_command",
        "archive_cleanup_command",
        "recovery_end_command",
        "data_directory",
        "config_file",
        "hba_file",
        "ident_file",
        "external_pid_file",
        "unix_socket_directories",
        "lo_compat_privileges",
        "allow_system_table_mods",
        "allow_in_place_tablespaces",
        "ignore_system_indexes",
        "ignore_checksum_failure",
        "ignore_invalid_pages",
        "zero_damaged_pages",
        "session_replication_role",  # disables triggers and FK checks
        "logging_collector",
        "event_source",
        "track_activities",
        "wal_level",
        "fsync",
        "full_page_writes",
        "primary_conninfo",
        "primary_slot_name",
    }
)
_SERVER_SETTING_PREFIXES = ("log_", "ssl", "syslog_", "pgaudit.", "archive_")
_TRUE_WORDS = frozenset({"t", "tr", "tru", "true", "y", "ye", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0"})


def setting_class(name: str, value: str | None = None) -> StatementClass:
    """The class of changing run-time setting ``name`` (lower-case) to ``value``."""
    if name in _PRIVILEGE_SETTINGS:
        return PRIVILEGE
    if name == "standard_conforming_strings":
        # Off makes the server read backslashes in '...' as escapes while this parser does
        # not: the two would disagree on where strings end. Only "on" keeps them in step.
        return SESSION if value is not None and value.lower() in _TRUE_WORDS else SERVER_ESCAPE
    if name in _SERVER_SETTINGS or name.startswith(_SERVER_SETTING_PREFIXES):
        return SERVER_ESCAPE
    return SESSION


# --------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------

_SERVER_ESCAPE_FUNCTIONS = frozenset(
    {
        "pg_stat_file",
        "pg_logdir_ls",
        "lo_import",
        "lo_export",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_signal_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_rotate_logfile_old",
        "pg_promote",
        "pg_switch_wal",
        "pg_switch_xlog",
        "pg_create_restore_point",
        "pg_backup_start",
        "pg_backup_stop",
        "pg_start_backup",
        "pg_stop_backup",
        "pg_wal_replay_pause",
        "pg_wal_replay_resume",
        "pg_xlog_replay_pause",
        "pg_xlog_replay_resume",
        "pg_log_backend_memory_contexts",
        "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_drop_replication_slot",
        "pg_copy_physical_replication_slot",
        "pg_copy_logical_replication_slot",
        "pg_replication_slot_advance",
        "pg_sync_replication_slots",
        "pg_import_system_collations",
        "pg_stat_statements_reset",
        # extensions that reach the network or object storage
        "http",
        "http_get",
        "http_post",
        "http_put",
        "http_patch",
        "http_delete",
        "http_head",
        "query_export_to_s3",
        "table_import_from_s3",
    }
)
_SERVER_ESCAPE_PREFIXES = (
    "pg_read_",  # pg_read_file, pg_read_binary_file
    "pg_ls_",  # pg_ls_dir, pg_ls_logdir, pg_ls_waldir, pg_ls_tmpdir, ...
    "pg_file_",  # adminpack: pg_file_write, pg_file_rename, pg_file_unlink
    "dblink",  # dblink, dblink_exec, dblink_connect_u, ...: also runs arbitrary SQL
    "pg_logical_slot_",  # reads every change of every table
    "pg_replication_origin_",
    "pg_stat_reset",
    "binary_upgrade_",
)
_WRITE_FUNCTIONS = frozenset(
    {
        "nextval",
        "setval",
        "pg_notify",
        "pg_logical_emit_message",
        "lo_create",
        "lo_creat",
        "lo_unlink",
        "lo_put",
        "lo_from_bytea",
        "lo_truncate",
        "lo_truncate64",
        "lowrite",
    }
)
# Run SQL that is only a string at classification time (or read tables named by a value).
_DYNAMIC_FUNCTIONS = frozenset(
    {
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "table_to_xml",
        "table_to_xmlschema",
        "table_to_xml_and_xmlschema",
        "schema_to_xml",
        "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema",
        "database_to_xml",
        "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
        "ts_stat",
        "pg_background_launch",
    }
)
_DYNAMIC_QUALIFIED = frozenset({"cron.schedule", "cron.schedule_in_database", "cron.alter_job"})


@lru_cache(maxsize=4096)
def function_classes(name: str, qualified: str = "") -> frozenset[StatementClass]:
    """Classes contributed by calling function ``name`` (last name component, lower-case)."""
    found: set[StatementClass] = set()
    if name in _SERVER_ESCAPE_FUNCTIONS or name.startswith(_SERVER_ESCAPE_PREFIXES):
        found.add(SERVER_ESCAPE)
    if name.startswith("dblink"):
        found.add(DYNAMIC)
    if name in _WRITE_FUNCTIONS:
        found.add(WRITE)
    if name in _DYNAMIC_FUNCTIONS or qualified in _DYNAMIC_QUALIFIED:
        found.add(DYNAMIC)
    return frozenset(found)


# Procedural languages that run with the server's OS rights (or load shared objects).
_UNTRUSTED_LANGUAGES = frozenset({"c", "internal", "plsh", "plr", "pljavau"})
_TRUSTED_LANGUAGES = frozenset({"sql", "plpgsql", "plperl", "pltcl", "plv8", "pljava"})


def _language_is_untrusted(lang: str) -> bool:
    if lang in _TRUSTED_LANGUAGES:
        return False
    return lang in _UNTRUSTED_LANGUAGES or lang.endswith("u")


# --------------------------------------------------------------------------------------
# Constant folding of WHERE clauses: is an UPDATE/DELETE bounded by the rows it names?
# --------------------------------------------------------------------------------------


class _Truth(Enum):
    TRUE = "true"
    FALSE = "false"
    NULL = "null"
    CONST = "const"  # the same for every row, value unknown (a $1, random(), EXISTS(...))
    ROW = "row"  # depends on the row


_UNBOUNDED = (_Truth.TRUE, _Truth.CONST)
_ROW = object()
_CONST = object()
_NULL = object()
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "<>": lambda a, b: bool(a != b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}
_REFLEXIVE = frozenset({"=", "<=", ">="})
_BOOL_TYPES = frozenset({"bool", "boolean"})


def _has_column_ref(value: _Json) -> bool:
    if type(value) is dict:
        if "ColumnRef" in value or "CurrentOfExpr" in value:
            return True
        return any(_has_column_ref(v) for v in value.values())
    if type(value) is list:
        return any(_has_column_ref(v) for v in value)
    return False


def _is_offset_key(key: str) -> bool:
    """A source offset in libpg_query's JSON: "location", "rexpr_list_start"/"_end" (since
    PostgreSQL 18) and the like. Two copies of one expression differ only in these."""
    return key == "location" or key.endswith(("_location", "_list_start", "_list_end"))


def _strip_locations(value: _Json) -> _Json:
    if type(value) is dict:
        return {k: _strip_locations(v) for k, v in value.items() if not _is_offset_key(k)}
    if type(value) is list:
        return [_strip_locations(v) for v in value]
    return value


def _bool_word(text: str) -> bool | None:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


def _as_truth(value: object) -> _Truth:
    if value is _ROW:
        return _Truth.ROW
    if value is _NULL:
        return _Truth.NULL
    if value is _CONST:
        return _Truth.CONST
    if isinstance(value, str):
        word = _bool_word(value)
        if word is None:
            return _Truth.CONST
        return _Truth.TRUE if word else _Truth.FALSE
    try:
        return _Truth.TRUE if value else _Truth.FALSE
    except Exception:
        return _Truth.CONST


def _from_truth(truth: _Truth) -> object:
    return {
        _Truth.TRUE: True,
        _Truth.FALSE: False,
        _Truth.NULL: _NULL,
        _Truth.CONST: _CONST,
        _Truth.ROW: _ROW,
    }[truth]


def _coerce_pair(a: object, b: object) -> tuple[object, object]:
    """PostgreSQL reads an untyped literal as the other side's type; approximate that."""
    if isinstance(a, str) and isinstance(b, bool):
        word = _bool_word(a)
        return (a if word is None else word), b
    if isinstance(b, str) and isinstance(a, bool):
        word = _bool_word(b)
        return a, (b if word is None else word)
    if isinstance(a, str) and isinstance(b, int | float):
        return float(a), b
    if isinstance(b, str) and isinstance(a, int | float):
        return a, float(b)
    return a, b


def _value(node: _Json) -> object:
    """A constant's Python value, or _NULL / _CONST (row-independent) / _ROW."""
    if type(node) is not dict or len(node) != 1:
        return _ROW if _has_column_ref(node) else _CONST
    ((kind, body),) = node.items()
    if kind == "A_Const":
        if body.get("isnull"):
            return _NULL
        if "ival" in body:
            return int(body["ival"].get("ival", 0))
        if "fval" in body:
            return float(body["fval"].get("fval", "0"))
        if "boolval" in body:
            return bool(body["boolval"].get("boolval", False))
        if "sval" in body:
            return str(body["sval"].get("sval", ""))
        return _CONST
    if kind in {"ColumnRef", "CurrentOfExpr"}:
        return _ROW
    if kind == "ParamRef":
        return _CONST
    if kind in {"BoolExpr", "NullTest", "BooleanTest"}:
        return _from_truth(_truth(node))
    if kind == "TypeCast":
        inner = _value(body.get("arg"))
        names = body.get("typeName", {}).get("names", [])
        typ = names[-1].get("String", {}).get("sval", "") if names else ""
        if isinstance(inner, str) and typ in _BOOL_TYPES:
            word = _bool_word(inner)
            return _CONST if word is None else word
        return inner
    if kind == "A_Expr":
        return _a_expr_value(body)
    return _ROW if _has_column_ref(node) else _CONST


def _is_column(node: _Json) -> bool:
    """``node`` is a column reference, possibly cast: ``_value`` of it is always ``_ROW``."""
    while type(node) is dict and len(node) == 1:
        if "ColumnRef" in node or "CurrentOfExpr" in node:
            return True
        cast = node.get("TypeCast")
        if type(cast) is not dict:
            return False
        node = cast.get("arg")
    return False


def _a_expr_value(body: _Json) -> object:
    kind = body.get("kind")
    names = body.get("name", [])
    op = names[-1].get("String", {}).get("sval", "") if names else ""
    left, right = body.get("lexpr"), body.get("rexpr")
    reflexive = kind == "AEXPR_NOT_DISTINCT" or (kind == "AEXPR_OP" and op in _REFLEXIVE)
    # "x = x" holds for every row where x is not null: as good as no WHERE.
    if reflexive and left is not None and _strip_locations(left) == _strip_locations(right):
        return True
    if kind != "AEXPR_OP" or (op not in _COMPARE and op not in _ARITH):
        return _ROW if _has_column_ref(body) else _CONST
    if _is_column(left) or _is_column(right):
        # "id = 5" depends on the row whatever the other side is. Deciding it before
        # evaluating that side leaves its literal unread, so the classification holds
        # for every value there (wardgate.sql.pg_shapes shares it across them).
        return _ROW
    lv = 0 if left is None else _value(left)  # unary minus: "- 1" has no left side
    rv = _value(right)
    if lv is _ROW or rv is _ROW:
        return _ROW
    if lv is _NULL or rv is _NULL:
        return _NULL
    if lv is _CONST or rv is _CONST:
        return _CONST
    try:
        a, b = _coerce_pair(lv, rv)
        return _COMPARE[op](a, b) if op in _COMPARE else _ARITH[op](a, b)
    except Exception:
        return _CONST


def _truth(node: _Json) -> _Truth:
    if type(node) is dict and len(node) == 1:
        ((kind, body),) = node.items()
        if kind == "BoolExpr":
            parts = [_truth(a) for a in body.get("args", [])]
            op = body.get("boolop")
            if op == "NOT_EXPR":
                return (
                    {
                        _Truth.TRUE: _Truth.FALSE,
                        _Truth.FALSE: _Truth.TRUE,
                    }.get(parts[0], parts[0])
                    if parts
                    else _Truth.CONST
                )
            if op == "AND_EXPR":
                if any(p in (_Truth.FALSE, _Truth.NULL) for p in parts):
                    return _Truth.FALSE
                for weakest in (_Truth.ROW, _Truth.CONST):
                    if weakest in parts:
                        return weakest
                return _Truth.TRUE
            if op == "OR_EXPR":
                for strongest in (_Truth.TRUE, _Truth.CONST, _Truth.ROW):
                    if strongest in parts:
                        return strongest
                return _Truth.FALSE
            return _Truth.ROW if _has_column_ref(body) else _Truth.CONST
        if kind == "NullTest":
            arg = _value(body.get("arg"))
            if arg is _ROW or arg is _CONST:
                return _Truth.ROW if arg is _ROW else _Truth.CONST
            is_null = arg is _NULL
            wants_null = body.get("nulltesttype") == "IS_NULL"
            return _Truth.TRUE if is_null == wants_null else _Truth.FALSE
        if kind == "BooleanTest":
            arg = _truth(body.get("arg"))
            if arg in (_Truth.ROW, _Truth.CONST):
                return arg
            test = body.get("booltesttype", "")
            matches = {
                "IS_TRUE": arg is _Truth.TRUE,
                "IS_NOT_TRUE": arg is not _Truth.TRUE,
                "IS_FALSE": arg is _Truth.FALSE,
                "IS_NOT_FALSE": arg is not _Truth.FALSE,
                "IS_UNKNOWN": arg is _Truth.NULL,
                "IS_NOT_UNKNOWN": arg is not _Truth.NULL,
            }.get(test)
            if matches is None:
                return _Truth.CONST
            return _Truth.TRUE if matches else _Truth.FALSE
    return _as_truth(_value(node))


def where_is_unbounded(where: _Json) -> bool:
    """True when a WHERE (absent, or constant-true, or row-independent) names no rows."""
    return where is None or _truth(where) in _UNBOUNDED


# --------------------------------------------------------------------------------------
# The tree walk
# --------------------------------------------------------------------------------------


class _Acc:
    """What one top-level statement does, accumulated while walking its tree."""

    __slots__ = ("_text", "classes", "depth", "executes", "prepared", "tables")

    def __init__(self, text: str | None, depth: int) -> None:
        self.classes: set[StatementClass] = set()
        self.tables: set[str] = set()
        self.prepared: PreparedOp | None = None
        self.executes: str | None = None
        self._text = text  # None while walking a literal-blind tree
        self.depth = depth

    @property
    def text(self) -> str:
        """The statement's text. Literals are in it, so a literal-blind walk may not read it."""
        if self._text is None:
            raise LiteralRead("the statement text")
        return self._text

    def child(self) -> _Acc:
        """A fresh accumulator for a nested statement, with this one's text and depth."""
        return _Acc(self._text, self.depth)


_Scope = frozenset[str]  # names of CTEs visible here: not tables
_Handler = Callable[[_Acc, _Json, _Scope, bool], None]


def _walk(acc: _Acc, value: _Json, scope: _Scope) -> None:
    if type(value) is dict:
        if len(value) == 1:
            ((key, body),) = value.items()
            if key[:1].isupper() and type(body) is dict:
                _node(acc, key, body, scope, False)
                return
        if "relname" in value:  # a RangeVar in a typed field (JSON leaves it unwrapped)
            _range_var(acc, value, scope)
        for v in value.values():
            if type(v) is dict or type(v) is list:
                _walk(acc, v, scope)
    elif type(value) is list:
        for item in value:
            if type(item) is dict or type(item) is list:
                _walk(acc, item, scope)


def _children(acc: _Acc, body: _Json, scope: _Scope, skip: tuple[str, ...] = ()) -> None:
    for key, v in body.items():
        if (type(v) is dict or type(v) is list) and key not in skip:
            _walk(acc, v, scope)


def _node(acc: _Acc, key: str, body: _Json, scope: _Scope, top: bool) -> None:
    handler = _HANDLERS.get(key)
    if handler is not None:
        handler(acc, body, scope, top)
        return
    base = _BASE_CLASSES.get(key)
    if base is not None:
        acc.classes.update(base)
    elif key.endswith("Stmt"):
        acc.classes.add(UNCLASSIFIED)  # a statement kind we have no rule for
    _children(acc, body, scope)


def _statement_node(acc: _Acc, wrapped: _Json, scope: _Scope) -> None:
    """Walk a nested node that the outer statement *executes* (as if top-level)."""
    if type(wrapped) is dict and len(wrapped) == 1:
        ((key, body),) = wrapped.items()
        if type(body) is dict:
            _node(acc, key, body, scope, True)
            return
    acc.classes.add(UNCLASSIFIED)


def _range_var(acc: _Acc, rv: _Json, scope: _Scope) -> None:
    rel = rv.get("relname", "")
    schema = rv.get("schemaname")
    if not schema and rel in scope:
        return
    name = f"{schema}.{rel}" if schema else rel
    catalog = rv.get("catalogname")
    if catalog:
        name = f"{catalog}.{name}"
    acc.tables.add(name.lower())


def _with_scope(acc: _Acc, with_clause: _Json, scope: _Scope) -> _Scope:
    """Walk the CTEs of a WITH; return the scope its main statement sees."""
    if not with_clause:
        return scope
    ctes = [c.get("CommonTableExpr", {}) for c in with_clause.get("ctes", [])]
    everything = scope | {c.get("ctename", "") for c in ctes}
    recursive = bool(with_clause.get("recursive"))
    visible = scope
    for cte in ctes:
        # A non-recursive CTE sees only the CTEs before it: "WITH t AS (SELECT * FROM t)"
        # reads the real table t.
        _children(acc, cte, everything if recursive else visible)
        visible = visible | {cte.get("ctename", "")}
    return everything


def _sval(node: _Json) -> str:
    if type(node) is dict:
        if "String" in node:
            return str(node["String"].get("sval", ""))
        if "A_Const" in node:
            return str(node["A_Const"].get("sval", {}).get("sval", ""))
        if "TypeCast" in node:
            return _sval(node["TypeCast"].get("arg"))
    return ""


def _is_string_const(node: _Json) -> bool:
    if type(node) is not dict:
        return False
    if "TypeCast" in node:
        return _is_string_const(node["TypeCast"].get("arg"))
    return ("A_Const" in node and "sval" in node["A_Const"]) or "String" in node


def _defelem_true(arg: _Json) -> bool:
    """The boolean value of an option like ANALYZE [true|off|0]; unknown -> True."""
    if arg is None:
        return True
    if type(arg) is dict:
        if "String" in arg:
            word = _bool_word(str(arg["String"].get("sval", "")))
            return True if word is None else word
        if "Boolean" in arg:
            return bool(arg["Boolean"].get("boolval", False))
        if "Integer" in arg:
            return bool(arg["Integer"].get("ival", 0))
    return True


def _defelems(options: _Json) -> Iterable[tuple[str, _Json]]:
    for item in options or ():
        d = item.get("DefElem") if type(item) is dict else None
        if d is not None:
            yield str(d.get("defname", "")), d.get("arg")


# --- handlers -----------------------------------------------------------------------------


def _h_select(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    scope = _with_scope(acc, body.get("withClause"), scope)
    # Nested SELECTs count as reads when they read relations; the VALUES of an INSERT
    # does not make it a read.
    if top or body.get("fromClause"):
        acc.classes.add(READ)
    if "intoClause" in body:  # SELECT ... INTO newtable creates a table
        acc.classes.update((DDL, READ))
    for side in ("larg", "rarg"):
        if side in body:
            _h_select(acc, body[side], scope, top)
    _children(acc, body, scope, ("withClause", "larg", "rarg"))


def _h_insert(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    scope = _with_scope(acc, body.get("withClause"), scope)
    acc.classes.add(WRITE)
    _children(acc, body, scope, ("withClause",))


def _h_update_delete(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    scope = _with_scope(acc, body.get("withClause"), scope)
    acc.classes.add(WRITE)
    if where_is_unbounded(body.get("whereClause")):
        acc.classes.add(WRITE_UNBOUNDED)
    _children(acc, body, scope, ("withClause",))


def _h_merge(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    scope = _with_scope(acc, body.get("withClause"), scope)
    acc.classes.add(WRITE)
    join = _truth(body.get("joinCondition"))
    for item in body.get("mergeWhenClauses", []):
        when = item.get("MergeWhenClause", {})
        if when.get("commandType") not in ("CMD_UPDATE", "CMD_DELETE"):
            continue
        cond = when.get("condition")
        if cond is not None and _truth(cond) not in _UNBOUNDED:
            continue
        # WHEN NOT MATCHED BY SOURCE THEN DELETE deletes every target row the source
        # lacks: all of them when the source is empty.
        if when.get("matchKind") == "MERGE_WHEN_NOT_MATCHED_BY_SOURCE" or join in _UNBOUNDED:
            acc.classes.add(WRITE_UNBOUNDED)
    _children(acc, body, scope, ("withClause",))


_EXPLAIN_KEEPS = frozenset({SERVER_ESCAPE, PRIVILEGE, DYNAMIC, UNCLASSIFIED})


def _h_explain(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    options = _defelems(body.get("options"))
    analyze = any(name == "analyze" and _defelem_true(arg) for name, arg in options)
    if analyze:  # runs the statement
        _statement_node(acc, body.get("query"), scope)
        return
    inner = acc.child()
    _statement_node(inner, body.get("query"), scope)
    acc.classes.add(READ)
    acc.classes.update(inner.classes & _EXPLAIN_KEEPS)
    acc.tables.update(inner.tables)


def _h_copy(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    # No filename means STDIN/STDOUT (the client's side); a filename or PROGRAM is the
    # server's filesystem or a shell on the server.
    if body.get("is_program") or "filename" in body:
        acc.classes.add(SERVER_ESCAPE)
    acc.classes.add(WRITE if body.get("is_from") else READ)
    if "query" in body:
        _statement_node(acc, body["query"], scope)
    _children(acc, body, scope, ("query",))


def _h_prepare(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    inner = acc.child()
    _statement_node(inner, body.get("query"), scope)
    if inner.executes is not None:
        inner.classes.add(UNCLASSIFIED)
    # PREPARE carries its body's classes, so a body policy forbids is stopped at PREPARE.
    acc.classes.add(UTILITY)
    acc.classes.update(inner.classes)
    acc.tables.update(inner.tables)
    acc.prepared = PreparedOp(
        "prepare",
        str(body.get("name", "")),
        classes=frozenset(inner.classes),
        tables=frozenset(inner.tables),
    )


def _h_execute(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    acc.executes = str(body.get("name", ""))
    _children(acc, body, scope)  # parameters are expressions, evaluated now


def _h_deallocate(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    acc.classes.add(UTILITY)
    name = None if body.get("isall") else str(body.get("name", ""))
    acc.prepared = PreparedOp("deallocate", name)


def _h_discard(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    acc.classes.add(SESSION)
    if body.get("target") == "DISCARD_ALL":
        # DISCARD ALL = SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; ...
        acc.classes.add(PRIVILEGE)
        acc.prepared = PreparedOp("deallocate", None)


def _h_variable_set(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    kind = body.get("kind")
    name = str(body.get("name", "")).lower()
    if kind == "VAR_RESET_ALL":  # role and session_authorization are exempt from RESET ALL
        acc.classes.add(SESSION)
    elif kind == "VAR_SET_MULTI":  # SET TRANSACTION ..., SET SESSION CHARACTERISTICS ...
        acc.classes.add(TRANSACTION if name.startswith("transaction") else SESSION)
    else:
        args = body.get("args") or []
        value = _sval(args[0]) if len(args) == 1 and _is_string_const(args[0]) else None
        acc.classes.add(setting_class(name, value))
    _children(acc, body, scope)


def _h_func_call(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    parts = [str(p.get("String", {}).get("sval", "")).lower() for p in body.get("funcname", [])]
    if parts:
        acc.classes.update(function_classes(parts[-1], ".".join(parts)))
        if parts[-1] == "set_config":
            args = body.get("args") or []
            if args and _is_string_const(args[0]):
                value = _sval(args[1]) if len(args) > 1 and _is_string_const(args[1]) else None
                acc.classes.add(setting_class(_sval(args[0]).lower(), value))
            else:  # a computed setting name could be any setting
                acc.classes.update((DYNAMIC, PRIVILEGE, SERVER_ESCAPE))
    _children(acc, body, scope)


def _h_range_var(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    _range_var(acc, body, scope)


def _h_do(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    acc.classes.add(DYNAMIC)
    lang, code = "plpgsql", None
    for name, arg in _defelems(body.get("args")):
        if name == "language":
            lang = _sval(arg).lower()
        elif name == "as":
            code = _sval(arg)
    if _language_is_untrusted(lang):
        acc.classes.add(SERVER_ESCAPE)
    if code is not None and lang == "plpgsql":
        tag = "$wardgate$"
        while tag in code:
            tag = tag[:-1] + "_$"
        wrapper = f"CREATE FUNCTION wardgate_do() RETURNS void LANGUAGE plpgsql AS {tag}{code}{tag}"
        acc.classes.update(_plpgsql_classes(wrapper, acc.depth))


def _h_create_function(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    acc.classes.update((DDL, DYNAMIC))
    lang, code = "sql", None
    for name, arg in _defelems(body.get("options")):
        if name == "language":
            lang = _sval(arg).lower()
        elif name == "security" and _defelem_true(arg):
            acc.classes.add(PRIVILEGE)  # SECURITY DEFINER: runs with the owner's rights
        elif name == "as" and type(arg) is dict:
            items = arg.get("List", {}).get("items", [])
            if len(items) == 1:
                code = _sval(items[0])
            elif len(items) > 1:  # AS 'obj_file', 'link_symbol': loads a shared object
                acc.classes.add(SERVER_ESCAPE)
    if _language_is_untrusted(lang):
        acc.classes.add(SERVER_ESCAPE)
    if code is not None:
        if lang == "sql":
            acc.classes.update(_body_sql_classes(code, acc.depth))
        elif lang == "plpgsql":
            acc.classes.update(_plpgsql_classes(acc.text, acc.depth))
    _children(acc, body, scope)  # BEGIN ATOMIC bodies, defaults, SET clauses


def _h_alter_function(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    acc.classes.add(DDL)
    for name, arg in _defelems(body.get("actions")):
        if name == "security" and _defelem_true(arg):
            acc.classes.add(PRIVILEGE)
    _children(acc, body, scope)


_ALTER_TABLE_DESTRUCTIVE = frozenset(
    {
        "AT_DropColumn",
        "AT_DropConstraint",
        "AT_AlterColumnType",  # USING can rewrite every value; narrowing loses data
        "AT_DropIdentity",
        "AT_DropExpression",
        "AT_DropInherit",
        "AT_DropOf",
        "AT_DetachPartition",
        "AT_DetachPartitionFinalize",
        "AT_DisableTrig",  # removes a safeguard (audit / integrity trigger)
        "AT_DisableTrigAll",
        "AT_DisableTrigUser",
        "AT_DisableRule",
        "AT_SetUnLogged",  # contents lost on a crash
    }
)
_ALTER_TABLE_PRIVILEGE = frozenset(
    {
        "AT_ChangeOwner",
        "AT_EnableRowSecurity",
        "AT_DisableRowSecurity",
        "AT_ForceRowSecurity",
        "AT_NoForceRowSecurity",
    }
)
# Foreign-table options name files (file_fdw) and servers.
_ALTER_TABLE_SERVER = frozenset({"AT_GenericOptions", "AT_AlterColumnGenericOptions"})
_ALTER_TABLE_DDL = frozenset(
    {
        "AT_AddColumn",
        "AT_AddColumnToView",
        "AT_ColumnDefault",
        "AT_CookedColumnDefault",
        "AT_DropNotNull",
        "AT_SetNotNull",
        "AT_SetExpression",
        "AT_SetStatistics",
        "AT_SetOptions",
        "AT_ResetOptions",
        "AT_SetStorage",
        "AT_SetCompression",
        "AT_AddIndex",
        "AT_ReAddIndex",
        "AT_AddConstraint",
        "AT_ReAddConstraint",
        "AT_ReAddDomainConstraint",
        "AT_AlterConstraint",
        "AT_ValidateConstraint",
        "AT_AddIndexConstraint",
        "AT_ReAddComment",
        "AT_ClusterOn",
        "AT_DropCluster",
        "AT_SetLogged",
        "AT_DropOids",
        "AT_SetAccessMethod",
        "AT_SetTableSpace",
        "AT_SetRelOptions",
        "AT_ResetRelOptions",
        "AT_ReplaceRelOptions",
        "AT_EnableTrig",
        "AT_EnableAlwaysTrig",
        "AT_EnableReplicaTrig",
        "AT_EnableTrigAll",
        "AT_EnableTrigUser",
        "AT_EnableRule",
        "AT_EnableAlwaysRule",
        "AT_EnableReplicaRule",
        "AT_AddInherit",
        "AT_AddOf",
        "AT_ReplicaIdentity",
        "AT_AttachPartition",
        "AT_AddIdentity",
        "AT_SetIdentity",
        "AT_ReAddStatistics",
    }
)


def _h_alter_table(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    acc.classes.add(DDL)
    for item in body.get("cmds", []):
        sub = item.get("AlterTableCmd", {}).get("subtype")
        if sub in _ALTER_TABLE_DESTRUCTIVE:
            acc.classes.add(DESTRUCTIVE)
        elif sub in _ALTER_TABLE_PRIVILEGE:
            acc.classes.add(PRIVILEGE)
        elif sub in _ALTER_TABLE_SERVER:
            acc.classes.add(SERVER_ESCAPE)
        elif sub not in _ALTER_TABLE_DDL:
            acc.classes.add(UNCLASSIFIED)  # a sub-command newer than this table
    _children(acc, body, scope)


def _h_rename(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    if body.get("renameType") == "OBJECT_ROLE":
        acc.classes.add(PRIVILEGE)
    else:
        acc.classes.update((DDL, DESTRUCTIVE))
    _children(acc, body, scope)


_RELATION_OBJECTS = frozenset(
    {"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE", "OBJECT_SEQUENCE"}
)


def _h_drop(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    acc.classes.add(DESTRUCTIVE)
    kind = body.get("removeType")
    if kind == "OBJECT_POLICY":
        acc.classes.add(PRIVILEGE)
    if kind in _RELATION_OBJECTS:
        for obj in body.get("objects", []):
            items = obj.get("List", {}).get("items", []) if type(obj) is dict else []
            name = ".".join(_sval(i) for i in items)
            if name:
                acc.tables.add(name.lower())
    _children(acc, body, scope)


def _h_alter_domain(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
    acc.classes.add(DDL)
    if body.get("subtype") == "X":  # DROP CONSTRAINT
        acc.classes.add(DESTRUCTIVE)
    _children(acc, body, scope)


def _h_query_runs(classes: frozenset[StatementClass], field: str) -> _Handler:
    """A statement with ``classes`` that also executes the query in ``field``."""

    def handler(acc: _Acc, body: _Json, scope: _Scope, top: bool) -> None:
        acc.classes.update(classes)
        if field in body:
            _statement_node(acc, body[field], scope)
        _children(acc, body, scope, (field,))

    return handler


_HANDLERS: dict[str, _Handler] = {
    "SelectStmt": _h_select,
    "InsertStmt": _h_insert,
    "UpdateStmt": _h_update_delete,
    "DeleteStmt": _h_update_delete,
    "MergeStmt": _h_merge,
    "ExplainStmt": _h_explain,
    "CopyStmt": _h_copy,
    "PrepareStmt": _h_prepare,
    "ExecuteStmt": _h_execute,
    "DeallocateStmt": _h_deallocate,
    "DiscardStmt": _h_discard,
    "VariableSetStmt": _h_variable_set,
    "FuncCall": _h_func_call,
    "RangeVar": _h_range_var,
    "DoStmt": _h_do,
    "CreateFunctionStmt": _h_create_function,
    "AlterFunctionStmt": _h_alter_function,
    "AlterTableStmt": _h_alter_table,
    "RenameStmt": _h_rename,
    "DropStmt": _h_drop,
    "AlterDomainStmt": _h_alter_domain,
    "CreateTableAsStmt": _h_query_runs(frozenset({DDL, READ}), "query"),
    "DeclareCursorStmt": _h_query_runs(frozenset({UTILITY}), "query"),
}


def _classes(*members: StatementClass) -> frozenset[StatementClass]:
    return frozenset(members)


# Statements whose class does not depend on their contents (their subtrees are still
# walked for function calls, nested statements and tables).
_BASE_CLASSES: dict[str, frozenset[StatementClass]] = {
    "VariableShowStmt": _classes(READ),
    "TransactionStmt": _classes(TRANSACTION),
    "ConstraintsSetStmt": _classes(TRANSACTION),
    "ListenStmt": _classes(SESSION),
    "UnlistenStmt": _classes(SESSION),
    "NotifyStmt": _classes(WRITE),
    "CallStmt": _classes(DYNAMIC),
    "RuleStmt": _classes(DDL, DYNAMIC),
    "CreateTrigStmt": _classes(DDL, DYNAMIC),
    "CreateEventTrigStmt": _classes(DDL, DYNAMIC),
    "AlterEventTrigStmt": _classes(DDL, DYNAMIC),
    # DDL
    "CreateStmt": _classes(DDL),
    "IndexStmt": _classes(DDL),
    "ViewStmt": _classes(DDL),
    "CreateSchemaStmt": _classes(DDL),
    "CreateSeqStmt": _classes(DDL),
    "AlterSeqStmt": _classes(DDL),
    "CreateDomainStmt": _classes(DDL),
    "CompositeTypeStmt": _classes(DDL),
    "CreateEnumStmt": _classes(DDL),
    "CreateRangeStmt": _classes(DDL),
    "AlterEnumStmt": _classes(DDL),
    "AlterTypeStmt": _classes(DDL),
    "DefineStmt": _classes(DDL),
    "CreateStatsStmt": _classes(DDL),
    "AlterStatsStmt": _classes(DDL),
    "CommentStmt": _classes(DDL),
    "AlterCollationStmt": _classes(DDL),
    "AlterDatabaseRefreshCollStmt": _classes(DDL),
    "AlterTSConfigurationStmt": _classes(DDL),
    "AlterTSDictionaryStmt": _classes(DDL),
    "CreateConversionStmt": _classes(DDL),
    "CreateCastStmt": _classes(DDL),
    "CreateOpClassStmt": _classes(DDL),
    "CreateOpFamilyStmt": _classes(DDL),
    "AlterOpFamilyStmt": _classes(DDL),
    "AlterOperatorStmt": _classes(DDL),
    "CreateTransformStmt": _classes(DDL),
    "CreatedbStmt": _classes(DDL),
    "AlterDatabaseStmt": _classes(DDL),
    "AlterDatabaseSetStmt": _classes(DDL),
    "AlterTableSpaceOptionsStmt": _classes(DDL),
    "AlterTableMoveAllStmt": _classes(DDL),
    "ReplicaIdentityStmt": _classes(DDL),
    "AlterObjectDependsStmt": _classes(DDL),
    "AlterObjectSchemaStmt": _classes(DDL, DESTRUCTIVE),
    # destructive
    "TruncateStmt": _classes(DESTRUCTIVE, WRITE, WRITE_UNBOUNDED),
    "DropdbStmt": _classes(DESTRUCTIVE),
    "DropTableSpaceStmt": _classes(DESTRUCTIVE),
    "DropSubscriptionStmt": _classes(DESTRUCTIVE, SERVER_ESCAPE),
    "DropUserMappingStmt": _classes(DESTRUCTIVE),
    "DropOwnedStmt": _classes(DESTRUCTIVE, PRIVILEGE),
    "DropRoleStmt": _classes(DESTRUCTIVE, PRIVILEGE),
    # privilege
    "CreateRoleStmt": _classes(PRIVILEGE),
    "AlterRoleStmt": _classes(PRIVILEGE),
    "AlterRoleSetStmt": _classes(PRIVILEGE),
    "GrantStmt": _classes(PRIVILEGE),
    "GrantRoleStmt": _classes(PRIVILEGE),
    "AlterDefaultPrivilegesStmt": _classes(PRIVILEGE),
    "ReassignOwnedStmt": _classes(PRIVILEGE),
    "AlterOwnerStmt": _classes(PRIVILEGE, DDL),
    "CreatePolicyStmt": _classes(PRIVILEGE, DDL),
    "AlterPolicyStmt": _classes(PRIVILEGE, DDL),
    "SecLabelStmt": _classes(PRIVILEGE, DDL),
    # server escape: code, files, other servers, server-wide configuration
    "CreateExtensionStmt": _classes(SERVER_ESCAPE, DDL),
    "AlterExtensionStmt": _classes(SERVER_ESCAPE, DDL),
    "AlterExtensionContentsStmt": _classes(SERVER_ESCAPE, DDL),
    "CreatePLangStmt": _classes(SERVER_ESCAPE, DDL),
    "CreateAmStmt": _classes(SERVER_ESCAPE, DDL),
    "LoadStmt": _classes(SERVER_ESCAPE),
    "AlterSystemStmt": _classes(SERVER_ESCAPE),
    "CreateFdwStmt": _classes(SERVER_ESCAPE, DDL),
    "AlterFdwStmt": _classes(SERVER_ESCAPE, DDL),
    "CreateForeignServerStmt": _classes(SERVER_ESCAPE, DDL),
    "AlterForeignServerStmt": _classes(SERVER_ESCAPE, DDL),
    "CreateUserMappingStmt": _classes(SERVER_ESCAPE, DDL),
    "AlterUserMappingStmt": _classes(SERVER_ESCAPE, DDL),
    "CreateForeignTableStmt": _classes(SERVER_ESCAPE, DDL),
    "ImportForeignSchemaStmt": _classes(SERVER_ESCAPE, DDL),
    "CreateSubscriptionStmt": _classes(SERVER_ESCAPE, DDL),
    "AlterSubscriptionStmt": _classes(SERVER_ESCAPE, DDL),
    "CreatePublicationStmt": _classes(SERVER_ESCAPE, DDL),
    "AlterPublicationStmt": _classes(SERVER_ESCAPE, DDL),
    "CreateTableSpaceStmt": _classes(SERVER_ESCAPE, DDL),
    # utility
    "VacuumStmt": _classes(UTILITY),
    "ClusterStmt": _classes(UTILITY),
    "ReindexStmt": _classes(UTILITY),
    "CheckPointStmt": _classes(UTILITY),
    "FetchStmt": _classes(UTILITY),
    "ClosePortalStmt": _classes(UTILITY),
    "LockStmt": _classes(UTILITY),
    "RefreshMatViewStmt": _classes(UTILITY, WRITE),
}


# --------------------------------------------------------------------------------------
# Function bodies and DO blocks (best effort: DYNAMIC is already there)
# --------------------------------------------------------------------------------------


def _body_sql_classes(code: str, depth: int) -> frozenset[StatementClass]:
    if depth >= _MAX_BODY_DEPTH:
        return frozenset()
    return _classify(code, depth + 1).classes


def _plpgsql_classes(create_function_text: str, depth: int) -> frozenset[StatementClass]:
    """Classes of the static SQL inside a PL/pgSQL body; empty when it cannot be parsed."""
    if depth >= _MAX_BODY_DEPTH:
        return frozenset()
    try:
        tree = json.loads(_pg.parse_plpgsql_json(create_function_text))
    except Exception:
        return frozenset()
    found: set[StatementClass] = set()
    for query, mode in _plpgsql_exprs(tree):
        if mode == 0:  # a whole statement
            text = query
        else:  # an expression, or "target := expression"
            _, sep, rhs = query.partition(":=")
            text = "SELECT " + (rhs if sep else query)
        sub = _classify(text, depth + 1)
        if sub.error is not None:
            continue
        if mode != 0 and not sub.tables:
            found.update(sub.classes - {READ})  # "SELECT <expression>" is our wrapper
        else:
            found.update(sub.classes)
    return frozenset(found)


def _plpgsql_exprs(value: _Json) -> Iterable[tuple[str, int]]:
    if type(value) is dict:
        expr = value.get("PLpgSQL_expr")
        if type(expr) is dict and "query" in expr:
            yield str(expr["query"]), int(expr.get("parseMode", 0))
        for v in value.values():
            yield from _plpgsql_exprs(v)
    elif type(value) is list:
        for v in value:
            yield from _plpgsql_exprs(v)


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def _fingerprint(sql: str, classes: frozenset[StatementClass]) -> str:
    if classes & EXACT_FINGERPRINT_CLASSES:
        return "exact:" + hashlib.sha256(sql.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    # The classes are part of the key: "... WHERE id = 5 OR 1 = 0" and "... OR 1 = 1" have
    # the same literal-insensitive shape but not the same class.
    code = ",".join(sorted(classes))
    return f"pg:{_pg.fingerprint(sql)}:{code}" if sql.strip() else f"pg:empty:{code}"


_NEAR_LITERAL = re.compile(r"""at or near "(?:[EeBbXxUu]&?)?['$].*"$""", re.DOTALL)


def _parse_error_message(exc: Exception) -> str:
    message = str(exc.args[0]) if exc.args else str(exc)
    # Do not copy string literals (passwords, personal data) into errors and logs.
    message = _NEAR_LITERAL.sub("at or near a string literal", message)
    location = exc.args[1] if len(exc.args) > 1 else None
    at = f" at character {int(location) + 1}" if isinstance(location, int) else ""
    return (
        f"PostgreSQL parser: {message}{at}; the string was not run by wardgate and is "
        "treated as unclassified. Fix the syntax, or ask for a review of unclassified SQL."
    )


def unclassified(sql: str, error: str) -> Classification:
    classes = frozenset({UNCLASSIFIED})
    return Classification(
        statements=(),
        classes=classes,
        tables=frozenset(),
        error=error,
        fingerprint=_fingerprint(sql, classes),
    )


class StatementShape(NamedTuple):
    """What one statement's parse tree says about it, apart from its text.

    ``classes`` are the statement's own (empty: unclassified); ``prepared`` is a PREPARE
    (without its fingerprint, which is of the text) or DEALLOCATE; ``executes`` names the
    prepared statement of an EXECUTE. ``_statement_info`` adds the text.
    """

    kind: str
    classes: frozenset[StatementClass]
    tables: frozenset[str]
    prepared: PreparedOp | None = None
    executes: str | None = None


def statement_shape(text: str | None, stmt: _Json, depth: int = 0) -> StatementShape:
    """Walk one statement of the tree (``{"SelectStmt": {...}}``).

    With ``text`` None the walk is literal-blind: reading the text raises ``LiteralRead``.
    """
    ((key, body),) = stmt.items()
    acc = _Acc(text, depth)
    _node(acc, key, body, frozenset(), True)
    return StatementShape(
        key, frozenset(acc.classes), frozenset(acc.tables), acc.prepared, acc.executes
    )


def _statement_info(text: str, shape: StatementShape) -> StatementInfo:
    classes = shape.classes or frozenset({UNCLASSIFIED})
    prepared = shape.prepared
    if shape.executes is not None:
        # Without the session's registry an EXECUTE is unknowable: unclassified until
        # PreparedStatements.resolve() substitutes the prepared body's classes.
        prepared = PreparedOp("execute", shape.executes, classes=shape.classes, tables=shape.tables)
        classes = shape.classes | {UNCLASSIFIED}
    elif prepared is not None and prepared.action == "prepare":
        prepared = replace(prepared, fingerprint=_fingerprint(text, prepared.classes))
    return StatementInfo(
        kind=shape.kind, classes=classes, tables=shape.tables, text=text, prepared=prepared
    )


def statement_texts(sql: str, spans: Iterable[tuple[int, int]]) -> list[str]:
    """Each statement's text from libpg_query's (stmt_location, stmt_len) byte spans; a
    length of 0 runs to the end of the string."""
    raw = sql.encode("utf-8")
    ascii_only = len(raw) == len(sql)  # locations are byte offsets
    texts: list[str] = []
    for start, length in spans:
        end = start + length if length else len(raw)
        text = sql[start:end] if ascii_only else raw[start:end].decode("utf-8", "replace")
        texts.append(text.strip())
    return texts


def assemble(
    sql: str,
    texts: Sequence[str],
    shapes: Sequence[StatementShape],
    fingerprint: str | None = None,
) -> Classification:
    """The classification of ``sql`` from its statements' texts and shapes.

    What comes from the text (statement texts, PREPARE fingerprints) is made here from
    ``sql`` and ``texts``, never taken from a shape. The whole string's ``fingerprint`` too,
    unless the caller has it: that of another text differing only in constants and
    formatting, which libpg_query fingerprints alike (never one of exact text).
    """
    if not shapes:
        return Classification((), frozenset(), frozenset(), fingerprint="pg:empty")
    if len(shapes) == 1:  # the usual case, and a shape hit's hot path
        (text,), (shape,) = texts, shapes
        statement = _statement_info(text, shape)
        statements: tuple[StatementInfo, ...] = (statement,)
        classes, tables = statement.classes, statement.tables
    else:
        statements = tuple([_statement_info(t, s) for t, s in zip(texts, shapes, strict=True)])
        classes = frozenset().union(*(s.classes for s in statements))
        tables = frozenset().union(*(s.tables for s in statements))
    if fingerprint is None or classes & EXACT_FINGERPRINT_CLASSES:
        fingerprint = _fingerprint(sql, classes)
    return Classification(
        statements=statements, classes=classes, tables=tables, fingerprint=fingerprint
    )


def _classify_tree(sql: str, tree: _Json, depth: int) -> Classification:
    items = tree.get("stmts", [])
    if not items:
        return assemble(sql, (), ())
    spans = [(int(i.get("stmt_location", 0)), int(i.get("stmt_len", 0))) for i in items]
    texts = statement_texts(sql, spans)
    shapes = [statement_shape(t, i["stmt"], depth) for t, i in zip(texts, items, strict=True)]
    return assemble(sql, texts, shapes)


def _classify(sql: str, depth: int) -> Classification:
    if "\x00" in sql:
        # The server stops reading a query at NUL; libpg_query too. What follows would be
        # invisible here, so refuse rather than classify a prefix.
        return unclassified(
            sql, "the SQL text contains a NUL character; remove it and send the statement again"
        )
    try:
        tree_json = _pg.parse_sql_json(sql)
    except _pg.ParseError as exc:
        return unclassified(sql, _parse_error_message(exc))
    return _classify_tree(sql, json.loads(tree_json), depth)


def _failed(sql: str, exc: Exception) -> Classification:
    if isinstance(exc, RecursionError):
        return unclassified(sql, "the SQL is nested too deeply to classify; simplify it")
    return unclassified(
        sql, f"wardgate could not classify this SQL ({type(exc).__name__}); it fails closed"
    )


def classify_postgres(sql: str) -> Classification:
    """Classify a string of PostgreSQL SQL (one or more statements). Never raises."""
    try:
        return _classify(sql, 0)
    except Exception as exc:  # fail closed on anything unexpected, never guess
        return _failed(sql, exc)


def classify_postgres_tree(sql: str, tree_json: str) -> Classification:
    """``classify_postgres(sql)`` for a caller that already holds ``tree_json``, the
    ``parse_sql_json`` of ``sql`` (a text without NUL): the same answer, parsed once."""
    try:
        return _classify_tree(sql, json.loads(tree_json), 0)
    except Exception as exc:  # fail closed on anything unexpected, never guess
        return _failed(sql, exc)
