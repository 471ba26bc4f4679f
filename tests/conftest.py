from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings

# The machines are shared and noisy: property tests judge behaviour, not speed.
settings.register_profile(
    "wardgate",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("wardgate")

sys.path.insert(0, str(Path(__file__).parent))

from gateway_harness import RunningGateway, start_gateway  # noqa: E402

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
TEST_DB = "wardgate_test"


@pytest.fixture(scope="session")
def target_db() -> str:
    """A scratch database on the real local PostgreSQL that target `demo` points at."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DB,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{TEST_DB}"')
    return f"host=127.0.0.1 port=5432 user=postgres dbname={TEST_DB}"


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, target_db: str) -> Iterator[RunningGateway]:
    """One real gateway process shared by the read-mostly end-to-end tests."""
    with start_gateway(tmp_path_factory.mktemp("gw")) as gw:
        yield gw
