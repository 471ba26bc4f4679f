"""Imports every table model so ``metadata`` is complete for Alembic and tests."""

from __future__ import annotations

from wardgate.policy import models as _policy_models  # noqa: F401
from wardgate.recording import models as _recording_models  # noqa: F401
from wardgate.storage import models as _models  # noqa: F401
from wardgate.storage.base import Base

metadata = Base.metadata
