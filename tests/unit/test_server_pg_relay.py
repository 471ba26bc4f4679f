"""Byte-level playbooks for the PostgreSQL relay: bytes in on one side, bytes out on the
other, with fake transports and a scripted gate (no sockets, no server)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from wardgate.pipeline.hooks import ApprovalOutcome, StatementPath, Verdict
from wardgate.proto.pg import messages as m
from wardgate.server.live import LiveSession
from wardgate.server.pg_relay import PgRelay


class FakeTransport:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False
        self.reading = True
        self.protocol: object | None = None

    def write(self, data: bytes) -> None:
        self.chunks.append(bytes(data))

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def set_protocol(self, protocol: object) -> None:
        self.protocol = protocol


class ScriptedGate:
    def __init__(self, verdicts: dict[str, Verdict]) -> None:
        self.verdicts = verdicts
        self.judged: list[tuple[str, StatementPath]] = []
        self.approval: asyncio.Future[ApprovalOutcome] | None = None

    def judge(self, sql: str, path: StatementPath) -> Verdict:
        self.judged.append((sql, path))
        return self.verdicts.get(sql, Verdict("allow", rule="test"))

    def statement_name_prepared(self, name: str, sql: str) -> None:
        return None

    def admit(self) -> Verdict | None:
        return None

    async def request_approval(
        self, sql: str, verdict: Verdict, notify: Callable[[str], None]
    ) -> ApprovalOutcome:
        notify("approval request apr_TEST01 is pending")
        self.approval = asyncio.get_running_loop().create_future()
        return await self.approval

    def cancel_approval(self) -> None:
        return None


DENY = Verdict("deny", rule="role:agent-demo", reason="destructive is denied")
REVIEW = Verdict("review", rule="role:engineer-demo", reason="needs a dba", approvers=("dba",))


def make(
    verdicts: dict[str, Verdict] | None = None, **limits: int
) -> tuple[PgRelay, FakeTransport, FakeTransport, ScriptedGate]:
    client, upstream = FakeTransport(), FakeTransport()
    gate = ScriptedGate(verdicts or {})
    relay = PgRelay(
        LiveSession(id="ses_test", protocol="postgres", client_addr="test"),
        client,  # type: ignore[arg-type]
        upstream,  # type: ignore[arg-type]
        gate,
        max_message_bytes=limits.get("max_message", 1 << 20),
        max_statement_bytes=limits.get("max_statement", 1 << 16),
        on_closed=lambda r: None,
    )
    relay.start(b"", b"")
    return relay, client, upstream, gate


def parse(kind: bytes, name: str, sql: str) -> bytes:
    return m.message(kind, name.encode() + b"\x00" + sql.encode() + b"\x00\x00\x00")


def test_allowed_traffic_is_forwarded_as_the_same_bytes() -> None:
    relay, client, upstream, gate = make()
    chunk = m.query("select 1") + m.message(b"S")
    relay.client_data(chunk)
    assert upstream.data == chunk
    server = m.message(b"T", b"\x00\x00") + m.message(b"C", b"SELECT 1\x00") + m.ready_for_query()
    relay.upstream_data(server)
    assert client.data == server
    assert gate.judged == [("select 1", "simple")]


def test_messages_split_anywhere_are_reassembled() -> None:
    relay, _, upstream, gate = make()
    stream = (
        m.query("select 1") + parse(b"P", "s1", "select $1") + m.message(b"S") + m.query("select 2")
    )
    for i in range(len(stream)):
        relay.client_data(stream[i : i + 1])
    assert upstream.data == stream
    assert [s for s, _ in gate.judged] == ["select 1", "select $1", "select 2"]


def test_denied_query_never_reaches_the_target_and_the_error_is_swapped() -> None:
    relay, client, upstream, _ = make({"drop table t": DENY})
    relay.client_data(m.query("drop table t"))
    assert b"drop table t" not in upstream.data
    marker = upstream.data[5:-1]
    assert marker.startswith(b"wardgate_denied_")
    # The target answers the marker like any syntax error; the client sees the gateway's.
    server_error = m.error_response("42601", f'syntax error at or near "{marker.decode()}"')
    relay.upstream_data(server_error + m.ready_for_query(b"E"))
    fields = m.parse_error_fields(client.data[5:])
    assert fields["C"] == "42501" and "role:agent-demo" in fields["M"]
    assert client.data.endswith(m.ready_for_query(b"E"))  # the server's own status


def test_unrelated_errors_pass_untouched() -> None:
    relay, client, _, _ = make({"drop table t": DENY})
    relay.client_data(m.query("drop table t"))
    other = m.error_response("22012", "division by zero")
    relay.upstream_data(other + m.ready_for_query())
    assert client.data == other + m.ready_for_query()


def test_denied_parse_keeps_its_name_and_the_rest_of_the_batch_flows() -> None:
    relay, _, upstream, _ = make({"delete from t": DENY})
    batch = (
        parse(b"P", "s1", "delete from t")
        + m.message(b"B", b"\x00s1\x00\x00\x00\x00\x00\x00\x00")
        + m.message(b"E", b"\x00\x00\x00\x00\x00")
        + m.message(b"S")
    )
    relay.client_data(batch)
    out = upstream.data
    assert b"delete from t" not in out
    assert out.startswith(b"P") and out[5:8] == b"s1\x00" and b"wardgate_denied_" in out
    assert out.endswith(
        batch[len(parse(b"P", "s1", "delete from t")) :]
    )  # Bind/Execute/Sync as sent


def test_a_pipelined_batch_leaves_in_one_write_whatever_it_holds() -> None:
    """Allowed statements stay in the chunk they came in: an extended-protocol batch
    (Parse/Bind/Describe/Execute/Sync, what libpq and pgbench send) reaches the target in
    one write, so the target wakes once. A denied statement in the middle splits it: what
    came before, the denial marker, then the rest, in that order."""
    relay, _, upstream, gate = make({"delete from t": DENY})
    bind = m.message(b"B", b"\x00\x00\x00\x00\x00\x00\x00\x00")
    tail = bind + m.message(b"D", b"P\x00") + m.message(b"E", b"\x00\x00\x00\x00\x00")
    allowed = parse(b"P", "", "select $1") + tail + m.message(b"S")
    relay.client_data(allowed)
    assert upstream.chunks == [allowed]
    simple = m.query("select 1") + m.query("select 2")
    relay.client_data(simple)
    assert upstream.chunks == [allowed, simple]
    upstream.chunks.clear()
    before = parse(b"P", "", "select 1") + tail
    denied = parse(b"P", "", "delete from t")
    after = tail + m.message(b"S")
    relay.client_data(before + denied + after)
    assert len(upstream.chunks) == 3
    assert upstream.chunks[0] == before
    assert upstream.chunks[1].startswith(b"P") and b"wardgate_denied_" in upstream.chunks[1]
    assert b"delete from t" not in upstream.data
    assert upstream.chunks[2] == after
    assert [s for s, _ in gate.judged] == [
        "select $1",
        "select 1",
        "select 2",
        "select 1",
        "delete from t",
    ]


def test_a_statement_that_is_not_utf8_is_refused_not_forwarded() -> None:
    """Fail closed: SQL the gateway cannot read is not judged and never reaches the
    target; what came before it in the batch still goes, in order, and the client gets
    SQLSTATE 22021 in place of the target's error for the marker."""
    relay, client, upstream, gate = make()
    before = m.query("select 1")
    bad = m.message(b"Q", b"select '\xff'\x00")
    after = m.query("select 2")
    relay.client_data(before + bad + after)
    assert [s for s, _ in gate.judged] == ["select 1", "select 2"]
    assert upstream.chunks[0] == before and upstream.chunks[-1] == after
    assert b"\xff" not in upstream.data
    marker = upstream.chunks[1][5:-1]
    assert marker.startswith(b"wardgate_denied_")
    relay.upstream_data(
        m.error_response("42601", f'syntax error at or near "{marker.decode()}"')
        + m.ready_for_query()
    )
    fields = m.parse_error_fields(client.data[5:])
    assert fields["C"] == "22021" and "undecodable" in fields["M"]


