"""The Recorder: hot-path API, batching, failure policy, crash recovery, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, select, text, update
from test_recording_support import (
    FAST,
    meta,
    pg_admin,
    run_statement,
)

from wardgate.core.errors import RecordingUnavailableError
from wardgate.recording import store
from wardgate.recording.config import RecordingConfig
from wardgate.recording.keys import KeyRing, SigningKey
from wardgate.recording.models import EVENTS, GLOBAL_LOG, RECORDING_TABLES, SESSIONS
from wardgate.recording.replay import render_transcript
from wardgate.recording.store import iter_events, load_session
from wardgate.recording.verify import Verifier
from wardgate.recording.writer import Recorder, describe_error
from wardgate.storage.base import Base
from wardgate.storage.db import make_engine

pytest_plugins = ["test_recording_support"]

HERE = Path(__file__).parent


def count(engine: Engine, table: object, **where: object) -> int:
    query = select(func.count()).select_from(table)  # type: ignore[arg-type]
    for column, value in where.items():
        query = query.where(getattr(table.c, column) == value)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def types_of(engine: Engine, session_id: str) -> list[str]:
    with engine.connect() as conn:
        return [e.type for e in iter_events(conn, session_id)]


async def test_a_recorded_session_is_stored_sealed_and_verifies(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    rec = Recorder(rec_engine, rec_key, FAST, node="node-a")
    rec.start()
    s = rec.open_session(meta("ses_1"))
    run_statement(s)
    n = s.next_statement()
    s.decision(n, "review", rule="rule:prod-writes", classes=["write"], approvers=["dba"])
    s.approval(n, "requested", request_id="apr_1")
    s.approval(n, "approved", request_id="apr_1", approver="bob", reason="ticket 42")
    s.statement(
        n,
        text="UPDATE users SET plan = 'pro' WHERE id = 42",
        path="simple",
        started_at=datetime.now(UTC),
        duration_us=900,
        rows=1,
    )
    s.close("client_quit", bytes_in=10, bytes_out=20)
    await rec.aclose()

    assert types_of(rec_engine, "ses_1") == [
        "session.start", "decision", "result", "statement",
        "decision", "approval", "approval", "statement", "session.end",
    ]  # fmt: skip
    with rec_engine.connect() as conn:
        row = load_session(conn, "ses_1")
        kinds = [
            k for (k,) in conn.execute(select(GLOBAL_LOG.c.kind).order_by(GLOBAL_LOG.c.position))
        ]
    assert row is not None
    assert (row.status, row.last_seq, row.end_how, row.node) == (
        "sealed",
        9,
        "client_quit",
        "node-a",
    )
    assert (row.principal, row.target, row.protocol) == ("alice", "prod-db", "postgresql")
    assert kinds == ["open", "sealed"]
    report = Verifier(rec_engine, rec_ring).verify_all()
    assert report.ok, report.problems
    assert report.sessions_checked == 1 and report.global_entries_checked == 2


async def test_hot_path_does_no_io_until_the_writer_runs(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    rec = Recorder(rec_engine, rec_key, FAST)
    s = rec.open_session(meta("ses_1"))
    run_statement(s)
    assert count(rec_engine, EVENTS) == 0 and count(rec_engine, SESSIONS) == 0
    assert rec.stats.pending_events == 4
    rec.start()
    await rec.flush()
    assert count(rec_engine, EVENTS) == 4
    assert rec.stats.pending_events == 0 and rec.stats.events_written == 4
    # The open session verifies up to its last flushed event (head signed per flush).
    assert Verifier(rec_engine, rec_ring).verify_session("ses_1").ok
    await rec.aclose()


async def test_events_are_batched_one_transaction_per_flush(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    cfg = RecordingConfig(flush_interval_ms=1000, flush_max_events=50)
    rec = Recorder(rec_engine, rec_key, cfg)
    rec.start()
    s = rec.open_session(meta("ses_1"))
    for _ in range(100):  # 301 events: the size trigger fires, not the 1 s interval
        run_statement(s)
    started = time.monotonic()
    await rec.flush()
    assert time.monotonic() - started < 5
    assert count(rec_engine, EVENTS) == 301
    assert rec.stats.flushes == 7  # ceil(302 ops / 50)
    s.close("client_eof")
    await rec.aclose()
    assert Verifier(rec_engine, rec_ring).verify_all().ok


async def test_a_large_batch_is_a_few_statements_and_stores_every_event_in_order(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    """The writer thread shares the GIL with the event loop, and every statement it runs
    hands the GIL over (the drivers let go of it around each round trip or sqlite3_step);
    getting it back from a busy loop can take a whole switch interval. So a batch must
    cost a handful of statements, not one per event: 903 events in one flush."""
    executed: list[int] = []

    def on_execute(conn: object, cursor: object, stmt: str, params: object, ctx: object,
                   many: bool) -> None:  # fmt: skip
        if stmt.lstrip().upper().startswith("INSERT INTO REC_EVENTS"):
            # sqlite3's executemany steps (and hands the GIL over) once per row;
            # psycopg's runs as one pipeline.
            per_row = many and rec_engine.dialect.name == "sqlite"
            executed.append(len(params) if per_row else 1)  # type: ignore[arg-type]

    cfg = RecordingConfig(flush_interval_ms=1000, flush_max_events=5000)
    rec = Recorder(rec_engine, rec_key, cfg)
    sessions = [rec.open_session(meta(f"ses_{i}")) for i in range(3)]
    for _ in range(100):
        for s in sessions:
            run_statement(s)
    event.listen(rec_engine, "before_cursor_execute", on_execute)
    try:
        rec.start()
        await rec.flush()
    finally:
        event.remove(rec_engine, "before_cursor_execute", on_execute)
    assert rec.stats.flushes == 1
    assert count(rec_engine, EVENTS) == 3 * 301
    # SQLite: one multi-row INSERT per 512 rows (128 before SQLite 3.32); PostgreSQL: one
    # pipelined executemany
    assert sum(executed) <= 3 * 301 // store._SQLITE_ROWS_PER_INSERT + 1, executed
    if rec_engine.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 32, 0):
        assert sum(executed) == 2, executed
    with rec_engine.connect() as conn:
        for i in range(3):
            seqs = [e.seq for e in iter_events(conn, f"ses_{i}")]
            assert seqs == list(range(1, 302))
    for s in sessions:
        s.close("client_eof")
    await rec.aclose()
    report = Verifier(rec_engine, rec_ring).verify_all()
    assert report.ok, report.problems


async def test_interleaved_sessions_each_keep_their_own_chain(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    rec = Recorder(rec_engine, rec_key, FAST)
    rec.start()

    async def client(i: int) -> None:
        s = rec.open_session(meta(f"ses_{i}", who=f"user{i}"))
        for _ in range(5):
            run_statement(s)
            await asyncio.sleep(0.001)
        s.close("client_quit")

    await asyncio.gather(*(client(i) for i in range(20)))
    await rec.aclose()
    report = Verifier(rec_engine, rec_ring).verify_all()
    assert report.ok, report.problems
    assert report.sessions_checked == 20 and report.global_entries_checked == 40


async def test_result_capture_keeps_a_capped_prefix_and_counts_everything(
    rec_engine: Engine, rec_key: SigningKey
) -> None:
    rec = Recorder(
        rec_engine,
        rec_key,
        RecordingConfig(flush_interval_ms=5, max_result_rows=3, max_result_bytes=40),
    )
    rec.start()
    s = rec.open_session(meta("ses_1"))
    by_rows = s.capture(1, ["id"])
    buffer = ["0"]
    for i in range(10):
        buffer[0] = str(i)  # the adapter reuses its row buffer
        by_rows.add(buffer)
    by_rows.finish()
    by_rows.finish()  # once only
    by_bytes = s.capture(2, ["v"])
    for _ in range(5):
        by_bytes.add(["é" * 10])  # 20 UTF-8 bytes each: two fit in 40
    by_bytes.finish()
    untruncated = s.capture(3, ["a", "b"])
    untruncated.add(["x", None])
    untruncated.finish()
    await rec.aclose()

    with rec_engine.connect() as conn:
        results = [e.payload for e in iter_events(conn, "ses_1") if e.type == "result"]
    assert results[0]["rows"] == [["0"], ["1"], ["2"]]
    assert (results[0]["truncated"], results[0]["total_rows"], results[0]["total_bytes"]) == (
        True,
        10,
        10,
    )
    assert results[1]["rows"] == [["é" * 10]] * 2
    assert (results[1]["truncated"], results[1]["total_rows"], results[1]["total_bytes"]) == (
        True,
        5,
        100,
    )
    assert results[2] == {
        "n": 3, "columns": ["a", "b"], "rows": [["x", None]],
        "truncated": False, "total_rows": 1, "total_bytes": 1,
    }  # fmt: skip


async def test_closed_session_takes_no_more_events_and_close_is_idempotent(
    rec_engine: Engine, rec_key: SigningKey
) -> None:
    rec = Recorder(rec_engine, rec_key, FAST)
    s = rec.open_session(meta("ses_1"))
    s.close("killed")
    s.close("client_quit")
    with pytest.raises(RuntimeError, match="ses_1 is closed"):
        s.decision(1, "allow")
    rec.open_session(meta("ses_2"))
    with pytest.raises(ValueError, match="already being recorded"):
        rec.open_session(meta("ses_2"))
    rec.start()
    await rec.aclose()
    with rec_engine.connect() as conn:
        row = load_session(conn, "ses_1")
    assert row is not None and row.end_how == "killed"


async def test_aclose_seals_sessions_still_open_as_gateway_shutdown(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    rec = Recorder(rec_engine, rec_key, FAST)
    rec.start()
    s = rec.open_session(meta("ses_1"))
    run_statement(s)
    await rec.aclose()
    with rec_engine.connect() as conn:
        row = load_session(conn, "ses_1")
        end = [e for e in iter_events(conn, "ses_1")][-1]
    assert row is not None and (row.status, row.end_how) == ("sealed", "gateway_shutdown")
    assert end.payload["how"] == "gateway_shutdown" and end.payload["statements"] == 1
    assert Verifier(rec_engine, rec_ring).verify_all().ok
    with pytest.raises(RecordingUnavailableError, match="shutting down"):
        rec.open_session(meta("ses_2"))


async def test_odd_identity_values_never_wedge_the_writer(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    odd = meta("ses_1", who="\x00nul\udc80" + "ü" * 250, target="t" * 300)
    rec = Recorder(rec_engine, rec_key, FAST, node="n" * 150)
    rec.start()
    s = rec.open_session(odd)
    run_statement(s)
    s.close("client_quit")
    await asyncio.wait_for(rec.flush(), 10)
    assert rec.healthy
    await rec.aclose()
    with rec_engine.connect() as conn:
        row = load_session(conn, "ses_1")
        start = next(iter_events(conn, "ses_1"))
    assert row is not None and len(row.principal) == 200 and len(row.target) == 200
    assert row.principal.startswith("\\x00nul\\udc80ü")
    assert start.payload["target"] == "t" * 300  # the event keeps the full value
    assert Verifier(rec_engine, rec_ring).verify_all().ok
    with pytest.raises(ValueError, match="printable ASCII"):
        Recorder(rec_engine, rec_key, FAST).open_session(meta("x" * 41))


async def test_a_session_row_is_never_flushed_without_its_start_event(
    rec_engine: Engine, rec_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder(rec_engine, rec_key, RecordingConfig(flush_interval_ms=5, flush_max_events=1))
    batches: list[list[str]] = []
    write = rec._write

    def spy(batch: list[object], reconcile: bool) -> None:
        batches.append([type(op).__name__ for op in batch])
        write(batch, reconcile)  # type: ignore[arg-type]

    monkeypatch.setattr(rec, "_write", spy)
    rec.start()
    for i in range(3):
        rec.open_session(meta(f"ses_{i}"))
    await rec.flush()
    await rec.aclose()
    assert batches[0] == ["OpenOp", "EventOp"]
    assert all(b[-1] != "OpenOp" for b in batches)


async def test_from_config_generates_the_key_in_the_state_dir(
    rec_engine: Engine, tmp_path: Path
) -> None:
    retired = SigningKey.generate()
    (tmp_path / "retired.pub").write_bytes(retired.public_pem())
    cfg = RecordingConfig(flush_interval_ms=5, trusted_public_keys=[Path("retired.pub")])
    rec = Recorder.from_config(rec_engine, cfg, tmp_path)
    assert (tmp_path / "recording-key.pem").stat().st_mode & 0o777 == 0o600
    assert retired.key_id in rec._keyring.key_ids
    await rec.recover()
    rec.start()
    await rec.aclose()


# ---------------------------------------------------------------- failure policy


async def test_queue_full_makes_recorder_unhealthy_and_fail_closed_refuses(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    rec = Recorder(rec_engine, rec_key, RecordingConfig(flush_interval_ms=5, queue_max_events=6))
    s = rec.open_session(meta("ses_1"))  # writer not started: nothing drains
    run_statement(s)
    rec.check_writable()
    run_statement(s)
    assert not rec.healthy
    with pytest.raises(RecordingUnavailableError, match="queue_max_events=6") as err:
        rec.check_writable()
    assert "fail_closed" in str(err.value) and err.value.sqlstate == "58030"
    # The admitted statement's remaining events are still accepted: no hole in the chain.
    run_statement(s)
    assert rec.stats.pending_events == 10 and rec.stats.events_dropped == 0
    rec.start()
    await rec.flush()
    assert rec.healthy
    rec.check_writable()
    s.close("client_quit")
    await rec.aclose()
    assert count(rec_engine, EVENTS) == 11
    assert Verifier(rec_engine, rec_ring).verify_all().ok


async def test_fail_open_drops_above_the_bound_and_records_the_gap(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    cfg = RecordingConfig(flush_interval_ms=5, queue_max_events=5, on_failure="fail_open")
    rec = Recorder(rec_engine, rec_key, cfg)
    s = rec.open_session(meta("ses_1"))
    run_statement(s)  # events 2..4
    run_statement(s)  # event 5 stored, the rest dropped
    assert not rec.healthy
    rec.check_writable()  # fail_open: serve anyway
    assert rec.stats.events_dropped == 2
    rec.start()
    await rec.flush()
    run_statement(s)
    s.close("client_quit")
    await rec.aclose()
    assert types_of(rec_engine, "ses_1") == [
        "session.start", "decision", "result", "statement", "decision",
        "gap", "decision", "result", "statement", "session.end",
    ]  # fmt: skip
    with rec_engine.connect() as conn:
        events = list(iter_events(conn, "ses_1"))
    assert events[5].payload["dropped"] == 2
    assert events[-1].payload["events_dropped"] == 2
    assert Verifier(rec_engine, rec_ring).verify_all().ok
    assert "2 events were not recorded here" in render_transcript(rec_engine, "ses_1")


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll the recorder's observable state (it offers no event for "became unhealthy")."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 10 s")


async def test_locked_sqlite_store_stalls_fail_closed_then_recovers_losing_nothing(
    tmp_path: Path, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/state.db")  # the gateway's engine (30 s busy wait)
    Base.metadata.create_all(engine, tables=RECORDING_TABLES)
    cfg = RecordingConfig(flush_interval_ms=5, write_timeout_ms=200)
    rec = Recorder(engine, rec_key, cfg)
    rec.start()
    s = rec.open_session(meta("ses_1"))
    run_statement(s)
    await rec.flush()

    blocker = make_engine(f"sqlite:///{tmp_path}/state.db").raw_connection()
    blocker.execute("BEGIN EXCLUSIVE")  # e.g. a backup tool or a stuck CLI holding the lock
    try:
        run_statement(s)
        await wait_until(lambda: not rec.healthy)
        with pytest.raises(RecordingUnavailableError, match="stalled") as err:
            rec.check_writable()
        assert "write_timeout_ms=200" in str(err.value)
        run_statement(s)
    finally:
        blocker.rollback()
        blocker.close()
    await rec.flush()
    assert rec.healthy
    s.close("client_quit")
    await rec.aclose()
    assert count(engine, EVENTS) == 11
    assert Verifier(engine, rec_ring).verify_all().ok


async def sh(*argv: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await proc.wait()


async def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    await sh("mkdir", str(path))
    return await sh("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)) == 0


async def test_full_disk_fails_closed_then_recovers_losing_nothing(
    tmp_path: Path, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    disk = tmp_path / "disk"
    if not await _mount_tmpfs(disk, "512k"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        engine = make_engine(f"sqlite:///{disk}/state.db")
        Base.metadata.create_all(engine, tables=RECORDING_TABLES)
        rec = Recorder(engine, rec_key, RecordingConfig(flush_interval_ms=5))
        rec.start()
        s = rec.open_session(meta("ses_1"))
        big = [["x" * 4000] for _ in range(20)]
        for _ in range(40):  # ~3 MiB of results into a 512 KiB disk
            run_statement(s, rows=big)
            await asyncio.sleep(0.02)
            if rec.stats.last_error:
                break
        await wait_until(lambda: rec.stats.last_error is not None)
        with pytest.raises(RecordingUnavailableError, match="full") as err:
            rec.check_writable()
        assert "none are lost" in str(err.value)
        assert "INSERT" not in str(err.value)  # no SQL (or recorded data) in the message
        recorded = s.last_seq
        assert await sh("mount", "-o", "remount,size=64m", str(disk)) == 0
        await rec.flush()
        assert rec.healthy
        s.close("client_quit")
        await rec.aclose()
        assert count(engine, EVENTS) == recorded + 1
        assert Verifier(engine, rec_ring).verify_all().ok
        engine.dispose()
    finally:
        await sh("umount", "-l", str(disk))


async def test_postgres_store_down_fails_closed_then_recovers_losing_nothing(
    rec_pg_url: str, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    engine = make_engine(rec_pg_url)
    Base.metadata.drop_all(engine, tables=RECORDING_TABLES)
    Base.metadata.create_all(engine, tables=RECORDING_TABLES)
    dbname = rec_pg_url.rsplit("/", 1)[1]
    admin = pg_admin()
    rec = Recorder(engine, rec_key, RecordingConfig(flush_interval_ms=5))
    rec.start()
    s = rec.open_session(meta("ses_1"))
    run_statement(s)
    await rec.flush()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                {"d": dbname},
            )
        run_statement(s)
        await wait_until(lambda: rec.stats.last_error is not None)
        with pytest.raises(
            RecordingUnavailableError, match="writing to the recording store failed"
        ):
            rec.check_writable()
        run_statement(s)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    await asyncio.wait_for(rec.flush(), 30)
    assert rec.healthy and rec.stats.failed_flushes >= 1
    s.close("client_quit")
    await rec.aclose()
    assert count(engine, EVENTS) == 11
    assert Verifier(engine, rec_ring).verify_all().ok
    engine.dispose()


async def test_aclose_with_the_store_down_says_what_was_not_written(
    tmp_path: Path, rec_key: SigningKey
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/state.db")  # no tables: every write fails
    rec = Recorder(engine, rec_key, FAST)
    rec.start()
    rec.open_session(meta("ses_1"))
    with pytest.raises(RecordingUnavailableError, match=r"2 events unwritten after 0.3 s"):
        await rec.aclose(grace_s=0.3)


def test_store_errors_are_described_without_sql_or_parameters() -> None:
    from sqlalchemy.exc import OperationalError

    exc = OperationalError(
        "INSERT INTO rec_events VALUES (?)",
        ("secret payload",),
        Exception("database or disk is full"),
    )
    assert describe_error(exc) == "Exception: database or disk is full"


# ---------------------------------------------------------------- crash recovery

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    sys.path.insert(0, {here!r})
    from test_recording_support import meta, run_statement
    from wardgate.recording.config import RecordingConfig
    from wardgate.recording.keys import load_or_create_signing_key
    from wardgate.recording.writer import Recorder
    from wardgate.storage.db import make_engine

    async def main():
        engine = make_engine(sys.argv[1])
        key = load_or_create_signing_key(Path(sys.argv[2]))
        rec = Recorder(engine, key, RecordingConfig(flush_interval_ms=5), node="node-a")
        rec.start()
        s = rec.open_session(meta("ses_crash"))
        for _ in range(3):
            run_statement(s)
        n = s.next_statement()
        s.decision(n, "allow", rule="role:dba", classes=["destructive"])
        await rec.flush()
        print(s.last_seq, flush=True)
        run_statement(s)  # recorded, never flushed: the loop is blocked until SIGKILL
        time.sleep(120)

    asyncio.run(main())
    """
)


