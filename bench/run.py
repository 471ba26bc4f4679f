"""wardgate vs pgbouncer vs direct PostgreSQL, measured in one run on one machine.

    .venv/bin/python bench/run.py            # full: 3 interleaved rounds, ~15 minutes
    .venv/bin/python bench/run.py --quick    # 1 round, short runs, under two minutes

Starts what it needs: a scale-10 pgbench database (``wardgate_bench``, created and
initialised when missing) plus a 1M-row table for the streaming read, pgbouncer (Debian's
package, session pooling, its own port, run as the ``postgres`` user), and the gateway
(``wardgate serve``) with its full pipeline: token auth, classification, policy, and
whatever else the tree has -- ``recording:`` and ``masking:`` are switched on (their
defaults) as soon as the config accepts them; the 1M-row reads are repeated on a second
gateway with masking off (see ``--extra-config`` / ``--masking-config``).

Every figure is measured in interleaved rounds (direct, pgbouncer, gateway, direct, ...)
so that drift on a shared machine hits all three alike; the report gives medians and
ratios to direct. All clients use ``PGSSLMODE=disable``: direct PostgreSQL here has
ssl=off while the gateway offers TLS, and a TLS-vs-plaintext comparison would not be fair.

Output: a Markdown report on stdout, JSON in ``bench/results/<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv" / "bin" / "python"
RESULTS = ROOT / "bench" / "results"
PGHOST = "127.0.0.1"
PGPORT = 5432
PGUSER = "postgres"
STREAM_ROWS = 1_000_000
STREAM_TABLE = "stream_1m"
COPY_SQL = f"COPY (SELECT g, md5(g::text) FROM generate_series(1, {STREAM_ROWS}) g) TO STDOUT"
SELECT_SQL = f"SELECT g, t FROM {STREAM_TABLE}"
UNMASKED = "gateway-masking-off"
SECTIONS = ("pgbench", "connect", "stream", "workers")
CLIENT_ENV = {"PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10"}


# ====================================================================== small helpers
def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((PGHOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((PGHOST, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {PGHOST}:{port}")


def psql(sql: str, db: str = "postgres", check: bool = True) -> str:
    r = subprocess.run(
        ["psql", "-h", PGHOST, "-p", str(PGPORT), "-U", PGUSER, "-d", db, "-XAtq", "-c", sql],
        capture_output=True,
        text=True,
        env={**os.environ, **CLIENT_ENV},
        check=False,
    )
    if check and r.returncode != 0:
        raise RuntimeError(f"psql {sql!r} failed: {r.stderr.strip()}")
    return r.stdout.strip()


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (workers mode forks children)."""
    out = [pid]
    i = 0
    while i < len(out):
        p = out[i]
        i += 1
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                out.extend(int(c) for c in children)
    return out


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants, from /proc/<pid>/stat."""
    total = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _TICK


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


# ====================================================================== targets
@dataclass
class Endpoint:
    """Something a PostgreSQL client can connect to, and the process to charge CPU to."""

    name: str
    port: int
    user: str
    password: str | None
    db: str
    pid: int | None = None  # process whose CPU we account (None: direct PostgreSQL)

    def env(self) -> dict[str, str]:
        env = {**os.environ, **CLIENT_ENV}
        env.pop("PGPASSWORD", None)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def conninfo(self) -> str:
        pw = f" password={self.password}" if self.password else ""
        return (
            f"host={PGHOST} port={self.port} dbname={self.db} user={self.user}{pw} sslmode=disable"
        )

    def cpu(self) -> float | None:
        return None if self.pid is None else cpu_seconds(self.pid)


# ---------------------------------------------------------------------- the database
def ensure_database(db: str, scale: int, reinit: bool) -> None:
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{db}'") == "1"
    if not exists:
        log(f"creating database {db}")
        psql(f'CREATE DATABASE "{db}"')
    branches = psql("SELECT count(*) FROM pgbench_branches", db=db, check=False)
    if reinit or branches != str(scale):
        log(f"pgbench -i -s {scale} {db}")
        subprocess.run(
            [
                "pgbench",
                "-h",
                PGHOST,
                "-p",
                str(PGPORT),
                "-U",
                PGUSER,
                "-i",
                "-s",
                str(scale),
                "-q",
                db,
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **CLIENT_ENV},
        )
    rows = "-1"
    if psql(f"SELECT to_regclass('{STREAM_TABLE}') IS NOT NULL", db=db) == "t":
        rows = psql(f"SELECT count(*) FROM {STREAM_TABLE}", db=db)
    if reinit or rows != str(STREAM_ROWS):
        log(f"creating {STREAM_TABLE} ({STREAM_ROWS} rows)")
        psql(f"DROP TABLE IF EXISTS {STREAM_TABLE}", db=db)
        psql(
            f"CREATE TABLE {STREAM_TABLE} AS SELECT g, md5(g::text) AS t "
            f"FROM generate_series(1, {STREAM_ROWS}) g",
            db=db,
        )
        psql(f"VACUUM ANALYZE {STREAM_TABLE}", db=db)


# ---------------------------------------------------------------------- pgbouncer
@contextlib.contextmanager
def pgbouncer(db: str) -> Iterator[Endpoint]:
    """pgbouncer in session mode on its own port; it refuses root, so it runs as postgres."""
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="wardgate-bench-pgb-"))
    shutil.chown(tmp, "postgres", "postgres")
    tmp.chmod(0o755)
    ini = tmp / "pgbouncer.ini"
    users = tmp / "userlist.txt"
    users.write_text(f'"{PGUSER}" ""\n')
    ini.write_text(
        f"""[databases]
{db} = host={PGHOST} port={PGPORT} dbname={db} user={PGUSER}

