"""Configuration of the external OIDC issuers whose JWTs wardgate accepts as passwords.

This module owns the ``identity.oidc`` list of the YAML config and the table of JWS
algorithms wardgate is willing to verify, with the key type each one needs. The table lives
here, not in ``jwt.py``, because the config validator and the verifier must agree on it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


@dataclass(frozen=True, slots=True)
class KeyRequirement:
    """The JWK a signature algorithm needs: its ``kty`` and, for curves, which ``crv``."""

    kty: str
    curves: frozenset[str] | None = None


_RSA = KeyRequirement("RSA")

#: Every algorithm wardgate verifies. Only public-key signatures: an OIDC issuer publishes
#: verification keys in its JWKS, and anything symmetric would need a secret it cannot publish.
SUPPORTED_ALGORITHMS: Mapping[str, KeyRequirement] = {
    "RS256": _RSA,
    "RS384": _RSA,
    "RS512": _RSA,
    "PS256": _RSA,
    "PS384": _RSA,
    "PS512": _RSA,
    "ES256": KeyRequirement("EC", frozenset({"P-256"})),
    "ES384": KeyRequirement("EC", frozenset({"P-384"})),
    "ES512": KeyRequirement("EC", frozenset({"P-521"})),
    "ES256K": KeyRequirement("EC", frozenset({"secp256k1"})),
    # "EdDSA" is the RFC 8037 name (either curve); RFC 9864 replaces it with one name per curve.
    "EdDSA": KeyRequirement("OKP", frozenset({"Ed25519", "Ed448"})),
    "Ed25519": KeyRequirement("OKP", frozenset({"Ed25519"})),
    "Ed448": KeyRequirement("OKP", frozenset({"Ed448"})),
}

_NonEmptyStr = Annotated[str, Field(min_length=1)]


def _check_http_url(value: str, setting: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{setting} {value!r} is not an http(s) URL with a host; "
            "give the full URL, e.g. https://idp.example.com/.well-known/jwks.json"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        # Whoever sits on the path to a plain-http JWKS can publish their own keys and
        # forge any identity. Loopback is allowed for tests and sidecar token services.
        raise ValueError(
            f"{setting} {value!r} uses plain http to a non-loopback host; the issuer's keys "
            "must come over https"
        )
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OidcIssuerConfig(BaseModel):
    """One trusted issuer: whose tokens, for which audience, and how claims become groups."""

    model_config = ConfigDict(extra="forbid")

    issuer: _NonEmptyStr
    audience: _NonEmptyStr | Annotated[list[_NonEmptyStr], Field(min_length=1)]
    jwks_url: str | None = None
    algorithms: Annotated[list[str], Field(min_length=1)] = ["RS256", "ES256", "EdDSA", "PS256"]
    username_claim: _NonEmptyStr = "sub"
    groups_claim: _NonEmptyStr = "groups"
    static_groups: list[_NonEmptyStr] = []
    leeway_seconds: Annotated[int, Field(ge=0, le=3600)] = 30
    max_token_lifetime_seconds: Annotated[int, Field(gt=0)] | None = None
    jwks_cache_seconds: Annotated[int, Field(ge=0)] = 300
    jwks_min_refresh_seconds: Annotated[int, Field(ge=0)] = 10
    require_exp: bool = True

    @field_validator("algorithms")
    @classmethod
    def _only_public_key_signatures(cls, algorithms: list[str]) -> list[str]:
        for alg in algorithms:
            if alg.lower() == "none":
                raise ValueError(
                    "algorithm 'none' means an unsigned token that anyone can forge; "
                    "remove it from identity.oidc[].algorithms"
                )
            if alg.upper().startswith("HS"):
                raise ValueError(
                    f"algorithm {alg!r} is a symmetric HMAC: it needs a shared secret, and an "
                    "OIDC issuer only publishes public keys (accepting it invites key-confusion "
                    "forgeries); use the issuer's asymmetric algorithm such as RS256 or ES256"
                )
            if alg not in SUPPORTED_ALGORITHMS:
                raise ValueError(
                    f"algorithm {alg!r} is not supported; choose from "
                    f"{', '.join(SUPPORTED_ALGORITHMS)} (names are case-sensitive)"
                )
        return algorithms

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url_is_http(cls, jwks_url: str | None) -> str | None:
        if jwks_url is None:
            return None
        return _check_http_url(jwks_url, "jwks_url")

    @model_validator(mode="after")
    def _keys_are_reachable(self) -> OidcIssuerConfig:
        if self.jwks_url is None:
            # Discovery needs {issuer}/.well-known/openid-configuration to be fetchable.
            try:
                _check_http_url(self.issuer, "issuer")
            except ValueError as error:
                raise ValueError(
                    f"{error}; an issuer that is not a URL needs an explicit jwks_url"
                ) from None
        return self

    @property
    def audiences(self) -> frozenset[str]:
        """The configured audience as a set, whether it was written as a string or a list."""
        if isinstance(self.audience, str):
            return frozenset({self.audience})
        return frozenset(self.audience)

    @property
    def discovery_url(self) -> str:
        """Where OIDC Discovery 1.0 says the issuer's metadata lives."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"
