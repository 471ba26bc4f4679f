"""A/B two gateways (two source trees and/or two configs) in interleaved pgbench rounds.

    # a patch: the tree as it is vs a patched copy
    .venv/bin/python bench/ab.py --b-src /tmp/wg-exp/src
    # a config switch: recording on (A) vs off (B)
    echo 'recording: {enabled: false}' > /tmp/rec-off.yaml
    .venv/bin/python bench/ab.py --b-config /tmp/rec-off.yaml

Runs direct, A, B, direct, A, B, ... (``pgbench -n -S``, PGSSLMODE=disable) and prints the
median TPS, latency, the latency each gateway adds to direct, and gateway CPU seconds per
10k statements, with B/A ratios. Uses ``bench/run.py``'s database and gateway helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: the harness


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--a-src", help="src/ dir for A (default: this tree)")
    ap.add_argument("--b-src", help="src/ dir for B (default: this tree)")
    ap.add_argument("--a-config", action="append", default=[], metavar="YAML")
    ap.add_argument("--b-config", action="append", default=[], metavar="YAML")
    ap.add_argument("--modes", default="simple,extended,prepared")
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--db", default="wardgate_bench")
    ap.add_argument("--no-direct", action="store_true")
    args = ap.parse_args()

    bench.ensure_database(args.db, 10, reinit=False)
    base: dict[str, Any] = {}
    if "recording" in bench.gateway_config_fields():
        base["recording"] = {}

    def cfg(paths: list[str]) -> dict[str, Any]:
        out = dict(base)
        for p in paths:
            out.update(bench.load_yaml_file(p))
        return out

    def src(p: str | None) -> str | None:
        return str(Path(p).resolve()) if p else None

    res = bench.Results()
    modes = args.modes.split(",")
    clients = [int(c) for c in args.clients.split(",")]
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(
            bench.gateway("A", args.db, extra=cfg(args.a_config), src=src(args.a_src))
        )
        b = stack.enter_context(
            bench.gateway("B", args.db, extra=cfg(args.b_config), src=src(args.b_src))
        )
        eps = [a, b]
        if not args.no_direct:
            eps.insert(0, bench.Endpoint("direct", bench.PGPORT, bench.PGUSER, None, args.db))
        bench.interleaved_pgbench(
            res,
            eps,
            modes,
            clients,
            args.rounds,
            lambda ep, mode, c: bench.pgbench(
                ep, mode=mode, clients=c, threads=min(c, 2), seconds=args.seconds
            ),
        )

    def f(x: float | None, spec: str = ".0f") -> str:
        return "-" if x is None else format(x, spec)

    print(f"A: src={args.a_src or 'this tree'} config={args.a_config or 'default'}")
    print(f"B: src={args.b_src or 'this tree'} config={args.b_config or 'default'}\n")
    print(
        "| pgbench -S | direct TPS | A TPS | B TPS | B/A TPS | A added µs | B added µs "
        "| A CPU s/10k | B CPU s/10k |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary: dict[str, Any] = {}
    for mode in modes:
        for c in clients:
            k = f"{mode}/c{c}"
            d, ta, tb = (res.med(f"{k}/{n}", "tps") for n in ("direct", "A", "B"))
            ld, la, lb = (res.med(f"{k}/{n}", "lat_ms") for n in ("direct", "A", "B"))
            ca, cb = (res.med(f"{k}/{n}", "cpu_s_per_10k") for n in ("A", "B"))
            add_a = None if la is None or ld is None else (la - ld) * 1000
            add_b = None if lb is None or ld is None else (lb - ld) * 1000
            summary[k] = {
                "direct": d,
                "A": ta,
                "B": tb,
                "A_cpu": ca,
                "B_cpu": cb,
                "A_added_us": add_a,
                "B_added_us": add_b,
            }
            print(
                f"| -M {mode} -c {c} | {f(d)} | {f(ta)} | {f(tb)} | {f(bench.ratio(tb, ta), '.2f')}"
                f" | {f(add_a)} | {f(add_b)} | {f(ca, '.3f')} | {f(cb, '.3f')} |"
            )
    bench.save_tool_results(
        "ab", {"args": vars(args), "summary": summary, "raw": res.raw}, res.errors
    )


if __name__ == "__main__":
    if Path(sys.prefix).resolve() != (bench.ROOT / ".venv").resolve() and bench.VENV_PY.exists():
        os.execv(str(bench.VENV_PY), [str(bench.VENV_PY), *sys.argv])
    main()
