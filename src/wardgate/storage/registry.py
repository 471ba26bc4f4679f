"""Imports every table model so ``metadata`` is complete for Alembic and tests."""

from __future__ import annotations

from wardgate.storage import models as _models  # noqa: F401
from wardgate.storage.base import Base

metadata = Base.metadata
