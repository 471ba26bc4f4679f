"""Packet framing: headers, 16 MiB continuations, zero-copy views, caps, TLS hand-over."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.core.errors import ProtocolViolationError
from wardgate.proto.mysql.packets import (
    MAX_PHYSICAL_PAYLOAD,
    Packet,
    PacketFramer,
    encode_packet,
    encode_packets,
    physical_count,
)


def frame_all(framer: PacketFramer) -> list[Packet]:
    return list(framer)


def test_encode_small_packet_vector() -> None:
    # COM_QUERY "SELECT 1" as every client sends it
    assert encode_packet(0, b"\x03SELECT 1") == bytes.fromhex("090000000353454c4543542031")


def test_framer_yields_packets_with_seq_and_wire_bytes() -> None:
    wire = encode_packet(0, b"\x03SELECT 1") + encode_packet(7, b"") + encode_packet(255, b"x")
    framer = PacketFramer()
    framer.feed(wire)
    packets = frame_all(framer)
    assert [(p.seq, bytes(p.payload), p.next_seq) for p in packets] == [
        (0, b"\x03SELECT 1", 1),
        (7, b"", 8),
        (255, b"x", 0),
    ]
    assert b"".join(bytes(p.wire) for p in packets) == wire
    assert framer.buffered == 0


def test_packets_inside_one_read_are_views_not_copies() -> None:
    chunk = encode_packet(1, b"abc") + encode_packet(2, b"defg")
    framer = PacketFramer()
    framer.feed(chunk)
    first, second = frame_all(framer)
    # The payload views point into the very bytes object that was fed.
    assert first.payload.obj is chunk
    assert second.wire.obj is chunk


def test_byte_by_byte_feeding() -> None:
    wire = encode_packet(3, b"hello world") + encode_packet(4, b"!")
    framer = PacketFramer()
    got = []
    for i in range(len(wire)):
        framer.feed(wire[i : i + 1])
        got.extend(frame_all(framer))
    assert [bytes(p.payload) for p in got] == [b"hello world", b"!"]


def test_continuation_packets_are_joined_and_split() -> None:
    payload = bytes(range(256)) * (MAX_PHYSICAL_PAYLOAD // 256 + 10)
    assert len(payload) > MAX_PHYSICAL_PAYLOAD
    wire = encode_packet(5, payload)
    # two physical packets: 0xFFFFFF bytes with seq 5, the rest with seq 6
    assert wire[:4] == b"\xff\xff\xff\x05"
    assert wire[4 + MAX_PHYSICAL_PAYLOAD + 3] == 6
    framer = PacketFramer()
    framer.feed(wire[:1000])
    assert framer.next_packet() is None
    framer.feed(wire[1000:])
    (packet,) = frame_all(framer)
    assert packet.seq == 5
    assert packet.next_seq == 7
    assert packet.payload == payload
    assert bytes(packet.wire) == wire
    assert physical_count(len(payload)) == 2


def test_payload_of_exactly_max_ends_with_empty_packet() -> None:
    payload = b"z" * MAX_PHYSICAL_PAYLOAD
    wire = encode_packet(0, payload)
    assert len(wire) == 4 + MAX_PHYSICAL_PAYLOAD + 4
    assert wire[-4:] == b"\x00\x00\x00\x01"
    framer = PacketFramer()
    framer.feed(wire)
    (packet,) = frame_all(framer)
    assert len(packet.payload) == MAX_PHYSICAL_PAYLOAD
    assert packet.next_seq == 2


def test_continuation_with_wrong_sequence_is_a_violation() -> None:
    wire = bytearray(encode_packet(5, b"q" * (MAX_PHYSICAL_PAYLOAD + 1)))
    wire[4 + MAX_PHYSICAL_PAYLOAD + 3] = 9
    framer = PacketFramer()
    framer.feed(bytes(wire))
    with pytest.raises(ProtocolViolationError, match="expected 6"):
        framer.next_packet()
    # once broken, always broken: a desynchronised stream cannot be resumed
    with pytest.raises(ProtocolViolationError):
        framer.next_packet()


def test_cap_is_enforced_from_the_header_before_buffering() -> None:
    framer = PacketFramer(max_payload=1024)
    framer.feed(b"\x01\x04\x00\x00")  # announces 1025 bytes; none of them has arrived
    with pytest.raises(ProtocolViolationError, match="exceeds the 1024-byte limit"):
        framer.next_packet()


def test_cap_allows_exactly_the_limit() -> None:
    framer = PacketFramer(max_payload=4)
    framer.feed(encode_packet(0, b"1234"))
    assert bytes(frame_all(framer)[0].payload) == b"1234"


def test_framer_stops_before_tls_bytes() -> None:
    ssl_request = encode_packet(1, bytes(32))
    client_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    framer = PacketFramer()
    framer.feed(ssl_request + client_hello)
    packet = framer.next_packet()
    assert packet is not None and packet.seq == 1
    assert framer.detach_buffer() == client_hello
    assert framer.buffered == 0


def test_with_seq_renumbers_only_when_needed() -> None:
    packet = Packet.of(3, b"abc")
    assert packet.with_seq(3) is packet.wire
    assert packet.with_seq(9) == encode_packet(9, b"abc")


def test_encode_packets_tracks_sequence() -> None:
    wire, nxt = encode_packets(254, [b"a", b"b", b"c"])
    assert nxt == 1
    framer = PacketFramer()
    framer.feed(wire)
    assert [p.seq for p in frame_all(framer)] == [254, 255, 0]


def test_non_bytes_input_is_copied_so_later_mutation_is_harmless() -> None:
    buf = bytearray(encode_packet(0, b"abc"))
    framer = PacketFramer()
    framer.feed(buf)
    buf[4:7] = b"xyz"
    assert bytes(frame_all(framer)[0].payload) == b"abc"


packets_strategy = st.lists(
    st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=12
)


@given(packets_strategy, st.data())
def test_any_packet_sequence_round_trips_over_any_split(
    packets: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    wire = b"".join(encode_packet(seq, payload) for seq, payload in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    framer = PacketFramer()
    got: list[Packet] = []
    prev = 0
    for cut in [*cuts, len(wire)]:
        framer.feed(wire[prev:cut])
        prev = cut
        got.extend(frame_all(framer))
    assert [(p.seq, bytes(p.payload)) for p in got] == packets
    assert b"".join(bytes(p.wire) for p in got) == wire


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=64), max_size=10), st.integers(0, 200))
def test_framer_raises_only_protocol_violations_on_arbitrary_bytes(
    chunks: list[bytes], cap: int
) -> None:
    framer = PacketFramer(max_payload=cap)
    try:
        for chunk in chunks:
            framer.feed(chunk)
            for packet in framer:
                assert len(packet.payload) <= cap
    except ProtocolViolationError:
        pass


@given(packets_strategy, st.data())
def test_drain_frames_exactly_what_iteration_frames(
    packets: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    wire = b"".join(encode_packet(seq, payload) for seq, payload in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    drained, iterated = PacketFramer(), PacketFramer()
    got_drained: list[Packet] = []
    got_iterated: list[Packet] = []
    prev = 0
    for cut in [*cuts, len(wire)]:
        drained.feed(wire[prev:cut])
        iterated.feed(wire[prev:cut])
        prev = cut
        got_drained.extend(drained.drain())
        got_iterated.extend(iterated)
    assert [(p.seq, bytes(p.payload), p.next_seq, bytes(p.wire)) for p in got_drained] == [
        (p.seq, bytes(p.payload), p.next_seq, bytes(p.wire)) for p in got_iterated
    ]
    assert [(p.seq, bytes(p.payload)) for p in got_drained] == packets


@given(packets_strategy, st.data())
def test_drain_in_batches_with_unread_tails_frames_exactly_what_iteration_frames(
    packets: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    """The relay frames a batch at a time and may give the tail of a batch back (the
    compiled row walk then takes it): the packets still come out whole and in order."""
    wire = b"".join(encode_packet(seq, payload) for seq, payload in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    framer = PacketFramer()
    got: list[Packet] = []
    prev = 0
    for cut in [*cuts, len(wire)]:
        framer.feed(wire[prev:cut])
        prev = cut
        while batch := framer.drain(data.draw(st.integers(1, 4))):
            keep = data.draw(st.integers(1, len(batch)))
            framer.unread(sum(len(p.wire) for p in batch[keep:]))
            got.extend(batch[:keep])
    assert [(p.seq, bytes(p.payload)) for p in got] == packets
    assert b"".join(bytes(p.wire) for p in got) == wire


def test_unread_gives_back_only_what_the_last_drain_framed() -> None:
    framer = PacketFramer()
    framer.feed(encode_packet(0, b"ab") + encode_packet(1, b"cde"))
    first = framer.drain(1)
    assert [bytes(p.payload) for p in first] == [b"ab"]
    with pytest.raises(ValueError):
        framer.unread(len(first[0].wire) + 1)
    framer.unread(len(first[0].wire))
    assert [bytes(p.payload) for p in framer.drain()] == [b"ab", b"cde"]
    framer.feed(encode_packet(2, b"xyz")[:3])  # half a header: held, not framed
    assert framer.drain() == []
    framer.feed(encode_packet(2, b"xyz")[3:] + encode_packet(3, b"q")[:2])
    with pytest.raises(ValueError):  # bytes still pending: nothing to give back
        framer.unread(1)


def test_drain_respects_the_cap() -> None:
    framer = PacketFramer(max_payload=3)
    framer.feed(encode_packet(0, b"abc") + encode_packet(1, b"abcd"))
    with pytest.raises(ProtocolViolationError, match="3-byte limit"):
        framer.drain()
