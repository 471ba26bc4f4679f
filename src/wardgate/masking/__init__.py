"""Inline masking of sensitive values in results, per identity, on the data path.

Public surface (everything else is internal):

* :class:`MaskingConfig` — the ``masking:`` config section;
  ``config.masking_plan_for(principal.groups)`` gives a :class:`MaskingPolicy` or None
  (nothing to mask: take the zero-cost path).
* :meth:`MaskingPolicy.plan_for_result` — a :class:`ResultMaskPlan` per result set from
  :class:`ColumnInfo` descriptors, or None (no column can hold anything: forward rows).
* :func:`mask_datarow` / :func:`mask_copy_line` — PostgreSQL wire rewriting, None when
  unchanged.
* :class:`ValueMasker` — ``policy.masker.mask_text(value)`` for any other protocol.
"""

from wardgate.masking.config import EXAMPLE_YAML, MaskingConfig
from wardgate.masking.engine import SQL_NULL, ColumnInfo, MaskingPolicy, ResultMaskPlan, ValueMasker
from wardgate.masking.formats import MaskFormat
from wardgate.masking.pg_rows import mask_copy_line, mask_datarow

__all__ = [
    "EXAMPLE_YAML",
    "SQL_NULL",
    "ColumnInfo",
    "MaskFormat",
    "MaskingConfig",
    "MaskingPolicy",
    "ResultMaskPlan",
    "ValueMasker",
    "mask_copy_line",
    "mask_datarow",
]
