"""End to end: real gateway process, real PostgreSQL, real clients and drivers."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time

import asyncpg
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import errors as pgerr
from sqlalchemy import select

from gateway_harness import RunningGateway
from rawpg import RawPg, error_fields

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def alice(gateway: RunningGateway) -> str:
    return gateway.token("alice", "dba")


def psql(gw: RunningGateway, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", dsn, "-X", "-At", *args], capture_output=True, text=True, timeout=60
    )


# ------------------------------------------------------------------------------ identity
def test_token_create_prints_only_the_token(gateway: RunningGateway) -> None:
    out = gateway.cli("token", "create", "tok-shape", "--group", "dba", "--ttl", "5m").stdout
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wg_") and len(lines[0]) > 40
    listed = gateway.cli("token", "list", "--identity", "tok-shape", "--json").stdout
    assert lines[0] not in listed  # listings never reveal the secret
    assert '"identity": "tok-shape"' in listed


def test_psql_over_required_tls(gateway: RunningGateway, alice: str) -> None:
    r = psql(
        gateway,
        gateway.dsn("alice", alice, sslmode="require"),
        "-c",
        "select current_database(), 6*7",
        "-c",
        r"\conninfo",
    )
    assert r.returncode == 0, r.stderr
    assert "wardgate_test|42" in r.stdout
    assert "SSL connection" in r.stdout


def test_psql_without_tls_when_allowed(gateway: RunningGateway, alice: str) -> None:
    r = psql(gateway, gateway.dsn("alice", alice, sslmode="disable"), "-c", "select 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


@pytest.mark.parametrize(
    "password",
    ["wg_000000000000_nope", "not-a-token", "wg_", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."],
)
def test_bad_token_is_28p01(gateway: RunningGateway, password: str) -> None:
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(gateway.dsn("alice", password))
    assert "password authentication failed" in str(e.value)


def test_tampered_token_secret_rejected(gateway: RunningGateway, alice: str) -> None:
    forged = alice[:-4] + ("AAAA" if not alice.endswith("AAAA") else "BBBB")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(gateway.dsn("alice", forged))


def test_expired_token_rejected(gateway: RunningGateway) -> None:
    tok = gateway.token("shortlived", "engineers", ttl="1s")
    time.sleep(1.5)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(gateway.dsn("shortlived", tok))


def test_revoked_token_rejected(gateway: RunningGateway) -> None:
    tok = gateway.token("revokee", "dba")
    with psycopg.connect(gateway.dsn("revokee", tok)) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    token_id = tok.split("_")[1]
    gateway.cli("token", "revoke", token_id)
    time.sleep(2.5)  # verification cache is 2 s
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(gateway.dsn("revokee", tok))


def test_token_of_another_identity_rejected(gateway: RunningGateway, alice: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(gateway.dsn("mallory", alice))


def test_unknown_target_names_it_and_the_choices(gateway: RunningGateway, alice: str) -> None:
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(gateway.dsn("alice", alice, dbname="prod"))
    msg = str(e.value)
    assert '"prod" does not exist' in msg and "demo" in msg


def test_auth_failure_does_not_reveal_why(gateway: RunningGateway) -> None:
    raw = RawPg(gateway.pg_port)
    msgs = raw.startup("alice", "demo", "wg_deadbeef0000_guess")
    kind, payload = msgs[-1]
    fields = error_fields(payload)
    assert kind == b"E" and fields["C"] == "28P01" and fields["S"] == "FATAL"
    assert "deadbeef" not in payload.decode(errors="replace")
    assert "unknown token" not in payload.decode(errors="replace")


# --------------------------------------------------------------------------- protocol
def test_client_never_receives_the_target_credential(tmp_path, target_db: str) -> None:  # type: ignore[no-untyped-def]
    from gateway_harness import base_config, start_gateway

    secret = "Sup3r-S3cret-Target-Pw"
    cfg = base_config(tmp_path, 0, 0, 0)
    cfg["targets"]["demo"]["credential"]["password"] = secret
    with start_gateway(tmp_path, cfg) as gw:
        tok = gw.token("carol", "dba")
        raw = RawPg(gw.pg_port)
        raw.startup("carol", "demo", tok)
        raw.query("select current_setting('application_name'), current_user, inet_server_port()")
        raw.query("select * from pg_settings")
        raw.close()
        assert secret.encode() not in raw.received
        assert secret not in gw.log()
        r = gw.cli("sessions", "list", "--json")
        assert secret not in r.stdout


def test_parameter_status_and_startup_params_are_forwarded(
    gateway: RunningGateway, alice: str
) -> None:
    with psycopg.connect(
        gateway.dsn("alice", alice), application_name="wg-e2e", options="-c search_path=pg_catalog"
    ) as conn:
        assert conn.info.parameter_status("server_version")
        assert conn.info.parameter_status("application_name") == "wg-e2e"
        assert conn.execute("show search_path").fetchone() == ("pg_catalog",)
        assert conn.execute("select current_setting('application_name')").fetchone() == ("wg-e2e",)


def test_startup_option_cannot_choose_the_role(gateway: RunningGateway, alice: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="role"):
        psycopg.connect(gateway.dsn("alice", alice), options="-c role=pg_read_all_data")


def test_replication_connections_are_refused(gateway: RunningGateway, alice: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="replication"):
        psycopg.connect(gateway.dsn("alice", alice) + " replication=database")


def test_gssenc_request_is_declined_then_ssl_works(gateway: RunningGateway, alice: str) -> None:
    import struct

    raw = RawPg(gateway.pg_port)
    raw.send(struct.pack("!ii", 8, 80877104))
    assert raw.recv_exact(1) == b"N"
    msgs = raw.startup("alice", "demo", alice)
    assert msgs[-1][0] == b"Z"
    raw.close()


def test_psycopg_text_and_binary_results(gateway: RunningGateway, alice: str) -> None:
    with psycopg.connect(gateway.dsn("alice", alice)) as conn:
        row = conn.execute(
            "select 1::int4, 'x'::text, 1.5::float8, now()::date, '{1,2}'::int[]"
        ).fetchone()
        assert row is not None and row[0] == 1 and row[1] == "x" and row[4] == [1, 2]
        cur = conn.cursor(binary=True)
        cur.execute("select %s::int8, %s::text, %s::bytea", (2**40, "ü", b"\x00\xff"))
        assert cur.fetchone() == (2**40, "ü", b"\x00\xff")


def test_psycopg_pipeline_mode(gateway: RunningGateway, alice: str) -> None:
    with psycopg.connect(gateway.dsn("alice", alice), autocommit=True) as conn:
        conn.execute(
            "drop table if exists wg_pipe; create table wg_pipe (id int primary key, v text)"
        )
        with conn.pipeline():
            with conn.cursor() as cur:
                cur.executemany(
                    "insert into wg_pipe values (%s, %s)", [(i, f"v{i}") for i in range(500)]
                )
            results = [
                conn.execute("select count(*) from wg_pipe where id < %s", (n,))
                for n in (10, 100, 1000)
            ]
        assert [r.fetchone() for r in results] == [(10,), (100,), (500,)]
        # An error in the middle of a pipeline must be reported where it happened.
        with pytest.raises(pgerr.UniqueViolation), conn.pipeline():
            conn.execute("insert into wg_pipe values (1, 'dup')")
            conn.execute("select 1")
        assert conn.execute("select count(*) from wg_pipe").fetchone() == (500,)


def test_copy_both_directions(gateway: RunningGateway, alice: str) -> None:
    with psycopg.connect(gateway.dsn("alice", alice), autocommit=True) as conn:
        conn.execute("drop table if exists wg_copy; create table wg_copy (id int, name text)")
        with conn.cursor().copy("COPY wg_copy FROM STDIN") as cp:
            for i in range(20000):
                cp.write_row((i, f"name-{i}"))
        assert conn.execute("select count(*), sum(id) from wg_copy").fetchone() == (
            20000,
            sum(range(20000)),
        )
        out = bytearray()
        with conn.cursor().copy(
            "COPY (select * from wg_copy order by id) TO STDOUT (FORMAT csv)"
        ) as cp:
            for chunk in cp:
                out += chunk
        lines = bytes(out).decode().splitlines()
        assert len(lines) == 20000 and lines[7] == "7,name-7"


def test_large_result_streams(gateway: RunningGateway, alice: str) -> None:
    with psycopg.connect(gateway.dsn("alice", alice)) as conn:
        cur = conn.cursor()
        cur.execute("select g, repeat('x', 100) from generate_series(1, 300000) g")
        n = 0
        total = 0
        for row in cur:
            n += 1
            total += row[0]
        assert n == 300000 and total == sum(range(1, 300001))


def test_listen_notify(gateway: RunningGateway, alice: str) -> None:
    with (
        psycopg.connect(gateway.dsn("alice", alice), autocommit=True) as listener,
        psycopg.connect(gateway.dsn("alice", alice), autocommit=True) as sender,
    ):
        listener.execute("LISTEN wg_chan")
        sender.execute("NOTIFY wg_chan, 'hello through the gateway'")
        got = next(listener.notifies(timeout=5))
        assert got.channel == "wg_chan" and got.payload == "hello through the gateway"


def test_cancel_maps_gateway_key_to_target(gateway: RunningGateway, alice: str) -> None:
    with psycopg.connect(gateway.dsn("alice", alice)) as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(pgerr.QueryCanceled) as e:
            conn.execute("select pg_sleep(30)")
        assert e.value.sqlstate == "57014"
        assert time.monotonic() - t0 < 10
        conn.rollback()
        assert conn.execute("select 1").fetchone() == (1,)


def test_cancel_with_a_wrong_key_does_nothing(gateway: RunningGateway, alice: str) -> None:
    import struct

    with psycopg.connect(gateway.dsn("alice", alice)) as conn:

        def forged_cancel() -> None:
            raw = RawPg(gateway.pg_port)
            raw.send(struct.pack("!iiiI", 16, 80877102, 12345, 67890))
            raw.close()

        threading.Timer(0.2, forged_cancel).start()
        assert conn.execute("select 1 from pg_sleep(1)").fetchone() == (1,)


def test_asyncpg(gateway: RunningGateway, alice: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=gateway.pg_port, user="alice", password=alice, database="demo"
        )
        try:
            await conn.execute("drop table if exists wg_apg; create table wg_apg (id int, v text)")
            await conn.executemany(
                "insert into wg_apg values ($1, $2)", [(i, str(i)) for i in range(1000)]
            )
            stmt = await conn.prepare("select count(*) from wg_apg where id >= $1")
            assert await stmt.fetchval(500) == 500
            await conn.copy_records_to_table("wg_apg", records=[(5000, "c")])
            assert await conn.fetchval("select v from wg_apg where id = 5000") == "c"
            async with conn.transaction():
                rows = [
                    r async for r in conn.cursor("select id from wg_apg order by id", prefetch=100)
                ]
            assert len(rows) == 1001
        finally:
            await conn.close()

    asyncio.run(go())


def test_sqlalchemy(gateway: RunningGateway, alice: str) -> None:
    engine = sa.create_engine(
        f"postgresql+psycopg://alice:{alice}@127.0.0.1:{gateway.pg_port}/demo"
    )
    md = sa.MetaData()
    t = sa.Table(
        "wg_sa", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50))
    )
    md.drop_all(engine)
    md.create_all(engine)
    with engine.begin() as c:
        c.execute(t.insert(), [{"id": i, "name": f"n{i}"} for i in range(50)])
    with engine.connect() as c:
        assert c.execute(select(sa.func.count()).select_from(t)).scalar() == 50
        assert sa.inspect(c).has_table("wg_sa")
    engine.dispose()


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench(gateway: RunningGateway, alice: str, mode: str) -> None:
    env = {"PGPASSWORD": alice, "PATH": "/usr/bin:/bin"}
    base = ["-h", "127.0.0.1", "-p", str(gateway.pg_port), "-U", "alice"]
    if mode == "simple":
        init = subprocess.run(
            ["pgbench", "-i", "-s", "1", "-q", *base, "demo"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert init.returncode == 0, init.stderr
    r = subprocess.run(
        ["pgbench", "-n", "-M", mode, "-c", "4", "-t", "200", *base, "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "number of failed transactions: 0" in r.stdout
    assert "number of transactions actually processed: 800/800" in r.stdout


def test_session_is_bookkept(gateway: RunningGateway) -> None:
    tok = gateway.token("ledger-user", "dba", "auditors")
    with psycopg.connect(gateway.dsn("ledger-user", tok), application_name="ledger") as conn:
        for _ in range(3):
            conn.execute("select 1")
    time.sleep(1.0)
    import json

    rows = json.loads(gateway.cli("sessions", "list", "--json").stdout)
    mine = [r for r in rows if r["principal"] == "ledger-user"]
    assert mine, rows
    r = mine[0]
    assert r["groups"] == ["auditors", "dba"]
    assert r["auth_method"] == "token" and r["token_id"] == tok.split("_")[1]
    assert r["target"] == "demo" and r["client_addr"].startswith("127.0.0.1:")
    assert r["statements"] >= 3 and r["bytes_from_client"] > 0 and r["bytes_to_client"] > 0
    assert r["ended_at"] and r["end_reason"] == "client_terminate"


# ------------------------------------------------------------------------------ bad input
def test_malformed_startup_closes_only_that_connection(gateway: RunningGateway, alice: str) -> None:
    import struct

    with psycopg.connect(gateway.dsn("alice", alice)) as bystander:
        raw = RawPg(gateway.pg_port)
        raw.send(struct.pack("!i", 2_000_000) + b"junk")
        k, p = raw.read_message()
        assert k == b"E" and error_fields(p)["C"] == "08P01"
        assert raw.closed_by_peer()
        raw2 = RawPg(gateway.pg_port)
        raw2.send(b"\x00\x00\x00\x08\x00\x09\x00\x00")  # protocol 9.0
        k, p = raw2.read_message()
        assert k == b"E" and "unsupported frontend protocol" in error_fields(p)["M"]
        assert bystander.execute("select 2").fetchone() == (2,)


def test_oversized_and_malformed_messages_after_login(gateway: RunningGateway, alice: str) -> None:
    import struct

    with psycopg.connect(gateway.dsn("alice", alice)) as bystander:
        raw = RawPg(gateway.pg_port)
        assert raw.startup("alice", "demo", alice)[-1][0] == b"Z"
        raw.send(b"Q" + struct.pack("!i", 1 << 30))  # a 1 GiB query announced
        k, p = raw.read_message()
        assert k == b"E" and error_fields(p)["C"] == "08P01"
        assert "max_statement_bytes" in error_fields(p)["M"]
        assert raw.closed_by_peer()
        raw = RawPg(gateway.pg_port)
        assert raw.startup("alice", "demo", alice)[-1][0] == b"Z"
        raw.send(b"B" + struct.pack("!i", 2))  # length below the minimum
        k, p = raw.read_message()
        assert k == b"E" and error_fields(p)["C"] == "08P01"
        assert bystander.execute("select 3").fetchone() == (3,)


def test_password_message_too_large(gateway: RunningGateway) -> None:
    import struct

    raw = RawPg(gateway.pg_port)
    body = struct.pack("!i", 196608) + b"user\x00alice\x00database\x00demo\x00\x00"
    raw.send(struct.pack("!i", len(body) + 4) + body)
    assert raw.read_message()[0] == b"R"
    raw.send(b"p" + struct.pack("!i", 10_000_000))
    k, p = raw.read_message()
    assert k == b"E" and error_fields(p)["C"] == "08P01"


def test_dead_target_gives_a_clear_fatal(tmp_path, target_db: str) -> None:  # type: ignore[no-untyped-def]
    from gateway_harness import base_config, free_port, start_gateway

    cfg = base_config(tmp_path, 0, 0, 0)
    cfg["targets"]["demo"]["port"] = free_port()  # nothing listens there
    with start_gateway(tmp_path, cfg) as gw:
        tok = gw.token("dave", "dba")
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(gw.dsn("dave", tok))
        msg = str(e.value)
        assert "could not reach target 'demo'" in msg


def test_health_and_metrics(gateway: RunningGateway) -> None:
    import httpx

    assert httpx.get(gateway.api + "/healthz").json()["status"] == "ok"
    text = httpx.get(gateway.api + "/metrics").text
    assert "wardgate_sessions_total" in text
    assert httpx.get(gateway.api + "/openapi.json").json()["info"]["title"] == "wardgate"
    assert httpx.get(gateway.api + "/api/v1/sessions").status_code == 401


def test_a_port_probe_is_not_an_error(gateway: RunningGateway) -> None:
    # Health checks connect and leave without a startup packet: no traceback in the log,
    # and the listener keeps serving.
    import socket

    seen = len(gateway.log())
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", gateway.pg_port)):
            pass
    time.sleep(0.5)
    assert "Traceback" not in gateway.log()[seen:]
    tok = gateway.token("probe-check", "dba")
    with psycopg.connect(gateway.dsn("probe-check", tok)) as conn:
        assert conn.execute("select 6*7").fetchone() == (42,)
