"""The compiled serialise-and-chain (wardgate.recording._chain) against the Python path.

Every recorded event goes through the C code when it is built; the bytes it hashes and
stores must be exactly the ones ``canonical_json`` + ``envelope_bytes`` + hashlib give,
or a recording written by one path would not verify under the other (``verify`` always
re-serialises in Python). Whatever the C code declines -- floats, subclasses, non-str
keys, lone surrogates, deep nesting -- must raise so the Python path takes it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.recording import writer
from wardgate.recording.events import FORMAT_VERSION, canonical_json, envelope_bytes, format_ts

PURE = os.environ.get("WARDGATE_PURE_PYTHON", "") not in ("", "0")
pytestmark = pytest.mark.skipif(PURE, reason="WARDGATE_PURE_PYTHON=1 disables the extension")

TS = "2025-11-25T15:23:00.123456Z"
PREV = hashlib.sha256(b"prev").hexdigest()

# Text with everything the escaping distinguishes: C0 controls, quote, backslash, DEL,
# Latin-1, BMP, astral characters (no surrogates: those are declined, tested below).
texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from('"\\\x00\x1f\x7f\n\t'),
    max_size=40,
)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | texts
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(texts, inner, max_size=5)
    ),
    max_leaves=30,
)


def native() -> Any:
    from wardgate.recording._chain import chain_event

    return chain_event


def python_chain(
    payload: object, session: str, seq: int, ts: str, event_type: str, prev: str
) -> tuple[str, str, int]:
    payload_json = canonical_json(payload)
    envelope = envelope_bytes(session, seq, ts, event_type, payload_json)
    return payload_json, hashlib.sha256(bytes.fromhex(prev) + envelope).hexdigest(), len(envelope)


@settings(max_examples=400)
@given(
    payload=st.dictionaries(texts, values, max_size=8),
    session=texts.filter(bool),
    seq=st.integers(1, 2**62),
    event_type=st.sampled_from(["statement", "decision", "session.start", "gap"]),
)
def test_the_compiled_path_gives_the_python_bytes_and_hash(
    payload: dict[str, object], session: str, seq: int, event_type: str
) -> None:
    got = native()(payload, session, seq, TS, event_type, FORMAT_VERSION, PREV)
    assert got == python_chain(payload, session, seq, TS, event_type, PREV)


def test_a_statement_event_and_escapes_byte_for_byte() -> None:
    payload = {
        "text": 'SELECT "a\\b"\n\t\x01\x7f žluť 🐘',
        "params": ["5", None, ("x", 2**80, -(2**63))],
        "n": 1,
        "ok": True,
        "no": False,
        "nested": {"b": {}, "a": [], "": [[]]},
    }
    got = native()(payload, "ses_1", 7, TS, "statement", FORMAT_VERSION, "00" * 32)
    assert got == python_chain(payload, "ses_1", 7, TS, "statement", "00" * 32)
    assert "\\u0001" in got[0] and "\x7f" in got[0] and "🐘" in got[0]


class Level(IntEnum):
    HIGH = 1


class Text(str):
    pass


@pytest.mark.parametrize(
    "payload",
    [
        {"x": 1.5},  # floats: canonical_json's rules (no NaN) stay in Python
        {"x": Level.HIGH},  # an int subclass serialises as Python decides
        {"x": Text("t")},
        {1: "non-str key"},
        {"x": "lone \udc80 surrogate"},  # canonical_json spells these with \\u escapes
        OrderedDict(x=1),
        {"x": object()},
    ],
)
def test_what_the_compiled_path_declines_it_raises_for(payload: dict[Any, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        native()(payload, "ses_1", 1, TS, "gap", FORMAT_VERSION, PREV)


def test_deep_nesting_and_bad_chain_links_are_declined() -> None:
    deep: object = "leaf"
    for _ in range(80):
        deep = [deep]
    with pytest.raises(ValueError):
        native()({"x": deep}, "ses_1", 1, TS, "gap", FORMAT_VERSION, PREV)
    for prev in ("00" * 31, "zz" * 32, "00" * 33):
        with pytest.raises(ValueError):
            native()({}, "ses_1", 1, TS, "gap", FORMAT_VERSION, prev)


@pytest.mark.parametrize(
    "payload",
    [
        {"dropped": 2, "reason": "r"},
        {"x": 1.5, "y": "z"},  # declined by C: the Python path must give the same op
        {"text": "lone \udc80 surrogate", "n": 3},
        {"level": Level.HIGH, "deep": [[[[]]]]},
    ],
)
def test_writer_chain_event_is_the_same_with_or_without_the_extension(
    payload: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert writer._native_chain is not None, "the extension is built by the normal install"
    ts = datetime(2025, 11, 25, 15, 23, 0, 123456, tzinfo=UTC)
    kw: dict[str, Any] = dict(session_id="ses_1", seq=3, prev_hash=PREV, ts=ts, event_type="gap")
    compiled = writer.chain_event(payload=payload, **kw)
    monkeypatch.setattr(writer, "_native_chain", None)
    reference = writer.chain_event(payload=payload, **kw)
    assert compiled == reference
    envelope = envelope_bytes("ses_1", 3, format_ts(ts), "gap", reference.payload)
    assert reference.hash == hashlib.sha256(bytes.fromhex(PREV) + envelope).hexdigest()


def test_the_pure_python_switch_turns_the_extension_off() -> None:
    code = "import wardgate.recording.writer as w; assert w._native_chain is None; print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "WARDGATE_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.stdout.strip() == "ok", out.stderr


@settings(max_examples=200)
@given(
    keys=st.lists(texts, min_size=1, max_size=20, unique=True),
    order=st.randoms(use_true_random=False),
)
def test_remembered_key_orders_follow_the_key_objects_and_their_insertion_order(
    keys: list[str], order: Any
) -> None:
    """The compiled encoder remembers the sorted order of a small dict by its key objects
    in insertion order: the same objects inserted in another order, equal keys that are
    other objects, a dict with one key more, and one over the 16 keys remembered all
    still come out sorted, as the Python encoder writes them."""
    chain = native()
    shuffled = list(keys)
    order.shuffle(shuffled)
    copies = ["".join(list(k)) for k in keys]  # equal text, (mostly) other objects
    for ks in (keys, shuffled, copies, keys, [*keys, "\x00extra"], keys * 1):
        payload = {k: i for i, k in enumerate(ks)}
        nested = {"outer": payload, "list": [payload, {"z": payload, "a": 1}]}
        for p in (payload, nested):
            assert chain(p, "ses_1", 1, TS, "statement", FORMAT_VERSION, PREV) == python_chain(
                p, "ses_1", 1, TS, "statement", PREV
            )


# ---------------------------------------------------------------- statement_event / ran
# ``SessionRecorder.ran`` (every statement the relays record) serialises the statement
# payload in C without building its dicts; ``statement()`` with the dicts is the reference.

WHEN = datetime(2025, 11, 25, 15, 23, 0, 123456, tzinfo=UTC)
cells = st.none() | texts
results = st.lists(
    st.tuples(
        st.integers(0, 2**40),
        st.lists(texts, max_size=4),
        st.lists(st.lists(cells, max_size=4), max_size=4),
        st.booleans(),
        st.integers(0, 2**40),
        st.integers(0, 2**70),
    ),
    max_size=3,
)


def gate_verdicts() -> st.SearchStrategy[Any]:
    from wardgate.pipeline.hooks import Verdict

    return st.none() | st.builds(
        Verdict,
        kind=st.sampled_from(["allow", "review"]),
        rule=texts,
        reason=texts,
        classes=st.lists(texts, max_size=3).map(tuple),
        approvers=st.lists(texts, max_size=3).map(tuple),
    )


def new_session(clock: Any = None) -> Any:
    from sqlalchemy import create_engine

    from wardgate.core.model import Principal
    from wardgate.recording.config import RecordingConfig
    from wardgate.recording.events import SessionMeta
    from wardgate.recording.keys import SigningKey

    rec = writer.Recorder(
        create_engine("sqlite://"),
        SigningKey.generate(),
        RecordingConfig(queue_max_events=4, on_failure="fail_open"),
        clock=clock or (lambda: WHEN),
    )
    meta = SessionMeta(
        "ses_ran", Principal("p", frozenset(), "token"), "1.2.3.4:5", "t", "postgres"
    )
    return rec, rec.open_session(meta)


def reference_statement(args: tuple[Any, ...]) -> Any:
    """The event ``statement()`` records for ``ran(*args)``, with the dicts."""
    from wardgate.recording.events import verdict_payload

    n, text, path, started, duration, params, rows, state, message, verdict, res = args
    rec, session = new_session()
    session.statement(
        n,
        text=text,
        path=path,
        started_at=started,
        duration_us=duration,
        params=params,
        rows=rows,
        error_sqlstate=state,
        error_message=message,
        decision=None if verdict is None else verdict_payload(n, verdict),
        results=[writer._result_payload(r) for r in res],
    )
    return rec._ops[-1]


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 2**62),
    text=texts,
    path=st.sampled_from(["simple", "extended"]),
    duration=st.integers(0, 2**40),
    params=st.lists(cells, max_size=4) | st.lists(cells, max_size=2).map(tuple),
    rows=st.none() | st.integers(0, 2**40),
    state=st.none() | texts,
    message=st.none() | texts,
    verdict=gate_verdicts(),
    res=results,
)
def test_ran_records_the_statement_event_byte_for_byte(
    n: int,
    text: str,
    path: str,
    duration: int,
    params: Any,
    rows: int | None,
    state: str | None,
    message: str | None,
    verdict: Any,
    res: list[Any],
) -> None:
    assert writer._native_statement is not None, "the extension is built by the normal install"
    args = (n, text, path, WHEN, duration, params, rows, state, message, verdict, res)
    rec, session = new_session()
    calls = []
    real = writer._native_statement

    def counting(*a: Any) -> Any:
        calls.append(a)
        return real(*a)

    try:
        writer._native_statement = counting
        session.ran(*[list(r) if isinstance(r, list) else r for r in args])
    finally:
        writer._native_statement = real
    assert calls, "the compiled path was not taken"
    compiled = rec._ops[-1]
    assert compiled == reference_statement(args)
    assert session.last_seq == compiled.seq and session._head == compiled.hash


@pytest.mark.parametrize(
    "change",
    [
        {"text": "lone \udc80 surrogate"},  # the whole payload is then \\u-escaped
        {"params": ["ok", 5]},  # not a str: the Python path spells it str(5)
        {"params": [Text("subclass")]},
        {"rows": Level.HIGH},
        {"message": Text("m")},
        {"res": [(1, ["c"], [[1.5]], False, 1, 3)]},  # a float cell: the Python encoder's
        {"verdict_reason": "lone \udc80 in a reason"},
        {"started": datetime(2025, 11, 25, 17, 0, tzinfo=timezone(timedelta(hours=2)))},
        {"started": datetime(2025, 11, 25, 17, 0)},  # naive: format_ts takes it as UTC
    ],
)
def test_ran_leaves_what_the_compiled_path_declines_to_python(
    change: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from wardgate.pipeline.hooks import Verdict

    reason = change.pop("verdict_reason", "because")
    base: dict[str, Any] = dict(
        n=4, text="SELECT 1", path="simple", started=WHEN, duration=9, params=["a"], rows=1,
        state=None, message=None, verdict=Verdict("allow", rule="r", reason=reason), res=[],
    )  # fmt: skip
    base.update(change)
    args = tuple(base.values())
    rec, session = new_session()
    session.ran(*args)
    got = rec._ops[-1]
    assert got == reference_statement(args)
    monkeypatch.setattr(writer, "_native_statement", None)
    rec2, session2 = new_session()
    session2.ran(*args)
    assert rec2._ops[-1] == got


def test_ran_on_a_full_fail_open_queue_drops_and_marks_the_gap() -> None:
    """queue_max_events=4, fail_open: statements beyond the bound are dropped and counted;
    the next one recorded after the queue drains is preceded by a gap event."""
    rec, session = new_session()
    args = (1, "SELECT 1", "simple", WHEN, 1, [], 1, None, None, None, [])
    for _ in range(6):
        session.ran(*args)
    types = [getattr(op, "type", None) for op in rec._ops]
    assert types.count("statement") == 3  # session.start + 3 statements fill the bound
    rec._ops.clear()
    rec._pending_events = 0
    session.ran(*args)
    assert [op.type for op in rec._ops] == ["gap", "statement"]
    assert '"dropped":3' in rec._ops[0].payload
    assert rec._ops[1].prev_hash == rec._ops[0].hash


def test_ran_after_close_raises_like_statement() -> None:
    _rec, session = new_session()
    session.close("client_quit")
    with pytest.raises(RuntimeError, match="closed"):
        session.ran(1, "SELECT 1", "simple", WHEN, 1, [], 1, None, None, None, [])


def test_decision_parts_are_the_decision_json_around_n() -> None:
    from wardgate.pipeline.hooks import Verdict
    from wardgate.recording.events import decision_parts, verdict_payload

    v = Verdict(
        "allow", rule='r,"n":0,', reason='x"', classes=("write", "read"), approvers=("b", "a")
    )
    head, tail = decision_parts(v)  # type: ignore[misc]
    assert head + "17" + tail == canonical_json(verdict_payload(17, v))
    assert decision_parts(v) is decision_parts(v)  # remembered per verdict object
    assert decision_parts(Verdict("allow", reason="\udc80")) is None


@settings(max_examples=300)
@given(
    stamps=st.lists(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
        min_size=0,
        max_size=12,
    ),
    payload=texts,
)
def test_sqlite_event_params_are_the_python_loops_values(
    stamps: list[datetime], payload: str
) -> None:
    """The store's compiled INSERT parameters: each row's seven columns in order, the
    timestamp spelt as ``store._sqlite_ts`` spells it, the other values the very objects."""
    from wardgate.recording._chain import sqlite_event_params
    from wardgate.recording.store import EventOp, _sqlite_ts

    rows = [
        EventOp(f"ses_{i}", i + 1, ts.replace(tzinfo=UTC), "statement", payload, PREV, PREV, 9)
        for i, ts in enumerate(stamps)
    ]
    flat = sqlite_event_params(rows)
    assert flat is not None
    expected: list[Any] = []
    for r in rows:
        expected += (r.session_id, r.seq, _sqlite_ts(r.ts), r.type, r.payload, r.prev_hash, r.hash)
    assert flat == tuple(expected)
    assert all(a is b for k, (a, b) in enumerate(zip(flat, expected)) if k % 7 != 2)


@pytest.mark.parametrize(
    "odd",
    [
        datetime(2026, 11, 26, 1, 0, tzinfo=timezone(timedelta(hours=2))),  # another zone
        # zero offset, but not datetime.UTC itself
        datetime(2026, 11, 26, 1, 0, tzinfo=timezone(timedelta(0), "Z")),
        datetime(2026, 11, 26, 1, 0),  # naive
        "2026-11-26 01:00:00.000000",  # not a datetime
    ],
)
def test_sqlite_event_params_decline_whole_chunks_they_cannot_spell(odd: object) -> None:
    """One row the compiled builder cannot spell exactly (a timestamp in another zone,
    naive, not a datetime; a row that is not a tuple) and the whole chunk goes to the
    Python loop, which converts it."""
    from wardgate.recording._chain import sqlite_event_params
    from wardgate.recording.store import EventOp

    good = EventOp("ses_1", 1, datetime(2026, 1, 1, tzinfo=UTC), "gap", "{}", PREV, PREV, 2)
    assert sqlite_event_params([good]) is not None
    assert sqlite_event_params([good, good._replace(seq=2, ts=odd)]) is None
    assert sqlite_event_params([good, ("ses_1", 2)]) is None
    with pytest.raises(TypeError):
        sqlite_event_params((good,))  # type: ignore[arg-type]
