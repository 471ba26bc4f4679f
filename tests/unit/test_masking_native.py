"""The compiled DataRow walk and gate (wardgate._rowscan) against the Python reference.

The C gate may only ever say "clean" where ValueMasker.may_contain says so; these tests
hold it to *exactly* the Python answer, on the detector test corpus, on generated values
built from the bytes the gates look at, and for custom detectors. The row walk must stop
before anything it cannot vouch for: a non-DataRow, a partial or oversized message,
columns that do not add up, and any row whose gated value might hold a finding.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_masking_detectors import DECOYS, POSITIVES

from wardgate.masking.detectors import BUILTIN_KINDS, CustomDetector, build_detectors
from wardgate.masking.engine import ColumnInfo, MaskingPolicy, ResultMaskPlan, ValueMasker
from wardgate.masking.formats import Formatter
from wardgate.masking.native import native_gate, scan_rows
from wardgate.masking.pg_rows import mask_datarow
from wardgate.proto.mysql.messages import encode_text_row

PURE = os.environ.get("WARDGATE_PURE_PYTHON", "") not in ("", "0")
pytestmark = pytest.mark.skipif(PURE, reason="WARDGATE_PURE_PYTHON=1 disables the extension")

KEY = b"k" * 32


def masker(
    kinds: Sequence[str] = BUILTIN_KINDS, custom: Sequence[CustomDetector] = ()
) -> ValueMasker:
    return ValueMasker(
        build_detectors(
            list(kinds) + [c.kind for c in custom], phone_regions=("US", "GB"), custom=custom
        ),
        Formatter({}, KEY),
    )


def text_plan(m: ValueMasker, ncols: int = 1) -> ResultMaskPlan:
    policy = MaskingPolicy(m, (), kinds=m.kinds)
    plan = policy.plan_for_result([ColumnInfo(f"c{i}", None, 25, "text") for i in range(ncols)])
    assert plan is not None
    return plan


def gate_of(m: ValueMasker, ncols: int = 1):  # type: ignore[no-untyped-def]
    gate = native_gate(text_plan(m, ncols))
    assert gate is not None
    return gate


def datarow(values: Sequence[bytes | None]) -> bytes:
    body = struct.pack(">h", len(values)) + b"".join(
        struct.pack(">i", -1) if v is None else struct.pack(">i", len(v)) + v for v in values
    )
    return b"D" + struct.pack(">i", len(body) + 4) + body


CUSTOM = (
    CustomDetector("employee_id", r"EMP-\d{6}", min_digits=6),
    CustomDetector("project", r"(?i)project[ -]x\w+", contains=["Project"], ignore_case=True),
    CustomDetector("ticket", r"TCK\d+", contains=["TCK"]),
)

MASKERS = {
    "builtin": masker(),
    "custom": masker(custom=CUSTOM),
    **{kind: masker([kind]) for kind in BUILTIN_KINDS},
}


def test_the_extension_is_built() -> None:
    # CI builds it from source with the normal install; a silent build failure would
    # leave every masked row on the slow path, so it is an error here.
    assert scan_rows is not None


CORPUS = sorted(
    {t for _, t, _ in POSITIVES}
    | set(DECOYS)
    | {
        "",
        "0",
        "a@b",
        "x=1",
        "password: hunter2",
        "PASSWORD=hunter2",
        "postgres://u:p@h/db",
        "AKIAIOSFODNN7EXAMPLE",
        "EMP-123456",
        "my PROJECT Xylophone",
        "TCK99",
        "c4ca4238a0b923820dcc509a6f75849b",
        "2024-01-05 12:00:00+00",
        "ünïcödé 4111-1111-1111-1111",
    }
)


@pytest.mark.parametrize("name", sorted(MASKERS))
def test_gate_matches_python_on_the_detector_corpus(name: str) -> None:
    m = MASKERS[name]
    gate = gate_of(m)
    for text in CORPUS:
        raw = text.encode()
        assert gate.may_contain(raw) == m.may_contain(raw), (name, text)


# Values built from the bytes the gates react to, so the interesting branches are hit
# far more often than by uniform random bytes.
PIECES = [
    "0", "1", "4", "9", "12345", "4111", " ", "-", "+", ".", "_", "@", ":", "=", "/", "://",
    "a", "x", "Z", "IA", "AKIA", "eyJ", "xox", "xoxb-", "ghp_", "sk_live_", "-----BEGIN",
    "pass", "PASS", "Pwd", "secret", "TOKEN", "key", "GB", "DE89", "EMP-", "project", "TCK",
    "é", "\u00ff", "\x00", "\n",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.sampled_from(PIECES), max_size=24), name=st.sampled_from(sorted(MASKERS)))
def test_gate_matches_python_on_generated_values(parts: list[str], name: str) -> None:
    m = MASKERS[name]
    raw = "".join(parts).encode()
    assert gate_of(m).may_contain(raw) == m.may_contain(raw)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=64))
def test_gate_matches_python_on_arbitrary_bytes(raw: bytes) -> None:
    m = MASKERS["builtin"]
    assert gate_of(m).may_contain(raw) == m.may_contain(raw)


def test_an_unconditional_custom_detector_sends_every_row_to_python() -> None:
    m = masker(["email"], custom=[CustomDetector("anything", r"zz+")])
    gate = gate_of(m)
    assert gate.may_contain(b"nothing here")
    row = datarow([b"nothing here"])
    assert scan_rows is not None
    assert scan_rows(row, 0, len(row), 1 << 20, gate) == (0, 0, 0)


# ------------------------------------------------------------------ the row walk


def walk(
    data: bytes, gate: object | None = None, max_message: int = 1 << 20
) -> tuple[int, int, int]:
    assert scan_rows is not None
    return scan_rows(data, 0, len(data), max_message, gate)  # type: ignore[arg-type]


def test_passthrough_walk_counts_rows_and_payload_bytes() -> None:
    rows = [datarow([b"1", b"abc"]), datarow([None, b""]), datarow([b"x" * 300])]
    data = b"".join(rows) + b"C\x00\x00\x00\x0dSELECT 3\x00"
    pos, count, nbytes = walk(data)
    assert (pos, count) == (sum(map(len, rows)), 3)
    assert nbytes == sum(len(r) - 7 for r in rows)  # what the observer counts per row


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        (b"D\x00\x00", "a header cut short"),
        (datarow([b"abcdef"])[:-2], "a row cut short"),
        (b"D\x00\x00\x00\x02\x00", "a length below 4"),
        (b"D\x7f\xff\xff\xff", "a length above the limit"),
        (b"T\x00\x00\x00\x04", "another message type"),
    ],
)
def test_the_walk_stops_before_what_it_cannot_vouch_for(tail: bytes, why: str) -> None:
    head = datarow([b"ok"])
    assert walk(head + tail)[:2] == (len(head), 1), why


def test_a_clean_run_goes_by_and_the_walk_stops_at_the_card() -> None:
    gate = gate_of(MASKERS["builtin"], ncols=2)
    clean = [datarow([b"c4ca4238a0b923820dcc509a6f75849b", b"v1.2"]) for _ in range(50)]
    dirty = datarow([b"order 42", b"card 4111 1111 1111 1111"])
    data = b"".join(clean) + dirty + datarow([b"after", b"clean"])
    pos, count, _ = walk(data, gate)
    assert (pos, count) == (sum(map(len, clean)), 50)
    # The row it stopped at is one the Python path changes.
    assert mask_datarow(dirty, text_plan(MASKERS["builtin"], 2)) is not None


def test_only_gated_columns_are_looked_at() -> None:
    m = MASKERS["builtin"]
    policy = MaskingPolicy(m, (), kinds=m.kinds)
    plan = policy.plan_for_result(
        [ColumnInfo("n", None, 23, "text"), ColumnInfo("t", None, 25, "text")]
    )
    assert plan is not None
    gate = native_gate(plan)
    # int4 cannot hold a card: its digits are not scanned, the text column is.
    assert walk(datarow([b"411111111", b"hello"]), gate)[1] == 1
    assert walk(datarow([b"1", b"mail me: a@example.com"]), gate)[1] == 0


@pytest.mark.parametrize(
    "row",
    [
        # column count says 2, one value present
        b"D" + struct.pack(">ih", 4 + 2 + 4 + 2, 2) + struct.pack(">i", 2) + b"ab",
        # a value longer than the message
        b"D" + struct.pack(">ih", 4 + 2 + 4 + 2, 1) + struct.pack(">i", 50) + b"ab",
        # bytes left over after the last column
        b"D" + struct.pack(">ih", 4 + 2 + 4 + 2 + 3, 1) + struct.pack(">i", 2) + b"ab" + b"xyz",
    ],
)
def test_rows_whose_columns_do_not_add_up_are_left_to_python(row: bytes) -> None:
    gate = gate_of(MASKERS["builtin"])
    assert walk(row, gate)[1] == 0  # the Python path raises ProtocolViolationError


def test_argument_checks() -> None:
    assert scan_rows is not None
    with pytest.raises(ValueError, match="pos"):
        scan_rows(b"abc", 2, 1, 100, None)
    with pytest.raises(ValueError, match="pos"):
        scan_rows(b"abc", 0, 10, 100, None)
    with pytest.raises(TypeError, match="Gate"):
        scan_rows(b"abc", 0, 3, 100, object())  # type: ignore[arg-type]


def test_plans_that_need_every_row_get_no_gate() -> None:
    m = MASKERS["builtin"]
    policy = MaskingPolicy(m, (("*.ssn", "ssn"),), kinds=m.kinds)
    plan = policy.plan_for_result([ColumnInfo("ssn", "public.people", 25, "text")])
    assert plan is not None and not plan.row_gate
    assert native_gate(plan) is None
    assert native_gate(plan) is None  # cached


# ------------------------------------------------------------------ COPY TO STDOUT rows


def copydata(line: bytes) -> bytes:
    return b"d" + struct.pack(">i", len(line) + 4) + line


def copy_walk(data: bytes, text_format: bool = True) -> tuple[int, int]:
    from wardgate.masking.native import scan_copy

    assert scan_copy is not None
    gate = gate_of(MASKERS["builtin"])
    return scan_copy(data, 0, len(data), 1 << 20, gate, text_format)


def test_copy_walk_stops_at_a_line_the_gate_cannot_rule_out() -> None:
    clean = [copydata(b"%d\tc4ca4238a0b923820dcc509a6f75849b\n" % i) for i in range(3)]
    dirty = copydata(b"9\tjane@example.com\n")
    data = b"".join(clean) + dirty + copydata(b"10\tok\n")
    assert copy_walk(data) == (sum(map(len, clean)), 3)


def test_copy_walk_leaves_escaped_text_lines_to_python() -> None:
    # \100 is '@' once unescaped: only the Python path, which unescapes, may judge it.
    line = copydata(b"1\tjane\\100example.com\n")
    assert copy_walk(line, text_format=True) == (0, 0)
    assert copy_walk(copydata(b"1,plain\n"), text_format=False) == (len(copydata(b"1,plain\n")), 1)


def test_copy_walk_stops_at_other_messages() -> None:
    done = b"c\x00\x00\x00\x04"
    line = copydata(b"1\tok\n")
    assert copy_walk(line + done) == (len(line), 1)


# ------------------------------------------------------------------ against a reference


def reference_walk(
    data: bytes, pos: int, end: int, max_message: int, m: ValueMasker | None, actions: bytes
) -> tuple[int, int, int]:
    """The walk spelled out in Python: what scan_rows must return, byte for byte."""
    rows = nbytes = 0
    while end - pos >= 5 and data[pos] == 0x44:
        length = int.from_bytes(data[pos + 1 : pos + 5], "big")
        if length < 4 or length > max_message or pos + 1 + length > end:
            break
        mend = pos + 1 + length
        if m is not None:
            if mend - pos < 7:
                break
            ncols = int.from_bytes(data[pos + 5 : pos + 7], "big", signed=True)
            off, ok = pos + 7, True
            for i in range(max(ncols, 0)):
                if mend - off < 4:
                    ok = False
                    break
                n = int.from_bytes(data[off : off + 4], "big", signed=True)
                off += 4
                if n < 0:
                    continue
                if mend - off < n:
                    ok = False
                    break
                gated = actions[i] if i < len(actions) else 1
                if gated and m.may_contain(data[off : off + n]):
                    ok = False
                    break
                off += n
            if not ok or off != mend:
                break
        rows += 1
        nbytes += length - 6
        pos = mend
    return pos, rows, nbytes


ROW_VALUES = st.one_of(
    st.none(),
    st.sampled_from([b"", b"ok", b"4111 1111 1111 1111", b"a@b.co", b"c4ca4238a0b9238"]),
    st.binary(max_size=12),
)
SEGMENTS = st.one_of(
    st.lists(ROW_VALUES, max_size=4).map(datarow),
    st.binary(max_size=12),  # garbage: bad lengths, other message types, cut rows
    st.lists(ROW_VALUES, max_size=3).map(lambda vs: datarow(vs)[: max(1, len(datarow(vs)) - 3)]),
)


@settings(max_examples=500, deadline=None)
@given(
    segments=st.lists(SEGMENTS, max_size=8),
    gated=st.booleans(),
    cut=st.integers(min_value=0, max_value=40),
    max_message=st.sampled_from([4, 20, 1 << 20]),
)
def test_the_walk_matches_a_python_reference_on_hostile_input(
    segments: list[bytes], gated: bool, cut: int, max_message: int
) -> None:
    data = b"".join(segments)
    end = max(0, len(data) - cut)
    m = MASKERS["builtin"] if gated else None
    gate = None
    if m is not None:
        from wardgate._rowscan import Gate

        gate = Gate(b"", 1, *m.native_spec())  # no per-column actions: every column gated
    assert scan_rows is not None
    assert scan_rows(data, 0, end, max_message, gate) == reference_walk(
        data, 0, end, max_message, m, b""
    )


def whole_values(msg: bytes) -> bool:
    """Every value a DataRow announces lies inside it (what pg_cells insists on)."""
    if len(msg) < 7:
        return False
    ncols, off = int.from_bytes(msg[5:7], "big", signed=True), 7
    if ncols < 0:
        return False
    for _ in range(ncols):
        if len(msg) - off < 4:
            return False
        n = int.from_bytes(msg[off : off + 4], "big", signed=True)
        off += 4
        if n >= 0:
            if len(msg) - off < n:
                return False
            off += n
    return True


def reference_capture_rows(
    data: bytes,
    end: int,
    max_message: int,
    m: ValueMasker | None,
    formats: list[int],
    room_rows: int,
    room_bytes: int,
) -> tuple[tuple[int, int, int, int], list[list[str | None]]]:
    """What capture_rows may take: the walk's rows that decode as the Python capture
    decodes them and fit what the capture still keeps, decoded that way."""
    from wardgate.server.pg_observer import decode_data_row

    pos = rows = nbytes = size = 0
    kept: list[list[str | None]] = []
    while rows < room_rows:
        _, one, _ = reference_walk(data, pos, end, max_message, m, b"")
        if not one:
            break
        mend = pos + 1 + int.from_bytes(data[pos + 1 : pos + 5], "big")
        if not whole_values(data[pos:mend]):
            break  # the Python path takes it (and its decoder is the lenient one)
        cells = decode_data_row(data[pos:mend], formats)
        if capture_size(cells) > room_bytes - size:
            break
        kept.append(cells)
        size += capture_size(cells)
        rows += 1
        nbytes += mend - pos - 7
        pos = mend
    return (pos, rows, nbytes, size), kept


@settings(max_examples=500, deadline=None)
@given(
    segments=st.lists(SEGMENTS, max_size=8),
    gated=st.booleans(),
    cut=st.integers(min_value=0, max_value=40),
    max_message=st.sampled_from([20, 1 << 20]),
    formats=st.lists(st.sampled_from([0, 1]), max_size=4),
    room_rows=st.integers(0, 9),
    room_bytes=st.sampled_from([0, 5, 40, 1 << 20]),
)
def test_the_capture_walk_takes_and_decodes_exactly_what_the_reference_does(
    segments: list[bytes],
    gated: bool,
    cut: int,
    max_message: int,
    formats: list[int],
    room_rows: int,
    room_bytes: int,
) -> None:
    from wardgate.masking.native import capture_rows

    assert capture_rows is not None
    data = b"".join(segments)
    end = max(0, len(data) - cut)
    m = MASKERS["builtin"] if gated else None
    gate = None
    if m is not None:
        from wardgate._rowscan import Gate

        gate = Gate(b"", 1, *m.native_spec())
    kept: list[list[str | None]] = []
    got = capture_rows(data, 0, end, max_message, gate, formats, kept, room_rows, room_bytes)
    want, want_kept = reference_capture_rows(
        data, end, max_message, m, formats, room_rows, room_bytes
    )
    assert (got, kept) == (want, want_kept)


def test_the_capture_walk_refuses_bad_arguments() -> None:
    from wardgate.masking.native import capture_rows

    assert capture_rows is not None
    data = datarow([b"1", None]) + datarow([b"\xff", b"x"])
    kept: list[list[str | None]] = []
    assert capture_rows(data, 0, len(data), 1 << 20, None, [0, 1], kept, 5, 100) == (
        len(data), 2, 9 + 10, 1 + 3 + 4  # "1"; U+FFFD is 3 bytes of UTF-8; "\\x78"
    )  # fmt: skip
    assert kept == [["1", None], ["\ufffd", "\\x78"]]
    with pytest.raises(ValueError):
        capture_rows(data, 0, len(data) + 1, 1 << 20, None, [], [], 5, 100)
    with pytest.raises(TypeError):
        capture_rows(data, 0, len(data), 1 << 20, object(), [], [], 5, 100)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        capture_rows(data, 0, len(data), 1 << 20, None, [0], None, 5, 100)  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # a format that is not an int fails, as in pg_cells
        capture_rows(data, 0, len(data), 1 << 20, None, ["x"], [], 5, 100)  # type: ignore[list-item]


def test_the_pure_python_switch_turns_the_extension_off() -> None:
    import subprocess
    import sys

    code = (
        "import wardgate.masking.native as n, wardgate.server.pg_relay as r; "
        "assert n.scan_rows is None and n.scan_copy is None and r._scan_rows is None; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "WARDGATE_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_a_gate_is_initialised_once_and_checks_its_tables() -> None:
    from wardgate._rowscan import Gate

    spec = MASKERS["builtin"].native_spec()
    gate = Gate(b"\x01", 0, *spec)
    with pytest.raises(RuntimeError, match="already"):
        gate.__init__(b"\x01", 0, *spec)  # type: ignore[misc]
    with pytest.raises(ValueError, match="256"):
        Gate(b"", 1, spec.unconditional, b"\x00" * 10, *spec[2:])
    with pytest.raises(ValueError, match="kept"):
        Gate(
            b"",
            1,
            spec.unconditional,
            b"\x00" * 256,
            0,
            (),
            ((ord("@"), (b"@",), (), False),),
            (),
            (),
        )
    with pytest.raises(TypeError, match="bytes"):
        Gate(b"", 1, False, b"\x00" * 256, 0, (), (), ("str",), ())  # type: ignore[arg-type]
    broken = Gate.__new__(Gate)
    with pytest.raises(RuntimeError, match="not initialised"):
        broken.may_contain(b"x")


# ----------------------------------------------------------------- MySQL row packets
def reference_mysql_walk(
    data: bytes, pos: int, end: int, max_payload: int, seq: int, gate: object | None
) -> tuple[int, int, int, int]:
    """What scan_mysql_rows may take: complete single-packet rows in sequence that the
    tracker calls ROW and (with a gate) that the gate rules out."""
    rows = nbytes = 0
    while end - pos >= 5:
        n = int.from_bytes(data[pos : pos + 3], "little")
        if not 0 < n < 0xFFFFFF or n > max_payload or data[pos + 3] != seq or end - pos - 4 < n:
            break
        payload = data[pos + 4 : pos + 4 + n]
        if payload[0] in (0xFE, 0xFF):
            break
        if gate is not None and gate.may_contain(payload):  # type: ignore[attr-defined]
            break
        rows += 1
        nbytes += n
        seq = (seq + 1) & 0xFF
        pos += 4 + n
    return pos, rows, nbytes, seq


def mysql_packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload


mysql_payloads = st.one_of(
    st.binary(min_size=1, max_size=40),
    st.sampled_from([b"\x05hello", b"\xfe\x00\x00\x02\x00", b"\xff\x10\x04#HY000oops",
                     b"\x14jane.doe@example.com", b"\x134111 1111 1111 1111", b"\x00\x00",
                     b"\xfb", b"\x03abc\xfb"]),
)  # fmt: skip


@settings(max_examples=300)
@given(
    st.lists(st.tuples(mysql_payloads, st.sampled_from([0, 0, 0, 1, 2])), max_size=12),
    st.integers(0, 255),
    st.integers(0, 12),
    st.sampled_from([None, "builtin"]),
    st.sampled_from([1 << 20, 8]),
)
def test_the_mysql_row_walk_takes_exactly_what_the_reference_takes(
    packets: list[tuple[bytes, int]], seq: int, cut: int, gate_name: str | None, max_payload: int
) -> None:
    from wardgate.masking.native import scan_mysql_rows

    assert scan_mysql_rows is not None
    gate = None
    if gate_name is not None:
        m = MASKERS[gate_name]
        spec = m.native_spec()
        from wardgate._rowscan import Gate

        gate = Gate(b"", 1, *spec)
    data = b""
    s = seq
    for payload, skew in packets:  # skew: a sequence id out of order now and then
        data += mysql_packet(s + skew, payload)
        s = (s + 1 + skew) & 0xFF
    data += b"\x07\x00\x00"  # a header cut short at the end
    end = max(0, len(data) - cut)
    got = scan_mysql_rows(data, 0, end, max_payload, seq, gate)
    assert got == reference_mysql_walk(data, 0, end, max_payload, seq, gate)
    # it stops on a packet boundary of what it was given
    assert got[0] <= end


def test_the_mysql_row_walk_refuses_bad_spans_and_gates() -> None:
    from wardgate.masking.native import scan_mysql_rows

    assert scan_mysql_rows is not None
    data = mysql_packet(3, b"\x01a") + mysql_packet(4, b"\x01b")
    assert scan_mysql_rows(data, 0, len(data), 1 << 20, 3, None) == (len(data), 2, 4, 5)
    assert scan_mysql_rows(data, 0, len(data), 1 << 20, 2, None) == (0, 0, 0, 2)
    with pytest.raises(ValueError):
        scan_mysql_rows(data, 0, len(data) + 1, 1 << 20, 3, None)
    with pytest.raises(TypeError):
        scan_mysql_rows(data, 0, len(data), 1 << 20, 3, object())  # type: ignore[arg-type]


# ------------------------------------------------- rows as the recording captures them
def capture_size(cells: list[str | None]) -> int:
    """ResultCapture.add's size of a row."""
    return sum(
        len(v) if v.isascii() else len(v.encode("utf-8", "replace")) for v in cells if v is not None
    )


