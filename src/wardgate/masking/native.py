"""The compiled DataRow walk (``wardgate._rowscan``) and when the relay may use it.

Owns the bridge between a :class:`~wardgate.masking.engine.ResultMaskPlan` and the C
module: which columns the compiled gate looks at, and whether a plan can be gated in C at
all. The C code answers one question per run of rows -- "may these go out untouched?" --
and stops at the first row it cannot vouch for; that row takes the Python path
(``pg_rows.mask_datarow``), which stays the reference implementation.

``scan_rows`` is None when the extension was not built (no compiler at install time) or
``WARDGATE_PURE_PYTHON=1`` is set; everything then runs in Python with the same results.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

from wardgate.masking.engine import SKIP, ResultMaskPlan

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Buffer

    from wardgate._rowscan import Gate

    ScanRows = Callable[[Buffer, int, int, int, "Gate | None"], tuple[int, int, int]]
    ScanCopy = Callable[[Buffer, int, int, int, "Gate", bool], tuple[int, int]]
    ScanMySqlRows = Callable[[Buffer, int, int, int, int, "Gate | None"], tuple[int, int, int, int]]
    Cells = tuple[list[str | None], int]
    CaptureRows = Callable[
        [Buffer, int, int, int, "Gate | None", list[int], list[list[str | None]], int, int],
        tuple[int, int, int, int],
    ]
    CaptureMySqlRows = Callable[
        [
            Buffer, int, int, int, int, "Gate | None", int, list[list[str | None]], int, int,
            "bytes | None",
        ],
        tuple[int, int, int, int, int],
    ]  # fmt: skip
    Bind = tuple[str, str, list[str | bytes | None], list[int], bool]

__all__ = [
    "NO_GATE",
    "capture_mysql_rows",
    "capture_rows",
    "mysql_binary_cells",
    "mysql_text_cells",
    "native_gate",
    "pg_bind",
    "pg_cells",
    "scan_copy",
    "scan_mysql_rows",
    "scan_rows",
]

try:
    from wardgate import _rowscan
except ImportError:  # built without a compiler: the pure-Python path
    _rowscan = None  # type: ignore[assignment]

if os.environ.get("WARDGATE_PURE_PYTHON", "") not in ("", "0"):
    _rowscan = None  # type: ignore[assignment]

scan_rows: Final[ScanRows | None] = _rowscan.scan_rows if _rowscan is not None else None
scan_copy: Final[ScanCopy | None] = _rowscan.scan_copy if _rowscan is not None else None
scan_mysql_rows: Final[ScanMySqlRows | None] = (
    _rowscan.scan_mysql_rows if _rowscan is not None else None
)
# A row decoded as the recording's result capture keeps it, with ResultCapture's size;
# None from the call when the row does not parse (the Python decoder then reports it).
pg_cells: Final[Callable[[Buffer, list[int]], Cells | None] | None] = (
    _rowscan.pg_cells if _rowscan is not None else None
)
mysql_text_cells: Final[Callable[[Buffer, int], Cells | None] | None] = (
    _rowscan.mysql_text_cells if _rowscan is not None else None
)
# scan_rows / scan_mysql_rows that also decode the rows they take for the result capture.
capture_rows: Final[CaptureRows | None] = _rowscan.capture_rows if _rowscan is not None else None
capture_mysql_rows: Final[CaptureMySqlRows | None] = (
    _rowscan.capture_mysql_rows if _rowscan is not None else None
)
# A binary-protocol row as the capture keeps it (types: MYSQL_TYPE and unsigned flag per
# column); None from the call for anything irregular (the Python decoder then reports it).
mysql_binary_cells: Final[Callable[[Buffer, bytes], Cells | None] | None] = (
    _rowscan.mysql_binary_cells if _rowscan is not None else None
)
# A Bind message read for the recording (pg_observer.parse_bind); None from the call for
# anything irregular (the Python parser then runs).
pg_bind: Final[Callable[[Buffer], Bind | None] | None] = (
    _rowscan.pg_bind if _rowscan is not None else None
)


class _NoGate:
    """Marks a plan that cannot be gated in C (cached so the check runs once per plan)."""

    __slots__ = ()


NO_GATE: Final = _NoGate()


def native_gate(plan: ResultMaskPlan) -> Gate | None:
    """The compiled gate for ``plan``, or None when rows of this result must each take the
    Python path: no extension, or a plan whose unchanged rows cannot be told by a gate
    (a column rule replaces whole values; a binary number column holds no ASCII digits)."""
    cached = plan.native
    if cached is not None:
        return None if cached is NO_GATE else cached  # type: ignore[return-value]
    gate: Gate | None = None
    if _rowscan is not None and plan.row_gate:
        spec = plan.masker.native_spec()
        gate = _rowscan.Gate(
            bytes(0 if a == SKIP else 1 for a in plan.actions),
            0 if plan.default_action == SKIP else 1,
            spec.unconditional,
            spec.keep,
            spec.min_digits,
            spec.rules,
            spec.signals,
            spec.plain,
            spec.plain_folded,
        )
    plan.native = gate if gate is not None else NO_GATE
    return gate
