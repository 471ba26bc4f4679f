"""Runs the atheris fuzz target (tests/fuzz/fuzz_mysql_packets.py) under hypothesis and
over seeded random input, so the "only ProtocolViolationError" contract is checked in CI."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.proto.mysql.packets import encode_packet

_PATH = Path(__file__).parents[1] / "fuzz" / "fuzz_mysql_packets.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_mysql_packets", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FUZZ = _load()


@settings(max_examples=400)
@given(st.binary(max_size=400))
def test_fuzz_target_on_hypothesis_bytes(data: bytes) -> None:
    FUZZ.fuzz_one_input(data)


def test_fuzz_target_on_seeded_random_bytes() -> None:
    assert FUZZ._random_main(3000, seed=7) == 0


interesting_payloads = st.one_of(
    st.binary(max_size=60),
    st.tuples(st.sampled_from([b"\x00", b"\x01", b"\x03", b"\xfb", b"\xfe", b"\xff", b"\x0a"]),
              st.binary(max_size=60)).map(lambda t: t[0] + t[1]),
)


@settings(max_examples=400)
@given(st.integers(0, 255), st.lists(interesting_payloads, max_size=12))
def test_fuzz_target_on_well_framed_garbage(first: int, payloads: list[bytes]) -> None:
    # well-framed packets get past the framer, so every parser and the tracker see them
    FUZZ.fuzz_one_input(bytes((first,)) + b"".join(
        encode_packet(i + 1, p) for i, p in enumerate(payloads)
    ))