cell_bytes = st.one_of(
    st.binary(max_size=20),
    st.text(max_size=8).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"\xff\xfe", b"\xc3", b"\xe2\x82", b"caf\xc3\xa9", b"\xed\xa0\x80"]),
)


@settings(max_examples=300)
@given(
    st.lists(st.none() | cell_bytes, max_size=6),
    st.lists(st.sampled_from([0, 1]), max_size=7),
    st.integers(0, 6),
)
def test_pg_cells_decode_as_the_python_capture_does(
    values: list[bytes | None], formats: list[int], cut: int
) -> None:
    from wardgate.masking.native import pg_cells
    from wardgate.server.pg_observer import decode_data_row

    assert pg_cells is not None
    msg = datarow(values)
    assert pg_cells(msg, formats) == (
        decode_data_row(msg, formats),
        capture_size(decode_data_row(msg, formats)),
    )
    if cut and values:  # a row cut short: the Python decoder takes it (and reports it)
        assert pg_cells(msg[: len(msg) - cut], formats) is None


@settings(max_examples=300)
@given(st.lists(st.none() | cell_bytes, min_size=1, max_size=6), st.binary(max_size=12))
def test_mysql_text_cells_decode_as_the_python_capture_does(
    values: list[bytes | None], garbage: bytes
) -> None:
    from wardgate.masking.native import mysql_text_cells
    from wardgate.proto.mysql.messages import encode_text_row, parse_text_row

    assert mysql_text_cells is not None
    row = encode_text_row(values)
    expected = [None if v is None else v.decode("utf-8", "replace") for v in values]
    assert mysql_text_cells(row, len(values)) == (expected, capture_size(expected))
    for bad in (row + b"x", row[:-1], garbage):
        try:
            parsed = parse_text_row(bad, len(values))
        except Exception:
            assert mysql_text_cells(bad, len(values)) is None
        else:
            cells = [None if v is None else v.decode("utf-8", "replace") for v in parsed]
            assert mysql_text_cells(bad, len(values)) == (cells, capture_size(cells))


