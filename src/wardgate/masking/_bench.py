"""Micro-benchmark of the masking data path: ``python -m wardgate.masking._bench``.

Not a test (timings depend on the machine); it prints µs per DataRow for the shapes the
gateway sees, next to a baseline that only walks the DataRow lengths, so numbers from a
busy machine can still be compared. Times are this process's CPU time (not wall time, so
other processes on a shared machine do not count) and each figure is the best of several
repeats.
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable, Sequence

from wardgate.masking.config import MaskingConfig
from wardgate.masking.engine import ColumnInfo, MaskingPolicy, ResultMaskPlan
from wardgate.masking.pg_rows import mask_datarow

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


def datarow(values: Sequence[bytes | None]) -> bytes:
    body = _I16.pack(len(values)) + b"".join(
        _I32.pack(-1) if v is None else _I32.pack(len(v)) + v for v in values
    )
    return b"D" + _I32.pack(len(body) + 4) + body


def walk_only(msg: bytes) -> None:
    """The floor: what any per-row Python work costs (walk the column lengths)."""
    (ncols,) = _I16.unpack_from(msg, 5)
    off = 7
    for _ in range(ncols):
        (n,) = _I32.unpack_from(msg, off)
        off += 4 + (n if n > 0 else 0)


def best_us(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, (time.process_time() - t0) / number)
    return best * 1e6


def _policy(formats: dict[str, str]) -> MaskingPolicy:
    config = MaskingConfig.model_validate(
        {
            "pseudonym_key": "bench-key-0123456789abcdef",
            "phone_regions": ["US"],
            "detectors": {k: {"format": v} for k, v in formats.items()},
        }
    )
    policy = config.masking_plan_for(frozenset({"agents"}))
    assert policy is not None
    return policy


def _customers(i: int) -> bytes:
    return datarow(
        [
            str(100000 + i).encode(),
            b"Alice Johnson",
            f"alice.johnson{i}@example.com".encode(),
            f"(415) 555-{i % 10000:04d}".encode(),
            b"Springfield",
            b"2024-01-15 10:30:00+00",
        ]
    )


CUSTOMER_COLUMNS = [
    ColumnInfo("id", "public.customers", 23),
    ColumnInfo("name", "public.customers", 25),
    ColumnInfo("email", "public.customers", 1043),
    ColumnInfo("phone", "public.customers", 1043),
    ColumnInfo("city", "public.customers", 1043),
    ColumnInfo("created_at", "public.customers", 1184),
]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the streaming run")
    args = parser.parse_args(argv)
    policy = _policy({})
    results: list[tuple[str, float]] = []

    # (a) pgbench -S: one int4 column. The plan is None, so the gateway never calls us.
    pgbench_plan = policy.plan_for_result([ColumnInfo("abalance", "public.pgbench_accounts", 23)])
    assert pgbench_plan is None
    pgbench_row = datarow([b"-4211"])
    results.append(
        ("baseline: walk DataRow lengths, 1 col", best_us(lambda: walk_only(pgbench_row), 200_000))
    )
    results.append(
        (
            "(a) pgbench -S row (plan None: `if plan is None`)",
            best_us(lambda: pgbench_plan is None, 200_000),
        )
    )
    # pgbench_accounts SELECT *: aid, bid, abalance int4 + filler bpchar(84) of spaces.
    accounts = policy.plan_for_result(
        [
            ColumnInfo("aid", "public.pgbench_accounts", 23),
            ColumnInfo("bid", "public.pgbench_accounts", 23),
            ColumnInfo("abalance", "public.pgbench_accounts", 23),
            ColumnInfo("filler", "public.pgbench_accounts", 1042),
        ]
    )
    assert accounts is not None
    accounts_row = datarow([b"12345", b"1", b"0", b" " * 84])
    results.append(
        ("(a') pgbench_accounts SELECT * (filler scanned)", _row_us(accounts_row, accounts))
    )

    # (b) a 5-column row with name / e-mail / card, per format choice.
    cols5 = [
        ColumnInfo("id", "public.customers", 23),
        ColumnInfo("name", "public.customers", 25),
        ColumnInfo("email", "public.customers", 25),
        ColumnInfo("card", "public.customers", 25),
        ColumnInfo("note", "public.customers", 25),
    ]
    clean = datarow([b"42", b"Alice Johnson", b"Springfield", b"active", b"regular customer"])
    sensitive = datarow(
        [b"42", b"Alice Johnson", b"alice@example.com", b"4111 1111 1111 1111", b"regular customer"]
    )
    walk5 = best_us(lambda: walk_only(clean), 200_000)
    results.append(("baseline: walk DataRow lengths, 5 cols", walk5))
    plan5 = policy.plan_for_result(cols5)
    assert plan5 is not None
    results.append(("(b0) 5 text cols, nothing sensitive", _row_us(clean, plan5)))
    results.append(("(b) name/email/card row, default formats", _row_us(sensitive, plan5)))
    pseudo = _policy({"email": "pseudonym", "card": "pseudonym"}).plan_for_result(cols5)
    assert pseudo is not None
    results.append(("(b) name/email/card row, pseudonyms", _row_us(sensitive, pseudo)))

    # (c) stream N distinct customers rows (e-mail and phone in every row).
    plan_c = policy.plan_for_result(CUSTOMER_COLUMNS)
    assert plan_c is not None
    rows = [_customers(i) for i in range(args.rows)]
    results.append((f"baseline: walk {len(rows)} customers rows", _stream_us(rows, walk_only)))
    changed = sum(mask_datarow(r, plan_c) is not None for r in rows[:1000])
    results.append(
        (f"(c) mask {len(rows)} customers rows ({changed}/1000 changed)",
         _stream_us(rows, lambda r: mask_datarow(r, plan_c)))
    )  # fmt: skip
    # (c') the same rows when the operator names the sensitive columns: whole-value
    # masking skips detection for them (the remaining text columns are still scanned).
    ruled = MaskingConfig.model_validate(
        {"columns": [{"column": "customers.email", "kind": "email"},
                     {"column": "customers.phone", "kind": "phone"}]}
    ).masking_plan_for(frozenset({"agents"}))  # fmt: skip
    assert ruled is not None
    plan_r = ruled.plan_for_result(CUSTOMER_COLUMNS)
    assert plan_r is not None
    results.append(
        ("(c') same rows, column rules for email/phone",
         _stream_us(rows, lambda r: mask_datarow(r, plan_r)))
    )  # fmt: skip
    clean_rows = [
        datarow([str(i).encode(), b"Alice Johnson", b"Springfield", b"active", b"gold",
                 b"2024-01-15"])
        for i in range(min(args.rows, 200_000))
    ]  # fmt: skip
    plan_clean = policy.plan_for_result(
        [ColumnInfo(c, "public.t", 1043) for c in ("id", "name", "city", "status", "tier", "day")]
    )
    assert plan_clean is not None
    results.append(
        (f"(c0) {len(clean_rows)} 6 varchar cols (id, date as text), nothing sensitive",
         _stream_us(clean_rows, lambda r: mask_datarow(r, plan_clean)))
    )  # fmt: skip

    width = max(len(name) for name, _ in results)
    for name, us in results:
        print(f"{name:<{width}}  {us:8.2f} µs/row")
    print(
        "(single rows: best of 7 runs; streams: best 50k-row chunk, so a busy machine shows "
        "less noise; 'walk' is the floor for any per-row Python work)"
    )


def _stream_us(rows: Sequence[bytes], fn: Callable[[bytes], object], chunk: int = 50_000) -> float:
    """µs per row over ``rows``: the best chunk, which approximates an idle machine."""
    best = float("inf")
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        t0 = time.process_time()
        for r in part:
            fn(r)
        best = min(best, (time.process_time() - t0) / len(part))
    return best * 1e6


def _row_us(row: bytes, plan: ResultMaskPlan) -> float:
    mask_datarow(row, plan)  # warm caches (phone metadata, plan)
    return best_us(lambda: mask_datarow(row, plan), 20_000)


if __name__ == "__main__":
    main()
