"""Tests for wardgate.authn.jwt and wardgate.authn.oidc_config.

A real HTTP server on 127.0.0.1 plays the OIDC issuer (discovery document + JWKS) and counts
the requests it gets; tokens are signed with real RSA, EC and Ed25519 keys. Forged tokens are
built by hand so that each one carries exactly the flaw its test is about.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from pydantic import ValidationError

from wardgate.authn.jwt import MAX_TOKEN_BYTES, JwtVerifier, _key_fits, looks_like_jwt
from wardgate.authn.oidc_config import OidcIssuerConfig
from wardgate.core.errors import AuthenticationError, ConfigError
from wardgate.core.model import Principal

NOW = 1_750_000_000.0
AUDIENCE = "wardgate"


# --- keys and token building ------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: Key, **extra: Any) -> dict[str, Any]:
    return {**key.as_dict(private=False), "use": "sig", **extra}


def raw_token(
    header: dict[str, Any],
    claims: dict[str, Any] | bytes,
    key: Key | None,
    *,
    sign_alg: str | None = None,
) -> str:
    """A compact JWS exactly as given: no header is added, nothing is validated."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload)}"
    signature = b""
    if key is not None:
        alg = JWSRegistry.algorithms[sign_alg or header["alg"]]
        signature = alg.sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    return {
        "rsa-1": RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}),
        "rsa-2": RSAKey.generate_key(2048, parameters={"kid": "rsa-2"}),
        "ec-1": ECKey.generate_key("P-256", parameters={"kid": "ec-1"}),
        "ed-1": OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"}),
        "attacker": RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}),
    }


# --- the issuer -------------------------------------------------------------------------------