def reference_capture_walk(
    data: bytes,
    end: int,
    max_payload: int,
    seq: int,
    gate: object | None,
    ncols: int,
    room_rows: int,
    room_bytes: int,
) -> tuple[tuple[int, int, int, int, int], list[list[str | None]]]:
    """What capture_mysql_rows may take: the row walk's rows that parse as text rows of
    ``ncols`` columns and fit what the capture still keeps, decoded as on_row keeps them."""
    from wardgate.proto.mysql.messages import parse_text_row

    pos = rows = nbytes = size = 0
    kept: list[list[str | None]] = []
    while rows < room_rows:
        _, one, _, _ = reference_mysql_walk(data, pos, end, max_payload, seq, gate)
        if not one:
            break
        nxt = pos + 4 + int.from_bytes(data[pos : pos + 3], "little")
        payload = data[pos + 4 : nxt]
        try:
            values = parse_text_row(payload, ncols)
        except Exception:
            break
        cells = [None if v is None else bytes(v).decode("utf-8", "replace") for v in values]
        if capture_size(cells) > room_bytes - size:
            break
        kept.append(cells)
        size += capture_size(cells)
        rows += 1
        nbytes += len(payload)
        seq = (seq + 1) & 0xFF
        pos = nxt
    return (pos, rows, nbytes, seq, size), kept


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.lists(st.none() | cell_bytes, min_size=2, max_size=2).map(encode_text_row),
            mysql_payloads,
        ),
        max_size=10,
    ),
    st.integers(0, 255),
    st.integers(0, 12),
    st.sampled_from([None, "builtin"]),
    st.integers(0, 11),
    st.sampled_from([0, 3, 20, 1 << 20]),
)
def test_the_mysql_capture_walk_takes_and_decodes_exactly_what_the_reference_does(
    payloads: list[bytes],
    seq: int,
    cut: int,
    gate_name: str | None,
    room_rows: int,
    room_bytes: int,
) -> None:
    from wardgate.masking.native import capture_mysql_rows

    assert capture_mysql_rows is not None
    gate = None
    if gate_name is not None:
        from wardgate._rowscan import Gate

        gate = Gate(b"", 1, *MASKERS[gate_name].native_spec())
    data = b"".join(mysql_packet(seq + i, p) for i, p in enumerate(payloads))
    data += b"\x07\x00\x00"  # a header cut short at the end
    end = max(0, len(data) - cut)
    kept: list[list[str | None]] = []
    got = capture_mysql_rows(data, 0, end, 1 << 20, seq, gate, 2, kept, room_rows, room_bytes)
    want, want_kept = reference_capture_walk(
        data, end, 1 << 20, seq, gate, 2, room_rows, room_bytes
    )
    assert (got, kept) == (want, want_kept)
    assert got[0] <= end and got[1] <= room_rows and got[4] <= room_bytes


