"""The ``recording:`` section of the gateway configuration.

Owns the knobs of session recording: whether it runs, what happens when it cannot keep up
(fail closed by default), how much of each result is kept, how the writer batches, how
long recordings are retained and which keys sign and verify them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

OnFailure = Literal["fail_closed", "fail_open"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

DEFAULT_KEY_FILE = "recording-key.pem"


def parse_duration(text: str) -> timedelta:
    """``"90d"`` -> 90 days. Units: s, m, h, d, w. Raises ValueError with the accepted form."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(
            f"invalid duration {text!r}: write a positive whole number followed by one unit "
            "(s, m, h, d or w), for example '90d' or '12h'"
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class RecordingConfig(BaseModel):
    """Session recording settings. Every field has a safe default; ``{}`` is a valid section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # fail_closed: refuse new statements (and connections) while events cannot be written.
    # fail_open: keep serving; events beyond the queue bound are dropped and the gap is
    # recorded in the session (a ``gap`` event and ``events_dropped`` in ``session.end``).
    on_failure: OnFailure = "fail_closed"
    max_result_rows: int = Field(default=1000, ge=0)
    max_result_bytes: int = Field(default=1024 * 1024, ge=0)
    flush_interval_ms: int = Field(default=100, ge=1, le=60_000)
    # Also the most events one transaction takes. Each of a batch's statements hands the
    # GIL over, and the writer thread can wait a switch interval to get it back from a
    # busy event loop: with 500, pgbench -c 8 at ~14k statements/s outran it.
    flush_max_events: int = Field(default=2000, ge=1, le=100_000)
    queue_max_events: int = Field(default=20_000, ge=1)
    queue_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # A write to the store still unfinished after this long (a hung database, a SQLite
    # lock) makes the recorder unhealthy until it completes: without this a store that
    # hangs instead of failing would let statements run while nothing is written.
    write_timeout_ms: int = Field(default=5000, ge=10)
    retention: str | None = None
    # Relative paths are resolved against the gateway's state directory.
    key_file: Path = Path(DEFAULT_KEY_FILE)
    # Public keys (PEM) of retired signing keys, so recordings they sealed still verify.
    trusted_public_keys: list[Path] = Field(default_factory=list)
    # Which gateway node owns the sessions it opens; defaults to the host name. Recovery
    # after a crash only interrupts sessions of its own node.
    node_id: str | None = None

    @field_validator("retention")
    @classmethod
    def _check_retention(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @property
    def retention_period(self) -> timedelta | None:
        return None if self.retention is None else parse_duration(self.retention)

    def key_path(self, state_dir: Path) -> Path:
        """Where the signing key lives: ``key_file``, relative to the state directory."""
        return self.key_file if self.key_file.is_absolute() else state_dir / self.key_file

    def trusted_key_paths(self, state_dir: Path) -> list[Path]:
        return [p if p.is_absolute() else state_dir / p for p in self.trusted_public_keys]
