"""The compiled row walk alone: ns per DataRow, gated (masking on) and ungated.

    .venv/bin/python bench/rowscan.py            # 200k rows of (int, md5 text)
    WARDGATE_PURE_PYTHON=1 .venv/bin/python bench/rowscan.py   # the Python path instead

Builds the rows ``bench/run.py``'s 1M-row table holds, a masking plan for them with every
built-in detector, and times ``scan_rows`` over the whole buffer (best of 5). With the
extension disabled it times the Python path the relay then takes per row
(``mask_datarow``), for comparison. Also prints how many values pass the gate.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import time


def datarow(values: list[bytes]) -> bytes:
    body = struct.pack(">h", len(values)) + b"".join(
        struct.pack(">i", len(v)) + v for v in values
    )
    return b"D" + struct.pack(">i", len(body) + 4) + body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=200_000)
    n = ap.parse_args().n

    from wardgate.masking.detectors import BUILTIN_KINDS, build_detectors
    from wardgate.masking.engine import ColumnInfo, MaskingPolicy, ValueMasker
    from wardgate.masking.formats import Formatter
    from wardgate.masking.native import native_gate, scan_rows
    from wardgate.masking.pg_rows import mask_datarow

    masker = ValueMasker(build_detectors(BUILTIN_KINDS), Formatter({}, b"k" * 32))
    plan = MaskingPolicy(masker, (), kinds=masker.kinds).plan_for_result(
        [ColumnInfo("g", None, 23, "text"), ColumnInfo("t", None, 25, "text")]
    )
    assert plan is not None
    values = [hashlib.md5(str(g).encode()).hexdigest().encode() for g in range(1, n + 1)]
    rows = [datarow([str(g).encode(), v]) for g, v in enumerate(values, 1)]
    data = b"".join(rows)
    passing = sum(1 for v in values if masker.may_contain(v))
    print(f"{n} rows of (int, md5 text); values passing the gate: {passing}")

    def best(fn: object) -> float:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        return min(times) / n * 1e9

    if scan_rows is None:
        print(f"python mask_datarow: {best(lambda: [mask_datarow(r, plan) for r in rows]):.0f} ns/row")
        return
    gate = native_gate(plan)
    print(f"scan_rows, gated:   {best(lambda: scan_rows(data, 0, len(data), 1 << 30, gate)):.1f} ns/row")
    print(f"scan_rows, ungated: {best(lambda: scan_rows(data, 0, len(data), 1 << 30, None)):.1f} ns/row")


if __name__ == "__main__":
    main()