def test_the_mysql_capture_walk_refuses_bad_arguments_and_keeps_what_came_before() -> None:
    from wardgate.masking.native import capture_mysql_rows

    assert capture_mysql_rows is not None
    rows = [[b"1", b"caf\xc3\xa9"], [None, b"x"], [b"3", b"\xff"]]
    data = b"".join(mysql_packet(7 + i, encode_text_row(r)) for i, r in enumerate(rows))
    kept: list[list[str | None]] = [["before", None]]
    got = capture_mysql_rows(data, 0, len(data), 1 << 20, 7, None, 2, kept, 10, 100)
    assert got == (len(data), 3, len(data) - 12, 10, 1 + 5 + 1 + 1 + 3)
    assert kept == [["before", None], ["1", "café"], [None, "x"], ["3", "\ufffd"]]
    # room: two rows, or the bytes of the first row only
    assert capture_mysql_rows(data, 0, len(data), 1 << 20, 7, None, 2, [], 2, 100)[1] == 2
    assert capture_mysql_rows(data, 0, len(data), 1 << 20, 7, None, 2, [], 10, 6)[1] == 1
    # a row of the wrong column count stops the walk before it (Python reports it)
    assert capture_mysql_rows(data, 0, len(data), 1 << 20, 7, None, 3, [], 10, 100)[1] == 0
    with pytest.raises(ValueError):
        capture_mysql_rows(data, 0, len(data) + 1, 1 << 20, 7, None, 2, [], 10, 100)
    with pytest.raises(TypeError):
        capture_mysql_rows(data, 0, len(data), 1 << 20, 7, object(), 2, [], 10, 100)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        capture_mysql_rows(data, 0, len(data), 1 << 20, 7, None, 2, (), 10, 100)  # type: ignore[arg-type]


