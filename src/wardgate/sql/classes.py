"""Statement classes: the dialect-neutral vocabulary that policy rules are written in.

A classifier (pglast for PostgreSQL, sqlglot for MySQL) turns SQL text into a
``Classification``; policy never sees the SQL dialect, only these classes and tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


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
class PreparedOp:
    """A SQL-level PREPARE / EXECUTE / DEALLOCATE, so a session can follow what a name means.

    The classifier sees one string at a time; ``wardgate.sql.prepared.PreparedStatements``
    keeps the per-session names and resolves an EXECUTE to the classes of its body.
    """

    action: Literal["prepare", "execute", "deallocate"]
    name: str | None  # None only for DEALLOCATE ALL / DISCARD ALL
    # prepare: the body's classes/tables/fingerprint; execute: the statement's own classes
    # and tables apart from the prepared body (e.g. DDL for CREATE TABLE x AS EXECUTE p).
    classes: frozenset[StatementClass] = frozenset()
    tables: frozenset[str] = frozenset()
    fingerprint: str = ""
    # MySQL: PREPARE of an existing name replaces it. PostgreSQL: it is an error and the
    # old statement stays, so a registry must keep both possibilities.
    replaces: bool = False


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """One statement of a (possibly multi-statement) string."""

    kind: str  # parser node / statement type, e.g. "SelectStmt", "UPDATE"
    classes: frozenset[StatementClass]
    tables: frozenset[str]  # schema-qualified where the SQL qualified it, lower-cased
    text: str
    prepared: PreparedOp | None = None  # set for PREPARE / EXECUTE / DEALLOCATE


@dataclass(frozen=True, slots=True)
class Classification:
    """Everything policy needs to judge a string of SQL. Immutable, so it can be cached."""

    statements: tuple[StatementInfo, ...]
    classes: frozenset[StatementClass]
    tables: frozenset[str]
    # Why the string is UNCLASSIFIED (parser error, unknown prepared name, ...): it fails closed
    error: str | None = None
    # Approval scope: literal-insensitive and class-aware; exact-text for classes where a
    # literal is the danger (a COPY PROGRAM command, a DO body, a role name).
    fingerprint: str = ""

    @property
    def unclassified(self) -> bool:
        return StatementClass.UNCLASSIFIED in self.classes
