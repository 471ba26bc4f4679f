"""Transcripts, JSON Lines export, the REST document and live following."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from sqlalchemy import Engine
from test_recording_support import FAST, meta, run_statement

from wardgate.recording.chain import GENESIS_HASH, chain_hash
from wardgate.recording.events import StoredEvent, canonical_json, envelope_bytes
from wardgate.recording.keys import SigningKey
from wardgate.recording.replay import (
    TranscriptRenderer,
    export_jsonl,
    follow,
    render_table,
    render_transcript,
    safe,
    session_document,
)
from wardgate.recording.writer import Recorder

pytest_plugins = ["test_recording_support"]

T0 = datetime(2025, 11, 25, 15, 23, 0, tzinfo=UTC)


async def record_demo(engine: Engine, key: SigningKey) -> None:
    rec = Recorder(engine, key, FAST, clock=lambda: T0)
    rec.start()
    s = rec.open_session(meta("ses_demo"))
    run_statement(s, rows=[["42", "a***@example.com"], ["7", None]])
    n = s.next_statement()
    s.decision(n, "review", rule="rule:prod-writes", classes=["write"], approvers=["dba"])
    s.approval(n, "requested", request_id="apr_1")
    s.approval(n, "approved", request_id="apr_1", approver="bob", reason="ticket 42")
    s.statement(
        n, text="UPDATE plans SET tier = 'pro' WHERE id = 42", path="simple",
        started_at=T0, duration_us=2500, rows=1,
    )  # fmt: skip
    n = s.next_statement()
    s.decision(
        n, "deny", rule="rule:no-ddl", reason="DDL is not allowed on prod-db", classes=["ddl"]
    )
    s.statement(
        n, text="DROP TABLE users", path="simple", started_at=T0, duration_us=0,
        error_sqlstate="42501", error_message="wardgate: DDL is not allowed on prod-db",
    )  # fmt: skip
    s.close("client_quit", bytes_in=300, bytes_out=4096)
    await rec.aclose()


async def test_transcript_reads_like_the_session(rec_engine: Engine, rec_key: SigningKey) -> None:
    await record_demo(rec_engine, rec_key)
    lines = render_transcript(rec_engine, "ses_demo").splitlines()
    body = lines[lines.index("") + 1 :]
    assert body == [
        "[15:23:00.000] connected: alice [dba, eng] via token tok_alice, from 10.0.0.5:51234 "
        "to prod-db (app, app_ro) over postgresql",
        "[15:23:01.002] #1 SELECT id, email FROM users WHERE id = $1",
        "               extended · params: $1='42'",
        "               decision: allow (rule role:reader; classes: read)",
        "               ok · 2 rows · 1.234 ms",
        "                id |      email",
        "               ----+------------------",
        "                42 | a***@example.com",
        "                7  | NULL",
        "               (2 rows)",
        "[15:23:00.000] #2 UPDATE plans SET tier = 'pro' WHERE id = 42",
        "               decision: review (rule rule:prod-writes; classes: write; approvers: dba)",
        "               approval requested (request apr_1)",
        "               approval approved (request apr_1) by bob: ticket 42",
        "               ok · 1 row · 2.500 ms",
        "[15:23:00.000] #3 DROP TABLE users",
        "               decision: deny (rule rule:no-ddl; classes: ddl) — DDL is not allowed on "
        "prod-db",
        "               error 42501: wardgate: DDL is not allowed on prod-db · 0.000 ms",
        "[15:23:00.000] session ended: client_quit · 3 statements · in 300 B / out 4.0 KiB",
    ]
    assert lines[0] == "Session ses_demo · sealed"


def test_recorded_text_cannot_drive_the_terminal() -> None:
    assert safe("a\x1b[2Jb\r\nc\x9b") == "a\\x1b[2Jb\\x0d\\nc\\x9b"
    table = render_table(["c\x1b]0;pwned\x07"], [["x\x1b[31m"]], "NULL")
    assert "\x1b" not in "".join(table) and "\x07" not in "".join(table)


def test_truncated_results_say_so() -> None:
    r = TranscriptRenderer()
    ev = StoredEvent(
        "s", 1, T0, "result",
        {"n": 1, "columns": ["a"], "rows": [["1"]], "truncated": True, "total_rows": 5000,
         "total_bytes": 3 * 1024 * 1024},
        "", "",
    )  # fmt: skip
    assert r.feed(ev) == []
    out = r.finish()
    assert out[-1] == (
        "               (1 of 5000 rows recorded, 3.0 MiB in total; capped by "
        "recording.max_result_rows / max_result_bytes)"
    )


def test_every_result_set_of_a_statement_is_shown() -> None:
    r = TranscriptRenderer()
    for i, value in enumerate(["1", "2"]):
        payload = {"n": 1, "columns": ["x"], "rows": [[value]], "truncated": False,
                   "total_rows": 1, "total_bytes": 1}  # fmt: skip
        assert r.feed(StoredEvent("s", i + 1, T0, "result", payload, "", "")) == []
    statement = {"n": 1, "text": "SELECT 1; SELECT 2", "path": "simple", "params": [],
                 "started_at": "2025-11-25T15:23:00.000000Z", "duration_us": 10, "rows": 2}  # fmt: skip
    lines = r.feed(StoredEvent("s", 3, T0, "statement", statement, "", ""))
    assert [line.strip() for line in lines if line.strip() in ("1", "2")] == ["1", "2"]


async def test_jsonl_export_lets_anyone_recompute_the_chain(
    rec_engine: Engine, rec_key: SigningKey
) -> None:
    await record_demo(rec_engine, rec_key)
    lines = list(export_jsonl(rec_engine, "ses_demo"))
    assert len(lines) == 11
    prev = GENESIS_HASH
    for line in lines:
        e = json.loads(line)
        assert e["v"] == 1 and e["prev_hash"] == prev
        env = envelope_bytes(
            e["session"], e["seq"], e["ts"], e["type"], canonical_json(e["payload"])
        )
        assert chain_hash(prev, env) == e["hash"]
        prev = e["hash"]


async def test_session_document_for_the_api(rec_engine: Engine, rec_key: SigningKey) -> None:
    await record_demo(rec_engine, rec_key)
    doc = session_document(rec_engine, "ses_demo")
    assert doc["session"]["status"] == "sealed" and doc["session"]["last_seq"] == 11
    assert [e["seq"] for e in doc["events"]] == list(range(1, 12))
    json.dumps(doc)  # serialisable as is


async def test_follow_tails_a_live_session_until_it_is_sealed(
    rec_engine: Engine, rec_key: SigningKey
) -> None:
    rec = Recorder(rec_engine, rec_key, FAST)
    rec.start()
    s = rec.open_session(meta("ses_live"))
    await rec.flush()
    seen: list[str] = []
    renderer = TranscriptRenderer(live=True)
    held = asyncio.Event()

    async def tail() -> None:
        async for event in follow(rec_engine, "ses_live", poll_interval=0.01):
            seen.append(event.type)
            seen.extend(renderer.feed(event))
            if event.type == "approval":
                held.set()

    task = asyncio.create_task(tail())
    n = s.next_statement()
    s.decision(n, "review", rule="rule:prod-writes", classes=["write"], approvers=["dba"])
    s.approval(n, "requested", request_id="apr_9")
    await asyncio.wait_for(held.wait(), 10)  # the held statement shows while it waits
    assert any("#1 approval requested (request apr_9)" in line for line in seen)
    s.approval(n, "approved", request_id="apr_9", approver="bob")
    s.statement(n, text="UPDATE t SET a = 1", path="simple", started_at=T0, duration_us=5, rows=1)
    s.close("client_quit")
    await rec.flush()
    await asyncio.wait_for(task, 10)  # ends by itself once sealed
    assert seen[0] == "session.start"
    assert seen.count("statement") == 1 and seen[-2] == "session.end"
    await rec.aclose()


async def test_follow_resumes_after_a_given_seq(rec_engine: Engine, rec_key: SigningKey) -> None:
    await record_demo(rec_engine, rec_key)
    seqs = [e.seq async for e in follow(rec_engine, "ses_demo", after_seq=8)]
    assert seqs == [9, 10, 11]
