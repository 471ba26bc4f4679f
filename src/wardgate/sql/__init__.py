"""SQL statement classification: text in, ``Classification`` out, for policy to judge.

* ``classify_postgres`` -- PostgreSQL's own parser (pglast / libpg_query).
* ``classify_mysql`` -- a MySQL-faithful lexer in front of sqlglot's MySQL parser.
* ``ClassificationCache`` -- bounded LRU so a repeated statement costs a dict lookup.
* ``PostgresShapeCache`` -- behind it, one classification for PostgreSQL texts that differ
  only in their literals, where the classification provably does not depend on them.
* ``PreparedStatements`` -- per-session registry that follows PREPARE / EXECUTE.

Both classifiers never raise and fail closed: anything they cannot be sure of is
``StatementClass.UNCLASSIFIED``. The classifiers are imported lazily, so importing the
vocabulary (``wardgate.sql.classes``) does not load the parsers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wardgate.sql.cache import ClassificationCache
from wardgate.sql.classes import Classification, PreparedOp, StatementClass, StatementInfo
from wardgate.sql.prepared import PreparedBody, PreparedStatements

if TYPE_CHECKING:
    from wardgate.sql.mysql import classify_mysql
    from wardgate.sql.pg_shapes import PostgresShapeCache
    from wardgate.sql.postgres import classify_postgres

__all__ = [
    "Classification",
    "ClassificationCache",
    "PostgresShapeCache",
    "PreparedBody",
    "PreparedOp",
    "PreparedStatements",
    "StatementClass",
    "StatementInfo",
    "classify_mysql",
    "classify_postgres",
]


def __getattr__(name: str) -> Any:
    if name == "classify_postgres":
        from wardgate.sql.postgres import classify_postgres

        return classify_postgres
    if name == "classify_mysql":
        from wardgate.sql.mysql import classify_mysql

        return classify_mysql
    if name == "PostgresShapeCache":
        from wardgate.sql.pg_shapes import PostgresShapeCache

        return PostgresShapeCache
    raise AttributeError(f"module 'wardgate.sql' has no attribute {name!r}")