[pgbouncer]
listen_addr = {PGHOST}
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = session
max_client_conn = 1000
default_pool_size = 50
logfile = {tmp}/pgbouncer.log
pidfile = {tmp}/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
"""
    )
    for f in (ini, users):
        shutil.chown(f, "postgres", "postgres")
    proc = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", "pgbouncer", str(ini)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid: int | None = None
    try:
        wait_port(port)
        pidfile = tmp / "pgbouncer.pid"
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(pidfile.read_text().strip())
        yield Endpoint("pgbouncer", port, PGUSER, None, db, pid=pid)
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------- the gateway
def quickstart_policy() -> Any:
    import yaml

    return yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())["policy"]


def gateway_config_fields() -> set[str]:
    """Top-level sections this tree's gateway config accepts."""
    r = subprocess.run(
        [
            str(VENV_PY),
            "-c",
            "from wardgate.config import GatewayConfig as C; print(' '.join(C.model_fields))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.environ.get("WARDGATE_BENCH_SRC", "")},
    )
    return set(r.stdout.split())


def gateway_config(
    state_dir: Path,
    pg_port: int,
    api_port: int,
    db: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The bench gateway's config: quickstart policy, target ``demo`` -> ``db``.

    ``extra`` top-level sections (``recording:``, ``masking:``, ...) are merged in
    (a mapping section is merged one level deep, anything else replaces).
    """
    cfg: dict[str, Any] = {
        "listen": {"postgres": f"{PGHOST}:{pg_port}", "mysql": None, "api": f"{PGHOST}:{api_port}"},
        "state": {"url": f"sqlite:///{state_dir}/state.db", "directory": str(state_dir)},
        "tls": {"require": False},
        "api": {"admin_groups": ["wardgate-admins", "dba"]},
        "targets": {
            "demo": {
                "kind": "postgres",
                "host": PGHOST,
                "port": PGPORT,
                "database": db,
                "credential": {"username": PGUSER, "password": None},
                "tls": {"mode": "prefer"},
            }
        },
        "policy": quickstart_policy(),
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


class GatewayStartError(RuntimeError):
    pass


@contextlib.contextmanager
def gateway(
    name: str,
    db: str,
    *,
    workers: int = 1,
    extra: dict[str, Any] | None = None,
    src: str | None = None,
) -> Iterator[Endpoint]:
    """``wardgate serve`` from this tree (or ``src``, a copy's ``src/``) with a token."""
    import yaml

    state = Path(tempfile.mkdtemp(prefix=f"wardgate-bench-{name}-"))
    pg_port, api_port = free_port(), free_port()
    cfg_path = state / "wardgate.yaml"
    cfg_path.write_text(
        yaml.safe_dump(gateway_config(state, pg_port, api_port, db, extra), sort_keys=False)
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if src:
        env["PYTHONPATH"] = src
    base = [str(VENV_PY), "-m", "wardgate.cli.main", "--config", str(cfg_path)]
    logf = (state / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [*base, "serve", "--workers", str(workers)],
        stdout=logf,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while (state / "gateway.log").read_text(errors="replace").count("wardgate ready") < workers:
            if proc.poll() is not None:
                text = (state / "gateway.log").read_text(errors="replace")
                raise GatewayStartError(f"gateway {name} exited: {text.strip()[-1500:]}")
            if time.monotonic() > deadline:
                raise GatewayStartError(f"gateway {name} did not start in 60 s")
            time.sleep(0.05)
        wait_port(pg_port)
        token = subprocess.run(
            [*base, "token", "create", "bench", "--group", "dba", "--ttl", "2h"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
        yield Endpoint(name, pg_port, "bench", token, "demo", pid=proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        logf.close()
        if os.environ.get("WARDGATE_BENCH_KEEP"):
            log(f"kept {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


# ====================================================================== measurements
_NUM = r"([0-9]+(?:\.[0-9]+)?)"


def pgbench(
    ep: Endpoint,
    *,
    mode: str = "simple",
    clients: int = 1,
    threads: int = 1,
    seconds: float = 10,
    connect: bool = False,
) -> dict[str, float]:
    """``pgbench -n -S`` against ``ep``; TPS, latency and the proxy's CPU during the run."""
    cmd = [
        "pgbench",
        "-n",
        "-S",
        "-M",
        mode,
        "-c",
        str(clients),
        "-j",
        str(threads),
        "-T",
        str(int(seconds)),
        "-h",
        PGHOST,
        "-p",
        str(ep.port),
        "-U",
        ep.user,
    ]
    if connect:
        cmd.append("-C")
    cmd.append(ep.db)
    cpu0 = ep.cpu()
    r = subprocess.run(cmd, capture_output=True, text=True, env=ep.env(), check=False)
    cpu1 = ep.cpu()
    out = r.stdout
    tps = re.search(rf"tps = {_NUM}", out)
    lat = re.search(rf"latency average = {_NUM} ms", out)
    txns = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if r.returncode != 0 or not (tps and lat and txns) or (failed and int(failed.group(1))):
        why = next(
            (ln for ln in r.stderr.splitlines() if "error" in ln.lower()), "no TPS in the output"
        )
        raise RuntimeError(
            f"pgbench against {ep.name} failed: {why}\n{' '.join(cmd)}\n{out}\n{r.stderr[-2000:]}"
        )
    res = {"tps": float(tps.group(1)), "lat_ms": float(lat.group(1)), "txns": int(txns.group(1))}
    conn = re.search(rf"average connection time = {_NUM} ms", out)
    if conn:
        res["conn_ms"] = float(conn.group(1))
    if cpu0 is not None and cpu1 is not None:
        res["cpu_s"] = cpu1 - cpu0
        # pgbench -S: one statement per transaction
        res["cpu_s_per_10k"] = (cpu1 - cpu0) / res["txns"] * 10_000
    return res


def stream_copy(ep: Endpoint) -> dict[str, float]:
    """COPY ... TO STDOUT of 1M generated rows through psql (C client, output to /dev/null)."""
    cpu0 = ep.cpu()
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            "psql",
            "-XAtq",
            "-h",
            PGHOST,
            "-p",
            str(ep.port),
            "-U",
            ep.user,
            "-d",
            ep.db,
            "-c",
            COPY_SQL,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ep.env(),
        check=False,
    )
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"COPY via {ep.name} failed: {r.stderr.strip()}")
    res = {"s": dt}
    cpu1 = ep.cpu()
    if cpu0 is not None and cpu1 is not None:
        res["cpu_s"] = cpu1 - cpu0
    return res


def stream_select(ep: Endpoint) -> dict[str, float]:
    """SELECT of 1M rows (int, 32-char text) read by libpq (psycopg, nothing converted)."""
    import psycopg

    with psycopg.connect(ep.conninfo()) as conn:
        conn.execute("SELECT 1").fetchall()
        cpu0 = ep.cpu()
        t0 = time.perf_counter()
        cur = conn.execute(SELECT_SQL)
        dt = time.perf_counter() - t0
        cpu1 = ep.cpu()
        if cur.rowcount != STREAM_ROWS:
            raise RuntimeError(f"SELECT via {ep.name} returned {cur.rowcount} rows")
    res = {"s": dt}
    if cpu0 is not None and cpu1 is not None:
        res["cpu_s"] = cpu1 - cpu0
    return res


# ====================================================================== the run
@dataclass
class Plan:
    rounds: int
    seconds: float
    conn_seconds: float
    modes: list[str]
    clients: list[int]
    workers: list[int]
    stream: bool = True
    stream_repeats: int = 1
    warmup_modes: int = 3
    sections: frozenset[str] = frozenset(SECTIONS)


@dataclass
class Results:
    raw: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, key: str, value: dict[str, Any]) -> None:
        self.raw.setdefault(key, []).append(value)

    def med(self, key: str, metric: str) -> float | None:
        return median([r[metric] for r in self.raw.get(key, []) if metric in r])


def machine_info(db: str) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    py = subprocess.run(
        [
            str(VENV_PY),
            "-c",
            "import sys, platform; print(platform.python_implementation(), sys.version.split()[0])",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    uv = subprocess.run(
        [str(VENV_PY), "-c", "import uvloop; print(uvloop.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    pgb = subprocess.run(["pgbouncer", "--version"], capture_output=True, text=True, check=False)
    pgbench_v = subprocess.run(
        ["pgbench", "--version"], capture_output=True, text=True, check=False
    )
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory": mem,
        "kernel": platform.release(),
        "python": py,
        "uvloop": uv or "not installed",
        "postgresql": psql("SHOW server_version", db=db),
        "pgbouncer": pgb.stdout.splitlines()[0] if pgb.stdout else "",
        "pgbench": pgbench_v.stdout.strip(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "git_dirty_files": len(
            subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.splitlines()
        ),
        "git_commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }


def measure(res: Results, key: str, rnd: int, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One measurement; a failure is recorded (and reported) instead of ending the run."""
    try:
        r = fn()
    except Exception as e:
        r = {"error": str(e)[:3000]}
        res.errors.append({"key": key, "round": rnd, "error": r["error"]})
        log(f"  {key}: FAILED: {str(e).strip().splitlines()[0][:300]}")
    r["round"] = rnd
    res.add(key, r)
    return r


def run_rounds(
    plan: Plan,
    eps: list[Endpoint],
    extra_stream: Endpoint | None,
    by_workers: dict[int, Endpoint],
    res: Results,
) -> None:
    threads = {c: min(c, 2) for c in plan.clients}
    # warm-up: caches of PostgreSQL, pgbouncer pools and the gateway's classifier
    warm = [*(eps if "pgbench" in plan.sections else []), *by_workers.values()]
    for ep in {id(e): e for e in warm}.values():
        for mode in plan.modes[: plan.warmup_modes]:
            measure(
                res,
                f"warmup/{ep.name}",
                -1,
                lambda ep=ep, mode=mode: pgbench(ep, mode=mode, clients=2, threads=2, seconds=1),
            )
    for rnd in range(plan.rounds):
        log(f"round {rnd + 1}/{plan.rounds}")
        for mode in plan.modes if "pgbench" in plan.sections else []:
            for c in plan.clients:
                for ep in eps:
                    r = measure(
                        res,
                        f"pgbench/{mode}/c{c}/{ep.name}",
                        rnd,
                        lambda ep=ep, mode=mode, c=c: pgbench(
                            ep, mode=mode, clients=c, threads=threads[c], seconds=plan.seconds
                        ),
                    )
                    if "tps" in r:
                        log(
                            f"  -S -M {mode} -c {c} {ep.name}: {r['tps']:.0f} tps, "
                            f"{r['lat_ms'] * 1000:.0f} us"
                        )
        for ep in eps if "connect" in plan.sections else []:
            r = measure(
                res,
                f"connect/{ep.name}",
                rnd,
                lambda ep=ep: pgbench(
                    ep,
                    mode="simple",
                    clients=8,
                    threads=2,
                    seconds=plan.conn_seconds,
                    connect=True,
                ),
            )
            if "tps" in r:
                log(f"  -C -S -c 8 {ep.name}: {r['tps']:.0f} conn/s")
        if plan.stream:
            for ep in [*eps, *([extra_stream] if extra_stream else [])]:
                for _ in range(plan.stream_repeats):
                    a = measure(res, f"stream_copy/{ep.name}", rnd, lambda ep=ep: stream_copy(ep))
                    b = measure(
                        res, f"stream_select/{ep.name}", rnd, lambda ep=ep: stream_select(ep)
                    )
                    if "s" in a and "s" in b:
                        log(f"  1M rows {ep.name}: copy {a['s']:.2f} s, select {b['s']:.2f} s")
        for mode in ("simple", "extended"):
            for n, ep in by_workers.items():
                r = measure(
                    res,
                    f"workers/{mode}/w{n}",
                    rnd,
                    lambda ep=ep, mode=mode: pgbench(
                        ep, mode=mode, clients=8, threads=2, seconds=plan.seconds
                    ),
                )
                if "tps" in r:
                    log(f"  workers={n} -M {mode} -c 8: {r['tps']:.0f} tps")


# ====================================================================== report
def fmt(x: float | None, spec: str = ".0f") -> str:
    return "-" if x is None else format(x, spec)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def summarize(
    res: Results, plan: Plan, names: list[str], extra_stream: str | None
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "pgbench": {},
        "latency_added_us": {},
        "connect": {},
        "stream": {},
        "cpu_per_10k": {},
        "workers": {},
        "ok_runs": {k: sum(1 for r in v if "error" not in r) for k, v in res.raw.items()},
    }
    for mode in plan.modes:
        for c in plan.clients:
            row = {n: res.med(f"pgbench/{mode}/c{c}/{n}", "tps") for n in names}
            s["pgbench"][f"{mode}/c{c}"] = row
            lat = {n: res.med(f"pgbench/{mode}/c{c}/{n}", "lat_ms") for n in names}
            s["pgbench"][f"{mode}/c{c}/lat_ms"] = lat
            cpu = {n: res.med(f"pgbench/{mode}/c{c}/{n}", "cpu_s_per_10k") for n in names}
            s["cpu_per_10k"][f"{mode}/c{c}"] = {k: v for k, v in cpu.items() if v is not None}
        lat1 = s["pgbench"].get(f"{mode}/c1/lat_ms")
        if lat1:
            s["latency_added_us"][mode] = {
                n: (lat1[n] - lat1["direct"]) * 1000
                for n in names
                if n != "direct" and lat1.get(n) is not None and lat1.get("direct") is not None
            }
    s["connect"] = {n: res.med(f"connect/{n}", "tps") for n in names}
    stream_names = [*names, *([extra_stream] if extra_stream else [])]
    for kind in ("copy", "select"):
        s["stream"][kind] = {n: res.med(f"stream_{kind}/{n}", "s") for n in stream_names}
    for mode in ("simple", "extended"):
        for n in plan.workers:
            s["workers"][f"{mode}/w{n}"] = res.med(f"workers/{mode}/w{n}", "tps")
    return s


def targets(s: dict[str, Any], masked_note: str) -> list[dict[str, Any]]:
    out = []
    for mode in ("simple", "extended"):
        for c in (1, 8):
            row = s["pgbench"].get(f"{mode}/c{c}")
            if not row:
                continue
            gw = ratio(row.get("gateway"), row.get("direct"))
            pgb = ratio(row.get("pgbouncer"), row.get("direct"))
            out.append(
                {
                    "target": f"pgbench -S -M {mode} -c {c}: gateway ratio >= pgbouncer ratio",
                    "measured": f"gateway {fmt(gw, '.2f')} vs pgbouncer {fmt(pgb, '.2f')}",
                    "met": None if gw is None or pgb is None else gw >= pgb,
                }
            )
    for mode, added in s["latency_added_us"].items():
        if "gateway" in added:
            out.append(
                {
                    "target": f"added latency at c1 ({mode}) <= 100 us",
                    "measured": f"{added['gateway']:.0f} us",
                    "met": added["gateway"] <= 100,
                }
            )
    sel = s["stream"]["select"]
    mr = ratio(sel.get("gateway"), sel.get("direct")) if not masked_note else None
    out.append(
        {
            "target": "1M-row read with masking <= 1.5x direct",
            "measured": masked_note if mr is None else f"{mr:.2f}x",
            "met": None if mr is None else mr <= 1.5,
        }
    )
    return out


def markdown(
    info: dict[str, Any],
    plan: Plan,
    s: dict[str, Any],
    tg: list[dict[str, Any]],
    pipeline: str,
    command: str,
    path: Path,
) -> str:
    lines: list[str] = []
    lines.append(f"## wardgate benchmark {info['timestamp']}\n")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    lines.append(f"`{command}` → `{shown}`\n")
    lines.append(
        f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory']}, Linux "
        f"{info['kernel']}; {info['python']} (uvloop {info['uvloop']}); PostgreSQL "
        f"{info['postgresql']}; {info['pgbouncer']}; load avg at start "
        f"{' '.join(info['loadavg_at_start'])}.\n"
    )
    lines.append(
        f"Rounds: {plan.rounds} interleaved (direct, pgbouncer, gateway), {plan.seconds:g} s per "
        f"pgbench run, {plan.conn_seconds:g} s per -C run; medians. All clients PGSSLMODE=disable "
        f"(direct PostgreSQL has ssl=off). pgbouncer: session pooling. Gateway pipeline: "
        f"{pipeline}.\n"
    )
    lines.append(
        "| measurement | direct | pgbouncer | gateway | pgbouncer / direct | gateway / direct |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|")
    for mode in plan.modes:
        for c in plan.clients:
            row = s["pgbench"][f"{mode}/c{c}"]
            d, p, g = row.get("direct"), row.get("pgbouncer"), row.get("gateway")
            if d is None and p is None and g is None:
                continue
            j = f" -j {min(c, 2)}" if c > 1 else ""
            ok = s.get("ok_runs", {})
            marks = {
                n: (
                    f" ({ok.get(f'pgbench/{mode}/c{c}/{n}', 0)} of {plan.rounds} rounds)"
                    if ok.get(f"pgbench/{mode}/c{c}/{n}", plan.rounds) < plan.rounds
                    else ""
                )
                for n in ("direct", "pgbouncer", "gateway")
            }
            lines.append(
                f"| pgbench -S -M {mode} -c {c}{j}, TPS | {fmt(d)}{marks['direct']} "
                f"| {fmt(p)}{marks['pgbouncer']} | {fmt(g)}{marks['gateway']} "
                f"| {fmt(ratio(p, d), '.2f')} | {fmt(ratio(g, d), '.2f')} |"
            )
    for mode in plan.modes:
        lat = s["pgbench"].get(f"{mode}/c1/lat_ms")
        if not lat or all(v is None for v in lat.values()):
            continue
        d, p, g = (lat.get(n) for n in ("direct", "pgbouncer", "gateway"))
        add = s["latency_added_us"].get(mode, {})
        lines.append(
            f"| latency per statement -M {mode} -c 1, µs (added vs direct) | {fmt(d and d * 1000)}"
            f" | {fmt(p and p * 1000)} (+{fmt(add.get('pgbouncer'))}) | {fmt(g and g * 1000)} "
            f"(+{fmt(add.get('gateway'))}) | {fmt(ratio(p, d), '.2f')} "
            f"| {fmt(ratio(g, d), '.2f')} |"
        )
    cn = s["connect"]
    if any(v is not None for v in cn.values()):
        lines.append(
            f"| connections/s (pgbench -C -S -c 8 -j 2) | {fmt(cn.get('direct'))} | "
            f"{fmt(cn.get('pgbouncer'))} | {fmt(cn.get('gateway'))} | "
            f"{fmt(ratio(cn.get('pgbouncer'), cn.get('direct')), '.2f')} | "
            f"{fmt(ratio(cn.get('gateway'), cn.get('direct')), '.2f')} |"
        )
    for kind, label in (
        ("copy", "COPY 1M generated rows TO STDOUT (psql), s"),
        ("select", "SELECT 1M rows int+text (libpq), s"),
    ):
        st = s["stream"][kind]
        d, p, g = st.get("direct"), st.get("pgbouncer"), st.get("gateway")
        if d is None and p is None and g is None:
            continue
        lines.append(
            f"| {label} | {fmt(d, '.3f')} | {fmt(p, '.3f')} | {fmt(g, '.3f')} | "
            f"{fmt(ratio(p, d), '.2f')} | {fmt(ratio(g, d), '.2f')} |"
        )
        if st.get(UNMASKED) is not None:
            gm = st[UNMASKED]
            lines.append(
                f"| … same, gateway with masking off, s | {fmt(d, '.3f')} | | {fmt(gm, '.3f')}"
                f" | | {fmt(ratio(gm, d), '.2f')} |"
            )
    cpu = s["cpu_per_10k"]
    for key, v in cpu.items():
        if v:
            mode, c = key.split("/c")
            lines.append(
                f"| proxy CPU s per 10k statements, -M {mode} -c {c} | | "
                f"{fmt(v.get('pgbouncer'), '.3f')} | {fmt(v.get('gateway'), '.3f')} | | |"
            )
    lines.append("")
    if s["workers"]:
        lines.append("Gateway processes (`serve --workers N`), pgbench -S -c 8 -j 2, TPS:\n")
        lines.append(
            "| mode | " + " | ".join(f"--workers {n}" for n in plan.workers) + " | w2 / w1 |"
        )
        lines.append("|---|" + "---:|" * (len(plan.workers) + 1))
        for mode in ("simple", "extended"):
            vals = [s["workers"].get(f"{mode}/w{n}") for n in plan.workers]
            r = ratio(vals[-1], vals[0]) if len(vals) > 1 else None
            lines.append(
                f"| {mode} | " + " | ".join(fmt(v) for v in vals) + f" | {fmt(r, '.2f')} |"
            )
        lines.append("")
    lines.append("Issue-8 targets:\n")
    lines.append("| target | measured | met |")
    lines.append("|---|---|---|")
    for t in tg:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['measured']} | {met} |")
    return "\n".join(lines) + "\n"


def render_saved(path: Path) -> str:
    """The Markdown report of a saved run (its JSON), e.g. after the report format changed."""
    doc = json.loads(path.read_text())
    plan = Plan(**{k: v for k, v in doc["plan"].items() if k != "sections"})
    res = Results(raw=doc["raw"], errors=doc.get("errors", []))
    s = doc["summary"]
    s.setdefault("ok_runs", {k: sum(1 for r in v if "error" not in r) for k, v in res.raw.items()})
    report = markdown(
        doc["machine"],
        plan,
        s,
        doc["targets"],
        "; ".join(doc["pipeline"]),
        doc["command"],
        path.resolve(),
    )
    if res.errors:
        report += (
            "\nFailed measurements (details in the JSON):\n\n"
            + "\n".join(
                f"- {e['key']} (round {e['round'] + 1}): {e['error'].strip().splitlines()[0][:400]}"
                for e in res.errors
            )
            + "\n"
        )
    return report


def load_yaml_file(path: str) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping of top-level config sections")
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, short runs (< 2 minutes)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (full: 3)")
    ap.add_argument("--seconds", type=float, help="duration of each pgbench run (full: 10)")
    ap.add_argument("--db", default="wardgate_bench", help="bench database (created if missing)")
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--reinit", action="store_true", help="re-run pgbench -i and the 1M table")
    ap.add_argument(
        "--extra-config",
        action="append",
        default=[],
        metavar="YAML",
        help="top-level sections merged into every gateway's config (repeatable)",
    )
    ap.add_argument(
        "--masking-config",
        metavar="YAML",
        help="the masking: section for the gateway (default: masking: {} -- on, the "
        "defaults -- when the config accepts one)",
    )
    ap.add_argument(
        "--no-auto-sections",
        action="store_true",
        help="do not switch on recording:/masking: automatically",
    )
    ap.add_argument("--src", help="run the gateway from this src/ dir (a patched copy)")
    ap.add_argument("--no-workers", action="store_true", help="skip the --workers 1 vs 2 runs")
    ap.add_argument("--no-stream", action="store_true", help="skip the 1M-row reads")
    ap.add_argument("--modes", default="simple,extended,prepared")
    ap.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    ap.add_argument(
        "--workers-config",
        action="append",
        default=[],
        metavar="YAML",
        help="sections for the --workers 1/2 comparison; when given, both get their own "
        "gateway (e.g. recording off while multi-process recording on SQLite is broken)",
    )
    ap.add_argument("--json", metavar="PATH", help="write JSON here instead of bench/results/")
    ap.add_argument("--report", metavar="JSON", help="only print the report of an earlier run")
    args = ap.parse_args()
    if args.report:
        print(render_saved(Path(args.report)))
        return

    if args.src:
        os.environ["WARDGATE_BENCH_SRC"] = str(Path(args.src).resolve())
    plan = Plan(
        rounds=args.rounds or (1 if args.quick else 3),
        seconds=args.seconds or (2 if args.quick else 10),
        conn_seconds=(2 if args.quick else 10) if not args.seconds else args.seconds,
        modes=args.modes.split(","),
        clients=[1, 8],
        workers=[] if args.no_workers or "workers" not in args.only.split(",") else [1, 2],
        stream=not args.no_stream and "stream" in args.only.split(","),
        sections=frozenset(args.only.split(",")),
        warmup_modes=1 if args.quick else 3,
    )
    started = datetime.now(UTC)
    ensure_database(args.db, args.scale, args.reinit)

    fields = gateway_config_fields()
    extra: dict[str, Any] = {}
    pipeline = ["token auth", "classification (pglast)", "policy (quickstart, group dba)"]
    if not args.no_auto_sections and "recording" in fields:
        extra["recording"] = {}
    for path in args.extra_config:
        extra.update(load_yaml_file(path))
    pipeline.append(
        "recording "
        + (
            "on"
            if "recording" in extra
            else "off (config has no recording section yet)"
            if "recording" not in fields
            else "off"
        )
    )
    # Masking is part of the full pipeline: the main gateway runs with it on (when this
    # tree has it); a second instance with it off gives the 1M-row read "without masking".
    if args.masking_config:
        extra.update(load_yaml_file(args.masking_config))
    elif not args.no_auto_sections and "masking" in fields:
        extra.setdefault("masking", {})
    masking_on = "masking" in extra and extra["masking"].get("enabled", True) is not False
    unmasked_extra: dict[str, Any] | None = None
    masked_note = ""
    if masking_on:
        unmasked_extra = {**extra, "masking": {**extra["masking"], "enabled": False}}
    else:
        masked_note = (
            "not measured: the gateway config has no masking section yet"
            if "masking" not in fields
            else "not measured: masking is off in this run's config"
        )
    pipeline.append(
        "masking "
        + (
            "on (the 1M-row reads are repeated on a second gateway with masking off)"
            if masking_on
            else "off (not wired yet)"
            if "masking" not in fields
            else "off"
        )
    )
    src = os.environ.get("WARDGATE_BENCH_SRC")

    res = Results()
    with contextlib.ExitStack() as stack:
        direct = Endpoint("direct", PGPORT, PGUSER, None, args.db)
        pgb = stack.enter_context(pgbouncer(args.db))
        gw = stack.enter_context(gateway("gateway", args.db, extra=extra, src=src))
        by_workers: dict[int, Endpoint] = {}
        if plan.workers:
            wextra = dict(extra)
            for path in args.workers_config:
                wextra.update(load_yaml_file(path))
            if not args.workers_config:
                by_workers[1] = gw
            for n in plan.workers[1 if not args.workers_config else 0 :]:
                by_workers[n] = stack.enter_context(
                    gateway(f"gateway-w{n}", args.db, workers=n, extra=wextra, src=src)
                )
        unmasked: Endpoint | None = None
        if unmasked_extra is not None and plan.stream:
            unmasked = stack.enter_context(
                gateway(UNMASKED, args.db, extra=unmasked_extra, src=src)
            )
        info = machine_info(args.db)
        info["timestamp"] = started.strftime("%Y-%m-%dT%H:%M:%SZ")
        log(
            f"direct :{PGPORT}, pgbouncer :{pgb.port}, gateway :{gw.port}; "
            f"{plan.rounds} round(s) of {plan.seconds:g} s"
        )
        run_rounds(plan, [direct, pgb, gw], unmasked, by_workers, res)

    names = ["direct", "pgbouncer", "gateway"]
    s = summarize(res, plan, names, UNMASKED if unmasked else None)
    tg = targets(s, masked_note if not masking_on else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.json) if args.json else RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    command = " ".join(["bench/run.py", *sys.argv[1:]])
    info["elapsed_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    doc = {
        "command": command,
        "machine": info,
        "plan": plan.__dict__,
        "pipeline": pipeline,
        "extra_config": extra,
        "workers_config": args.workers_config,
        "unmasked_config": unmasked_extra,
        "gateway_src": src or str(ROOT / "src"),
        "summary": s,
        "targets": tg,
        "errors": res.errors,
        "raw": res.raw,
    }
    out.write_text(json.dumps(doc, indent=2, default=str))
    report = markdown(info, plan, s, tg, "; ".join(pipeline), command, out.resolve())
    if res.errors:
        report += (
            "\nFailed measurements (details in the JSON):\n\n"
            + "\n".join(
                f"- {e['key']} (round {e['round'] + 1}): {e['error'].strip().splitlines()[0][:400]}"
                for e in res.errors
            )
            + "\n"
        )
    print(report)
    log(f"done in {info['elapsed_s']} s; JSON in {out}")


if __name__ == "__main__":
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and VENV_PY.exists():
        os.execv(str(VENV_PY), [str(VENV_PY), *sys.argv])
    main()
