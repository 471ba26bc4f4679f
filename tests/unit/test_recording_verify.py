"""Tampering with stored recordings, directly in the store, is detected and named precisely.

Every test records three sealed sessions (``a``, ``b``, ``c``; 11 events each: start,
three statements of decision/result/statement, end) through a real Recorder, then edits
the tables the way someone with database access would.
Global log: 1 open a, 2 sealed a, 3 open b, 4 sealed b, 5 open c, 6 sealed c.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, insert, select, update
from test_recording_support import record_sessions

from wardgate.recording.chain import chain_hash
from wardgate.recording.events import canonical_json, envelope_bytes, format_ts
from wardgate.recording.keys import KeyRing, SigningKey
from wardgate.recording.models import EVENTS, GLOBAL_LOG, SESSIONS
from wardgate.recording.verify import GlobalHead, Verifier

pytest_plugins = ["test_recording_support"]


@pytest.fixture
async def store(rec_engine: Engine, rec_key: SigningKey) -> Engine:
    await record_sessions(rec_engine, rec_key, ["a", "b", "c"])
    return rec_engine


def run(engine: Engine, *statements: Any) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def event(session: str, seq: int) -> Any:
    return (EVENTS.c.session_id == session) & (EVENTS.c.seq == seq)


def first_problem(engine: Engine, ring: KeyRing) -> str:
    report = Verifier(engine, ring).verify_all()
    assert not report.ok
    assert report.first_problem is not None
    return report.first_problem


def test_intact_store_verifies(store: Engine, rec_ring: KeyRing) -> None:
    report = Verifier(store, rec_ring).verify_all()
    assert report.ok, report.problems
    assert (report.sessions_checked, report.global_entries_checked) == (3, 6)
    assert all(r.ok and r.events_checked == 11 for r in report.sessions)
    assert report.head is not None and report.head.position == 6


@pytest.mark.parametrize(
    "values",
    [
        {"payload": func.replace(EVENTS.c.payload, "role:reader", "role:admin")},
        {"type": "approval"},
        {"ts": EVENTS.c.ts},  # replaced below: one microsecond later
    ],
    ids=["payload", "type", "ts"],
)
def test_modified_event_content_is_named(
    store: Engine, rec_ring: KeyRing, values: dict[str, Any]
) -> None:
    if "ts" in values:
        with store.connect() as conn:
            ts = conn.execute(select(EVENTS.c.ts).where(event("b", 5))).scalar_one()
        values = {"ts": ts + timedelta(microseconds=1)}
    run(store, update(EVENTS).where(event("b", 5)).values(**values))
    expected = "session b: event seq 5 hash mismatch (content modified: payload, type or ts)"
    assert first_problem(store, rec_ring) == expected
    report = Verifier(store, rec_ring).verify_session("b")
    assert report.problems == (expected,) and report.last_seq == 4
    assert Verifier(store, rec_ring).verify_session("a").ok


def test_modified_last_event_is_named(store: Engine, rec_ring: KeyRing) -> None:
    run(
        store,
        update(EVENTS)
        .where(event("c", 11))
        .values(payload=func.replace(EVENTS.c.payload, "client_quit", "client_eof")),
    )
    assert first_problem(store, rec_ring) == (
        "session c: event seq 11 hash mismatch (content modified: payload, type or ts)"
    )


@pytest.mark.parametrize("seq", [5, 11])
def test_modified_stored_hash_is_named(store: Engine, rec_ring: KeyRing, seq: int) -> None:
    run(store, update(EVENTS).where(event("b", seq)).values(hash="ab" * 32))
    assert first_problem(store, rec_ring) == (
        f"session b: event seq {seq} hash mismatch (stored hash modified)"
    )


def test_rewritten_event_with_recomputed_hash_breaks_the_next_link(
    store: Engine, rec_ring: KeyRing
) -> None:
    # A careful forger recomputes the hash of the event they edit: the next event's
    # prev_hash no longer matches.
    with store.connect() as conn:
        row = conn.execute(select(EVENTS).where(event("b", 5))).one()
    payload = row.payload.replace("role:reader", "role:admin")
    digest = chain_hash(row.prev_hash, envelope_bytes("b", 5, format_ts(row.ts), row.type, payload))
    run(store, update(EVENTS).where(event("b", 5)).values(payload=payload, hash=digest))
    assert first_problem(store, rec_ring) == (
        "session b: event seq 6: prev_hash does not match the hash of seq 5 (prev_hash "
        "modified, or an event before it replaced)"
    )


def test_modified_prev_hash_is_named(store: Engine, rec_ring: KeyRing) -> None:
    run(store, update(EVENTS).where(event("b", 5)).values(prev_hash="cd" * 32))
    assert first_problem(store, rec_ring).startswith(
        "session b: event seq 5: prev_hash does not match the hash of seq 4"
    )


def test_reordered_events_are_named(store: Engine, rec_ring: KeyRing) -> None:
    run(
        store,
        update(EVENTS).where(event("b", 5)).values(seq=-5),
        update(EVENTS).where(event("b", 6)).values(seq=5),
        update(EVENTS).where(event("b", -5)).values(seq=6),
    )
    assert first_problem(store, rec_ring) == (
        "session b: event seq 5 is out of order: it chains after seq 6, not after seq 4 "
        "(events reordered)"
    )


def test_deleted_event_is_named(store: Engine, rec_ring: KeyRing) -> None:
    run(store, delete(EVENTS).where(event("b", 5)))
    assert first_problem(store, rec_ring) == (
        "session b: event seq 5 missing (deleted): stored events jump from seq 4 to seq 6"
    )


def test_deleted_first_events_are_named(store: Engine, rec_ring: KeyRing) -> None:
    run(store, delete(EVENTS).where(EVENTS.c.session_id == "a", EVENTS.c.seq <= 2))
    assert first_problem(store, rec_ring) == (
        "session a: event seq 1..2 missing (deleted): stored events jump from seq 0 to seq 3"
    )


def test_truncated_tail_is_named(store: Engine, rec_ring: KeyRing) -> None:
    run(store, delete(EVENTS).where(EVENTS.c.session_id == "b", EVENTS.c.seq >= 10))
    assert first_problem(store, rec_ring) == (
        "session b: events end at seq 9 but the signed head says last seq 11 "
        "(tail truncated: seq 10..11 deleted)"
    )


def test_truncated_tail_with_head_rewritten_fails_the_signature(
    store: Engine, rec_ring: KeyRing
) -> None:
    with store.connect() as conn:
        head9 = conn.execute(select(EVENTS.c.hash).where(event("b", 9))).scalar_one()
    run(
        store,
        delete(EVENTS).where(EVENTS.c.session_id == "b", EVENTS.c.seq >= 10),
        update(SESSIONS).where(SESSIONS.c.id == "b").values(last_seq=9, head_hash=head9),
    )
    problems = Verifier(store, rec_ring).verify_session("b").problems
    assert problems[0] == (
        "session b: head signature does not verify (rec_sessions last_seq=9, head_hash or "
        "status='sealed' modified)"
    )
    # and the global log still remembers where the seal really was
    assert problems[1].startswith(
        "session b: global log position 4 does not match the session's seal"
    )


def test_status_cannot_be_flipped(store: Engine, rec_ring: KeyRing) -> None:
    run(store, update(SESSIONS).where(SESSIONS.c.id == "a").values(status="interrupted"))
    assert first_problem(store, rec_ring).startswith("session a: head signature does not verify")


def test_event_appended_after_sealing_is_named(store: Engine, rec_ring: KeyRing) -> None:
    with store.connect() as conn:
        last = conn.execute(select(EVENTS).where(event("a", 11))).one()
    payload = canonical_json({"n": 9, "verdict": "allow"})
    digest = chain_hash(last.hash, envelope_bytes("a", 12, format_ts(last.ts), "decision", payload))
    run(
        store,
        insert(EVENTS).values(
            session_id="a", seq=12, ts=last.ts, type="decision", payload=payload,
            prev_hash=last.hash, hash=digest,
        ),
    )  # fmt: skip
    assert first_problem(store, rec_ring) == (
        "session a: event seq 12 was recorded after the session was sealed at seq 11 "
        "(event appended after sealing)"
    )


def test_deleted_session_is_named(store: Engine, rec_ring: KeyRing) -> None:
    run(
        store,
        delete(EVENTS).where(EVENTS.c.session_id == "b"),
        delete(SESSIONS).where(SESSIONS.c.id == "b"),
    )
    assert first_problem(store, rec_ring) == (
        "global log position 3, 4 records session b, which is missing from rec_sessions "
        "(session deleted)"
    )
    assert Verifier(store, rec_ring).verify_session("b").problems == (
        "session b: missing from rec_sessions, but global log position 3, 4 records it "
        "(session deleted)",
    )


def test_deleted_global_log_entry_is_named(store: Engine, rec_ring: KeyRing) -> None:
    run(store, delete(GLOBAL_LOG).where(GLOBAL_LOG.c.position == 3))
    report = Verifier(store, rec_ring).verify_all()
    assert report.problems == (
        "global log position 3 missing (entry deleted): the log jumps from position 2 to 4",
        "session b: open is recorded at global log position 3, which is missing (global log "
        "entry deleted)",
    )


def test_deleted_last_global_log_entry_is_named(store: Engine, rec_ring: KeyRing) -> None:
    run(store, delete(GLOBAL_LOG).where(GLOBAL_LOG.c.position == 6))
    assert first_problem(store, rec_ring) == (
        "session c: seal is recorded at global log position 6, which is missing (global log "
        "entry deleted)"
    )


def test_modified_global_log_entry_is_named(store: Engine, rec_ring: KeyRing) -> None:
    run(store, update(GLOBAL_LOG).where(GLOBAL_LOG.c.position == 4).values(last_seq=10))
    assert first_problem(store, rec_ring) == (
        "global log position 4 hash mismatch (entry modified)"
    )


def test_first_problem_names_the_first_broken_event(store: Engine, rec_ring: KeyRing) -> None:
    run(
        store,
        update(EVENTS).where(event("b", 7)).values(type="result"),
        update(EVENTS).where(event("b", 3)).values(type="statement"),
        update(EVENTS).where(event("c", 2)).values(type="statement"),
    )
    report = Verifier(store, rec_ring).verify_all()
    assert [p.split(" hash")[0] for p in report.problems] == [
        "session b: event seq 3",
        "session c: event seq 2",
    ]
    assert report.sessions_failed == 2


def test_session_row_summary_must_match_the_recorded_start(
    store: Engine, rec_ring: KeyRing
) -> None:
    run(store, update(SESSIONS).where(SESSIONS.c.id == "a").values(principal="mallory"))
    assert first_problem(store, rec_ring) == (
        "session a: rec_sessions.principal is 'mallory' but the recorded session.start says "
        "'alice' (session row modified)"
    )


def test_unknown_key_is_named(store: Engine, rec_key: SigningKey) -> None:
    stranger = KeyRing([SigningKey.generate().public_key])
    problem = first_problem(store, stranger)
    assert problem == (
        f"global log position 1 is signed with unknown key id {rec_key.key_id} (add its public "
        "key to recording.trusted_public_keys, or the entry was forged)"
    )


async def test_rotated_keys_verify_with_the_retired_public_key(
    store: Engine, rec_key: SigningKey
) -> None:
    new = SigningKey.generate()
    await record_sessions(store, new, ["d"])
    assert Verifier(store, KeyRing([new.public_key, rec_key.public_key])).verify_all().ok
    assert not Verifier(store, KeyRing([new.public_key])).verify_all().ok


async def test_forged_session_without_the_key_is_detected(store: Engine, rec_ring: KeyRing) -> None:
    # Someone with database access records a whole fake session with their own key.
    forger = SigningKey.generate()
    await record_sessions(store, forger, ["fake"])
    report = Verifier(store, rec_ring).verify_all()
    assert not report.ok
    assert any(
        f"session fake: head is signed with unknown key id {forger.key_id}" in p
        for p in report.problems
    )
    assert report.problems[0] == (
        f"global log position 7 is signed with unknown key id {forger.key_id} (add its public "
        "key to recording.trusted_public_keys, or the entry was forged)"
    )


def test_rollback_of_the_log_tail_needs_an_anchor(store: Engine, rec_ring: KeyRing) -> None:
    verifier = Verifier(store, rec_ring)
    anchor = verifier.global_head()
    assert anchor is not None
    # Deleting the newest session with its newest global entries leaves a consistent,
    # signed, shorter store: only an anchor kept outside the store shows it.
    run(
        store,
        delete(EVENTS).where(EVENTS.c.session_id == "c"),
        delete(SESSIONS).where(SESSIONS.c.id == "c"),
        delete(GLOBAL_LOG).where(GLOBAL_LOG.c.position >= 5),
    )
    assert verifier.verify_all().ok  # the documented limitation
    report = verifier.verify_all(anchor=GlobalHead.from_dict(anchor.to_dict()))
    assert report.problems == (
        "global log ends at position 4 but the anchored head is position 6 (log truncated or "
        "the store rolled back to an older state)",
    )


def test_anchor_detects_a_rewritten_log(store: Engine, rec_ring: KeyRing) -> None:
    anchor = GlobalHead(position=6, hash="ee" * 32, signature="", key_id="")
    report = Verifier(store, rec_ring).verify_all(anchor=anchor)
    assert report.problems[0].startswith("global log position 6 has hash ")
    assert report.problems[0].endswith("(log rewritten)")


def test_unknown_session_is_reported(store: Engine, rec_ring: KeyRing) -> None:
    report = Verifier(store, rec_ring).verify_session("nope")
    assert not report.ok and report.problems == ("session nope: no such recorded session",)
