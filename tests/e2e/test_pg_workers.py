"""`serve --workers 2`: both processes serve, and a cancel reaches the right one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pgerr

from gateway_harness import start_gateway

pytestmark = pytest.mark.e2e


def test_two_workers_share_the_port_and_cancel_finds_its_session(tmp_path: Path, target_db: str) -> None:
    with start_gateway(tmp_path, extra_args=["--workers", "2"]) as gw:
        time.sleep(1.5)  # the second worker
        tok = gw.token("w", "dba")
        pids = set()
        conns = [psycopg.connect(gw.dsn("w", tok)) for _ in range(12)]
        try:
            for c in conns:
                pids.add(c.info.backend_pid >> 24)  # the worker index is in the key's top bits
            assert pids == {0, 1}, pids  # the kernel spread connections over both workers
            for c in conns[:6]:  # each cancel lands on a random worker: all must work
                threading.Timer(0.3, c.cancel).start()
                t0 = time.monotonic()
                with pytest.raises(pgerr.QueryCanceled):
                    c.execute("select pg_sleep(20)")
                assert time.monotonic() - t0 < 8
        finally:
            for c in conns:
                c.close()