def bind_message(
    portal: bytes, stmt: bytes, pfmts: list[int], values: list[bytes | None], rfmts: list[int]
) -> bytes:
    body = portal + b"\x00" + stmt + b"\x00" + struct.pack(f"!h{len(pfmts)}h", len(pfmts), *pfmts)
    body += struct.pack("!h", len(values))
    for v in values:
        body += struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v
    body += struct.pack(f"!h{len(rfmts)}h", len(rfmts), *rfmts)
    return b"B" + struct.pack("!i", len(body) + 4) + body


name_bytes = st.sampled_from([b"", b"P0_1", b"caf\xc3\xa9", b"\xff", b"\xed\xa0\x80"])
TYPES = [23, 20, 16, 25, 701, 1043, 0]


@settings(max_examples=400)
@example(b"\xff", b"", [], [], [], -7, b"")  # the portal fails first; the name search too
@given(
    name_bytes,
    name_bytes,
    st.lists(st.sampled_from([0, 1, 2, -1]), max_size=4),
    st.lists(st.none() | cell_bytes, max_size=5),
    st.lists(st.sampled_from([0, 1]), max_size=3),
    st.integers(-8, 8),
    st.binary(max_size=6),
)
def test_pg_bind_reads_a_bind_as_the_python_parser_does(
    portal: bytes,
    stmt: bytes,
    pfmts: list[int],
    values: list[bytes | None],
    rfmts: list[int],
    cut: int,
    tail: bytes,
) -> None:
    """Whatever the compiled reader accepts it reads exactly as ``_parse_bind`` (binary
    parameters rendered by their types); whatever it declines, the Python parser gets."""
    from wardgate.masking.native import pg_bind
    from wardgate.server.pg_observer import _parse_bind, parse_bind

    assert pg_bind is not None
    whole = bind_message(portal, stmt, pfmts, values, rfmts)
    msg = whole[:cut] if cut < 0 else whole + tail[:cut]
    types = TYPES[: len(values)]
    asked: list[str] = []

    def types_of(name: str) -> list[int]:
        asked.append(name)
        return types

    try:
        expected = _parse_bind(msg, types)
    except Exception as e:  # the reference refuses it: so must parse_bind, the same way
        with pytest.raises(type(e)):
            parse_bind(msg, types_of)
        assert pg_bind(msg) is None
        return
    assert parse_bind(msg, types_of) == expected
    if msg == whole and portal != b"\xff" and stmt not in (b"\xff", b"\xed\xa0\x80"):
        got = pg_bind(msg)
        assert got is not None  # a well-formed Bind is read in C
        binary = got[4]
        assert binary == any(isinstance(v, bytes) for v in got[2])
        assert asked == ([stmt.decode()] if binary else [])


