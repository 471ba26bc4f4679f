"""Retention purges old recordings and checkpoints the global log; what remains verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, func, select, update
from test_recording_support import FAST, Clock, meta, record_sessions, run_statement

from wardgate.recording.keys import KeyRing, SigningKey
from wardgate.recording.models import CHECKPOINTS, EVENTS, GLOBAL_LOG, SESSIONS
from wardgate.recording.retention import PurgeRefusedError, purge
from wardgate.recording.verify import Verifier
from wardgate.recording.writer import Recorder

pytest_plugins = ["test_recording_support"]

NOW = datetime.now(UTC)


def ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(sid for (sid,) in conn.execute(select(SESSIONS.c.id)))


async def test_purge_removes_old_sessions_and_what_remains_verifies(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    await record_sessions(
        rec_engine, rec_key, ["old1", "old2"], clock=Clock(NOW - timedelta(days=100))
    )
    await record_sessions(rec_engine, rec_key, ["new1"], clock=Clock(NOW - timedelta(days=1)))

    report = purge(rec_engine, rec_key, timedelta(days=90), now=NOW)
    assert (report.sessions_purged, report.events_purged, report.global_entries_purged) == (
        2,
        22,
        4,
    )
    assert report.checkpoint_position == 4
    assert ids(rec_engine) == ["new1"]
    audit = Verifier(rec_engine, rec_ring).verify_all()
    assert audit.ok, audit.problems
    assert audit.checkpoint_position == 4 and audit.global_entries_checked == 2

    # The log resumes after the checkpoint; new sessions chain on and verify.
    await record_sessions(rec_engine, rec_key, ["new2"])
    assert Verifier(rec_engine, rec_ring).verify_all().ok
    # A second purge with nothing old enough changes nothing.
    assert purge(rec_engine, rec_key, timedelta(days=90), now=NOW).checkpoint_position is None


async def test_purging_everything_then_recording_again_verifies(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    await record_sessions(rec_engine, rec_key, ["a"], clock=Clock(NOW - timedelta(days=10)))
    assert purge(rec_engine, rec_key, timedelta(days=1), now=NOW).sessions_purged == 1
    assert Verifier(rec_engine, rec_ring).verify_all().ok
    await record_sessions(rec_engine, rec_key, ["b"])
    with rec_engine.connect() as conn:
        first = conn.execute(select(func.min(GLOBAL_LOG.c.position))).scalar()
    assert first == 3
    assert Verifier(rec_engine, rec_ring).verify_all().ok


async def test_long_lived_open_session_survives_a_purge_of_its_open_entry(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    clock = Clock(NOW - timedelta(days=100))
    rec = Recorder(rec_engine, rec_key, FAST, clock=clock)
    rec.start()
    pooled = rec.open_session(meta("pooled"))  # an application pool's connection: days old
    run_statement(pooled)
    await rec.flush()
    await record_sessions(rec_engine, rec_key, ["old"], clock=Clock(NOW - timedelta(days=99)))
    report = purge(rec_engine, rec_key, timedelta(days=90), now=NOW)
    assert report.sessions_purged == 1 and report.checkpoint_position == 3
    assert ids(rec_engine) == ["pooled"]
    assert Verifier(rec_engine, rec_ring).verify_all().ok

    clock.now = NOW
    run_statement(pooled)
    pooled.close("client_quit")
    await rec.aclose()
    audit = Verifier(rec_engine, rec_ring).verify_all()
    assert audit.ok, audit.problems


async def test_purge_refuses_when_the_store_does_not_verify(
    rec_engine: Engine, rec_key: SigningKey
) -> None:
    await record_sessions(rec_engine, rec_key, ["old"], clock=Clock(NOW - timedelta(days=100)))
    with rec_engine.begin() as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.session_id == "old", EVENTS.c.seq == 3))
    with pytest.raises(PurgeRefusedError, match="event seq 3 missing"):
        purge(rec_engine, rec_key, timedelta(days=90), now=NOW)
    assert ids(rec_engine) == ["old"]


@pytest.fixture
async def purged(rec_engine: Engine, rec_key: SigningKey) -> Engine:
    await record_sessions(rec_engine, rec_key, ["old"], clock=Clock(NOW - timedelta(days=100)))
    await record_sessions(rec_engine, rec_key, ["new"], clock=Clock(NOW))
    purge(rec_engine, rec_key, timedelta(days=90), now=NOW)
    return rec_engine


def test_forged_checkpoint_is_detected(purged: Engine, rec_ring: KeyRing) -> None:
    with purged.begin() as conn:
        conn.execute(update(CHECKPOINTS).values(position=3))
    report = Verifier(purged, rec_ring).verify_all()
    assert report.problems[0] == (
        "retention checkpoint at global log position 3: signature does not verify "
        "(checkpoint modified or forged)"
    )


def test_deleted_checkpoint_is_detected(purged: Engine, rec_ring: KeyRing) -> None:
    with purged.begin() as conn:
        conn.execute(delete(CHECKPOINTS))
    report = Verifier(purged, rec_ring).verify_all()
    assert report.problems[0] == (
        "global log position 1..2 missing (entry deleted): the log jumps from position 0 to 3"
    )


def test_purging_more_without_a_checkpoint_is_detected(purged: Engine, rec_ring: KeyRing) -> None:
    with purged.begin() as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.session_id == "new"))
        conn.execute(delete(SESSIONS).where(SESSIONS.c.id == "new"))
        conn.execute(delete(GLOBAL_LOG).where(GLOBAL_LOG.c.position == 3))
    report = Verifier(purged, rec_ring).verify_all()
    assert report.problems[0] == (
        "global log position 3 missing (entry deleted): the log jumps from position 2 to 4"
    )
