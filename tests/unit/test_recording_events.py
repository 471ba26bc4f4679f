"""The event model and its canonical bytes (format version 1)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.core.model import Principal
from wardgate.recording.events import (
    FORMAT_VERSION,
    SessionMeta,
    canonical_json,
    decision_payload,
    envelope_bytes,
    format_ts,
    format_ts_py,
    result_payload,
    statement_payload,
    verdict_payload,
)
from wardgate.recording.writer import chain_event

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_utf8() -> None:
    text = canonical_json({"b": [1, None, True], "a": "žluťoučký 🐘", "c": {"y": 1, "x": 2}})
    assert text == '{"a":"žluťoučký 🐘","b":[1,null,true],"c":{"x":2,"y":1}}'
    assert text.encode("utf-8").decode("utf-8") == text


def test_canonical_json_refuses_floats_that_would_not_round_trip() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_lone_surrogates_serialise_escaped_and_deterministically() -> None:
    value = {"text": "bad \udc80 byte", "ok": "é"}
    text = canonical_json(value)
    assert text.isascii()  # storable as UTF-8 and in a PostgreSQL text column
    assert canonical_json(json.loads(text)) == text


@given(json_values)
def test_reserialising_a_parsed_payload_gives_the_same_bytes(value: object) -> None:
    text = canonical_json({"v": value})
    text.encode("utf-8")  # always encodable
    assert canonical_json(json.loads(text)) == text


@given(
    payload=st.dictionaries(st.text(max_size=6), json_values, max_size=5),
    seq=st.integers(1, 2**40),
    session=st.text(min_size=1, max_size=40),
    event_type=st.sampled_from(["statement", "result", "session.start"]),
)
def test_envelope_concatenation_equals_canonical_json_of_the_envelope(
    payload: dict[str, object], seq: int, session: str, event_type: str
) -> None:
    ts = "2025-11-25T15:23:00.123456Z"
    expected = canonical_json(
        {
            "payload": payload,
            "seq": seq,
            "session": session,
            "ts": ts,
            "type": event_type,
            "v": FORMAT_VERSION,
        }
    )
    assert (
        envelope_bytes(session, seq, ts, event_type, canonical_json(payload)) == expected.encode()
    )


def test_event_hash_covers_prev_hash_and_envelope() -> None:
    op = chain_event(
        session_id="ses_1",
        seq=1,
        prev_hash="00" * 32,
        ts=datetime(2025, 11, 25, 15, 23, 0, 123456, tzinfo=UTC),
        event_type="gap",
        payload={"dropped": 2, "reason": "r"},
    )
    envelope = (
        b'{"payload":{"dropped":2,"reason":"r"},"seq":1,"session":"ses_1",'
        b'"ts":"2025-11-25T15:23:00.123456Z","type":"gap","v":1}'
    )
    assert op.hash == hashlib.sha256(bytes(32) + envelope).hexdigest()
    assert op.payload == '{"dropped":2,"reason":"r"}'
    assert op.size == len(envelope)


def test_timestamps_are_utc_with_microseconds() -> None:
    cet = timezone(timedelta(hours=1))
    assert format_ts(datetime(2025, 1, 2, 4, 5, 6, 7, tzinfo=cet)) == "2025-01-02T03:05:06.000007Z"
    assert format_ts(datetime(2025, 1, 2, 3, 5, 6)) == "2025-01-02T03:05:06.000000Z"


@given(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
    ),
    st.sampled_from([None, 0, 999999, 1]),
)
def test_timestamp_fast_path_spells_every_utc_instant_as_isoformat_does(
    when: datetime, micro: int | None
) -> None:
    """format_ts (compiled) and format_ts_py (which caches the text up to the second):
    around second, epoch and 2**32 s boundaries (and far outside them) both must still say
    exactly what isoformat says."""
    ts = when.replace(tzinfo=UTC)
    if micro is not None:
        ts = ts.replace(microsecond=micro)
    for fmt in (format_ts, format_ts_py):
        for t in (ts, ts - timedelta(microseconds=1), ts + timedelta(microseconds=1)):
            expected = t.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
            assert fmt(t) == expected
        for edge in (
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(2106, 2, 7, 6, 28, 16, tzinfo=UTC),
        ):
            for t in (edge - timedelta(microseconds=1), edge, edge + timedelta(microseconds=1)):
                expected = t.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
                assert fmt(t) == expected


def test_the_compiled_timestamp_takes_only_exact_utc_datetimes() -> None:
    from wardgate.recording import events

    native = events._native_format_ts
    if native is None:
        pytest.skip("built without the extension, or WARDGATE_PURE_PYTHON=1")

    class Stamp(datetime):
        pass

    utc = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert native(utc) == "9999-12-31T23:59:59.999999Z"
    assert native(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000000Z"
    cet = timezone(timedelta(hours=1))
    for other in (
        datetime(2025, 1, 2, 3, 4, 5),
        datetime(2025, 1, 2, 4, 4, 5, tzinfo=cet),
        Stamp(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    ):
        assert native(other) is None  # the Python function takes these
        assert format_ts(other) == "2025-01-02T03:04:05.000000Z"


def test_statement_payload_keeps_masked_params_and_nulls() -> None:
    p = statement_payload(
        3,
        text="UPDATE t SET a = $1 WHERE id = $2",
        path="extended",
        params=["***", None],
        started_at=datetime(2025, 1, 1, tzinfo=UTC),
        duration_us=17,
        rows=1,
        error_sqlstate=None,
        error_message=None,
    )
    assert p == {
        "n": 3,
        "text": "UPDATE t SET a = $1 WHERE id = $2",
        "path": "extended",
        "params": ["***", None],
        "started_at": "2025-01-01T00:00:00.000000Z",
        "duration_us": 17,
        "rows": 1,
        "error_sqlstate": None,
        "error_message": None,
    }


def test_result_payload_copies_rows() -> None:
    rows = [["1", None]]
    p = result_payload(
        1, columns=["a", "b"], rows=rows, truncated=False, total_rows=1, total_bytes=1
    )
    rows[0][0] = "changed"
    assert p["rows"] == [["1", None]]


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (
            Principal("ci", frozenset({"deploy"}), "token", token_id="tok_9"),
            {"auth_method": "token", "token_id": "tok_9", "subject": None, "issuer": None},
        ),
        (
            Principal("bob", frozenset({"b", "a"}), "jwt", subject="u-1", issuer="https://idp"),
            {"auth_method": "jwt", "token_id": None, "subject": "u-1", "issuer": "https://idp"},
        ),
    ],
)
def test_session_start_records_identity_and_how_it_was_proven(
    principal: Principal, expected: dict[str, object]
) -> None:
    m = SessionMeta("ses_1", principal, "10.1.1.1:5000", "prod", "postgresql", database="app")
    payload = m.start_event("node-a").payload()
    assert payload["principal"] == principal.name
    assert payload["groups"] == sorted(principal.groups)
    assert {k: payload[k] for k in expected} == expected
    assert payload["client_address"] == "10.1.1.1:5000"
    assert (payload["target"], payload["protocol"], payload["node"]) == (
        "prod",
        "postgresql",
        "node-a",
    )


def test_verdict_payload_of_a_gate_verdict_is_built_once_and_numbered_per_statement() -> None:
    from wardgate.pipeline.hooks import Verdict

    def fresh(n: int, v: Verdict) -> dict[str, object]:
        return decision_payload(
            n,
            v.kind,
            rule=v.rule or None,
            reason=v.reason or None,
            classes=v.classes,
            approvers=v.approvers,
        )

    read = Verdict("allow", rule="dba-full", reason="role allows", classes=("read", "ddl"))
    other = Verdict("review", rule="", reason="", classes=("write",), approvers=("b", "a"))
    first = verdict_payload(1, read)
    assert first == fresh(1, read)
    assert first["classes"] == ["ddl", "read"]
    # the same object again: the remembered payload, with this statement's number
    assert verdict_payload(7, read) == fresh(7, read)
    assert first["n"] == 1  # an earlier payload is not renumbered
    # an equal but distinct object, and a different verdict, are not confused with it
    twin = Verdict("allow", rule="dba-full", reason="role allows", classes=("read", "ddl"))
    assert verdict_payload(2, twin) == fresh(2, twin)
    assert verdict_payload(3, other) == fresh(3, other)
    assert verdict_payload(3, other)["rule"] is None
    assert verdict_payload(4, read) == fresh(4, read)


def test_verdict_payload_of_any_other_object_is_read_every_time() -> None:
    class Mutable:  # a VerdictLike that is not a gate verdict may change between calls
        kind = "deny"
        rule = "r1"
        reason = "because"
        classes: tuple[str, ...] = ("write",)
        approvers: tuple[str, ...] = ()

    v = Mutable()
    assert verdict_payload(1, v)["rule"] == "r1"
    v.rule = "r2"
    assert verdict_payload(2, v)["rule"] == "r2"