class FakeIssuer:
    """A real HTTP server serving OIDC discovery and a JWKS; counts every request by path."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.jwks: dict[str, Any] = {"keys": []}
        self.status = 200
        self.delay = 0.0
        self.discovery_issuer: str | None = None
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests[self.path] += 1
                if issuer.delay:
                    time.sleep(issuer.delay)
                if self.path == "/realms/ci/.well-known/openid-configuration":
                    body: Any = {
                        "issuer": issuer.discovery_issuer or issuer.issuer,
                        "jwks_uri": f"{issuer.base_url}/realms/ci/certs",
                    }
                elif self.path == "/realms/ci/certs":
                    body = issuer.jwks
                else:
                    self.send_error(404)
                    return
                if issuer.status != 200:
                    self.send_error(issuer.status)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = f"{self.base_url}/realms/ci"
        self.jwks_url = f"{self.base_url}/realms/ci/certs"
        # A short poll interval keeps shutdown (once per test) from costing half a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        self._running = True

    def publish(self, *keys: Key | dict[str, Any]) -> None:
        self.jwks = {"keys": [k if isinstance(k, dict) else public_jwk(k) for k in keys]}

    @property
    def jwks_fetches(self) -> int:
        return self.requests["/realms/ci/certs"]

    @property
    def discovery_fetches(self) -> int:
        return self.requests["/realms/ci/.well-known/openid-configuration"]

    def stop(self) -> None:
        """Close the listening socket: later connections are refused."""
        if self._running:
            self._running = False
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()


@pytest.fixture
def idp(keys: dict[str, Key]) -> Iterator[FakeIssuer]:
    server = FakeIssuer()
    server.publish(keys["rsa-1"], keys["ec-1"], keys["ed-1"])
    yield server
    server.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeVerifier = Callable[..., JwtVerifier]


@pytest.fixture
async def make_verifier(idp: FakeIssuer, clock: FakeClock) -> AsyncIterator[MakeVerifier]:
    made: list[JwtVerifier] = []

    def make(*, unchecked: bool = False, **settings: Any) -> JwtVerifier:
        values: dict[str, Any] = {"issuer": idp.issuer, "audience": AUDIENCE, **settings}
        # unchecked: build the config without its validators, to prove the verifier holds
        # even when the configuration is wrong.
        config = (
            OidcIssuerConfig.model_construct(**values) if unchecked else OidcIssuerConfig(**values)
        )
        verifier = JwtVerifier([config], clock=clock)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.aclose()


@pytest.fixture
def claims(idp: FakeIssuer) -> dict[str, Any]:
    return {
        "iss": idp.issuer,
        "sub": "repo:acme/api:ref:refs/heads/main",
        "aud": AUDIENCE,
        "iat": int(NOW) - 5,
        "nbf": int(NOW) - 5,
        "exp": int(NOW) + 300,
        "groups": ["ci", "deployers"],
    }


def sign(key: Key, claims: dict[str, Any], alg: str = "RS256", **header: Any) -> str:
    return raw_token({"alg": alg, "typ": "JWT", "kid": key.kid, **header}, claims, key)


async def rejected(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(token)
    return str(caught.value)


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "HS384", "HS512", "hs256"])
def test_config_rejects_unsigned_and_symmetric_algorithms(alg: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OidcIssuerConfig(issuer="https://idp.example", audience="x", algorithms=["RS256", alg])
    assert "algorithms" in str(caught.value)
    assert ("unsigned" in str(caught.value)) or ("symmetric" in str(caught.value))


@pytest.mark.parametrize(
    ("settings", "mentions"),
    [
        ({"algorithms": ["RS257"]}, "not supported"),
        ({"algorithms": []}, "algorithms"),
        ({"audience": []}, "audience"),
        ({"audience": ""}, "audience"),
        ({"jwks_url": "file:///etc/jwks.json"}, "jwks_url"),
        ({"issuer": "ci-issuer"}, "explicit jwks_url"),
        ({"leeway_seconds": -1}, "leeway_seconds"),
        ({"max_token_lifetime_seconds": 0}, "max_token_lifetime_seconds"),
        ({"groups_claim": ""}, "groups_claim"),
        ({"audiance": "typo"}, "audiance"),
    ],
)
def test_config_rejects_invalid_settings(settings: dict[str, Any], mentions: str) -> None:
    values: dict[str, Any] = {"issuer": "https://idp.example", "audience": "x", **settings}
    with pytest.raises(ValidationError) as caught:
        OidcIssuerConfig(**values)
    assert mentions in str(caught.value)


def test_config_defaults_and_non_url_issuer_with_jwks_url() -> None:
    config = OidcIssuerConfig(
        issuer="ci-issuer", audience=["a", "b"], jwks_url="https://idp.example/jwks"
    )
    assert config.algorithms == ["RS256", "ES256", "EdDSA", "PS256"]
    assert config.audiences == frozenset({"a", "b"})
    assert config.leeway_seconds == 30
    assert config.require_exp is True


def test_duplicate_issuer_is_a_config_error() -> None:
    config = OidcIssuerConfig(issuer="https://idp.example", audience="x")
    with pytest.raises(ConfigError, match="more than once"):
        JwtVerifier([config, config])


# --- looks_like_jwt ---------------------------------------------------------------------------


def test_looks_like_jwt(keys: dict[str, Key], claims: dict[str, Any]) -> None:
    token = sign(keys["rsa-1"], claims)
    assert looks_like_jwt(token)
    assert looks_like_jwt(raw_token({"alg": "none"}, claims, None))  # routed, then rejected
    for secret in [
        "",
        "hunter2",
        "wg_abc.def",
        "a.b.c",  # segments that do not decode to a JSON header
        b64(b'{"typ":"JWT"}') + ".e30.",  # JSON header without alg
        b64(b"[1,2]") + ".e30.sig",
        token + ".extra",
        token.replace(".", "..", 1),
        "eyJhbGciOiJSUzI1NiJ9.e30.s!g",
    ]:
        assert not looks_like_jwt(secret), secret


# --- valid tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kid", "alg"),
    [("rsa-1", "RS256"), ("rsa-1", "PS256"), ("ec-1", "ES256"), ("ed-1", "EdDSA")],
)
async def test_valid_token_becomes_principal(
    make_verifier: MakeVerifier,
    idp: FakeIssuer,
    keys: dict[str, Key],
    claims: dict[str, Any],
    kid: str,
    alg: str,
) -> None:
    verifier = make_verifier(static_groups=["machines"])
    principal = await verifier.verify(sign(keys[kid], claims, alg))
    assert principal == Principal(
        name=claims["sub"],
        groups=frozenset({"ci", "deployers", "machines"}),
        auth_method="jwt",
        subject=claims["sub"],
        issuer=idp.issuer,
        expires_at=datetime.fromtimestamp(NOW + 300, tz=UTC),
    )
    assert principal.expires_at is not None
    assert principal.expires_at.tzinfo is not None
    assert principal.claims == claims
    assert principal.credential_id == f"jwt:{idp.issuer}#{claims['sub']}"
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


async def test_ed25519_algorithm_name_of_rfc9864(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    verifier = make_verifier(algorithms=["Ed25519"])
    assert (await verifier.verify(sign(keys["ed-1"], claims, "Ed25519"))).name == claims["sub"]


async def test_explicit_jwks_url_skips_discovery(
    make_verifier: MakeVerifier, idp: FakeIssuer, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    verifier = make_verifier(jwks_url=idp.jwks_url)
    await verifier.verify(sign(keys["rsa-1"], claims))
    assert (idp.discovery_fetches, idp.jwks_fetches) == (0, 1)


@pytest.mark.parametrize(
    ("settings", "extra_claims", "name", "groups"),
    [
        ({}, {"groups": "ci  deployers,ops"}, None, {"ci", "deployers", "ops"}),
        (
            {"groups_claim": "realm_access.roles"},
            {"realm_access": {"roles": ["db-readers", "ops"]}},
            None,
            {"db-readers", "ops"},
        ),
        (
            {"groups_claim": "https://acme.example/groups"},
            {"https://acme.example/groups": ["admins"]},
            None,
            {"admins"},
        ),
        ({"static_groups": ["machines"]}, {"groups": None}, None, {"machines"}),
        ({"groups_claim": "roles"}, {}, None, set()),
        (
            {"username_claim": "preferred_username"},
            {"preferred_username": "deploy-bot"},
            "deploy-bot",
            {"ci", "deployers"},
        ),
    ],
)
async def test_groups_and_username_claims(
    make_verifier: MakeVerifier,
    keys: dict[str, Key],
    claims: dict[str, Any],
    settings: dict[str, Any],
    extra_claims: dict[str, Any],
    name: str | None,
    groups: set[str],
) -> None:
    verifier = make_verifier(**settings)
    principal = await verifier.verify(sign(keys["rsa-1"], {**claims, **extra_claims}))
    assert principal.groups == frozenset(groups)
    assert principal.name == (name or claims["sub"])


@pytest.mark.parametrize("groups", [{"admin": True}, 7, ["ci", 7]])
async def test_malformed_groups_claim_is_rejected(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any], groups: object
) -> None:
    reason = await rejected(make_verifier(), sign(keys["rsa-1"], {**claims, "groups": groups}))
    assert "groups_claim" in reason


async def test_username_claim_missing_is_rejected(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    verifier = make_verifier(username_claim="preferred_username")
    assert "username_claim" in await rejected(verifier, sign(keys["rsa-1"], claims))


async def test_missing_sub_is_rejected(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    del claims["sub"]
    verifier = make_verifier(username_claim="groups")
    assert "sub" in await rejected(verifier, sign(keys["rsa-1"], claims))


# --- issuer and audience ----------------------------------------------------------------------


async def test_unknown_issuer_is_rejected_without_any_fetch(
    make_verifier: MakeVerifier, idp: FakeIssuer, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    verifier = make_verifier()
    for iss in [idp.issuer + "/", "https://evil.example/realms/ci", None, 42]:
        token = sign(keys["rsa-1"], {**claims, "iss": iss})
        assert "not configured" in await rejected(verifier, token)
    assert sum(idp.requests.values()) == 0


async def test_token_signed_by_someone_else_for_our_issuer_is_rejected(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    # The attacker's key even reuses the real kid; only the signature tells them apart.
    token = sign(keys["attacker"], claims)
    assert "signature does not verify" in await rejected(make_verifier(), token)


@pytest.mark.parametrize("aud", ["other-service", ["other", "another"], None, [], 5])
async def test_wrong_or_missing_audience_is_rejected(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any], aud: object
) -> None:
    reason = await rejected(make_verifier(), sign(keys["rsa-1"], {**claims, "aud": aud}))
    assert "aud" in reason


async def test_audience_list_intersection(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    verifier = make_verifier(audience=["api", AUDIENCE])
    token = sign(keys["rsa-1"], {**claims, "aud": ["sts.amazonaws.com", AUDIENCE]})
    assert (await verifier.verify(token)).name == claims["sub"]


# --- time claims ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"exp": int(NOW) - 31}, "expired 31s ago"),  # beyond the 30 s leeway
        ({"exp": int(NOW) - 29}, None),  # expired, but within leeway
        ({"exp": int(NOW) - 30}, "expired 30s ago"),  # the edge itself counts as expired
        ({"nbf": int(NOW) + 31}, "(nbf)"),
        ({"nbf": int(NOW) + 29}, None),
        ({"iat": int(NOW) + 31}, "(iat)"),
        ({"iat": int(NOW) + 29}, None),
        # json.dumps writes inf as Infinity, which is not JSON; it must never read as a date.
        ({"exp": float("inf")}, "Infinity is not valid JSON"),
        ({"exp": 10**400}, "not a finite NumericDate"),
        ({"exp": True}, "not a NumericDate"),
        ({"exp": str(int(NOW) + 300)}, "not a NumericDate"),
    ],
)
async def test_time_claims_and_leeway(
    make_verifier: MakeVerifier,
    keys: dict[str, Key],
    claims: dict[str, Any],
    changes: dict[str, Any],
    refusal: str | None,
) -> None:
    token = sign(keys["rsa-1"], {**claims, **changes})
    verifier = make_verifier()
    if refusal is None:
        await verifier.verify(token)
    else:
        assert refusal in await rejected(verifier, token)


async def test_leeway_is_configurable(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    token = sign(keys["rsa-1"], {**claims, "exp": int(NOW) - 10})
    assert "leeway_seconds=5" in await rejected(make_verifier(leeway_seconds=5), token)
    await make_verifier(leeway_seconds=60).verify(token)


async def test_missing_exp(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    del claims["exp"]
    token = sign(keys["rsa-1"], claims)
    assert "exp is missing" in await rejected(make_verifier(), token)
    principal = await make_verifier(require_exp=False).verify(token)
    assert principal.expires_at is None


async def test_max_token_lifetime(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    verifier = make_verifier(max_token_lifetime_seconds=600)
    await verifier.verify(sign(keys["rsa-1"], {**claims, "exp": claims["iat"] + 600}))
    long_lived = sign(keys["rsa-1"], {**claims, "exp": claims["iat"] + 601})
    assert "max_token_lifetime_seconds" in await rejected(verifier, long_lived)
    no_iat = {k: v for k, v in claims.items() if k != "iat"}
    assert "iat is missing" in await rejected(verifier, sign(keys["rsa-1"], no_iat))


# --- forged and malformed tokens --------------------------------------------------------------


async def test_alg_none_is_rejected(
    make_verifier: MakeVerifier, idp: FakeIssuer, claims: dict[str, Any]
) -> None:
    for alg in ["none", "NONE", "nOnE"]:
        token = raw_token({"alg": alg, "typ": "JWT", "kid": "rsa-1"}, claims, None)
        await rejected(make_verifier(), token)
    # Even an allow-list that (wrongly) contains "none" does not let an unsigned token in,
    # and the token is refused before any key is fetched.
    careless = make_verifier(unchecked=True, algorithms=["none", "RS256"])
    token = raw_token({"alg": "none", "typ": "JWT"}, claims, None)
    assert "unsigned tokens are never accepted" in await rejected(careless, token)
    assert idp.jwks_fetches == 0


async def test_hs256_signed_with_rsa_public_key_is_rejected(
    make_verifier: MakeVerifier, idp: FakeIssuer, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    """The classic key confusion: HMAC keyed with the issuer's public RSA key, which is public."""
    rsa_key = keys["rsa-1"]
    assert isinstance(rsa_key, RSAKey)
    pem = rsa_key.as_pem(private=False)
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64(mac)}"

    assert "not in identity.oidc[].algorithms" in await rejected(make_verifier(), forged)
    # With HS256 (wrongly) allowed, the key-type guard still refuses to use an RSA key.
    careless = make_verifier(unchecked=True, algorithms=["RS256", "HS256"])
    assert "cannot verify alg 'HS256'" in await rejected(careless, forged)
    # And a symmetric key slipped into the JWKS is never loaded.
    idp.publish(rsa_key, {"kty": "oct", "kid": "hmac", "k": b64(pem), "use": "sig"})
    header["kid"] = "hmac"
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    still_careless = make_verifier(unchecked=True, algorithms=["RS256", "HS256"])
    assert "publishes no HS256 key" in await rejected(still_careless, f"{signing_input}.{b64(mac)}")