def test_pg_bind_declines_what_the_python_parser_reads_differently() -> None:
    from wardgate.masking.native import pg_bind

    assert pg_bind is not None
    ok = bind_message(b"", b"s", [0], [b"42"], [1])
    assert pg_bind(ok) == ("", "s", ["42"], [1], False)
    # a value longer than the message: Python slices it short; C leaves it to Python
    assert pg_bind(bind_message(b"", b"s", [0], [b"42"], [])[:-3]) is None
    assert pg_bind(b"B\x00\x00\x00\x04") is None  # no names
    negative = b"B\x00\x00\x00\x0a\x00s\x00\xff\xff\x00\x00"
    assert pg_bind(negative) is None  # a negative format count
    with pytest.raises(TypeError):
        pg_bind("not bytes")  # type: ignore[arg-type]


# ---------------------------------------------------- MySQL binary rows for the capture
_BINARY_TYPES = [1, 2, 3, 8, 9, 13, 4, 5, 7, 10, 12, 14, 11, 6, 15, 246, 252, 253, 254, 16]


def _binary_value(t: int, unsigned: bool) -> st.SearchStrategy[object]:
    from wardgate.proto.mysql.binary import DateTimeValue, TimeValue

    widths = {1: 1, 2: 2, 13: 2, 3: 4, 9: 4, 8: 8}
    if t in widths:
        bits = 8 * widths[t]
        return (
            st.integers(0, 2**bits - 1)
            if unsigned
            else st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        )
    if t in (4, 5):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if t == 4 else 64)
    if t in (7, 10, 12, 14):
        return st.builds(
            DateTimeValue, st.integers(0, 9999), st.integers(0, 12), st.integers(0, 31),
            st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
            st.sampled_from([0, 1, 999_999, 4_294_967_295]),
        )  # fmt: skip
    if t == 11:
        return st.builds(
            TimeValue, st.booleans(), st.sampled_from([0, 1, 34, 4_294_967_295]),
            st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
            st.sampled_from([0, 5, 999_999]),
        )  # fmt: skip
    if t == 6:
        return st.just(b"")
    return cell_bytes | st.binary(min_size=250, max_size=300)


