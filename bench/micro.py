"""Per-statement CPU cost of each hot-path component, in-process, no sockets.

    .venv/bin/python bench/micro.py                       # this tree
    PYTHONPATH=/tmp/wg-exp/src .venv/bin/python bench/micro.py   # a patched copy

End-to-end numbers (``bench/run.py``) say *how much* the gateway costs; this says
*where*: it drives ``PgRelay`` with fake transports through the same message sequences
pgbench sends (simple, extended, prepared) and times the pieces separately -- statement
classification on a cache miss and a hit, ``PolicyGate.judge`` (with the gateway's
classifier: exact-text cache, then the shape cache), the relay's framing with and without
the recording observer, and the recorder's event work on the event loop (the store writer
thread is not started: its cost is the difference in ``bench/profile.py``), and the MySQL
relay the same way (COM_QUERY of a PK lookup, one row back, the same text or a new literal
each time). The "bench
gateway's pipeline" rows add the masker that ``bench/run.py``'s gateway has (``masking:
{}``), so they are the in-process counterpart of its pgbench figures; on this machine the
real gateway's CPU per statement has run at about 2.5x them (cold caches, the kernel).
Each figure is the best of several repeats, in µs of CPU time (``time.thread_time``, so a
busy machine does not inflate it) per statement.
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
Q_SQL = "SELECT abalance FROM pgbench_accounts WHERE aid = {};"
P_SQL = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"


def msg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(s: str) -> bytes:
    return s.encode() + b"\x00"


ROWDESC = msg(
    b"T", struct.pack("!h", 1) + cstr("abalance") + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0)
)
DATAROW = msg(b"D", struct.pack("!h", 1) + struct.pack("!i", 1) + b"0")
COMPLETE = msg(b"C", cstr("SELECT 1"))
READY = msg(b"Z", b"I")
PARSE_OK = msg(b"1", b"")
BIND_OK = msg(b"2", b"")


def bind(stmt: str, aid: int) -> bytes:
    v = str(aid).encode()
    body = cstr("") + cstr(stmt) + struct.pack("!hh", 0, 1) + struct.pack("!i", len(v)) + v
    return msg(b"B", body + struct.pack("!h", 0))


def extended(aid: int) -> bytes:
    parse = msg(b"P", cstr("") + cstr(P_SQL) + struct.pack("!h", 0))
    return (
        parse
        + bind("", aid)
        + msg(b"D", b"P" + cstr(""))
        + msg(b"E", cstr("") + struct.pack("!i", 0))
        + msg(b"S", b"")
    )


def prepared(aid: int) -> bytes:
    return (
        bind("P0_1", aid)
        + msg(b"D", b"P" + cstr(""))
        + msg(b"E", cstr("") + struct.pack("!i", 0))
        + msg(b"S", b"")
    )


REPLY = {
    "simple": ROWDESC + DATAROW + COMPLETE + READY,
    "extended": PARSE_OK + BIND_OK + ROWDESC + DATAROW + COMPLETE + READY,
    "prepared": BIND_OK + ROWDESC + DATAROW + COMPLETE + READY,
}


class FakeTransport:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_protocol(self, p: object) -> None: ...

    def is_closing(self) -> bool:
        return False

    def close(self) -> None: ...


def best_us(fn: Callable[[int], None], n: int, repeat: int = 5) -> float:
    best = float("inf")
    base = 1_000_000
    for r in range(repeat):
        start = base + r * n
        t0 = time.thread_time()  # CPU time: a busy machine does not inflate it
        for i in range(start, start + n):
            fn(i)
        best = min(best, (time.thread_time() - t0) / n * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=20_000, help="statements per repeat")
    args = ap.parse_args()
    n = args.n

    from wardgate.config import GatewayConfig
    from wardgate.core.model import Principal
    from wardgate.pipeline.statement_gate import PolicyGate
    from wardgate.policy.engine import PolicyEngine
    from wardgate.server.live import LiveSession
    from wardgate.server.pg_relay import PgRelay
    from wardgate.sql.cache import ClassificationCache
    from wardgate.sql.postgres import classify_postgres

    policy = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())["policy"]
    cfg = GatewayConfig.model_validate({"policy": policy})
    principal = Principal("bench", frozenset({"dba"}), "token")
    engine = PolicyEngine(cfg.policy)

    # The gateway's classifier: the exact-text cache in front of the literal-blind shape
    # cache (trees without the shape cache: classify_postgres directly).
    try:
        from wardgate.sql.pg_shapes import PostgresShapeCache

        def new_classifier() -> Callable[[str], Any]:
            return PostgresShapeCache().classify
    except ImportError:

        def new_classifier() -> Callable[[str], Any]:
            return classify_postgres

    # The bench gateway's masking (``masking: {}``: every identity masked, built-in
    # detectors), for the "bench pipeline" rows; None in a tree without it.
    masker_for_bench: Callable[[], Any] | None = None
    try:
        from wardgate.server.pg_masking import PgRowMasker

        masking = GatewayConfig.model_validate({"policy": policy, "masking": {}}).masking
        mask_policy = masking.masking_plan_for(principal.groups)
        if mask_policy is not None:

            def masker_for_bench() -> Any:
                return PgRowMasker(mask_policy, {})
    except Exception as e:  # masking not in this tree, or its API moved
        print(f"(masking not measured: {type(e).__name__}: {e})")

    def new_gate() -> Any:
        return PolicyGate(
            principal=principal,
            target="demo",
            session_id="ses_bench",
            engine=engine,
            cache=ClassificationCache(new_classifier()),
            approvals=None,
            approval_timeout=1.0,
        )

    rows: list[tuple[str, float]] = []
    rows.append(
        (
            "classify_postgres, unique literal (a cache miss)",
            best_us(lambda i: classify_postgres(Q_SQL.format(i)), n // 4),
        )
    )
    cache = ClassificationCache(classify_postgres)
    cache.classify(P_SQL)
    rows.append(("ClassificationCache.classify, hit", best_us(lambda i: cache.classify(P_SQL), n)))
    gate = new_gate()
    rows.append(
        (
            "PolicyGate.judge, simple, unique literal (exact-text miss, shape-cache hit)",
            best_us(lambda i: gate.judge(Q_SQL.format(i), "simple"), n // 4),
        )
    )
    gate.judge(P_SQL, "extended")
    rows.append(
        (
            "PolicyGate.judge, extended (cache hit)",
            best_us(lambda i: gate.judge(P_SQL, "extended"), n),
        )
    )

    recorder = None
    try:
        from sqlalchemy import create_engine

        from wardgate.recording.config import RecordingConfig
        from wardgate.recording.events import SessionMeta
        from wardgate.recording.keys import SigningKey
        from wardgate.recording.writer import Recorder
        from wardgate.server.pg_observer import PgObserver

        recorder = Recorder(
            create_engine("sqlite://"),
            SigningKey.generate(),
            RecordingConfig(queue_max_events=10**9, queue_max_bytes=2**60),
        )
    except Exception as e:  # recording not in this tree, or its API moved
        print(f"(recording observer not measured: {type(e).__name__}: {e})")

    variants = ["none"]
    if recorder is not None:
        variants += ["bare", "recording"]
        if masker_for_bench is not None:
            variants.append("bench")
    for mode in ("simple", "extended", "prepared"):
        for observed in variants:
            gate = new_gate()
            relay = PgRelay(
                LiveSession(id="ses_bench", protocol="postgres", client_addr="x"),
                FakeTransport(),  # type: ignore[arg-type]
                FakeTransport(),  # type: ignore[arg-type]
                gate,
                max_message_bytes=64 << 20,
                max_statement_bytes=16 << 20,
                on_closed=lambda r: None,
            )
            if observed != "none":
                srec = None
                if observed in ("recording", "bench"):
                    srec = recorder.open_session(  # type: ignore[union-attr]
                        SessionMeta(
                            f"ses_{mode}_{observed}", principal, "127.0.0.1:1", "demo", "postgresql"
                        )
                    )
                masker = masker_for_bench() if observed == "bench" and masker_for_bench else None
                relay.observer = PgObserver(srec, masker)
                if mode == "prepared":
                    relay.client_data(msg(b"P", cstr("P0_1") + cstr(P_SQL) + b"\x00\x00"))
                    relay.upstream_data(PARSE_OK)
            reply = REPLY[mode]

            def one(i: int, relay: PgRelay = relay, mode: str = mode, reply: bytes = reply) -> None:
                if mode == "simple":
                    data = msg(b"Q", cstr(Q_SQL.format(i)))
                elif mode == "extended":
                    data = extended(i)
                else:
                    data = prepared(i)
                relay.client_data(data)
                relay.upstream_data(reply)

            def one_and_drain(i: int, one: Callable[[int], None] = one) -> None:
                one(i)
                if recorder is not None and len(recorder._ops) > 3000:
                    recorder._ops.clear()  # what the writer thread would do

            us = best_us(one_and_drain, n // 4 if mode == "simple" else n)
            label = {
                "none": "no observer",
                "bare": "observer without recorder",
                "recording": "observer + recorder (loop side)",
                "bench": "the bench gateway's pipeline: observer + recorder + masker",
            }[observed]
            rows.append((f"PgRelay round trip -M {mode}, {label} (incl. judge)", us))

    # A streamed result: 10k rows of (int, 32-char text) in 64 KiB reads, as from the kernel.
    nrows = 10_000
    big_desc = msg(
        b"T",
        struct.pack("!h", 2)
        + cstr("g")
        + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0)
        + cstr("t")
        + struct.pack("!IhIhih", 0, 0, 25, -1, -1, 0),
    )
    rows_blob = b"".join(
        msg(
            b"D",
            struct.pack("!h", 2)
            + struct.pack("!i", len(str(i)))
            + str(i).encode()
            + struct.pack("!i", 32)
            + b"%032x" % i,
        )
        for i in range(nrows)
    )
    stream = big_desc + rows_blob + msg(b"C", cstr(f"SELECT {nrows}")) + READY
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    stream_rows: list[tuple[str, float]] = []
    for observed in ("none", "recording") if recorder is not None else ("none",):
        relay = PgRelay(
            LiveSession(id="ses_stream", protocol="postgres", client_addr="x"),
            FakeTransport(),  # type: ignore[arg-type]
            FakeTransport(),  # type: ignore[arg-type]
            new_gate(),
            max_message_bytes=64 << 20,
            max_statement_bytes=16 << 20,
            on_closed=lambda r: None,
        )
        if observed == "recording":
            srec = recorder.open_session(  # type: ignore[union-attr]
                SessionMeta("ses_stream", principal, "127.0.0.1:1", "demo", "postgresql")
            )
            relay.observer = PgObserver(srec, None)

        def big(i: int, relay: PgRelay = relay) -> None:
            relay.client_data(msg(b"Q", cstr("SELECT g, t FROM stream_1m")))
            for c in chunks:
                relay.upstream_data(c)

        us = best_us(big, 5, repeat=5) / nrows
        label = "no observer" if observed == "none" else "observer + recorder (loop side)"
        if observed == "recording":
            last = [op for op in recorder._ops if getattr(op, "type", "") == "statement"][-1]  # type: ignore[union-attr]
            label += f"; recorded rows={yaml.safe_load(last.payload)['rows']}"
            recorder._ops.clear()  # type: ignore[union-attr]
        stream_rows.append((f"PgRelay, 10k-row result, per DataRow, {label}", us))

    try:
        rows.extend(mysql_rows(n, principal, policy, recorder))
    except Exception as e:  # the MySQL adapter not in this tree, or its API moved
        print(f"(MySQL relay not measured: {type(e).__name__}: {e})")

    print("| component | µs per statement |")
    print("|---|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.1f} |")
    print("\n| streaming | µs per row |")
    print("|---|---:|")
    for name, us in stream_rows:
        print(f"| {name} | {us:.3f} |")


def mysql_rows(n: int, principal: Any, policy: Any, recorder: Any) -> list[tuple[str, float]]:
    """The MySQL relay: COM_QUERY of a PK lookup answered with one row (column count, one
    column definition, the row, the closing OK under DEPRECATE_EOF), as MariaDB sends it."""
    from wardgate.config import GatewayConfig
    from wardgate.pipeline.statement_gate import PolicyGate
    from wardgate.policy.engine import PolicyEngine
    from wardgate.proto.mysql.constants import Capability
    from wardgate.proto.mysql.messages import (
        ColumnDefinition,
        encode_column_count,
        encode_text_row,
    )
    from wardgate.proto.mysql.packets import encode_packet
    from wardgate.recording.events import SessionMeta
    from wardgate.server.live import LiveSession
    from wardgate.server.mysql_masking import MySqlRowMasker
    from wardgate.server.mysql_observer import MySqlObserver
    from wardgate.server.mysql_relay import MySqlRelay
    from wardgate.sql.cache import ClassificationCache

    try:
        from wardgate.sql.mysql_shapes import MySqlShapeCache

        def classifier() -> Callable[[str], Any]:
            return MySqlShapeCache().classify
    except ImportError:
        from wardgate.sql.mysql import classify_mysql

        def classifier() -> Callable[[str], Any]:
            return classify_mysql

    cfg = GatewayConfig.model_validate({"policy": policy, "masking": {}})
    engine = PolicyEngine(cfg.policy)
    mask_policy = cfg.masking.masking_plan_for(principal.groups)
    caps = int(
        Capability.PROTOCOL_41 | Capability.DEPRECATE_EOF | Capability.SECURE_CONNECTION
        | Capability.TRANSACTIONS | Capability.MULTI_RESULTS | Capability.PLUGIN_AUTH
        | Capability.SESSION_TRACK
    )  # fmt: skip
    col = ColumnDefinition(
        name="t", type=254, schema="wardgate_bench", table="rows_10k", org_table="rows_10k",
        org_name="t", column_length=128,
    )  # fmt: skip
    reply = (
        encode_packet(1, encode_column_count(1))
        + encode_packet(2, col.encode(caps))
        + encode_packet(3, encode_text_row([b"a" * 32]))
        + encode_packet(4, b"\xfe\x00\x00\x02\x00\x00\x00")
    )
    sql = "SELECT t FROM rows_10k WHERE id = {}"
    out: list[tuple[str, float]] = []

    def new_gate() -> Any:
        cache = ClassificationCache(classifier())
        return cache, PolicyGate(
            principal=principal, target="demo_mysql", session_id="s", engine=engine,
            cache=cache, approvals=None, approval_timeout=1.0,
        )  # fmt: skip

    _, gate = new_gate()
    gate.judge(sql.format(0), "simple")
    out.append(
        (
            "PolicyGate.judge, MySQL, unique literal (exact-text miss, shape-cache hit)",
            best_us(lambda i: gate.judge(sql.format(i), "simple"), n // 4),
        )
    )
    for observed, varied in (("none", False), ("bench", False), ("bench", True)):
        cache, gate = new_gate()
        relay = MySqlRelay(
            LiveSession(id="s", protocol="mysql", client_addr="x"),
            FakeTransport(),  # type: ignore[arg-type]
            FakeTransport(),  # type: ignore[arg-type]
            gate,
            classify=cache.classify,
            login=None,  # type: ignore[arg-type]
            capabilities=caps,
            target_name="demo_mysql",
            database="wardgate_bench",
            codec="utf-8",
            max_message_bytes=64 << 20,
            max_statement_bytes=16 << 20,
            allow_local_infile=False,
            kill_lookup=lambda g: None,
            reauthenticate=None,  # type: ignore[arg-type]
            on_closed=lambda r: None,
        )
        if observed == "bench" and recorder is not None:
            srec = recorder.open_session(
                SessionMeta(f"ses_my_{varied}", principal, "127.0.0.1:1", "demo_mysql", "mysql")
            )
            masker = MySqlRowMasker(mask_policy) if mask_policy is not None else None
            relay.observer = MySqlObserver(srec, masker, relay.tracker, relay.statements)

        def one(i: int, relay: MySqlRelay = relay, varied: bool = varied) -> None:
            text = sql.format(i if varied else 4242)
            relay.client_data(encode_packet(0, b"\x03" + text.encode()))
            relay.upstream_data(reply)
            if recorder is not None and len(recorder._ops) > 3000:
                recorder._ops.clear()

        us = best_us(one, n // 4 if varied else n)
        if relay.closed:
            raise RuntimeError(f"the relay closed: {relay.end_detail}")
        label = (
            "no observer"
            if observed == "none"
            else "the bench gateway's pipeline: observer + recorder + masker"
        )
        text = "a new literal each" if varied else "the same text"
        out.append((f"MySqlRelay round trip, PK lookup ({text}), {label} (incl. judge)", us))
    return out


if __name__ == "__main__":
    main()
