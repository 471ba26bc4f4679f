"""Machine identities: a CI job presents an OIDC JWT as its password."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import psycopg
import pytest

from gateway_harness import RunningGateway, base_config, start_gateway
from oidc_issuer import LocalIssuer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    i = LocalIssuer()
    yield i
    i.stop()


@pytest.fixture(scope="module")
def gw(
    issuer: LocalIssuer, tmp_path_factory: pytest.TempPathFactory, target_db: str
) -> Iterator[RunningGateway]:
    state = tmp_path_factory.mktemp("gw-jwt")
    cfg = base_config(state, 0, 0, 0)
    cfg["identity"] = {
        "oidc": [
            {
                "issuer": issuer.issuer,
                "audience": "wardgate",
                "algorithms": ["RS256"],
                "leeway_seconds": 5,
            }
        ]
    }
    cfg["sessions"] = {"check_interval": "1s"}
    with start_gateway(state, cfg) as g:
        yield g


def _b64(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_jwt_identity_connects_and_is_bookkept(gw: RunningGateway, issuer: LocalIssuer) -> None:
    tok = issuer.token("ci-deploy", ["agents", "ci"])
    with psycopg.connect(gw.dsn("ci-deploy", tok)) as conn:
        assert conn.execute("select 40 + 2").fetchone() == (42,)
    time.sleep(0.8)
    rows = json.loads(gw.cli("sessions", "list", "--json").stdout)
    r = [x for x in rows if x["principal"] == "ci-deploy"][0]
    assert (
        r["auth_method"] == "jwt" and r["subject"] == "ci-deploy" and r["issuer"] == issuer.issuer
    )
    assert r["groups"] == ["agents", "ci"]


def test_forged_and_invalid_jwts_are_rejected(gw: RunningGateway, issuer: LocalIssuer) -> None:
    good = issuer.token("ci-deploy", ["agents"])
    header, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_payload = _b64({**claims, "groups": ["dba"]})
    cases = {
        "alg none": _b64({"alg": "none"}) + "." + payload + ".",
        "tampered claims": f"{header}.{forged_payload}.{sig}",
        "wrong audience": issuer.token("ci-deploy", ["agents"], aud="someone-else"),
        "expired": issuer.token("ci-deploy", ["agents"], ttl=-60),
        "other issuer": LocalIssuer().token("ci-deploy", ["agents"]),
    }
    for what, tok in cases.items():
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(gw.dsn("ci-deploy", tok))
        assert what


def test_session_ends_when_the_jwt_expires(gw: RunningGateway, issuer: LocalIssuer) -> None:
    tok = issuer.token("short-job", ["agents"], ttl=3)
    with psycopg.connect(gw.dsn("short-job", tok), autocommit=True) as conn:
        conn.execute("select 1")
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="expired"):
            while time.monotonic() - t0 < 10:
                conn.execute("select 1")
                time.sleep(0.2)
