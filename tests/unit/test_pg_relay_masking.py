"""The relay with masking on, byte for byte, through both row paths: the compiled walk
(``wardgate._rowscan``) and the pure-Python fallback. A long result with sensitive rows
scattered in it, split into chunks at arbitrary points, must reach the client exactly as
masking every row one by one would produce it -- and the same either way."""

from __future__ import annotations

import random
import struct

import pytest
from test_server_pg_relay import make

from wardgate.masking.detectors import BUILTIN_KINDS, build_detectors
from wardgate.masking.engine import MaskingPolicy, ValueMasker
from wardgate.masking.formats import Formatter
from wardgate.masking.pg_rows import mask_copy_line, mask_datarow
from wardgate.proto.pg import messages as m
from wardgate.server import pg_relay
from wardgate.server.pg_masking import PgRowMasker
from wardgate.server.pg_observer import PgObserver, parse_row_description

POLICY = MaskingPolicy(
    ValueMasker(build_detectors(BUILTIN_KINDS), Formatter({}, b"k" * 32)), kinds=BUILTIN_KINDS
)
READY = m.message(b"Z", b"I")


def row_description() -> bytes:
    def col(name: str, type_oid: int, size: int) -> bytes:
        return name.encode() + b"\x00" + struct.pack("!IhIhih", 0, 0, type_oid, size, -1, 0)

    return m.message(b"T", struct.pack("!h", 2) + col("id", 23, 4) + col("note", 25, -1))


def datarow(values: list[bytes | None]) -> bytes:
    body = struct.pack("!h", len(values)) + b"".join(
        struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v for v in values
    )
    return m.message(b"D", body)


def note(i: int) -> bytes | None:
    if i % 97 == 0:
        return b"card 4111 1111 1111 1111 on file"
    if i % 89 == 0:
        return b"mail jane.doe@example.com"
    if i % 50 == 0:
        return None
    return b"%032x" % (i * 2654435761)


