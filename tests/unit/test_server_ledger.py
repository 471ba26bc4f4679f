"""The session ledger: one row per connection, written off the event loop (real SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from wardgate.core.model import Principal
from wardgate.server.ledger import SessionLedger
from wardgate.server.live import LiveSession
from wardgate.storage.base import Base
from wardgate.storage.db import make_engine, session_factory
from wardgate.storage.models import SessionRecord


def test_started_and_ended_sessions_leave_complete_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    Base.metadata.create_all(engine, tables=[SessionRecord.__table__])  # type: ignore[list-item]
    ledger = SessionLedger(session_factory(engine), "node-a")
    alice = Principal("alice", frozenset({"dba", "eng"}), "token", token_id="tok_1")
    ok = LiveSession(id="ses_ok", protocol="postgres", client_addr="10.0.0.1:5000")
    ok.principal, ok.target = alice, "prod"
    ledger.started(ok)
    ok.bytes_from_client, ok.bytes_to_client, ok.statements = 120, 4096, 3
    ledger.ended(ok, "client_terminate", None, inserted=True)
    # A login that failed before the session was established: one row, written at the end.
    failed = LiveSession(id="ses_failed", protocol="mysql", client_addr="10.0.0.2:6000")
    ledger.ended(failed, "auth_failed", "x" * 5000, inserted=False)
    ledger.close()

    with session_factory(engine)() as db:
        rows = {r.id: r for r in db.scalars(select(SessionRecord))}
    a = rows["ses_ok"]
    assert (a.node, a.protocol, a.principal, a.groups, a.auth_method, a.token_id) == (
        "node-a",
        "postgres",
        "alice",
        ["dba", "eng"],
        "token",
        "tok_1",
    )
    assert (a.target, a.client_addr, a.bytes_from_client, a.bytes_to_client, a.statements) == (
        "prod",
        "10.0.0.1:5000",
        120,
        4096,
        3,
    )
    assert a.end_reason == "client_terminate" and a.end_detail is None
    assert a.ended_at is not None and a.started_at is not None
    assert a.started_at.replace(tzinfo=UTC) <= a.ended_at.replace(tzinfo=UTC) <= datetime.now(UTC)
    f = rows["ses_failed"]
    assert (f.protocol, f.principal, f.groups, f.target, f.statements) == (
        "mysql",
        None,
        [],
        None,
        0,
    )
    assert f.end_reason == "auth_failed" and f.end_detail == "x" * 2000
    assert f.ended_at is not None