@pytest.fixture
def store_url(rec_engine: Engine) -> str:
    return rec_engine.url.render_as_string(hide_password=False)


async def test_sigkill_leaves_a_recording_that_verifies_and_is_marked_interrupted(
    rec_engine: Engine, store_url: str, tmp_path: Path
) -> None:
    keyfile = tmp_path / "recording-key.pem"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD.format(here=str(HERE)), store_url, str(keyfile),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    flushed = int(await asyncio.wait_for(child.stdout.readline(), 60))
    child.send_signal(signal.SIGKILL)
    assert await child.wait() == -signal.SIGKILL
    assert flushed == 11

    from wardgate.recording.keys import load_signing_key

    key = load_signing_key(keyfile)
    ring = KeyRing([key.public_key])
    # Before recovery the open session verifies up to the last flushed event.
    before = Verifier(rec_engine, ring).verify_session("ses_crash")
    assert before.ok and before.status == "open" and before.last_seq == flushed

    rec = Recorder(rec_engine, key, FAST, node="node-b")
    assert await rec.recover() == []  # another node's session is not ours to interrupt
    rec = Recorder(rec_engine, key, FAST, node="node-a")
    recovered = await rec.recover()
    assert [(r.session_id, r.last_seq, r.sealed) for r in recovered] == [
        ("ses_crash", flushed, True)
    ]
    assert await rec.recover() == []  # idempotent

    report = Verifier(rec_engine, ring).verify_all()
    assert report.ok, report.problems
    with rec_engine.connect() as conn:
        row = load_session(conn, "ses_crash")
        events = list(iter_events(conn, "ses_crash"))
        last_kind = conn.execute(
            select(GLOBAL_LOG.c.kind).order_by(GLOBAL_LOG.c.position.desc())
        ).scalar()
    assert row is not None and (row.status, row.end_how, row.last_seq) == (
        "interrupted",
        "interrupted",
        flushed + 1,
    )
    assert last_kind == "interrupted"
    assert events[-1].payload == {
        "how": "interrupted",
        "bytes_in": None,
        "bytes_out": None,
        "statements": 3,
        "events_dropped": 0,
    }
    assert row.ended_at == events[-2].ts  # the last sign of life before the crash
    transcript = render_transcript(rec_engine, "ses_crash")
    assert "#4 (no statement record: it had not finished)" in transcript
    assert "classes: destructive" in transcript
    assert "session ended: interrupted" in transcript


