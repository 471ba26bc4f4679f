"""Sessions end when they outlive their scope: kill, revocation, group removal, limits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from gateway_harness import RunningGateway, base_config, start_gateway

pytestmark = pytest.mark.e2e


def _wait_dead(conn: psycopg.Connection, within: float = 6.0) -> psycopg.OperationalError:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            conn.execute("select 1")
        except psycopg.OperationalError as e:
            return e
        time.sleep(0.2)
    raise AssertionError("session was not ended")


def _session_id(gw: RunningGateway, who: str) -> str:
    for _ in range(50):
        rows = json.loads(gw.cli("sessions", "list", "--json").stdout)
        live = [r for r in rows if r["principal"] == who and r["ended_at"] is None]
        if live:
            return str(live[0]["id"])
        time.sleep(0.1)
    raise AssertionError(f"no live session for {who}")


def test_admin_kills_a_session_from_the_cli(gateway: RunningGateway) -> None:
    tok = gateway.token("victim", "dba")
    with (
        psycopg.connect(gateway.dsn("victim", tok), autocommit=True) as conn,
        psycopg.connect(
            gateway.dsn("victim", gateway.token("victim", "dba")), autocommit=True
        ) as other,
    ):
        conn.execute("select 1")
        time.sleep(0.3)
        rows = json.loads(gateway.cli("sessions", "list", "--json").stdout)
        live = sorted(
            (r for r in rows if r["principal"] == "victim" and not r["ended_at"]),
            key=lambda r: r["started_at"],
        )
        sid = live[0]["id"]
        gateway.cli("sessions", "kill", sid, "--reason", "incident 42")
        err = _wait_dead(conn)
        assert "incident 42" in str(err)
        assert other.execute("select 2").fetchone() == (2,)  # only that session ended
    time.sleep(0.5)
    rows = json.loads(gateway.cli("sessions", "list", "--json").stdout)
    assert [r for r in rows if r["id"] == sid][0]["end_reason"] == "killed"


def test_revoking_the_token_ends_live_sessions(gateway: RunningGateway) -> None:
    tok = gateway.token("revoke-live", "dba")
    with psycopg.connect(gateway.dsn("revoke-live", tok), autocommit=True) as conn:
        conn.execute("select 1")
        gateway.cli("token", "revoke", tok.split("_")[1])
        err = _wait_dead(conn)
        assert "was revoked" in str(err)


def test_removing_a_group_ends_sessions_that_relied_on_it(gateway: RunningGateway) -> None:
    tok = gateway.token("demoted", "engineers", "oncall")
    with psycopg.connect(gateway.dsn("demoted", tok), autocommit=True) as conn:
        conn.execute("select 1")
        gateway.cli("identity", "set-groups", "demoted", "engineers")
        err = _wait_dead(conn)
        assert "removed from group(s) oncall" in str(err)


def test_max_duration_and_idle_timeout(tmp_path: Path, target_db: str) -> None:
    cfg = base_config(tmp_path, 0, 0, 0)
    # max_duration well above idle_timeout, so a slow machine cannot blur which one fires.
    cfg["sessions"] = {"max_duration": "7s", "idle_timeout": "2s", "check_interval": "1s"}
    with start_gateway(tmp_path, cfg) as gw:
        tok = gw.token("limited", "dba")
        with psycopg.connect(gw.dsn("limited", tok), autocommit=True) as idle:
            time.sleep(3.5)
            with pytest.raises(psycopg.OperationalError, match="idle"):
                idle.execute("select 1")
        with psycopg.connect(gw.dsn("limited", tok), autocommit=True) as busy:
            t0 = time.monotonic()
            with pytest.raises(psycopg.OperationalError, match="max_duration"):
                while time.monotonic() - t0 < 20:
                    busy.execute("select 1")
                    time.sleep(0.2)
