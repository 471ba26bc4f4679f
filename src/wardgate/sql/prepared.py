"""Per-session registry of SQL-level prepared statements (PREPARE / EXECUTE / DEALLOCATE).

Owns ``PreparedStatements``. The classifiers see one string at a time, so ``EXECUTE p``
alone is unknowable and classifies as UNCLASSIFIED. A session keeps one registry and
passes every classification through ``resolve()``, in order:

* ``PREPARE p AS ...`` / ``PREPARE p FROM '...'`` records p -> the body's classes, tables
  and fingerprint (the PREPARE itself already carries the body's classes, so a body
  policy forbids is stopped there);
* ``EXECUTE p`` becomes the body's classes (plus the statement's own, e.g. DDL for
  ``CREATE TABLE x AS EXECUTE p``); a name we have not seen stays UNCLASSIFIED;
* ``DEALLOCATE p`` / ``DEALLOCATE ALL`` / ``DISCARD ALL`` forget.

Fail-closed choices: PostgreSQL refuses to PREPARE a name that exists and keeps the old
statement, so there a re-PREPARE keeps the union of old and new bodies (the registry
cannot know which one the server has). MySQL replaces the old statement (and drops it if
the new PREPARE fails), so there the new body replaces it. A registry that is full forgets
its oldest name: executing it is then UNCLASSIFIED, never guessed. Protocol-level
prepared statements (PostgreSQL Parse/Bind, MySQL COM_STMT_PREPARE) can use ``define`` /
``lookup`` / ``forget`` with the protocol's statement names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from wardgate.sql.classes import Classification, PreparedOp, StatementClass, StatementInfo

UNCLASSIFIED = StatementClass.UNCLASSIFIED


@dataclass(frozen=True, slots=True)
class PreparedBody:
    """What a prepared name stands for."""

    classes: frozenset[StatementClass]
    tables: frozenset[str]
    fingerprint: str


class PreparedStatements:
    """One session's prepared-statement names. Not shared between sessions."""

    __slots__ = ("_bodies", "_max_entries")

    def __init__(self, max_entries: int = 1_000) -> None:
        if max_entries < 1:
            raise ValueError(f"PreparedStatements: max_entries must be >= 1 (got {max_entries})")
        self._bodies: dict[str, PreparedBody] = {}
        self._max_entries = max_entries

    # -- protocol-level use ---------------------------------------------------------------

    def define(self, name: str, body: PreparedBody, *, replaces: bool = True) -> None:
        old = self._bodies.pop(name, None)
        if old is not None and not replaces:
            body = PreparedBody(
                classes=old.classes | body.classes,
                tables=old.tables | body.tables,
                fingerprint=_combine(old.fingerprint, body.fingerprint),
            )
        self._bodies[name] = body
        while len(self._bodies) > self._max_entries:
            del self._bodies[next(iter(self._bodies))]

    def lookup(self, name: str) -> PreparedBody | None:
        return self._bodies.get(name)

    def forget(self, name: str | None) -> None:
        """Forget ``name``; ``None`` forgets every name (DEALLOCATE ALL, DISCARD ALL)."""
        if name is None:
            self._bodies.clear()
        else:
            self._bodies.pop(name, None)

    def __len__(self) -> int:
        return len(self._bodies)

    def __contains__(self, name: object) -> bool:
        return name in self._bodies

    # -- SQL-level use --------------------------------------------------------------------

    def resolve(self, c: Classification) -> Classification:
        """Follow PREPARE / EXECUTE / DEALLOCATE in ``c``, statement by statement."""
        if not any(s.prepared is not None for s in c.statements):
            return c
        statements: list[StatementInfo] = []
        unknown: list[str] = []
        executed: list[str] = []
        for st in c.statements:
            op = st.prepared
            if op is None:
                statements.append(st)
            elif op.action == "prepare":
                if op.name is not None:
                    defined = PreparedBody(op.classes, op.tables, op.fingerprint)
                    self.define(op.name, defined, replaces=op.replaces)
                statements.append(st)
            elif op.action == "deallocate":
                self.forget(op.name)
                statements.append(st)
            else:
                resolved, body = self._execute(st, op)
                if body is None:
                    unknown.append(op.name or "")
                else:
                    executed.append(body.fingerprint)
                statements.append(resolved)
        classes = frozenset().union(*(s.classes for s in statements))
        error = c.error
        if unknown:
            names = ", ".join(sorted(set(unknown)))
            message = (
                f"EXECUTE of prepared statement(s) {names} that this session has not prepared "
                "through wardgate (or has deallocated): what it runs is unknown, so it is "
                "unclassified. PREPARE it in this session first."
            )
            error = f"{error}; {message}" if error else message
        fingerprint = c.fingerprint
        if executed:
            # Approving "EXECUTE p" must not approve whatever p is redefined to later.
            fingerprint = "exec:" + _combine(c.fingerprint, *executed)
        return replace(
            c,
            statements=tuple(statements),
            classes=classes,
            tables=frozenset().union(c.tables, *(s.tables for s in statements)),
            error=error,
            fingerprint=fingerprint,
        )

    def _execute(
        self, st: StatementInfo, op: PreparedOp
    ) -> tuple[StatementInfo, PreparedBody | None]:
        body = self._bodies.get(op.name) if op.name is not None else None
        if body is None:
            return replace(st, classes=op.classes | {UNCLASSIFIED}), None
        classes = op.classes | body.classes
        return (
            replace(
                st, classes=classes or frozenset({UNCLASSIFIED}), tables=st.tables | body.tables
            ),
            body,
        )


def _combine(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
