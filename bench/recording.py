"""Recording cost: hot-path µs per event, sustained events/s into the store, bytes per event.

usage: python bench_recording.py [sqlite|postgresql] [statements]
A "statement" is what the gateway records per allowed SELECT: decision + result (1 row,
2 columns) + statement = 3 events.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import create_engine, func, select, text

from wardgate.core.model import Principal
from wardgate.recording.config import RecordingConfig
from wardgate.recording.events import SessionMeta
from wardgate.recording.keys import KeyRing, SigningKey
from wardgate.recording.models import EVENTS, RECORDING_TABLES
from wardgate.recording.verify import Verifier
from wardgate.recording.writer import Recorder
from wardgate.storage.base import Base
from wardgate.storage.db import make_engine

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SQL = "SELECT id, email, plan FROM users WHERE id = $1"
T0 = datetime.now(UTC)


def one_statement(s, n: int) -> None:  # type: ignore[no-untyped-def]
    s.decision(n, "allow", rule="role:reader", classes=["read"])
    s.result(n, ["id", "email", "plan"], [[str(n), "a***@example.com", "pro"]])
    s.statement(
        n, text=SQL, path="extended", params=[str(n)], started_at=T0, duration_us=180, rows=1
    )


def meta(i: int) -> SessionMeta:
    p = Principal(f"user{i}", frozenset({"eng"}), "token", token_id=f"tok_{i:08d}")
    return SessionMeta(f"ses_{uuid.uuid4().hex[:20]}", p, "10.0.0.5:51234", "prod-db", "postgresql")


async def main(kind: str, statements: int) -> None:
    admin = None
    if kind == "sqlite":
        tmp = tempfile.mkdtemp()
        path = f"{tmp}/state.db"
        engine = make_engine(f"sqlite:///{path}")
    else:
        name = f"wardgate_rec_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        engine = make_engine(PG.rsplit("/", 1)[0] + "/" + name)
    Base.metadata.create_all(engine, tables=RECORDING_TABLES)
    key = SigningKey.generate()

    # 1. Hot path alone: what the event loop pays per event (writer not running).
    rec = Recorder(engine, key, RecordingConfig(queue_max_events=10**9, queue_max_bytes=2**40))
    s = rec.open_session(meta(0))
    n_hot = 20_000
    t = time.perf_counter()
    for n in range(1, n_hot + 1):
        one_statement(s, n)
    hot = time.perf_counter() - t
    print(f"hot path: {hot / (3 * n_hot) * 1e6:.1f} µs/event, {hot / n_hot * 1e6:.1f} µs/statement "
          f"(3 events) on the event loop")
    s.close("client_quit")
    rec.start()
    await rec.aclose()
    with engine.begin() as c:
        if kind == "postgresql":  # no dead tuples left to inflate the size measured below
            c.exec_driver_sql("TRUNCATE rec_events, rec_sessions, rec_global_log, rec_checkpoints")
        else:
            for table in reversed(RECORDING_TABLES):
                c.execute(table.delete())
    if kind == "sqlite":
        with engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            c.exec_driver_sql("VACUUM")
        base_size = os.path.getsize(path)

    # 2. Sustained: 50 sessions in parallel, default flush settings, wall clock until stored.
    cfg = RecordingConfig(queue_max_events=10**9, queue_max_bytes=2**40)
    rec = Recorder(engine, key, cfg)
    rec.start()
    sessions = [rec.open_session(meta(i)) for i in range(50)]
    t = time.perf_counter()
    cpu = time.process_time()
    per = statements // len(sessions)
    for n in range(1, per + 1):
        for s in sessions:
            one_statement(s, n)
        if n % 20 == 0:
            await asyncio.sleep(0)  # let the writer interleave, as live traffic would
    for s in sessions:
        s.close("client_quit")
    await rec.flush()
    wall = time.perf_counter() - t
    cpu = time.process_time() - cpu
    stored = rec.stats.events_written
    await rec.aclose()
    print(f"sustained ({kind}): {stored} events in {wall:.2f} s = {stored / wall:,.0f} events/s "
          f"= {stored / wall / 3:,.0f} statements/s; CPU {cpu / stored * 1e6:.1f} µs/event; "
          f"{rec.stats.flushes} flushes")

    # 3. Bytes per event and per statement.
    with engine.connect() as c:
        count = c.execute(select(func.count()).select_from(EVENTS)).scalar_one()
        payload = c.execute(select(func.sum(func.length(EVENTS.c.payload))).where(EVENTS.c.type == "statement")).scalar_one()
        n_stmt = c.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.type == "statement")).scalar_one()
        if kind == "postgresql":
            size = c.exec_driver_sql("select pg_total_relation_size('rec_events')").scalar_one()
            heap = c.exec_driver_sql("select pg_relation_size('rec_events')").scalar_one()
            print(f"  (postgresql heap only: {heap / count:.0f} bytes/event)")
        else:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    if kind == "sqlite":
        size = os.path.getsize(path) - base_size
    print(f"storage ({kind}): {size / count:.0f} bytes/event on disk incl. indexes; "
          f"{size / count * 3:.0f} bytes per recorded statement (decision+result+statement); "
          f"statement event payload {payload / n_stmt:.0f} bytes of JSON")

    # 4. Verification speed.
    t = time.perf_counter()
    report = Verifier(engine, KeyRing([key.public_key])).verify_all()
    v = time.perf_counter() - t
    assert report.ok, report.problems[:3]
    print(f"verify_all ({kind}): {count} events in {v:.2f} s = {count / v:,.0f} events/s")
    engine.dispose()
    if admin is not None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "sqlite", int(sys.argv[2]) if len(sys.argv) > 2 else 50_000))