async def test_alg_outside_allow_list_is_rejected(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    verifier = make_verifier(algorithms=["RS256"])
    token = sign(keys["ec-1"], claims, "ES256")  # validly signed by a published key
    assert "not in identity.oidc[].algorithms" in await rejected(verifier, token)


async def test_tampered_payload_is_rejected(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    header, _, signature = sign(keys["rsa-1"], claims).split(".")
    escalated = b64(json.dumps({**claims, "groups": ["admins"]}).encode())
    token = f"{header}.{escalated}.{signature}"
    assert "signature does not verify" in await rejected(make_verifier(), token)


async def test_key_embedded_in_header_is_not_trusted(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    attacker = keys["attacker"]
    token = sign(attacker, claims, jwk=public_jwk(attacker))
    assert "signature does not verify" in await rejected(make_verifier(), token)


async def test_crit_extensions_are_rejected(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    verifier = make_verifier()
    unknown = raw_token(
        {"alg": "RS256", "kid": "rsa-1", "crit": ["wardgate-ext"], "wardgate-ext": 1},
        claims,
        keys["rsa-1"],
    )
    await rejected(verifier, unknown)
    # joserfc itself accepts this one (it knows "b64"); wardgate implements no extension.
    b64_ext = sign(keys["rsa-1"], claims, crit=["b64"], b64=True)
    assert "JWS extension" in await rejected(verifier, b64_ext)


async def test_oversized_token_is_rejected(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    verifier = make_verifier()
    filler = "x" * (MAX_TOKEN_BYTES * 3 // 4 - 1000)  # base64url grows it by a third
    await verifier.verify(sign(keys["rsa-1"], {**claims, "note": filler}))
    oversized = sign(keys["rsa-1"], {**claims, "note": filler + "x" * 3000})
    assert len(oversized) > MAX_TOKEN_BYTES
    assert "bytes allowed" in await rejected(verifier, oversized)


async def test_large_header_of_real_issuers_is_accepted(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    # Some issuers put a certificate chain (x5c) in the header; joserfc's default limit is
    # 512 bytes, wardgate's is the token limit.
    token = sign(keys["rsa-1"], claims, x5c=["A" * 1500])
    assert (await make_verifier().verify(token)).name == claims["sub"]


async def test_duplicate_claims_in_a_signed_token_are_rejected(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    # Signed by the real issuer, but readers that keep the first "groups" and readers that
    # keep the last disagree about who this is; wardgate refuses to pick one.
    body = json.dumps(claims)[:-1] + ', "groups": ["admins"]}'
    token = raw_token({"alg": "RS256", "kid": "rsa-1"}, body.encode(), keys["rsa-1"])
    assert "duplicate JSON member 'groups'" in await rejected(make_verifier(), token)


def _segments(header: bytes, payload: bytes, signature: str = "c2ln") -> str:
    return f"{b64(header)}.{b64(payload)}.{signature}"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b",
        "a.b.c.d.e",
        "!!!.e30.c2ln",
        _segments(b"not json", b"{}"),
        _segments(b"[]", b"{}"),
        _segments(b'{"typ":"JWT"}', b"{}"),
        _segments(b'{"alg":"RS256"}', b"[1]"),
        _segments(b'{"alg":"RS256"}', b"{}", "c2ln==="),
        _segments(b'{"alg":"RS256","alg":"none"}', b"{}"),
        _segments(b'{"alg":"RS256","kid":7}', b"{}"),
        _segments(b'{"alg":"RS256"}', b'{"iss":"a","iss":"b"}'),
        _segments(b'{"alg":"RS256"}', b'{"exp":NaN}'),
        _segments(b'{"alg":7}', b"{}"),
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\u00e9",
        "eyJhbGciOiJSUzI1NiJ9 .e30.c2ln",
    ],
)
async def test_malformed_tokens_raise_authentication_error(
    make_verifier: MakeVerifier, token: str
) -> None:
    await rejected(make_verifier(), token)


# --- key selection ----------------------------------------------------------------------------


async def test_token_without_kid_uses_the_one_suitable_key(
    make_verifier: MakeVerifier, idp: FakeIssuer, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    # The JWKS holds an RSA, an EC and an Ed25519 key; only the EC key fits ES256.
    token = raw_token({"alg": "ES256", "typ": "JWT"}, claims, keys["ec-1"])
    assert (await make_verifier().verify(token)).name == claims["sub"]
    idp.publish(keys["rsa-1"], keys["rsa-2"])
    token = raw_token({"alg": "RS256", "typ": "JWT"}, claims, keys["rsa-1"])
    assert "ambiguous" in await rejected(make_verifier(), token)


async def test_key_of_other_type_under_the_named_kid_is_refused(
    make_verifier: MakeVerifier, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    token = raw_token({"alg": "ES256", "kid": "rsa-1"}, claims, keys["ec-1"])
    assert "cannot verify alg 'ES256'" in await rejected(make_verifier(), token)


async def test_key_pinned_to_an_algorithm_is_not_used_for_another(
    make_verifier: MakeVerifier, idp: FakeIssuer, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    idp.publish(public_jwk(keys["rsa-1"], alg="RS256"))
    verifier = make_verifier()
    await verifier.verify(sign(keys["rsa-1"], claims, "RS256"))
    await rejected(verifier, sign(keys["rsa-1"], claims, "PS256"))


@pytest.mark.parametrize(
    "published",
    [
        "private",  # a JWKS that leaks the private key: anyone could have signed with it
        "weak",  # 1024-bit RSA
        "encryption",  # use=enc
    ],
)
async def test_unsafe_published_keys_are_ignored(
    make_verifier: MakeVerifier,
    idp: FakeIssuer,
    keys: dict[str, Key],
    claims: dict[str, Any],
    published: str,
) -> None:
    if published == "weak":
        with pytest.warns(SecurityWarning):
            weak = RSAKey.import_key(
                rsa.generate_private_key(public_exponent=65537, key_size=1024),
                parameters={"kid": "rsa-1"},
            )
        signer: Key = weak
        jwk = public_jwk(weak)
    elif published == "private":
        signer = keys["rsa-1"]
        jwk = {**keys["rsa-1"].as_dict(private=True), "use": "sig"}
    else:
        signer = keys["rsa-1"]
        jwk = public_jwk(signer, use="enc")
    idp.publish(keys["ec-1"], jwk)
    reason = await rejected(make_verifier(), sign(signer, claims))
    assert "publishes no RS256 key" in reason


def test_key_fits_table(keys: dict[str, Key]) -> None:
    p384 = ECKey.generate_key("P-384")
    expected = {
        ("RS256", "rsa-1"): True,
        ("PS512", "rsa-1"): True,
        ("ES256", "ec-1"): True,
        ("EdDSA", "ed-1"): True,
        ("Ed25519", "ed-1"): True,
        ("HS256", "rsa-1"): False,
        ("none", "rsa-1"): False,
        ("RS256", "ec-1"): False,
        ("ES256", "rsa-1"): False,
        ("ES256", "ed-1"): False,
        ("Ed448", "ed-1"): False,
        ("EdDSA", "rsa-1"): False,
    }
    for (alg, kid), fits in expected.items():
        assert _key_fits(alg, keys[kid]) is fits, (alg, kid)
    assert _key_fits("ES256", p384) is False
    assert _key_fits("ES384", p384) is True


# --- JWKS fetching, caching, rotation ---------------------------------------------------------


async def test_cached_key_needs_no_io(
    make_verifier: MakeVerifier, idp: FakeIssuer, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    verifier = make_verifier()
    token = sign(keys["rsa-1"], claims)
    await verifier.verify(token)
    idp.stop()
    for _ in range(50):
        await verifier.verify(token)
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


async def test_unknown_kid_refetches_and_finds_rotated_key(
    make_verifier: MakeVerifier,
    idp: FakeIssuer,
    clock: FakeClock,
    keys: dict[str, Key],
    claims: dict[str, Any],
) -> None:
    verifier = make_verifier()
    await verifier.verify(sign(keys["rsa-1"], claims))
    idp.publish(keys["rsa-2"])  # the issuer rotates
    clock.now += 11  # past jwks_min_refresh_seconds, well inside jwks_cache_seconds
    principal = await verifier.verify(sign(keys["rsa-2"], {**claims, "exp": int(clock.now) + 60}))
    assert principal.name == claims["sub"]
    assert idp.jwks_fetches == 2


async def test_unknown_kids_cannot_cause_a_refetch_storm(
    make_verifier: MakeVerifier,
    idp: FakeIssuer,
    clock: FakeClock,
    keys: dict[str, Key],
    claims: dict[str, Any],
) -> None:
    verifier = make_verifier(jwks_min_refresh_seconds=10)
    await verifier.verify(sign(keys["rsa-1"], claims))
    idp.publish(keys["rsa-1"], keys["rsa-2"])

    bogus = [raw_token({"alg": "RS256", "kid": f"k{i}"}, claims, keys["rsa-1"]) for i in range(30)]
    for token in bogus:
        await rejected(verifier, token)
    # Within the interval even the genuinely new key waits: that is the price of the guard.
    assert "refetched at most every 10s" in await rejected(verifier, sign(keys["rsa-2"], claims))
    assert idp.jwks_fetches == 1

    clock.now += 10
    results = await asyncio.gather(*(verifier.verify(t) for t in bogus), return_exceptions=True)
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert idp.jwks_fetches == 2
    assert (await verifier.verify(sign(keys["rsa-2"], claims))).name == claims["sub"]
    assert idp.jwks_fetches == 2


async def test_concurrent_verifications_share_one_fetch(
    make_verifier: MakeVerifier, idp: FakeIssuer, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    idp.delay = 0.2
    verifier = make_verifier()
    tokens = [sign(keys[k], claims, a) for k, a in [("rsa-1", "RS256"), ("ec-1", "ES256")] * 10]
    principals = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert {p.name for p in principals} == {claims["sub"]}
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


async def test_cancelled_verification_does_not_cancel_the_shared_fetch(
    make_verifier: MakeVerifier, idp: FakeIssuer, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    idp.delay = 0.2
    verifier = make_verifier()
    token = sign(keys["rsa-1"], claims)
    impatient = asyncio.create_task(verifier.verify(token))
    patient = asyncio.create_task(verifier.verify(token))
    await asyncio.sleep(0.05)
    impatient.cancel()
    assert (await patient).name == claims["sub"]
    assert idp.jwks_fetches == 1


async def test_keys_removed_from_jwks_stop_working_after_cache_expiry(
    make_verifier: MakeVerifier,
    idp: FakeIssuer,
    clock: FakeClock,
    keys: dict[str, Key],
    claims: dict[str, Any],
) -> None:
    verifier = make_verifier(jwks_cache_seconds=60)
    token = sign(keys["rsa-1"], {**claims, "exp": int(NOW) + 3600})
    await verifier.verify(token)
    idp.publish(keys["rsa-2"])  # rsa-1 revoked by the issuer
    clock.now += 59
    await verifier.verify(token)
    clock.now += 1
    assert "publishes no RS256 key" in await rejected(verifier, token)
    assert idp.jwks_fetches == 2


@pytest.mark.parametrize("outage", ["http-503", "connection-refused"])
async def test_issuer_outage_with_cached_keys_keeps_verifying(
    make_verifier: MakeVerifier,
    idp: FakeIssuer,
    clock: FakeClock,
    keys: dict[str, Key],
    claims: dict[str, Any],
    outage: str,
) -> None:
    verifier = make_verifier(jwks_cache_seconds=60)
    token = sign(keys["rsa-1"], {**claims, "exp": int(NOW) + 3600})
    await verifier.verify(token)
    if outage == "http-503":
        idp.status = 503
    else:
        idp.stop()
    clock.now += 120  # cache expired; the refetch fails
    await verifier.verify(token)
    await verifier.verify(token)  # the failed attempt is not retried within the interval
    if outage == "http-503":
        assert idp.jwks_fetches == 2


@pytest.mark.parametrize("outage", ["http-503", "connection-refused", "not-a-jwks"])
async def test_issuer_outage_without_cached_keys_is_an_error(
    make_verifier: MakeVerifier,
    idp: FakeIssuer,
    keys: dict[str, Key],
    claims: dict[str, Any],
    outage: str,
) -> None:
    if outage == "http-503":
        idp.status = 503
    elif outage == "connection-refused":
        idp.stop()
    else:
        idp.jwks = {"keys": "nope"}
    verifier = make_verifier(jwks_url=idp.jwks_url)
    reason = await rejected(verifier, sign(keys["rsa-1"], claims))
    assert "could not be fetched" in reason
    assert idp.issuer in reason


async def test_discovery_for_a_different_issuer_is_refused(
    make_verifier: MakeVerifier, idp: FakeIssuer, keys: dict[str, Key], claims: dict[str, Any]
) -> None:
    idp.discovery_issuer = "https://elsewhere.example"
    reason = await rejected(make_verifier(), sign(keys["rsa-1"], claims))
    assert "names issuer 'https://elsewhere.example'" in reason
    assert idp.jwks_fetches == 0


async def test_aclose_closes_only_its_own_client(idp: FakeIssuer) -> None:
    config = OidcIssuerConfig(issuer=idp.issuer, audience=AUDIENCE)
    async with httpx.AsyncClient() as shared:
        verifier = JwtVerifier([config], http=shared)
        await verifier.aclose()
        assert not shared.is_closed
    owned = JwtVerifier([config])
    await owned.aclose()


@pytest.mark.parametrize(
    "url",
    ["http://idp.example.com/jwks", "http://10.0.0.5/certs"],
)
def test_plain_http_keys_only_on_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="plain http"):
        OidcIssuerConfig(issuer="https://idp.example.com", audience="wg", jwks_url=url)
    with pytest.raises(ValueError, match="plain http"):
        OidcIssuerConfig(issuer=url.rsplit("/", 1)[0], audience="wg")
    for ok in ("http://127.0.0.1:8000/certs", "http://localhost/certs", "http://[::1]/certs"):
        OidcIssuerConfig(issuer="https://idp.example.com", audience="wg", jwks_url=ok)
