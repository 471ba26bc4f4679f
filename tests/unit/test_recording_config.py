"""The ``recording:`` configuration section."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from wardgate.recording.config import RecordingConfig, parse_duration

EXAMPLE = """
enabled: true
on_failure: fail_closed
max_result_rows: 1000
max_result_bytes: 1048576
flush_interval_ms: 100
flush_max_events: 500
queue_max_events: 20000
queue_max_bytes: 67108864
retention: 90d
key_file: recording-key.pem
trusted_public_keys: [keys/retired-2025.pub]
"""


def test_example_yaml_parses() -> None:
    cfg = RecordingConfig.model_validate(yaml.safe_load(EXAMPLE))
    assert cfg.retention_period == timedelta(days=90)
    assert cfg.key_path(Path("/var/lib/wardgate")) == Path("/var/lib/wardgate/recording-key.pem")
    assert cfg.trusted_key_paths(Path("/s")) == [Path("/s/keys/retired-2025.pub")]


def test_defaults_fail_closed() -> None:
    cfg = RecordingConfig()
    assert cfg.enabled and cfg.on_failure == "fail_closed"
    assert (cfg.max_result_rows, cfg.max_result_bytes) == (1000, 1024 * 1024)
    assert (cfg.flush_interval_ms, cfg.flush_max_events) == (100, 2000)
    assert cfg.retention_period is None


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="flush_interval"):
        RecordingConfig.model_validate({"flush_interval": 5})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("12h", 43200), ("2w", 1209600), ("30m", 1800), ("45s", 45)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["90 days", "0d", "-1d", "d", "1.5d"])
def test_bad_retention_says_what_is_accepted(bad: str) -> None:
    with pytest.raises(ValidationError, match="for example '90d'"):
        RecordingConfig(retention=bad)


def test_on_failure_is_one_of_two_policies() -> None:
    with pytest.raises(ValidationError):
        RecordingConfig.model_validate({"on_failure": "ignore"})
