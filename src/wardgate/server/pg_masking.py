"""Masking on the PostgreSQL wire: RowDescription → plan, DataRow/CopyData → masked bytes.

The plan for a result is built once (cached by its column layout) and says which columns
can hold sensitive data at all; a result with none is forwarded without touching a row.
Table OIDs from RowDescription are resolved to ``schema.table`` with a catalog map the
gateway reads from the target at connect time (cached per target), so column rules such
as ``customers.email`` apply; a table the map does not know yet falls back to matching
the column name alone, which masks more, never less.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from wardgate.masking.engine import ColumnInfo, MaskingPolicy, ResultMaskPlan
from wardgate.masking.native import native_gate
from wardgate.masking.pg_rows import mask_copy_line, mask_datarow
from wardgate.server.pg_observer import ColumnDesc

if TYPE_CHECKING:
    from wardgate._rowscan import Gate

CATALOG_QUERY = (
    "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r','p','v','m','f') "
    "AND n.nspname NOT IN ('pg_catalog','information_schema')"
)

_CSV = re.compile(r"\bcsv\b", re.IGNORECASE)
_BINARY = re.compile(r"\(\s*format\s+binary|\bbinary\b", re.IGNORECASE)


@dataclass(slots=True)
class _CopyPlan:
    plan: ResultMaskPlan
    fmt: Literal["text", "csv"]


@dataclass(slots=True)
class TableNames:
    """oid → ``schema.table`` for one target, refreshed at most every ``ttl`` seconds."""

    names: dict[int, str]
    fetched: float

    def fresh(self, ttl: float) -> bool:
        return time.monotonic() - self.fetched < ttl


class PgRowMasker:
    def __init__(self, policy: MaskingPolicy, tables: dict[int, str]) -> None:
        self.policy = policy
        self.tables = tables
        # A prepared statement executed again brings the same description object: its
        # plan is remembered by that object's identity (held here, so the id stays its).
        self._last: tuple[list[ColumnDesc], tuple[int, ...], object | None] | None = None

    def plan(self, columns: list[ColumnDesc] | None, formats: list[int]) -> object | None:
        if columns is None:
            # Layout unknown (an Execute whose description we never saw): scan every
            # value as text rather than let anything through unexamined.
            return self.policy.plan_for_copy(None)
        last = self._last
        fmts = tuple(formats)
        if last is not None and last[0] is columns and last[1] == fmts:
            return last[2]
        plan = self._plan(columns, formats)
        self._last = (columns, fmts, plan)
        return plan

    def _plan(self, columns: list[ColumnDesc], formats: list[int]) -> object | None:
        infos = [
            ColumnInfo(
                c.name,
                self.tables.get(c.table_oid) if c.table_oid else None,
                c.type_oid,
                formats[i] if i < len(formats) else c.format,
            )
            for i, c in enumerate(columns)
        ]
        return self.policy.plan_for_result(infos)

    def mask_row(self, msg: bytes, plan: object) -> bytes | None:
        assert isinstance(plan, ResultMaskPlan)
        return mask_datarow(msg, plan)

    def native_gate(self, plan: object) -> Gate | None:
        assert isinstance(plan, ResultMaskPlan)
        return native_gate(plan)

    def native_copy_gate(self, plan: object) -> tuple[Gate, bool] | None:
        if not isinstance(plan, _CopyPlan):
            return None  # binary COPY: every row goes to mask_copy, which refuses it
        gate = native_gate(plan.plan)
        return None if gate is None else (gate, plan.fmt == "text")

    def copy_plan(self, statement: str, binary: bool) -> object | None:
        fmt: Literal["text", "csv"] = "csv" if _CSV.search(statement) else "text"
        if binary or _BINARY.search(statement):
            return _BinaryCopy()
        return _CopyPlan(self.policy.plan_for_copy(None), fmt)

    def mask_copy(self, data: bytes, plan: object) -> bytes | None:
        if isinstance(plan, _BinaryCopy):
            # Binary COPY carries typed values we do not rewrite; fail closed.
            raise CopyNotMaskable
        assert isinstance(plan, _CopyPlan)
        payload = data[5:]
        masked = mask_copy_line(payload, plan.plan, plan.fmt)
        if masked is None:
            return None
        return b"d" + (len(masked) + 4).to_bytes(4, "big") + masked


class _BinaryCopy:
    pass


class CopyNotMaskable(Exception):  # noqa: N818 - a signal to the relay, not an error type
    """Binary COPY output for an identity whose results are masked: the relay ends it."""