@st.composite
def binary_rows(draw: st.DrawFn) -> tuple[bytes, bytes]:
    from wardgate.proto.mysql.binary import ValueType, encode_binary_row

    cols = draw(st.lists(st.tuples(st.sampled_from(_BINARY_TYPES), st.booleans()), max_size=6))
    values = [
        None if t != 6 and draw(st.integers(0, 4)) == 0 else draw(_binary_value(t, u))
        for t, u in cols
    ]
    values = [None if t == 6 else v for (t, _), v in zip(cols, values, strict=True)]
    vtypes = [ValueType(t, u) for t, u in cols]
    row = encode_binary_row(values, vtypes)  # type: ignore[arg-type]
    return row, b"".join(bytes((t, int(u))) for t, u in cols)


def reference_binary_cells(row: bytes, types: bytes) -> list[str | None]:
    from wardgate.proto.mysql.binary import ValueType, parse_binary_row
    from wardgate.server.mysql_observer import _cell

    vtypes = [ValueType(types[i], bool(types[i + 1])) for i in range(0, len(types), 2)]
    return [_cell(v) for v in parse_binary_row(row, vtypes)]


@settings(max_examples=500)
@given(binary_rows(), st.integers(0, 3), st.binary(max_size=4))
def test_mysql_binary_cells_decode_as_the_python_capture_does(
    row_types: tuple[bytes, bytes], cut: int, tail: bytes
) -> None:
    """A row the driver could send decodes exactly as the observer's Python path renders
    it; a row cut short or with bytes after it is declined or read the same way."""
    from wardgate.masking.native import mysql_binary_cells

    assert mysql_binary_cells is not None
    row, types = row_types
    want = reference_binary_cells(row, types)
    assert mysql_binary_cells(row, types) == (want, capture_size(want))
    for bad in (row[: len(row) - cut] if cut else row + b"\x00", row + tail):
        got = mysql_binary_cells(bad, types)
        if got is not None:
            assert got == (reference_binary_cells(bad, types), got[1])
            assert got[1] == capture_size(got[0])


