"""Fuzz target for the MySQL codec: arbitrary bytes may only ever raise ProtocolViolationError.

With atheris installed (``pip install atheris``)::

    python tests/fuzz/fuzz_mysql_packets.py -atheris_runs=1000000

Without it, the same target runs over random inputs for a bounded time, so the file is
importable and runnable anywhere::

    python tests/fuzz/fuzz_mysql_packets.py --iterations 20000 --seed 1

Each input is framed with a tiny payload cap, and every packet that comes out is pushed
through every parser and through the response tracker (as both a query and a prepared-
statement response, with and without CLIENT_DEPRECATE_EOF).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
from collections.abc import Callable

from wardgate.core.errors import ProtocolViolationError
from wardgate.proto.mysql import (
    AuthSwitchRequest,
    ChangeUser,
    ColumnDefinition,
    EofPacket,
    ErrPacket,
    HandshakeResponse41,
    HandshakeV10,
    OkPacket,
    Packet,
    PacketFramer,
    ResultSetTracker,
    StmtExecute,
    StmtPrepareOk,
    ValueType,
    parse_binary_row,
    parse_command,
    parse_text_row,
)
from wardgate.proto.mysql.constants import CODEC_CAPABILITIES, Capability, FieldType

_CAPS = (
    CODEC_CAPABILITIES,
    CODEC_CAPABILITIES & ~Capability.DEPRECATE_EOF,
    Capability.PROTOCOL_41,
)
_TYPES = [ValueType(t) for t in FieldType] + [ValueType(FieldType.LONG, unsigned=True)]
_COMMANDS = (b"\x03SELECT 1", b"\x16SELECT ?", b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00",
             b"\x1c\x01\x00\x00\x00\x01\x00\x00\x00", b"\x0e", b"\x09", b"\x04t\x00",
             b"\x11u\x00\x00\x00")


def _parsers(payload: memoryview, caps: int) -> list[Callable[[], object]]:
    return [
        lambda: HandshakeV10.parse(payload),
        lambda: HandshakeResponse41.parse(payload),
        lambda: AuthSwitchRequest.parse(payload),
        lambda: OkPacket.parse(payload, caps),
        lambda: ErrPacket.parse(payload),
        lambda: EofPacket.parse(payload),
        lambda: ColumnDefinition.parse(payload, caps),
        lambda: StmtPrepareOk.parse(payload),
        lambda: parse_text_row(payload, 1 + len(payload) % 5),
        lambda: parse_binary_row(payload, _TYPES[: len(payload) % 8]),
        lambda: parse_command(payload, caps),
        lambda: ChangeUser.parse(payload, caps),
        lambda: StmtExecute.parse(payload, len(payload) % 4, _TYPES[:3]),
    ]


def fuzz_one_input(data: bytes) -> None:
    """The fuzz entry point: must return normally or raise ProtocolViolationError."""
    if not data:
        return
    caps = _CAPS[data[0] % len(_CAPS)]
    command = _COMMANDS[data[0] % len(_COMMANDS)]
    framer = PacketFramer(max_payload=data[0] * 64)
    tracker = ResultSetTracker(caps)
    tracker.start(Packet.of(0, command))
    framer.feed(data[1:])
    try:
        for packet in framer:
            for parse in _parsers(packet.payload, caps):
                with contextlib.suppress(ProtocolViolationError):
                    parse()
            try:
                if tracker.idle:
                    tracker.start(Packet.of(0, command))
                if tracker.awaiting_client:
                    tracker.feed_client(packet)
                else:
                    tracker.feed(Packet.of(tracker.expected_seq, packet.payload))
            except ProtocolViolationError:
                tracker = ResultSetTracker(caps)
                tracker.start(Packet.of(0, command))
    except ProtocolViolationError:
        pass


def _random_main(iterations: int, seed: int) -> int:
    rng = random.Random(seed)
    for _ in range(iterations):
        size = rng.choice((0, 1, 5, 16, 64, 300))
        data = bytes(rng.getrandbits(8) for _ in range(size))
        # bias towards plausible framing: prefix small valid headers now and then
        if rng.random() < 0.5 and size:
            n = rng.randrange(min(size, 60) + 1)
            data = bytes((data[0], n, 0, 0, rng.randrange(3))) + data[1:]
        fuzz_one_input(data)
    print(f"{iterations} random inputs, no unexpected exception (seed {seed})")
    return 0


def main(argv: list[str]) -> int:
    try:
        import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--iterations", type=int, default=20000)
        parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(2**32))
        args = parser.parse_args(argv[1:])
        return _random_main(args.iterations, args.seed)
    atheris.instrument_all()
    atheris.Setup(argv, fuzz_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
