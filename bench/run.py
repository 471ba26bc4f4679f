"""wardgate vs pgbouncer vs direct PostgreSQL (and vs direct MariaDB), measured in one run.

    .venv/bin/python bench/run.py            # full: 3 interleaved rounds, ~16 minutes (927-934 s in the last runs)
    .venv/bin/python bench/run.py --quick    # 1 round, short runs, under two minutes

Starts what it needs: a scale-10 pgbench database (``wardgate_bench``, created and
initialised when missing) plus a 1M-row table for the streaming read, pgbouncer (Debian's
package, session pooling, its own port, run as the ``postgres`` user), and the gateway
(``wardgate serve``) with its full pipeline: token auth, classification, policy, and
whatever else the tree has -- ``recording:`` and ``masking:`` are switched on (their
defaults) as soon as the config accepts them; the 1M-row reads are repeated on a second
gateway with masking off (see ``--extra-config`` / ``--masking-config``). The ``stream``
section also times a 2,000-row result (``pgbench -f``, one connection): the size where the
recording's 1,000-row capture is most of the gateway's work per query.

The ``mysql`` section (on by default; alone: ``--only mysql``) does the same for the MySQL
adapter: database ``wardgate_bench`` on the local MariaDB (127.0.0.1:3306, root) with a
10,000-row table, the gateway's MySQL listener with target ``demo_mysql`` -> that database,
and ``mysqlslap`` direct vs gateway (no pgbouncer-like pooler for MySQL here: ratios are to
direct only); its 2,000-row results are repeated on the masking-off gateway too.
Both paths are plaintext: MariaDB here has no TLS, so the bench gateway allows
``mysql_clear_password`` without TLS from loopback (``mysql.allow_cleartext_without_tls``)
and mysqlslap runs with ``--skip-ssl``.

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
SECTIONS = ("pgbench", "connect", "stream", "workers", "mysql")
DEFAULT_SECTIONS = SECTIONS  # mysql included: --quick stays under two minutes with it
CLIENT_ENV = {"PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10"}
# MySQL section: the local MariaDB, a 10k-row table, the gateway's target for it.
MYPORT = 3306
MYUSER = "root"
MY_TARGET = "demo_mysql"  # the quickstart's name: its policy grants "demo_*" to dba
MY_TABLE = "rows_10k"
MY_ROWS = 10_000
MY_POINT_SQL = f"SELECT t FROM {MY_TABLE} WHERE id = 4242"
# The same lookup as most clients send it: a new literal in every text (PyMySQL, the mysql
# CLI, ORMs interpolate parameters), like pgbench -S's random aid. mysqlslap reads the
# statements from a file and runs them in order.
MY_VARIED_COUNT = 100_000
MY_VARIED_SHAPE = f"SELECT t FROM {MY_TABLE} WHERE id = ? LIMIT ?"
MY_BIG_ROWS = 2_000
# A mid-sized result, as a report or an agent's exploratory query reads it: the recording
# keeps its first 1,000 rows (the default capture) and counts the rest.
PG_BIG_ROWS = 2_000
PG_BIG_SQL = f"SELECT aid, abalance, filler FROM pgbench_accounts WHERE aid <= {PG_BIG_ROWS}"
MY_BIG_SQL = f"SELECT id, t FROM {MY_TABLE} WHERE id <= {MY_BIG_ROWS}"


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


def mariadb(sql: str, db: str | None = None, check: bool = True) -> str:
    """One statement (or several) on the local MariaDB as root, tab-separated output."""
    cmd = ["mariadb", "--no-defaults", "--protocol=tcp", "-h", PGHOST, "-P", str(MYPORT)]
    cmd += ["-u", MYUSER, "-N", "-B", "-e", sql, *([db] if db else [])]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"mariadb {sql!r} failed: {r.stderr.strip()}")
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
    """Something a PostgreSQL (or MySQL) client can connect to, and the process to charge
    CPU to."""

    name: str
    port: int
    user: str
    password: str | None
    db: str
    pid: int | None = None  # process whose CPU we account (None: direct PostgreSQL)
    mysql_port: int | None = None  # a gateway's MySQL listener, when it has one

    def mysql(self) -> Endpoint:
        """The same gateway seen by a MySQL client: its MySQL port, schema = the target."""
        if self.mysql_port is None:
            raise RuntimeError(f"{self.name} has no MySQL listener")
        return Endpoint(self.name, self.mysql_port, self.user, self.password, MY_TARGET, self.pid)

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


def ensure_mysql_database(db: str, reinit: bool) -> None:
    """``db`` on the local MariaDB with ``rows_10k`` (id int primary key, md5 text)."""
    mariadb(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    rows = mariadb(
        "SELECT count(*) FROM information_schema.tables "
        f"WHERE table_schema = '{db}' AND table_name = '{MY_TABLE}'"
    )
    rows = mariadb(f"SELECT count(*) FROM {MY_TABLE}", db=db) if rows == "1" else "-1"
    if reinit or rows != str(MY_ROWS):
        log(f"creating MariaDB {db}.{MY_TABLE} ({MY_ROWS} rows)")
        mariadb(
            f"DROP TABLE IF EXISTS {MY_TABLE}; "
            f"CREATE TABLE {MY_TABLE} (id INT NOT NULL PRIMARY KEY, t CHAR(32) NOT NULL) "
            f"ENGINE=InnoDB; "
            f"INSERT INTO {MY_TABLE} SELECT seq, md5(seq) FROM seq_1_to_{MY_ROWS}; "
            f"ANALYZE TABLE {MY_TABLE}",
            db=db,
        )


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
    mysql_port: int | None = None,
    mysql_db: str | None = None,
) -> dict[str, Any]:
    """The bench gateway's config: quickstart policy, target ``demo`` -> ``db``.

    With ``mysql_port``: the MySQL listener there and target ``demo_mysql`` -> MariaDB
    ``mysql_db`` (default ``db``), plaintext logins allowed from loopback (MariaDB here
    has no TLS; direct and gateway are both compared without it).

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
    if mysql_port is not None:
        cfg["listen"]["mysql"] = f"{PGHOST}:{mysql_port}"
        cfg["targets"][MY_TARGET] = {
            "kind": "mysql",
            "host": PGHOST,
            "port": MYPORT,
            "database": mysql_db or db,
            "credential": {"username": MYUSER, "password": ""},
            "tls": {"mode": "disable"},
        }
        cfg["mysql"] = {"allow_cleartext_without_tls": True, "cleartext_loopback_only": True}
        grant_target(cfg["policy"], "dba", MY_TARGET)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def grant_target(policy: dict[str, Any], group: str, target: str) -> None:
    """Make sure one of ``group``'s roles covers ``target`` (the quickstart's ``dba-full``
    does through ``demo_*``; a changed quickstart gets the target added to its first role)."""
    from fnmatch import fnmatchcase

    roles = policy.get("bindings", {}).get(group, [])
    if not roles:
        raise RuntimeError(f"the quickstart policy binds no role to group {group!r}")
    for role in roles:
        if any(fnmatchcase(target, p) for p in policy["roles"][role].get("targets", [])):
            return
    policy["roles"][roles[0]].setdefault("targets", []).append(target)


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
    mysql: bool = False,
) -> Iterator[Endpoint]:
    """``wardgate serve`` from this tree (or ``src``, a copy's ``src/``) with a token;
    ``mysql``: also its MySQL listener (``Endpoint.mysql()``), target MariaDB ``db``."""
    import yaml

    state = Path(tempfile.mkdtemp(prefix=f"wardgate-bench-{name}-"))
    pg_port, api_port = free_port(), free_port()
    my_port = free_port() if mysql else None
    cfg_path = state / "wardgate.yaml"
    cfg_path.write_text(
        yaml.safe_dump(
            gateway_config(state, pg_port, api_port, db, extra, mysql_port=my_port),
            sort_keys=False,
        )
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
        # (no wait_port on the MySQL listener: it is up before "wardgate ready", and a
        # connect-and-close probe makes the gateway log a spurious login traceback)
        token = subprocess.run(
            [*base, "token", "create", "bench", "--group", "dba", "--ttl", "2h"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
        yield Endpoint(name, pg_port, "bench", token, "demo", pid=proc.pid, mysql_port=my_port)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        logf.close()
        with contextlib.suppress(OSError):
            log_lines = (state / "gateway.log").read_text(errors="replace").splitlines()
            errs = [ln for ln in log_lines if " ERROR " in ln or " CRITICAL " in ln]
            if errs:
                log(f"gateway {name}: {len(errs)} ERROR line(s) in its log; first: {errs[0][:300]}")
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


def pg_result(ep: Endpoint, seconds: float) -> dict[str, float]:
    """``pgbench -f`` running PG_BIG_SQL (2,000 rows of 3 columns) on one connection for
    ``seconds``: milliseconds per query (libpq reads every row) and proxy CPU per query."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(PG_BIG_SQL + ";\n")
    cmd = ["pgbench", "-n", "-f", f.name, "-M", "extended", "-c", "1", "-T", str(int(seconds))]
    cmd += ["-h", PGHOST, "-p", str(ep.port), "-U", ep.user, ep.db]
    try:
        cpu0 = ep.cpu()
        r = subprocess.run(cmd, capture_output=True, text=True, env=ep.env(), check=False)
        cpu1 = ep.cpu()
    finally:
        os.unlink(f.name)
    lat = re.search(rf"latency average = {_NUM} ms", r.stdout)
    txns = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
    if r.returncode != 0 or not (lat and txns) or not int(txns.group(1)):
        raise RuntimeError(
            f"pgbench -f ({PG_BIG_ROWS} rows) via {ep.name} failed: {r.stderr[-1500:]}"
        )
    res = {"ms": float(lat.group(1)), "queries": int(txns.group(1))}
    if cpu0 is not None and cpu1 is not None:
        res["cpu_ms"] = (cpu1 - cpu0) / res["queries"] * 1000
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


def mysqlslap(ep: Endpoint, sql: str, *, clients: int, queries: int) -> dict[str, float]:
    """``mysqlslap`` running ``sql`` ``queries`` times in all over ``clients`` connections.

    Plaintext (``--skip-ssl``) both ways; through the gateway the password is the token,
    sent with ``mysql_clear_password`` (MariaDB's client has it built in). The time is
    mysqlslap's own (it includes each client's connect, amortised over the queries).
    """
    cmd = [
        "mysqlslap",
        "--no-defaults",
        "--protocol=tcp",
        "-h",
        PGHOST,
        "-P",
        str(ep.port),
        "-u",
        ep.user,
        "--skip-ssl",
        f"--create-schema={ep.db}",  # the gateway maps its target's name to its database
        "--no-drop",
        f"--query={sql}",
        f"--concurrency={clients}",
        f"--number-of-queries={queries}",
        "--iterations=1",
    ]
    env = {k: v for k, v in os.environ.items() if k != "MYSQL_PWD"}
    if ep.password:
        cmd.append("--default-auth=mysql_clear_password")
        env["MYSQL_PWD"] = ep.password  # not on the command line
    cpu0 = ep.cpu()
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    cpu1 = ep.cpu()
    secs = re.search(rf"Average number of seconds to run all queries: {_NUM} seconds", r.stdout)
    per_client = re.search(r"Average number of queries per client: (\d+)", r.stdout)
    if r.returncode != 0 or not (secs and per_client):
        raise RuntimeError(
            f"mysqlslap against {ep.name} failed: {r.stderr.strip()[-1500:] or 'no timing'}\n"
            f"{' '.join(cmd)}\n{r.stdout[-1000:]}"
        )
    n = int(per_client.group(1)) * clients
    s = float(secs.group(1))
    res: dict[str, float] = {"s": s, "wall_s": wall, "queries": n, "qps": n / s if s else 0.0}
    res["us_per_query"] = s / n * 1e6 if n else 0.0
    if cpu0 is not None and cpu1 is not None:
        res["cpu_s"] = cpu1 - cpu0
        res["cpu_s_per_10k"] = (cpu1 - cpu0) / n * 10_000 if n else 0.0
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
    sections: frozenset[str] = frozenset(DEFAULT_SECTIONS)
    my_clients: list[int] = field(default_factory=lambda: [1, 4])
    # mysqlslap runs a number of queries, not a duration: each endpoint's count is sized
    # from a warm-up run so that every run lasts about this long (direct ~10x more queries)
    my_seconds: float = 5.0


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
        "mariadb": mariadb("SELECT version()", check=False),
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


def save_tool_results(kind: str, payload: dict[str, Any], errors: list[dict[str, Any]]) -> Path:
    """What ``bench/ab.py`` and ``bench/ladder.py`` end with: the failed measurements
    listed, everything written to ``bench/results/<kind>-<UTC stamp>.json``."""
    if errors:
        print(
            "\nfailed:",
            *(f"- {e['key']}: {e['error'].splitlines()[0]}" for e in errors),
            sep="\n",
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{kind}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps({**payload, "errors": errors}, indent=2, default=str))
    print(f"\nJSON: {out}")
    return out


def interleaved_pgbench(
    res: Results,
    eps: list[Endpoint],
    modes: list[str],
    clients: list[int],
    rounds: int,
    run: Callable[[Endpoint, str, int], dict[str, Any]],
) -> None:
    """A 1 s warm-up per endpoint and mode, then ``rounds`` rounds of every mode x client
    count x endpoint, interleaved; each result under ``{mode}/c{clients}/{endpoint}``
    (``bench/ab.py`` and ``bench/ladder.py``; ``run`` is the pgbench run)."""
    for ep in eps:
        for mode in modes:
            measure(
                res,
                "warmup",
                -1,
                lambda ep=ep, mode=mode: pgbench(ep, mode=mode, clients=2, threads=2, seconds=1),
            )
    for rnd in range(rounds):
        log(f"round {rnd + 1}/{rounds}")
        for mode in modes:
            for c in clients:
                for ep in eps:
                    r = measure(
                        res,
                        f"{mode}/c{c}/{ep.name}",
                        rnd,
                        lambda ep=ep, mode=mode, c=c: run(ep, mode, c),
                    )
                    if "tps" in r:
                        log(f"  {mode} c{c} {ep.name}: {r['tps']:.0f} tps")


def run_rounds(
    plan: Plan,
    eps: list[Endpoint],
    extra_stream: Endpoint | None,
    by_workers: dict[int, Endpoint],
    res: Results,
    my_eps: list[Endpoint] | None = None,
    my_unmasked: Endpoint | None = None,
) -> None:
    threads = {c: min(c, 2) for c in plan.clients}
    my_eps = my_eps or []  # [direct MariaDB, the gateway's MySQL side]
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
    # MySQL warm-up (MariaDB's caches, the gateway's target probe and classifier cache),
    # which also sizes each endpoint's runs to ~plan.my_seconds: a short run, then one of
    # ~0.25 s (a few dozen ms direct would underestimate the rate: connect, cold caches)
    my_counts: dict[str, int] = {}
    for key, sql, c, targets_ in mysql_workloads(plan, my_eps, my_unmasked):
        floor = 10 if key == "big" else 300 * c
        for ep in targets_:
            n = floor
            for step in (0.25, plan.my_seconds):
                r = measure(
                    res,
                    f"warmup/mysql/{key}/{ep.name}",
                    -1,
                    lambda ep=ep, sql=sql, c=c, n=n: mysqlslap(ep, sql, clients=c, queries=n),
                )
                n = max(floor, int(r.get("qps", 0) * step))
                n = -(-n // c) * c  # a multiple of c: mysqlslap splits the count evenly
            my_counts[f"{key}/{ep.name}"] = n
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
                r = measure(
                    res,
                    f"result2k/{ep.name}",
                    rnd,
                    lambda ep=ep: pg_result(ep, max(2.0, plan.seconds / 2)),
                )
                if "ms" in r:
                    log(f"  {PG_BIG_ROWS}-row result {ep.name}: {r['ms']:.2f} ms per query")
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
        for key, sql, c, targets_ in mysql_workloads(plan, my_eps, my_unmasked):
            for ep in targets_:
                r = measure(
                    res,
                    f"mysql/{key}/{ep.name}",
                    rnd,
                    lambda ep=ep, sql=sql, c=c, key=key: mysqlslap(
                        ep, sql, clients=c, queries=my_counts[f"{key}/{ep.name}"]
                    ),
                )
                if "qps" in r:
                    log(
                        f"  mysqlslap {key} {ep.name}: {r['queries']} queries in {r['s']:.2f} s, "
                        f"{r['qps']:.0f} q/s, {r['us_per_query']:.0f} us/query"
                    )


def varied_queries_file() -> str:
    """A file of MY_VARIED_COUNT distinct PK lookups (ids 1..MY_ROWS x LIMIT 1..10, in a
    fixed random order): every statement of a run is a text the gateway has not seen."""
    import random

    path = Path(tempfile.gettempdir()) / f"wardgate-bench-varied-{MY_VARIED_COUNT}.sql"
    if not path.exists():
        pairs = [(i, k) for i in range(1, MY_ROWS + 1) for k in range(1, 11)]
        random.Random(8).shuffle(pairs)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            "".join(
                f"SELECT t FROM {MY_TABLE} WHERE id = {i} LIMIT {k};\n"
                for i, k in pairs[:MY_VARIED_COUNT]
            )
        )
        tmp.replace(path)
    return str(path)


def mysql_workloads(
    plan: Plan, my_eps: list[Endpoint], my_unmasked: Endpoint | None
) -> list[tuple[str, str, int, list[Endpoint]]]:
    """(key, SQL, clients, endpoints) of the mysql section, in the order they run."""
    if not my_eps:
        return []
    out = [(f"point/c{c}", MY_POINT_SQL, c, my_eps) for c in plan.my_clients]
    out.append(("varied/c1", varied_queries_file(), 1, my_eps))
    out.append(("big", MY_BIG_SQL, 1, [*my_eps, *([my_unmasked] if my_unmasked else [])]))
    return out


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
    s["result2k"] = {n: res.med(f"result2k/{n}", "ms") for n in stream_names}
    s["result2k_cpu_ms"] = {n: res.med(f"result2k/{n}", "cpu_ms") for n in stream_names}
    for mode in ("simple", "extended"):
        for n in plan.workers:
            s["workers"][f"{mode}/w{n}"] = res.med(f"workers/{mode}/w{n}", "tps")
    if any(k.startswith("mysql/") for k in res.raw):
        s["mysql"] = summarize_mysql(res, plan)
    return s


def summarize_mysql(res: Results, plan: Plan) -> dict[str, Any]:
    """Medians of the mysql section: direct and gateway only (no pooler to compare)."""
    names = ("direct", "gateway")
    m: dict[str, Any] = {
        "qps": {},
        "us_per_query": {},
        "latency_added_us": {},
        "big_ms": {},
        "cpu_per_10k": {},
        "big_cpu_us_per_row": {},
        "queries": {},  # median queries per run (sized to ~my_seconds per endpoint)
    }
    for c in plan.my_clients:
        key = f"mysql/point/c{c}"
        m["qps"][f"c{c}"] = {n: res.med(f"{key}/{n}", "qps") for n in names}
        us = {n: res.med(f"{key}/{n}", "us_per_query") for n in names}
        m["us_per_query"][f"c{c}"] = us
        if us["direct"] is not None and us["gateway"] is not None:
            m["latency_added_us"][f"c{c}"] = us["gateway"] - us["direct"]
        m["cpu_per_10k"][f"point/c{c}"] = res.med(f"{key}/gateway", "cpu_s_per_10k")
        m["queries"][f"point/c{c}"] = {n: res.med(f"{key}/{n}", "queries") for n in names}
    key = "mysql/varied/c1"
    us = {n: res.med(f"{key}/{n}", "us_per_query") for n in names}
    m["varied_us_per_query"] = us
    if us["direct"] is not None and us["gateway"] is not None:
        m["latency_added_us"]["varied/c1"] = us["gateway"] - us["direct"]
    m["cpu_per_10k"]["varied/c1"] = res.med(f"{key}/gateway", "cpu_s_per_10k")
    m["queries"]["varied/c1"] = {n: res.med(f"{key}/{n}", "queries") for n in names}
    big = [*names, *([UNMASKED] if f"mysql/big/{UNMASKED}" in res.raw else [])]
    for n in big:
        per_query = res.med(f"mysql/big/{n}", "us_per_query")
        m["big_ms"][n] = None if per_query is None else per_query / 1000
    m["queries"]["big"] = {n: res.med(f"mysql/big/{n}", "queries") for n in big}
    for n in big[1:]:
        m["cpu_per_10k"][f"big/{n}"] = cpu = res.med(f"mysql/big/{n}", "cpu_s_per_10k")
        # s per 10k statements -> µs per row: x 1e6 / (10k statements x rows each)
        m["big_cpu_us_per_row"][n] = None if cpu is None else cpu * 100 / MY_BIG_ROWS
    return m


def targets(s: dict[str, Any], masked_note: str) -> list[dict[str, Any]]:
    out = []
    for mode in ("simple", "extended"):
        for c in (1, 8):
            row = s["pgbench"].get(f"{mode}/c{c}")
            if not row or all(v is None for v in row.values()):
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
    my_varied = s.get("mysql", {}).get("latency_added_us", {}).get("varied/c1")
    if my_varied is not None:
        out.append(
            {
                "target": "MySQL: added latency per query at c1, a new text each <= 100 us",
                "measured": f"{my_varied:.0f} us",
                "met": my_varied <= 100,
            }
        )
    my_added = s.get("mysql", {}).get("latency_added_us", {}).get("c1")
    if my_added is not None:
        out.append(
            {
                "target": "MySQL: added latency per query at c1 <= 100 us",
                "measured": f"{my_added:.0f} us",
                "met": my_added <= 100,
            }
        )
    sel = s["stream"]["select"]
    mr = ratio(sel.get("gateway"), sel.get("direct")) if not masked_note else None
    out.append(
        {
            "target": "1M-row read with masking <= 1.5x direct",
            "measured": (masked_note or "not measured") if mr is None else f"{mr:.2f}x",
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
    pg_rows = len(lines)
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
    rk, rc = s.get("result2k", {}), s.get("result2k_cpu_ms", {})
    d, p, g = rk.get("direct"), rk.get("pgbouncer"), rk.get("gateway")
    if g is not None:
        lines.append(
            f"| {PG_BIG_ROWS:,}-row result (pgbench -f, -M extended -c 1), ms per query "
            f"| {fmt(d, '.2f')} | {fmt(p, '.2f')} | {fmt(g, '.2f')} | {fmt(ratio(p, d), '.2f')} "
            f"| {fmt(ratio(g, d), '.2f')} |"
        )
        if rk.get(UNMASKED) is not None:
            gm = rk[UNMASKED]
            lines.append(
                f"| … same, gateway with masking off, ms | {fmt(d, '.2f')} | | {fmt(gm, '.2f')}"
                f" | | {fmt(ratio(gm, d), '.2f')} |"
            )
        lines.append(
            f"| proxy CPU per {PG_BIG_ROWS:,}-row result, ms (masking off) | | "
            f"{fmt(rc.get('pgbouncer'), '.2f')} | {fmt(rc.get('gateway'), '.2f')} "
            f"({fmt(rc.get(UNMASKED), '.2f')}) | | |"
        )
    cpu = s["cpu_per_10k"]
    for key, v in cpu.items():
        if v:
            mode, c = key.split("/c")
            lines.append(
                f"| proxy CPU s per 10k statements, -M {mode} -c {c} | | "
                f"{fmt(v.get('pgbouncer'), '.3f')} | {fmt(v.get('gateway'), '.3f')} | | |"
            )
    if len(lines) == pg_rows:  # no PostgreSQL section in this run (e.g. --only mysql)
        del lines[pg_rows - 2 :]
    else:
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
    if s.get("mysql"):
        lines.extend(markdown_mysql(info, plan, s))
    lines.append("Issue-8 targets:\n")
    lines.append("| target | measured | met |")
    lines.append("|---|---|---|")
    for t in tg:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['measured']} | {met} |")
    return "\n".join(lines) + "\n"


def markdown_mysql(info: dict[str, Any], plan: Plan, s: dict[str, Any]) -> list[str]:
    m = s["mysql"]
    ok = s.get("ok_runs", {})

    def mark(key: str) -> str:
        n = ok.get(key, plan.rounds)
        return f" ({n} of {plan.rounds} rounds)" if n < plan.rounds else ""

    lines = [
        f"MySQL: `mysqlslap` against MariaDB {info.get('mariadb') or '?'} (database "
        f"`wardgate_bench`, `{MY_TABLE}`: {MY_ROWS:,} rows of int + 32-char text), direct and "
        f"through the gateway (target `{MY_TARGET}`, same pipeline as above), interleaved, "
        f"~{plan.my_seconds:g} s per run (mysqlslap runs a count of queries: each endpoint's "
        "count is sized from its warm-up run; its time includes each client's connect). Both "
        "plaintext: MariaDB has no TLS here, so the gateway allows `mysql_clear_password` "
        "without TLS from loopback and mysqlslap runs `--skip-ssl`. No pgbouncer equivalent "
        "for MySQL on this machine (ProxySQL/MaxScale are not packaged in Debian): ratios are "
        "to direct only.\n",
        "| measurement | direct | gateway | gateway / direct |",
        "|---|---:|---:|---:|",
    ]
    for c in plan.my_clients:
        q = m["qps"].get(f"c{c}", {})
        d, g = q.get("direct"), q.get("gateway")
        if d is None and g is None:
            continue
        k = f"mysql/point/c{c}"
        lines.append(
            f"| PK lookup `{MY_POINT_SQL}` -c {c}, queries/s "
            f"| {fmt(d)}{mark(k + '/direct')} | {fmt(g)}{mark(k + '/gateway')} "
            f"| {fmt(ratio(g, d), '.2f')} |"
        )
    for c in plan.my_clients[:1]:
        us = m["us_per_query"].get(f"c{c}", {})
        d, g = us.get("direct"), us.get("gateway")
        if d is None and g is None:
            continue
        lines.append(
            f"| time per query -c {c} (time / queries), µs (added vs direct) | {fmt(d)} "
            f"| {fmt(g)} (+{fmt(m['latency_added_us'].get(f'c{c}'))}) "
            f"| {fmt(ratio(g, d), '.2f')} |"
        )
    us = m.get("varied_us_per_query", {})
    d, g = us.get("direct"), us.get("gateway")
    if d is not None or g is not None:
        k = "mysql/varied/c1"
        lines.append(
            f"| PK lookup, a new text per query (`{MY_VARIED_SHAPE}`, {MY_VARIED_COUNT:,} "
            f"distinct) -c 1, µs per query (added vs direct) | {fmt(d)}{mark(k + '/direct')} "
            f"| {fmt(g)}{mark(k + '/gateway')} (+{fmt(m['latency_added_us'].get('varied/c1'))})"
            f" | {fmt(ratio(g, d), '.2f')} |"
        )
    b = m.get("big_ms", {})
    d, g, gm = b.get("direct"), b.get("gateway"), b.get(UNMASKED)
    if d is not None or g is not None:
        lines.append(
            f"| {MY_BIG_ROWS:,}-row result `{MY_BIG_SQL}` -c 1, ms per query "
            f"| {fmt(d, '.2f')}{mark('mysql/big/direct')} "
            f"| {fmt(g, '.2f')}{mark('mysql/big/gateway')} | {fmt(ratio(g, d), '.2f')} |"
        )
    if gm is not None:
        lines.append(
            f"| … same, gateway with masking off, ms per query | {fmt(d, '.2f')} "
            f"| {fmt(gm, '.2f')}{mark(f'mysql/big/{UNMASKED}')} | {fmt(ratio(gm, d), '.2f')} |"
        )
    for c in plan.my_clients:
        v = m["cpu_per_10k"].get(f"point/c{c}")
        if v is not None:
            lines.append(f"| gateway CPU s per 10k statements, PK lookup -c {c} | | {v:.3f} | |")
    v = m["cpu_per_10k"].get("varied/c1")
    if v is not None:
        lines.append(
            f"| gateway CPU s per 10k statements, PK lookup with a new text each -c 1 "
            f"| | {v:.3f} | |"
        )
    for n, label in (("gateway", ""), (UNMASKED, ", masking off")):
        v = m["cpu_per_10k"].get(f"big/{n}")
        if v is not None:
            per_row = m.get("big_cpu_us_per_row", {}).get(n)
            lines.append(
                f"| gateway CPU per {MY_BIG_ROWS:,}-row result{label}, ms (µs per row) | "
                f"| {v / 10:.1f} ({fmt(per_row, '.1f')}) | |"
            )
    lines.append("")
    return lines


def render_saved(path: Path) -> str:
    """The Markdown report of a saved run (its JSON), e.g. after the report format changed."""
    doc = json.loads(path.read_text())
    fields = Plan.__dataclass_fields__
    plan = Plan(**{k: v for k, v in doc["plan"].items() if k in fields and k != "sections"})
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
    ap.add_argument(
        "--seconds", type=float, help="duration of each pgbench run (full: 10; mysqlslap: half)"
    )
    ap.add_argument("--db", default="wardgate_bench", help="bench database (created if missing)")
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument(
        "--reinit",
        action="store_true",
        help="re-run pgbench -i and the 1M table (and MariaDB's rows_10k, section mysql)",
    )
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
        default=None,
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: "
        f"{','.join(DEFAULT_SECTIONS)})",
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

    sections = frozenset(x for x in (args.only or ",".join(DEFAULT_SECTIONS)).split(",") if x)
    if sections - set(SECTIONS):
        raise SystemExit(f"--only: unknown section(s) {','.join(sorted(sections - set(SECTIONS)))}")
    if args.src:
        os.environ["WARDGATE_BENCH_SRC"] = str(Path(args.src).resolve())
    plan = Plan(
        rounds=args.rounds or (1 if args.quick else 3),
        seconds=args.seconds or (2 if args.quick else 10),
        conn_seconds=(2 if args.quick else 10) if not args.seconds else args.seconds,
        modes=args.modes.split(","),
        clients=[1, 8],
        workers=[] if args.no_workers or "workers" not in sections else [1, 2],
        stream=not args.no_stream and "stream" in sections,
        sections=sections,
        warmup_modes=1 if args.quick else 3,
        my_seconds=args.seconds / 2 if args.seconds else (1 if args.quick else 5),
    )
    started = datetime.now(UTC)
    ensure_database(args.db, args.scale, args.reinit)
    with_mysql = "mysql" in plan.sections
    if with_mysql:
        try:
            if not (shutil.which("mysqlslap") and shutil.which("mariadb")):
                raise RuntimeError("mysqlslap/mariadb not installed")
            ensure_mysql_database(args.db, args.reinit)
        except RuntimeError as e:
            if args.only:  # asked for explicitly: that is an error
                raise
            log(f"skipping the mysql section: {e}")
            with_mysql = False
            plan.sections = plan.sections - {"mysql"}

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
            "on (the 1M-row reads"
            + (" and MySQL 2,000-row results" if with_mysql else "")
            + " are repeated on a second gateway with masking off)"
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
        gw = stack.enter_context(
            gateway("gateway", args.db, extra=extra, src=src, mysql=with_mysql)
        )
        my_eps = (
            [Endpoint("direct", MYPORT, MYUSER, None, args.db), gw.mysql()] if with_mysql else []
        )
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
        if unmasked_extra is not None and (plan.stream or with_mysql):
            unmasked = stack.enter_context(
                gateway(UNMASKED, args.db, extra=unmasked_extra, src=src, mysql=with_mysql)
            )
        info = machine_info(args.db)
        info["timestamp"] = started.strftime("%Y-%m-%dT%H:%M:%SZ")
        log(
            f"direct :{PGPORT}, pgbouncer :{pgb.port}, gateway :{gw.port}; "
            f"{plan.rounds} round(s) of {plan.seconds:g} s"
            + (f"; MariaDB direct :{MYPORT}, gateway MySQL :{gw.mysql_port}" if with_mysql else "")
        )
        run_rounds(
            plan,
            [direct, pgb, gw],
            unmasked if plan.stream else None,
            by_workers,
            res,
            my_eps,
            unmasked.mysql() if unmasked and with_mysql else None,
        )

    names = ["direct", "pgbouncer", "gateway"]
    s = summarize(res, plan, names, UNMASKED if unmasked and plan.stream else None)
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
