"""Fixtures shared by the recording tests (loaded with ``pytest_plugins``).

Every store-backed test runs twice: on a real SQLite file made by the gateway's own
``make_engine``, and on a throwaway database in the PostgreSQL at 127.0.0.1:5432
(``WARDGATE_TEST_PG_URL`` overrides; skipped when unreachable), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from wardgate.core.model import Principal
from wardgate.recording.config import RecordingConfig
from wardgate.recording.events import SessionMeta
from wardgate.recording.keys import KeyRing, SigningKey
from wardgate.recording.models import RECORDING_TABLES
from wardgate.recording.writer import Recorder, SessionRecorder
from wardgate.storage.base import Base
from wardgate.storage.db import make_engine

PG_ADMIN_URL = os.environ.get(
    "WARDGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

FAST = RecordingConfig(flush_interval_ms=5)


def _pg_reachable() -> bool:
    try:
        eng = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 2})
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def rec_pg_url() -> Iterator[str]:
    if not _pg_reachable():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"wardgate_rec_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_admin() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(params=["sqlite", "postgresql"])
def rec_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/state.db")
    else:
        url: str = request.getfixturevalue("rec_pg_url")
        engine = make_engine(url)
        Base.metadata.drop_all(engine, tables=RECORDING_TABLES)
    Base.metadata.create_all(engine, tables=RECORDING_TABLES)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def rec_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def rec_ring(rec_key: SigningKey) -> KeyRing:
    return KeyRing([rec_key.public_key])


def principal(name: str = "alice") -> Principal:
    return Principal(name, frozenset({"dba", "eng"}), "token", token_id=f"tok_{name}")


def meta(session_id: str, who: str = "alice", target: str = "prod-db") -> SessionMeta:
    return SessionMeta(
        session_id=session_id,
        principal=principal(who),
        client_address="10.0.0.5:51234",
        target=target,
        protocol="postgresql",
        database="app",
        target_user="app_ro",
    )


def run_statement(
    s: SessionRecorder,
    sql: str = "SELECT id, email FROM users WHERE id = $1",
    *,
    rows: list[list[str | None]] | None = None,
) -> int:
    """Record one allowed, extended-protocol statement with a small result, as the
    gateway would: decision, result, then the statement once it finished."""
    n = s.next_statement()
    s.decision(n, "allow", rule="role:reader", classes=["read"])
    result = rows if rows is not None else [["42", "a***@example.com"]]
    s.result(n, ["id", "email"], result)
    s.statement(
        n,
        text=sql,
        path="extended",
        params=["42"],
        started_at=datetime(2025, 11, 25, 15, 23, 1, 2000, tzinfo=UTC),
        duration_us=1234,
        rows=len(result),
    )
    return n


class Clock:
    """A settable clock for recorders (retention tests record sessions in the past)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


async def record_sessions(
    engine: Engine,
    key: SigningKey,
    ids: list[str],
    *,
    statements: int = 3,
    config: RecordingConfig = FAST,
    clock: Callable[[], datetime] | None = None,
) -> None:
    """Record complete, sealed sessions through a real Recorder."""
    rec = Recorder(engine, key, config, node="node-a", clock=clock)
    rec.start()
    for sid in ids:
        s = rec.open_session(meta(sid))
        for _ in range(statements):
            run_statement(s)
        s.close("client_quit", bytes_in=120, bytes_out=3400)
    await rec.aclose()