def test_oversized_statement_is_refused_and_closed() -> None:
    relay, client, upstream, _ = make(max_statement=100)
    relay.client_data(m.query("select '" + "x" * 200 + "'"))
    assert upstream.data == b""
    fields = m.parse_error_fields(client.data[5:])
    assert (
        fields["C"] == "08P01" and fields["S"] == "FATAL" and "max_statement_bytes" in fields["M"]
    )
    assert client.closed and relay.closed


async def test_review_holds_the_statement_and_everything_after_it() -> None:
    relay, client, upstream, gate = make({"truncate t": REVIEW})
    relay.client_data(m.query("select 1") + m.query("truncate t") + m.query("select 2"))
    await asyncio.sleep(0)
    assert upstream.data == m.query("select 1")  # held: nothing after it goes out
    assert not client.reading
    assert b"apr_TEST01" in client.data  # the NoticeResponse
    relay.client_data(m.query("select 3"))  # keeps arriving while held: buffered
    assert upstream.data == m.query("select 1")
    assert gate.approval is not None
    gate.approval.set_result(ApprovalOutcome(True, "apr_TEST01", by="dana"))
    await asyncio.sleep(0.01)
    assert upstream.data == m.query("select 1") + m.query("truncate t") + m.query(
        "select 2"
    ) + m.query("select 3")
    assert client.reading


async def test_review_denied_sends_the_marker_instead() -> None:
    relay, _, upstream, gate = make({"truncate t": REVIEW})
    relay.client_data(m.query("truncate t"))
    await asyncio.sleep(0)
    assert gate.approval is not None
    gate.approval.set_result(ApprovalOutcome(False, "apr_TEST01", by="dana", reason="no"))
    await asyncio.sleep(0.01)
    assert b"truncate t" not in upstream.data and b"wardgate_denied_" in upstream.data


@pytest.mark.parametrize("length", [0, 3])
def test_impossible_lengths_are_protocol_violations(length: int) -> None:
    relay, client, _, _ = make()
    relay.client_data(b"B" + length.to_bytes(4, "big"))
    assert m.parse_error_fields(client.data[5:])["C"] == "08P01"
    assert relay.closed
