"""Statement classes: the dialect-neutral vocabulary that policy rules are written in.

A classifier (pglast for PostgreSQL, sqlglot for MySQL) turns SQL text into a
``Classification``; policy never sees the SQL dialect, only these classes and tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StatementClass(StrEnum):
    READ = "read"
    WRITE = "write"
    WRITE_UNBOUNDED = "write-unbounded"
    DDL = "ddl"
    DESTRUCTIVE = "destructive"
    PRIVILEGE = "privilege"
    SERVER_ESCAPE = "server-escape"
    DYNAMIC = "dynamic"
    TRANSACTION = "transaction"
    SESSION = "session"
    UTILITY = "utility"
    UNCLASSIFIED = "unclassified"


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """One statement of a (possibly multi-statement) string."""

    kind: str  # parser node / statement type, e.g. "SelectStmt", "UPDATE"
    classes: frozenset[StatementClass]
    tables: frozenset[str]  # schema-qualified where the SQL qualified it, lower-cased
    text: str


@dataclass(frozen=True, slots=True)
class Classification:
    """Everything policy needs to judge a string of SQL. Immutable, so it can be cached."""

    statements: tuple[StatementInfo, ...]
    classes: frozenset[StatementClass]
    tables: frozenset[str]
    error: str | None = None  # parser error: the string is UNCLASSIFIED and fails closed
    fingerprint: str = ""  # literal-insensitive fingerprint for approval scope and caching

    @property
    def unclassified(self) -> bool:
        return StatementClass.UNCLASSIFIED in self.classes
