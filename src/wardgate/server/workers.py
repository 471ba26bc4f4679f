"""``serve --workers N``: N gateway processes sharing the listening ports via SO_REUSEPORT.

The kernel spreads new connections across the processes; each is a complete gateway
with its own event loop, so there is no cross-process lock on the hot path. State that
must be shared (tokens, approvals, the session ledger, recordings) lives in the state
store, exactly as it does across several nodes behind a load balancer.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time

from wardgate.config import GatewayConfig


def _child(cfg: GatewayConfig, index: int) -> None:
    os.environ["WARDGATE_WORKER"] = str(index)
    from wardgate.server.run import run

    run(cfg, reuse_port=True)


def run_workers(cfg: GatewayConfig, workers: int) -> None:
    from wardgate.storage.db import make_engine, upgrade

    upgrade(make_engine(cfg.state.url))  # once, before the children race to do it
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_child, args=(cfg, i), daemon=False) for i in range(workers)]
    for p in procs:
        p.start()

    def stop(_sig: int, _frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while any(p.is_alive() for p in procs):
        for p in procs:
            p.join(0.5)
            if p.exitcode not in (None, 0, -signal.SIGTERM):
                print(f"wardgate: worker {p.pid} exited with {p.exitcode}", file=sys.stderr)
                stop(signal.SIGTERM, None)
        time.sleep(0.1)
