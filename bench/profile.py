"""Profile the gateway under load with py-spy: where does a statement's time go?

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile.py                      # -M simple -c 8, 15 s
    .venv/bin/python bench/profile.py --mode extended --src /tmp/wg-exp/src

Starts a gateway exactly as ``bench/run.py`` does (same config builder, same database),
drives it with ``pgbench -n -S -M MODE -c C -j 2`` and samples it with ``py-spy record``
(``--format raw``: collapsed stacks). Prints the functions with the most samples, by
self time and by inclusive time, as percentages of all samples, and writes the raw stacks
plus a flame graph SVG next to the JSON results in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: the harness


def py_spy() -> str:
    exe = bench.ROOT / ".venv" / "bin" / "py-spy"
    found = str(exe) if exe.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def frame_name(frame: str) -> str:
    """'relay (wardgate/server/pg_relay.py:123)' -> 'relay (wardgate/server/pg_relay.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


def summarize(raw: Path, top: int) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    self_c: collections.Counter[str] = collections.Counter()
    incl_c: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame_name(f) for f in stack.split(";")]
        # skip the thread/process pseudo-frames py-spy may prepend
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        self_c[frames[-1]] += n
        for f in set(frames):
            incl_c[f] += n
    return total, self_c.most_common(top), incl_c.most_common(top)


def thread_cpu(pid: int) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds per thread: 'main' (the event loop) and the others."""
    out: dict[str, tuple[float, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            f = stat[stat.rindex(")") + 2 :].split()
            comm = (task / "comm").read_text().strip()
            key = "main (event loop)" if task.name == str(pid) else f"{comm} [{task.name}]"
            out[key] = (int(f[11]) / tick, int(f[12]) / tick)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mode", default="simple", choices=["simple", "extended", "prepared"])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--db", default="wardgate_bench")
    ap.add_argument("--src", help="profile the gateway from this src/ dir (a patched copy)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    args = ap.parse_args()

    spy = py_spy()
    bench.ensure_database(args.db, 10, reinit=False)
    src = str(Path(args.src).resolve()) if args.src else None
    if src:
        os.environ["WARDGATE_BENCH_SRC"] = src
    extra = {"recording": {}} if "recording" in bench.gateway_config_fields() else {}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    raw = bench.RESULTS / f"profile-{stamp}-{args.mode}-c{args.clients}.txt"
    svg = raw.with_suffix(".svg")
    with bench.gateway("gateway", args.db, extra=extra, src=src) as gw:
        bench.pgbench(gw, mode=args.mode, clients=2, threads=2, seconds=2)  # warm caches
        load: dict[str, object] = {}

        def drive() -> None:
            with contextlib.suppress(RuntimeError):  # ends when the gateway stops
                load.update(
                    bench.pgbench(
                        gw,
                        mode=args.mode,
                        clients=args.clients,
                        threads=min(args.clients, 2),
                        seconds=args.duration + 3,
                    )
                )

        t = threading.Thread(target=drive)
        t.start()
        time.sleep(1.5)
        cpu0 = thread_cpu(gw.pid or 0)
        t0 = time.monotonic()
        common = ["--pid", str(gw.pid), "--duration", str(args.duration)]
        # --native has to stop the process to unwind C stacks; otherwise never stop it
        common += ["--rate", str(args.rate), "--native" if args.native else "--nonblocking"]
        r = subprocess.run(
            [spy, "record", *common, "--format", "raw", "-o", str(raw)],
            check=False,
            capture_output=True,
            text=True,
        )
        cpu1 = thread_cpu(gw.pid or 0)
        wall = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit(f"py-spy failed: {r.stderr.strip()[-2000:]}")
        t.join()
        # a flame graph from the same kind of load (a second short sample)
        subprocess.run(
            [
                spy,
                "record",
                "--pid",
                str(gw.pid),
                "--duration",
                "3",
                "--nonblocking",
                "-o",
                str(svg),
            ],
            check=False,
            capture_output=True,
        )
    total, by_self, by_incl = summarize(raw, args.top)
    print(
        f"## py-spy profile: gateway under pgbench -S -M {args.mode} -c {args.clients} "
        f"-j {min(args.clients, 2)}\n"
    )
    print(
        f"{total} samples at {args.rate}/s over {args.duration} s (idle samples excluded by "
        f"py-spy); load: {load.get('tps', 0):.0f} TPS, gateway CPU "
        f"{load.get('cpu_s_per_10k', 0):.3f} s per 10k statements.\n"
    )
    print("| gateway thread | user CPU s | system CPU s | share of one core |")
    print("|---|---:|---:|---:|")
    for key, (u1, s1) in sorted(cpu1.items(), key=lambda kv: -sum(kv[1])):
        u0, s0 = cpu0.get(key, (0.0, 0.0))
        if (u1 - u0) + (s1 - s0) < 0.05:
            continue
        print(f"| {key} | {u1 - u0:.2f} | {s1 - s0:.2f} | {((u1 - u0) + (s1 - s0)) / wall:.0%} |")
    print(f"\n(over {wall:.1f} s of wall time while py-spy sampled)\n")
    for title, rows in (("self time", by_self), ("inclusive time", by_incl)):
        print(f"| {title}: function (file) | samples | % |")
        print("|---|---:|---:|")
        for name, n in rows:
            print(f"| `{name}` | {n} | {100 * n / max(total, 1):.1f} |")
        print()
    print(f"raw stacks: {raw}\nflame graph: {svg}")


if __name__ == "__main__":
    if Path(sys.prefix).resolve() != (bench.ROOT / ".venv").resolve() and bench.VENV_PY.exists():
        os.execv(str(bench.VENV_PY), [str(bench.VENV_PY), *sys.argv])
    main()
