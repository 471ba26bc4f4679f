"""Where a statement's cost goes: the same pgbench runs through a ladder of proxies.

    .venv/bin/python bench/ladder.py                      # 3 rounds, 8 s each
    .venv/bin/python bench/ladder.py --modes prepared --clients 8 --rounds 2

In interleaved rounds (``pgbench -n -S``, PGSSLMODE=disable, as ``bench/run.py``):

* ``direct``: PostgreSQL itself;
* ``pgbouncer``: session mode, Debian's package (the issue's yardstick);
* ``python-relay``: ``bench/floor_relay.py``, a uvloop relay that copies bytes and does
  nothing else -- what the event loop and the kernel cost any proxy built like the gateway;
* ``gw-policy``: the gateway with recording and masking off (authentication, framing,
  classification and policy per statement);
* ``gw-masking``: the same plus masking (the result observer, no recording);
* ``gateway``: the full pipeline, as ``bench/run.py`` measures it.

Each step's TPS as a ratio to direct, the latency it adds at c1, and its CPU per
statement split by thread: the event loop's user and system time, and the other threads
(the recording's store writer) -- read from ``/proc/<pid>/task``.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: the harness

STEPS = {
    "gw-policy": {"recording": {"enabled": False}, "masking": {"enabled": False}},
    "gw-masking": {"recording": {"enabled": False}},
    "gateway": {},
}


def thread_times(pid: int) -> dict[int, tuple[float, float]]:
    """tid -> (user s, system s) of every thread of ``pid``."""
    out: dict[int, tuple[float, float]] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                stat = (task / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                out[int(task.name)] = (
                    int(fields[11]) / bench._TICK,
                    int(fields[12]) / bench._TICK,
                )
    return out


def per_statement_cpu(
    pid: int, before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]], n: int
) -> dict[str, float]:
    """µs per statement: the main thread's (the event loop) user and system time, and the
    other threads' total."""
    loop_u = loop_s = other = 0.0
    for tid, (u1, s1) in after.items():
        u0, s0 = before.get(tid, (0.0, 0.0))
        if tid == pid:
            loop_u, loop_s = u1 - u0, s1 - s0
        else:
            other += (u1 - u0) + (s1 - s0)
    scale = 1e6 / n if n else 0.0
    return {
        "loop_user_us": loop_u * scale,
        "loop_sys_us": loop_s * scale,
        "other_threads_us": other * scale,
    }


def timed_pgbench(ep: bench.Endpoint, mode: str, clients: int, seconds: float) -> dict[str, Any]:
    before = thread_times(ep.pid) if ep.pid else {}
    r: dict[str, Any] = bench.pgbench(
        ep, mode=mode, clients=clients, threads=min(clients, 2), seconds=seconds
    )
    if ep.pid:
        r.update(per_statement_cpu(ep.pid, before, thread_times(ep.pid), int(r["txns"])))
    return r


@contextlib.contextmanager
def floor_relay(db: str) -> Iterator[bench.Endpoint]:
    port = bench.free_port()
    proc = subprocess.Popen(
        [str(bench.VENV_PY), str(Path(__file__).with_name("floor_relay.py")), str(port),
         str(bench.PGPORT)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("bench/floor_relay.py did not start")
        yield bench.Endpoint("python-relay", port, bench.PGUSER, None, db, pid=proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--modes", default="simple,extended,prepared")
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--db", default="wardgate_bench")
    args = ap.parse_args()

    bench.ensure_database(args.db, 10, reinit=False)
    modes = args.modes.split(",")
    clients = [int(c) for c in args.clients.split(",")]
    res = bench.Results()
    info = bench.machine_info(args.db)
    with contextlib.ExitStack() as stack:
        eps = [
            bench.Endpoint("direct", bench.PGPORT, bench.PGUSER, None, args.db),
            stack.enter_context(bench.pgbouncer(args.db)),
            stack.enter_context(floor_relay(args.db)),
        ]
        for name, extra in STEPS.items():
            eps.append(stack.enter_context(bench.gateway(name, args.db, extra=extra)))
        bench.interleaved_pgbench(
            res,
            eps,
            modes,
            clients,
            args.rounds,
            lambda ep, mode, c: timed_pgbench(ep, mode, c, args.seconds),
        )

    def f(x: float | None, spec: str = ".0f") -> str:
        return "-" if x is None else format(x, spec)

    print(
        f"\n{info['cpu_model']}, {info['nproc']} CPUs; {info['python']}, uvloop "
        f"{info['uvloop']}; PostgreSQL {info['postgresql']}; {info['pgbouncer']}; "
        f"commit {info['git_commit']}\n"
    )
    print(
        "| pgbench -S | step | TPS | / direct | added µs | CPU µs/stmt | loop user "
        "| loop sys | other threads |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    summary: dict[str, Any] = {}
    for mode in modes:
        for c in clients:
            k = f"{mode}/c{c}"
            d = res.med(f"{k}/direct", "tps")
            ld = res.med(f"{k}/direct", "lat_ms")
            for ep in eps:
                key = f"{k}/{ep.name}"
                tps, lat = res.med(key, "tps"), res.med(key, "lat_ms")
                cpu = res.med(key, "cpu_s_per_10k")
                row = {
                    "tps": tps,
                    "ratio": bench.ratio(tps, d),
                    "added_us": None if lat is None or ld is None else (lat - ld) * 1000,
                    "cpu_us": None if cpu is None else cpu * 100,
                    "loop_user_us": res.med(key, "loop_user_us"),
                    "loop_sys_us": res.med(key, "loop_sys_us"),
                    "other_threads_us": res.med(key, "other_threads_us"),
                }
                summary[key] = row
                print(
                    f"| -M {mode} -c {c} | {ep.name} | {f(tps)} | {f(row['ratio'], '.2f')} "
                    f"| {f(row['added_us'])} | {f(row['cpu_us'], '.1f')} "
                    f"| {f(row['loop_user_us'], '.1f')} | {f(row['loop_sys_us'], '.1f')} "
                    f"| {f(row['other_threads_us'], '.1f')} |"
                )
    bench.save_tool_results(
        "ladder",
        {"args": vars(args), "machine": info, "summary": summary, "raw": res.raw},
        res.errors,
    )


if __name__ == "__main__":
    main()