async def test_recovery_leaves_a_tampered_open_session_unsealed(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    rec = Recorder(rec_engine, rec_key, FAST, node="node-a")
    rec.start()
    s = rec.open_session(meta("ses_1"))
    run_statement(s)
    await rec.flush()
    rec._task.cancel()  # type: ignore[union-attr]  # "crash": nothing more is written
    with rec_engine.begin() as conn:
        conn.execute(
            update(EVENTS)
            .where(EVENTS.c.session_id == "ses_1", EVENTS.c.seq == 4)
            .values(payload=func.replace(EVENTS.c.payload, "SELECT", "DELETE"))
        )
    recovered = await Recorder(rec_engine, rec_key, FAST, node="node-a").recover()
    assert len(recovered) == 1 and not recovered[0].sealed
    assert "event seq 4 hash mismatch" in (recovered[0].problem or "")
    with rec_engine.connect() as conn:
        row = load_session(conn, "ses_1")
    assert row is not None and row.status == "open"
    assert not Verifier(rec_engine, rec_ring).verify_all().ok


async def test_recover_all_nodes_interrupts_other_nodes_sessions(
    rec_engine: Engine, rec_key: SigningKey, rec_ring: KeyRing
) -> None:
    rec = Recorder(rec_engine, rec_key, FAST, node="gone-node")
    rec.start()
    rec.open_session(meta("ses_1"))
    await rec.flush()
    rec._task.cancel()  # type: ignore[union-attr]
    other = Recorder(rec_engine, rec_key, FAST, node="node-a")
    assert await other.recover() == []
    assert [r.session_id for r in await other.recover(all_nodes=True)] == ["ses_1"]
    assert Verifier(rec_engine, rec_ring).verify_all().ok


_UTC_TIMES = [
    datetime(2026, 11, 25, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 11, 26, 1, 0, 0, 5, tzinfo=UTC),
    datetime(987, 6, 5, 4, 3, 2, 1, tzinfo=UTC),
    datetime(2026, 1, 1, tzinfo=UTC),
]


@pytest.mark.parametrize("in_utc", [False, True], ids=["mixed-zones", "all-utc"])
def test_the_sqlite_fast_path_stores_timestamps_as_sqlalchemy_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_utc: bool
) -> None:
    """Events inserted through the driver (``_insert_events``) hold the same DATETIME text
    as SQLAlchemy's own insert with ``UTCDateTime`` stores, for aware, other-zone and naive
    times, and read back as the same instants. All in ``datetime.UTC`` (what the recorder
    makes), the compiled parameter builder takes the chunk; any other zone in it, the
    Python loop does."""
    from datetime import timedelta, timezone

    from sqlalchemy import insert

    from wardgate.recording.store import EventOp, _insert_events

    built: list[bool] = []
    native = store._native_params
    if native is not None:

        def spy(rows: list[EventOp]) -> tuple[object, ...] | None:
            flat = native(rows)
            built.append(flat is not None)
            return flat

        monkeypatch.setattr(store, "_native_params", spy)
    engine = make_engine(f"sqlite:///{tmp_path / 'ts.db'}")
    Base.metadata.create_all(engine, tables=RECORDING_TABLES)
    times = (
        list(_UTC_TIMES)
        if in_utc
        else [
            datetime(2026, 11, 25, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(2026, 11, 26, 1, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),
            datetime(1999, 1, 2, 3, 4, 5),  # naive: UTC
            datetime(987, 6, 5, 4, 3, 2, 1, tzinfo=UTC),
        ]
    )
    with engine.begin() as conn:
        for sid in ("fast", "slow"):
            conn.execute(
                insert(SESSIONS).values(
                    id=sid,
                    node="n",
                    status="open",
                    started_at=times[0],
                    principal="p",
                    target="t",
                    protocol="postgres",
                    last_seq=0,
                    head_hash="0" * 64,
                    signature="s",
                    key_id="k",
                )
            )
        _insert_events(
            conn,
            [
                EventOp("fast", i + 1, ts, "gap", "{}", "0" * 64, "1" * 64, 2)
                for i, ts in enumerate(times)
            ],
        )
        conn.execute(
            insert(EVENTS),
            [
                {
                    "session_id": "slow",
                    "seq": i + 1,
                    "ts": ts,
                    "type": "gap",
                    "payload": "{}",
                    "prev_hash": "0" * 64,
                    "hash": "1" * 64,
                }
                for i, ts in enumerate(times)
            ],
        )
        raw = {
            sid: [
                t
                for (t,) in conn.execute(
                    text("SELECT ts FROM rec_events WHERE session_id = :s ORDER BY seq"), {"s": sid}
                )
            ]
            for sid in ("fast", "slow")
        }
        back = [
            t
            for (t,) in conn.execute(
                select(EVENTS.c.ts).where(EVENTS.c.session_id == "fast").order_by(EVENTS.c.seq)
            )
        ]
    assert raw["fast"] == raw["slow"]
    assert raw["fast"][1] == (
        "2026-11-26 01:00:00.000005" if in_utc else "2026-11-25 23:00:00.000005"
    )
    assert "0987-06-05 04:03:02.000001" in raw["fast"]
    assert back == [t if t.tzinfo else t.replace(tzinfo=UTC) for t in times]
    if native is not None:
        assert built == [in_utc]  # which builder made the parameters


def test_a_capture_hands_over_plain_rows_that_later_adds_cannot_change(
    rec_engine: Engine, rec_key: SigningKey
) -> None:
    """The capture's payload takes its rows uncopied, so what goes in must already be
    plain ``str`` (a subclass could serialise differently, or decline the compiled
    chain) and what the caller does afterwards must not reach it."""
    from wardgate.recording.events import result_payload

    class Tagged(str):
        pass

    rec = Recorder(rec_engine, rec_key, RecordingConfig(max_result_rows=5))
    s = rec.open_session(meta("ses_own"))
    cap = s.capture(1, [Tagged("id"), "v"])
    buffer: list[str | None] = [Tagged("1"), None]
    cap.add(buffer)
    buffer[0] = "changed"
    cap.add_sized(["2", "é"], 3)
    payload = cap.payload()
    assert payload == result_payload(
        1,
        columns=["id", "v"],
        rows=[["1", None], ["2", "é"]],
        truncated=False,
        total_rows=2,
        total_bytes=4,
    )
    cells = [c for row in payload["rows"] for c in row] + payload["columns"]
    assert all(c is None or type(c) is str for c in cells)
    cap.add_sized(["3", "x"], 2)  # too late: the payload already left
    assert payload["rows"] == [["1", None], ["2", "é"]]


async def test_sessions_sealed_in_one_batch_store_each_its_own_seal(
    rec_engine: Engine, rec_key: SigningKey
) -> None:
    """Seals go to the store as one executemany per batch: every session gets its own
    status, end, position and signature, stored as SQLAlchemy's DATETIME text, and the
    whole store verifies."""
    from datetime import timedelta

    batches: list[int] = []
    rec = Recorder(rec_engine, rec_key, RecordingConfig(flush_interval_ms=5))
    write = rec._write

    def counting_write(batch: list[object], reconcile: bool) -> None:
        batches.append(len(batch))
        write(batch, reconcile)  # type: ignore[arg-type]

    rec._write = counting_write  # type: ignore[method-assign]
    rec.start()
    hows = ["killed", "client_quit", "client_eof"]
    for i, how in enumerate(hows):
        s = rec.open_session(meta(f"ses_seal{i}"))
        s.close(how)  # type: ignore[arg-type]
    await rec.aclose()
    assert batches == [3 * 4]  # open, start, end and seal of each, in one batch
    with rec_engine.connect() as conn:
        rows = conn.execute(
            select(
                SESSIONS.c.id,
                SESSIONS.c.status,
                SESSIONS.c.end_how,
                SESSIONS.c.ended_at,
                SESSIONS.c.seal_position,
                SESSIONS.c.signature,
            ).order_by(SESSIONS.c.id)
        ).all()
        ends = {
            sid: ts
            for sid, ts in conn.execute(
                select(EVENTS.c.session_id, EVENTS.c.ts).where(EVENTS.c.type == "session.end")
            )
        }
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (f"ses_seal{i}", "sealed", how) for i, how in enumerate(hows)
    ]
    for r in rows:  # each its own end time, read back as the instant it was (UTC)
        assert r[3] is not None and r[3].tzinfo is not None
        assert ends[r[0]] <= r[3] < ends[r[0]] + timedelta(seconds=5)
    assert len({r[4] for r in rows}) == 3 and len({r[5] for r in rows}) == 3
    report = Verifier(rec_engine, KeyRing([rec_key.public_key])).verify_all()
    assert report.ok, report
