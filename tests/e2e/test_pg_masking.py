"""Inline masking through the real gateway: agents/engineers masked, dba clear (quickstart)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest

from conftest import TEST_DB
from gateway_harness import RunningGateway

pytestmark = pytest.mark.e2e
DIRECT = f"host=127.0.0.1 port=5432 user=postgres dbname={TEST_DB}"

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
SSN = "123-45-6789"
AWS = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture(scope="module")
def customers() -> Iterator[None]:
    with psycopg.connect(DIRECT, autocommit=True) as c:
        c.execute(
            "drop table if exists wg_customers; create table wg_customers ("
            "id int primary key, name text, email text, card_number text, ssn text, note text, "
            "order_no text, big_card int8, doc jsonb)"
        )
        c.execute(
            "insert into wg_customers values "
            "(1, 'Jane', %s, %s, %s, %s, '1234567812345678', 4111111111111111, %s), "
            "(2, 'Bob', 'bob@example.org', '5555-5555-5555-4444', '987654321', 'order 4111-1111-1111-1112 shipped', "
            "'2024-01-02T03:04:05Z', 42, '{\"card\": \"378282246310005\"}')",
            (EMAIL, CARD, SSN, f"key {AWS} leaked", json.dumps({"contact": EMAIL})),
        )
        c.execute(
            "drop table if exists wg_plain; create table wg_plain (id int, uuid uuid, label text, v numeric)"
        )
        c.execute(
            "insert into wg_plain select g, md5(g::text)::uuid, 'item ' || g || ' v1.2.3.4', g * 1.5 "
            "from generate_series(1, 500) g"
        )
    yield
    with psycopg.connect(DIRECT, autocommit=True) as c:
        c.execute("drop table if exists wg_customers; drop table if exists wg_plain")


def _rows(gw: RunningGateway, user: str, group: str, sql: str, binary: bool = False) -> list[tuple]:  # type: ignore[type-arg]
    tok = gw.token(user, group)
    with psycopg.connect(gw.dsn(user, tok)) as conn:
        cur = conn.cursor(binary=binary)
        cur.execute(sql)
        return cur.fetchall()


@pytest.mark.parametrize("binary", [False, True])
def test_agent_sees_masked_values_dba_sees_clear(
    gateway: RunningGateway, customers: None, binary: bool
) -> None:
    sql = "select id, name, email, card_number, ssn, note, order_no, big_card, doc from wg_customers order by id"
    masked = _rows(gateway, "mask-agent", "agents", sql, binary)
    clear = _rows(gateway, "mask-dba", "dba", sql, binary)
    assert clear[0][2] == EMAIL and clear[0][3] == CARD and clear[0][4] == SSN
    flat = json.dumps([list(map(str, r)) for r in masked])
    for secret in (
        EMAIL,
        CARD,
        SSN,
        AWS,
        "4111111111111111",
        "5555-5555-5555-4444",
        "378282246310005",
        "bob@example.org",
        "987654321",
    ):
        assert secret not in flat, secret
    j, b = masked
    assert j[1] == "Jane" and b[1] == "Bob"  # names are not sensitive
    assert j[3].endswith("1111")  # last4 for cards
    assert j[6] == "1234567812345678"  # a 16-digit order number failing Luhn survives
    assert b[6] == "2024-01-02T03:04:05Z"
    assert "4111-1111-1111-1112" in b[5]  # fails Luhn: left alone
    assert j[7] != 4111111111111111 and str(j[7]).endswith("1111")  # int8 card, still an int8
    assert b[7] == 42
    assert EMAIL not in json.dumps(j[8])


def test_rows_without_sensitive_data_are_identical(
    gateway: RunningGateway, customers: None
) -> None:
    sql = "select * from wg_plain order by id"
    assert _rows(gateway, "mask-agent", "agents", sql) == _rows(gateway, "mask-dba", "dba", sql)
    assert _rows(gateway, "mask-agent", "agents", sql, True) == _rows(
        gateway, "mask-dba", "dba", sql, True
    )


@pytest.mark.parametrize("binary", [False, True])
def test_sensitive_rows_deep_in_a_large_result_are_masked(
    gateway: RunningGateway, binary: bool
) -> None:
    # Past the recording capture (max_result_rows: 1000) rows are vouched for in runs by
    # the compiled gate; the ones it stops at must still be masked, the rest identical.
    sql = (
        "select g, case when g % 997 = 0 then 'mail ' || g || '@example.com' "
        "else md5(g::text) end from generate_series(1, 20000) g"
    )
    masked = _rows(gateway, "mask-agent", "agents", sql, binary)
    clear = _rows(gateway, "mask-dba", "dba", sql, binary)
    assert len(masked) == len(clear) == 20000
    hits = 0
    for m_row, c_row in zip(masked, clear, strict=True):
        if m_row[0] % 997 == 0:
            hits += 1
            assert "@example.com" in c_row[1] and "@example.com" not in m_row[1], m_row
        else:
            assert m_row == c_row
    assert hits == 20000 // 997


@pytest.mark.parametrize("fmt", ["text", "csv"])
def test_copy_to_stdout_is_masked(gateway: RunningGateway, customers: None, fmt: str) -> None:
    tok = gateway.token("mask-eng", "engineers")
    out = bytearray()
    with (
        psycopg.connect(gateway.dsn("mask-eng", tok)) as conn,
        conn.cursor().copy(
            f"COPY (select id, email, card_number, note from wg_customers order by id) TO STDOUT (FORMAT {fmt})"
        ) as cp,
    ):
        for chunk in cp:
            out += chunk
    text = bytes(out).decode()
    assert EMAIL not in text and CARD not in text and AWS not in text
    assert len(text.splitlines()) == 2 and text.splitlines()[0].startswith("1")


def test_binary_copy_is_refused_for_masked_identities(
    gateway: RunningGateway, customers: None
) -> None:
    tok = gateway.token("mask-eng", "engineers")
    with (
        psycopg.connect(gateway.dsn("mask-eng", tok)) as conn,
        pytest.raises(psycopg.Error),
        conn.cursor().copy("COPY wg_customers TO STDOUT (FORMAT binary)") as cp,
    ):
        for _ in cp:
            pass


def test_recording_holds_the_masked_values(gateway: RunningGateway, customers: None) -> None:
    tok = gateway.token("mask-rec", "agents")
    with psycopg.connect(gateway.dsn("mask-rec", tok)) as conn:
        conn.execute("select email, card_number from wg_customers where id = 1").fetchall()
    time.sleep(1.0)
    rows = json.loads(gateway.cli("sessions", "list", "--json").stdout)
    sid = next(r["id"] for r in rows if r["principal"] == "mask-rec")
    for _ in range(30):
        show = gateway.cli("sessions", "show", sid).stdout
        if "1111" in show:
            break
        time.sleep(0.2)
    assert "1111" in show
    assert EMAIL not in show and CARD not in show