def test_mysql_binary_cells_values_and_refusals() -> None:
    from wardgate.masking.native import mysql_binary_cells
    from wardgate.proto.mysql.binary import DateTimeValue, TimeValue, ValueType, encode_binary_row

    assert mysql_binary_cells is not None
    vt = [
        ValueType(1),
        ValueType(8, True),
        ValueType(5),
        ValueType(12),
        ValueType(11),
        ValueType(253),
    ]
    row = encode_binary_row(
        [
            -5,
            2**64 - 1,
            0.1,
            DateTimeValue(2024, 2, 29, 12, 0, 0, 7),
            TimeValue(True, 1, 2, 3, 4),
            b"x",
        ],
        vt,
    )
    types = b"".join(bytes((v.type, int(v.unsigned))) for v in vt)
    cells = ["-5", "18446744073709551615", "0.1", "2024-02-29 12:00:00.000007", "-26:03:04", "x"]
    assert mysql_binary_cells(row, types) == (cells, sum(map(len, cells)))
    assert mysql_binary_cells(b"\x01" + row[1:], types) is None  # not a binary row
    assert mysql_binary_cells(row[:-1], types) is None
    with pytest.raises(ValueError, match="two bytes"):
        mysql_binary_cells(row, types[:-1])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(binary_rows(), min_size=1, max_size=6),
    st.integers(0, 7),
    st.sampled_from([0, 20, 1 << 20]),
)
def test_the_mysql_capture_walk_decodes_binary_rows_as_the_reference(
    rows: list[tuple[bytes, bytes]], room_rows: int, room_bytes: int
) -> None:
    from wardgate.masking.native import capture_mysql_rows

    assert capture_mysql_rows is not None
    types = rows[0][1]
    payloads = [r for r, t in rows if t == types]
    data = b"".join(mysql_packet(5 + i, p) for i, p in enumerate(payloads))
    kept: list[list[str | None]] = []
    ncols = len(types) // 2
    got = capture_mysql_rows(
        data, 0, len(data), 1 << 20, 5, None, ncols, kept, room_rows, room_bytes, types
    )
    want_kept: list[list[str | None]] = []
    size = 0
    for p in payloads[:room_rows]:
        if p[0] in (0xFE, 0xFF):
            break
        cells = reference_binary_cells(p, types)
        if capture_size(cells) > room_bytes - size:
            break
        want_kept.append(cells)
        size += capture_size(cells)
    assert kept == want_kept and got[1] == len(want_kept) and got[4] == size
    with pytest.raises(ValueError, match="disagree"):
        capture_mysql_rows(data, 0, len(data), 1 << 20, 5, None, ncols + 1, [], 1, 1, types)