def chunks(data: bytes, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out, pos = [], 0
    while pos < len(data):
        step = rnd.choice([1, 3, 7, 64, 500, 4096, 65536])
        out.append(data[pos : pos + step])
        pos += step
    return out


def run(stream: bytes, seed: int, native: bool, monkeypatch: pytest.MonkeyPatch) -> bytes:
    if not native:
        monkeypatch.setattr(pg_relay, "_scan_rows", None)
        monkeypatch.setattr(pg_relay, "_scan_copy", None)
        monkeypatch.setattr(PgRowMasker, "native_gate", lambda self, plan: None)
        monkeypatch.setattr(PgRowMasker, "native_copy_gate", lambda self, plan: None)
    elif pg_relay._scan_rows is None:
        pytest.skip("the compiled module is not built (WARDGATE_PURE_PYTHON?)")
    relay, client, _upstream, _gate = make()
    relay.observer = PgObserver(None, PgRowMasker(POLICY, {}))
    relay.client_data(m.message(b"Q", b"select id, note from notes\x00"))
    for piece in chunks(stream, seed):
        relay.upstream_data(piece)
    assert not relay.closed
    return client.data


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("native", [True, False])
def test_a_long_masked_result_is_exact_on_both_paths(
    seed: int, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    desc = row_description()
    rows = [datarow([str(i).encode(), note(i)]) for i in range(1, 3001)]
    tail = m.message(b"C", b"SELECT 3000\x00") + READY
    plan = PgRowMasker(POLICY, {}).plan(parse_row_description(desc), [0, 0])
    expected = desc + b"".join(mask_datarow(r, plan) or r for r in rows) + tail  # type: ignore[arg-type]
    got = run(desc + b"".join(rows) + tail, seed, native, monkeypatch)
    assert got == expected
    assert b"4111 1111 1111 1111" not in got and b"jane.doe@example.com" not in got
    assert got.count(b"%032x" % (2 * 2654435761)) == 1  # clean rows untouched


@pytest.mark.parametrize("native", [True, False])
def test_copy_rows_are_exact_on_both_paths(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [b"%d\t%s\n" % (i, note(i) or b"\\N") for i in range(1, 2001)]
    lines[10] = b"11\tjane\\100example.com\n"  # an escape spelling '@': Python must judge it
    head = m.message(b"H", b"\x00" + struct.pack("!hhh", 2, 0, 0))
    tail = m.message(b"c", b"") + m.message(b"C", b"COPY 2000\x00") + READY
    plan = PgRowMasker(POLICY, {}).copy_plan("COPY notes TO STDOUT", False)
    expected = head
    for line in lines:
        masked = mask_copy_line(line, plan.plan, "text")  # type: ignore[attr-defined]
        expected += m.message(b"d", masked if masked is not None else line)
    expected += tail
    stream = head + b"".join(m.message(b"d", line) for line in lines) + tail
    relay, client, _upstream, _gate = make()
    if not native:
        monkeypatch.setattr(pg_relay, "_scan_copy", None)
        monkeypatch.setattr(PgRowMasker, "native_copy_gate", lambda self, plan: None)
    elif pg_relay._scan_copy is None:
        pytest.skip("the compiled module is not built (WARDGATE_PURE_PYTHON?)")
    relay.observer = PgObserver(None, PgRowMasker(POLICY, {}))
    relay.client_data(m.message(b"Q", b"COPY notes TO STDOUT\x00"))
    for piece in chunks(stream, 7):
        relay.upstream_data(piece)
    assert client.data == expected
    assert b"jane\\100example.com" not in client.data


def test_a_remembered_plan_is_only_reused_for_the_same_description_and_formats() -> None:
    """PgRowMasker remembers the last plan by the description object's identity (a
    prepared statement executed again); a change of result formats, or another
    description, must get its own plan."""
    from wardgate.server.pg_observer import ColumnDesc

    masker = PgRowMasker(POLICY, {})
    jsonb = [ColumnDesc("doc", 0, 0, 3802, 0)]
    text_plan = masker.plan(jsonb, [0])
    binary_plan = masker.plan(jsonb, [1])
    assert text_plan is not None and binary_plan is not None
    assert text_plan.actions != binary_plan.actions  # type: ignore[attr-defined]
    assert masker.plan(jsonb, [1]) is binary_plan
    assert masker.plan(jsonb, [0]).actions == text_plan.actions  # type: ignore[attr-defined]
    ints = [ColumnDesc("doc", 0, 0, 23, 0)]  # same name, another description: nothing to mask
    assert masker.plan(ints, [0]) is None


def test_remembered_descriptions_keep_each_result_its_own_plan() -> None:
    """The observer remembers RowDescriptions by their bytes and masking remembers plans
    by the description object: results of two statements, alternating, must each be
    masked by their own columns (a text column is scanned, an int4 column is not)."""
    relay, client, _upstream, _gate = make()
    relay.observer = PgObserver(None, PgRowMasker(POLICY, {}))

    def col(name: str, type_oid: int, size: int) -> bytes:
        return name.encode() + b"\x00" + struct.pack("!IhIhih", 0, 0, type_oid, size, -1, 0)

    text_desc = m.message(b"T", struct.pack("!h", 1) + col("note", 25, -1))
    int_desc = m.message(b"T", struct.pack("!h", 1) + col("note", 23, 4))
    email = b"jane.doe@example.com"
    digits = b"4111111111111111"
    for _ in range(3):
        for desc, value in ((text_desc, email), (int_desc, digits)):
            client.chunks.clear()
            relay.client_data(m.message(b"Q", b"select note from t\x00"))
            relay.upstream_data(
                desc + datarow([value]) + m.message(b"C", b"SELECT 1\x00") + READY
            )
            out = client.data
            if desc is text_desc:
                assert email not in out and b"email" in out  # masked
            else:
                assert digits in out  # an int4 column holds no card to mask
