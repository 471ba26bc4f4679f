"""Machine identity from external OIDC issuers: a JWT presented as a password becomes a Principal.

This module owns the whole path from token text to ``Principal``: picking the configured
issuer by the (still unverified) ``iss`` claim, fetching and caching that issuer's JWKS
(through OIDC discovery when no ``jwks_url`` is configured), choosing the key, checking the
signature with joserfc, and checking the registered claims.

Where keys come from is decided only by configuration. Token headers that point at keys
(``jku``, ``x5u``, ``jwk``, ``x5c``) are never followed: a token must not choose who vouches
for it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

import httpx
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError, SecurityWarning
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from wardgate.authn.oidc_config import SUPPORTED_ALGORITHMS, OidcIssuerConfig
from wardgate.core.errors import AuthenticationError, ConfigError
from wardgate.core.model import Principal

__all__ = ["MAX_TOKEN_BYTES", "JwtVerifier", "looks_like_jwt"]

#: Real OIDC tokens are 1-3 KiB; anything past this is refused before any parsing work.
MAX_TOKEN_BYTES: Final = 16 * 1024

# A discovery document or JWKS is a few KiB; the cap stops a hostile or broken endpoint
# from making the gateway buffer an unbounded body.
_MAX_DOCUMENT_BYTES: Final = 1024 * 1024
_FETCH_TIMEOUT: Final = httpx.Timeout(5.0)
# Weaker RSA keys are factorable by a determined attacker; joserfc only warns about them.
_MIN_RSA_BITS: Final = 2048
_ASYMMETRIC_KTY: Final = frozenset({"RSA", "EC", "OKP"})
# JWK members that only a private or symmetric key has. A JWKS is public: a key carrying
# these is a leak at the issuer (anyone could sign with it), so it is never trusted.
_SECRET_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# wardgate implements no JWS extension, so any "crit" entry is one it does not understand
# (RFC 7515 section 4.1.11 requires rejecting those). "b64" (RFC 7797 unencoded payload)
# is excluded too: joserfc supports it, but it is not valid for JWTs.
_REJECTED_HEADERS: Final = frozenset({"crit", "b64"})
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_GROUP_SEPARATORS: Final = re.compile(r"[\s,]+")
_MISSING: Final = object()


def looks_like_jwt(secret: str) -> bool:
    """Cheaply tell a JWT from an opaque token: three base64url segments, a JSON header with alg.

    No signature or claim is checked; the answer only routes the secret to ``JwtVerifier``.
    """
    parts = secret.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return False
    if len(parts[0]) > MAX_TOKEN_BYTES or not all(_B64URL.fullmatch(p) for p in parts):
        return False
    try:
        header = json.loads(_b64url_decode(parts[0]))
    except ValueError:
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


class JwtVerifier:
    """Verifies JWTs of the configured issuers; one instance serves the whole gateway.

    Verifying a token whose key is already cached and fresh does no I/O. The JWKS of an
    issuer is fetched on first use, again after ``jwks_cache_seconds``, and again when a
    token names an unknown ``kid`` (key rotation), never more often than
    ``jwks_min_refresh_seconds``.
    """

    def __init__(
        self,
        issuers: list[OidcIssuerConfig],
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._http = http
        self._owns_http = http is None
        self._issuers: dict[str, _TrustedIssuer] = {}
        for config in issuers:
            if config.issuer in self._issuers:
                raise ConfigError(
                    f"identity.oidc lists issuer {config.issuer!r} more than once; "
                    "merge the entries (audience accepts a list)"
                )
            self._issuers[config.issuer] = _TrustedIssuer(config, self._client, clock)

    async def verify(self, token: str) -> Principal:
        """Return the Principal the token proves, or raise ``AuthenticationError``.

        The error message is for the gateway's log; clients get a generic message.
        """
        header, unverified_claims = _split_unverified(token)
        alg = header["alg"]
        if not isinstance(alg, str) or alg.lower() == "none":
            # Checked before anything else so that no configuration, however wrong, can
            # make an unsigned token acceptable.
            raise AuthenticationError(
                f"JWT rejected: header alg {_show(alg)} is not a signature algorithm; "
                "unsigned tokens are never accepted"
            )
        rejected = _REJECTED_HEADERS.intersection(header)
        if rejected:
            raise AuthenticationError(
                f"JWT rejected: header has {', '.join(sorted(rejected))}, a JWS extension "
                "wardgate does not implement; the issuer must send plain compact JWS tokens"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("JWT rejected: header kid is not a string")

        iss = unverified_claims.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthenticationError(
                f"JWT rejected: issuer (iss) {_show(iss)} is not configured under "
                "identity.oidc; add the issuer there or check where the client gets its token"
            )
        config = issuer.config
        if alg not in config.algorithms:
            raise AuthenticationError(
                f"JWT rejected: alg {_show(alg)} is not in identity.oidc[].algorithms "
                f"{config.algorithms} for issuer {config.issuer!r}; add it there if the issuer "
                "really signs with it"
            )
        key = await issuer.key_for(alg, kid)
        claims = issuer.check_signature(token, alg, key, kid)
        return issuer.principal_from(claims, self._clock())

    async def aclose(self) -> None:
        """Stop in-flight key fetches and close the HTTP client if this verifier created it."""
        for issuer in self._issuers.values():
            await issuer.cancel_fetch()
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        # Created lazily so that building a verifier (e.g. while loading config, outside the
        # event loop) opens nothing.
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=_FETCH_TIMEOUT)
        return self._http


class _FetchError(Exception):
    """The discovery document or JWKS could not be fetched or made no sense."""


@dataclass(frozen=True, slots=True)
class _PublishedKey:
    kid: str | None
    key: Key


@dataclass(frozen=True, slots=True)
class _KeyRing:
    """One fetched JWKS, parsed once; lookups afterwards are dictionary reads."""

    keys: tuple[_PublishedKey, ...]
    by_kid: Mapping[str, tuple[Key, ...]]
    fetched_at: float

    @classmethod
    def from_jwks(cls, document: object, url: str, fetched_at: float) -> _KeyRing:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise _FetchError(f"JWKS at {url} is not a JSON object with a 'keys' list")
        published: list[_PublishedKey] = []
        for entry in document["keys"]:
            key = _import_public_signing_key(entry)
            if key is not None:
                kid = entry.get("kid")
                published.append(_PublishedKey(kid if isinstance(kid, str) else None, key))
        if not published:
            raise _FetchError(
                f"JWKS at {url} has no usable public signing key (RSA >= {_MIN_RSA_BITS} bits, "
                "EC or OKP, use 'sig'); check that jwks_url points at the issuer's signing keys"
            )
        by_kid: dict[str, tuple[Key, ...]] = {}
        for item in published:
            if item.kid is not None:
                by_kid[item.kid] = (*by_kid.get(item.kid, ()), item.key)
        return cls(tuple(published), by_kid, fetched_at)

    def select(self, alg: str, kid: str | None, issuer: str) -> Key | None:
        """The one key that may verify ``alg`` for ``kid``; None if the JWKS has no such key."""
        if kid is not None:
            named = self.by_kid.get(kid)
            if named is None:
                return None
            fitting = [key for key in named if _key_fits(alg, key)]
            if not fitting:
                raise AuthenticationError(
                    f"JWT rejected: key kid={kid!r} of issuer {issuer!r} is a "
                    f"{_describe(named[0])} key, which cannot verify alg {alg!r}"
                )
        else:
            fitting = [item.key for item in self.keys if _key_fits(alg, item.key)]
            if not fitting:
                return None
        if len(fitting) > 1:
            raise AuthenticationError(
                f"JWT rejected: {len(fitting)} keys of issuer {issuer!r} match alg {alg!r} and "
                f"kid {_show(kid)}, so the signing key is ambiguous; the issuer must publish "
                "distinct kids and put the kid in the token header"
            )
        return fitting[0]


class _TrustedIssuer:
    """One configured issuer: its key cache, its refresh schedule, and its claim rules."""

    def __init__(
        self,
        config: OidcIssuerConfig,
        client: Callable[[], httpx.AsyncClient],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self._client = client
        self._clock = clock
        self._audiences = config.audiences
        self._ring: _KeyRing | None = None
        self._discovered_jwks_url: str | None = None
        self._last_attempt: float | None = None
        self._last_error = "no fetch attempted yet"
        self._inflight: asyncio.Task[None] | None = None
        # Built once per issuer: the allow-list is the config's, and the size limits are ours
        # (joserfc's default 512-byte header limit is too small for some real issuers).
        self._registry = JWSRegistry(algorithms=config.algorithms, strict_check_header=False)
        self._registry.max_header_length = MAX_TOKEN_BYTES
        self._registry.max_payload_length = MAX_TOKEN_BYTES
        self._registry.max_signature_length = MAX_TOKEN_BYTES

    async def key_for(self, alg: str, kid: str | None) -> Key:
        refreshed = False
        ring = self._ring
        if ring is None or _elapsed(self._clock(), ring.fetched_at) >= (
            self.config.jwks_cache_seconds
        ):
            refreshed = await self._refresh_if_allowed()
            ring = self._ring
        if ring is None:
            raise AuthenticationError(
                f"JWT rejected: the signing keys of issuer {self.config.issuer!r} could not be "
                f"fetched ({self._last_error}); check that the JWKS endpoint is reachable "
                "from the gateway"
            )
        key = ring.select(alg, kid, self.config.issuer)
        if key is None and not refreshed and await self._refresh_if_allowed():
            # An unknown kid usually means the issuer rotated keys since the last fetch.
            ring = self._ring
            assert ring is not None
            key = ring.select(alg, kid, self.config.issuer)
        if key is None:
            raise AuthenticationError(
                f"JWT rejected: issuer {self.config.issuer!r} publishes no {alg} key with kid "
                f"{_show(kid)} (JWKS fetched {_elapsed(self._clock(), ring.fetched_at):.0f}s ago; "
                f"refetched at most every {self.config.jwks_min_refresh_seconds}s); a token "
                "signed by a key the issuer does not publish is not accepted"
            )
        return key

    def check_signature(self, token: str, alg: str, key: Key, kid: str | None) -> dict[str, Any]:
        try:
            with _eddsa_warning_silenced(alg):
                decoded = jwt.decode(
                    token, key, registry=self._registry, decoder_cls=_StrictJSONDecoder
                )
        except BadSignatureError:
            raise AuthenticationError(
                f"JWT rejected: signature does not verify with key kid={_show(kid)} of issuer "
                f"{self.config.issuer!r}; the token was altered or signed by someone else"
            ) from None
        except (JoseError, ValueError, TypeError) as error:
            raise AuthenticationError(
                f"JWT rejected by JWS checks for issuer {self.config.issuer!r}: {error}"
            ) from None
        return decoded.claims

    def principal_from(self, claims: dict[str, Any], now: float) -> Principal:
        config = self.config
        issuer = config.issuer
        # The routing decision used the unverified payload; this re-checks the signed one.
        if claims.get("iss") != issuer:
            _reject(f"signed iss {_show(claims.get('iss'))} differs from issuer {issuer!r}")
        self._check_audience(claims)
        expires_at = self._check_times(claims, now)

        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            _reject(f"claim sub is missing or not a string (issuer {issuer!r})")
        name = _claim(claims, config.username_claim)
        if not isinstance(name, str) or not name or not name.isprintable():
            _reject(
                f"username_claim {config.username_claim!r} of issuer {issuer!r} is missing, "
                f"empty or not a printable string ({_show(name)}); set "
                "identity.oidc[].username_claim to a claim the issuer always sends"
            )
        groups = self._groups(claims)
        return Principal(
            name=name,
            groups=groups,
            auth_method="jwt",
            subject=subject,
            issuer=issuer,
            expires_at=expires_at,
            claims=claims,
        )

    def _check_audience(self, claims: dict[str, Any]) -> None:
        aud = claims.get("aud")
        if isinstance(aud, str):
            token_audiences = {aud}
        elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            token_audiences = set(aud)
        else:
            _reject(f"claim aud is missing or not a string or list of strings ({_show(aud)})")
        if self._audiences.isdisjoint(token_audiences):
            _reject(
                f"audience {_show(aud)} does not include any of {sorted(self._audiences)} "
                f"configured for issuer {self.config.issuer!r}; request the token for that "
                "audience, or add it to identity.oidc[].audience"
            )

    def _check_times(self, claims: dict[str, Any], now: float) -> datetime | None:
        config = self.config
        leeway = config.leeway_seconds
        exp = _numeric_date(claims, "exp")
        nbf = _numeric_date(claims, "nbf")
        iat = _numeric_date(claims, "iat")
        if exp is None:
            if config.require_exp or config.max_token_lifetime_seconds is not None:
                _reject(
                    f"claim exp is missing; issuer {config.issuer!r} requires expiring tokens "
                    "(require_exp / max_token_lifetime_seconds)"
                )
        elif now >= exp + leeway:
            _reject(
                f"token expired {now - exp:.0f}s ago, beyond leeway_seconds={leeway}; "
                "the client must fetch a fresh token"
            )
        if nbf is not None and now + leeway < nbf:
            _reject(
                f"token is not valid for another {nbf - now:.0f}s (nbf), beyond "
                f"leeway_seconds={leeway}; check the clocks of the gateway and the issuer"
            )
        if iat is not None and iat > now + leeway:
            _reject(
                f"token is issued {iat - now:.0f}s in the future (iat), beyond "
                f"leeway_seconds={leeway}; check the clocks of the gateway and the issuer"
            )
        limit = config.max_token_lifetime_seconds
        if limit is not None:
            if iat is None:
                _reject(
                    "claim iat is missing, so the token lifetime cannot be checked against "
                    f"max_token_lifetime_seconds={limit}"
                )
            assert exp is not None
            if exp - iat > limit:
                _reject(
                    f"token lifetime {exp - iat:.0f}s exceeds max_token_lifetime_seconds={limit}"
                    f" of issuer {config.issuer!r}; issue shorter-lived tokens"
                )
        if exp is None:
            return None
        try:
            return datetime.fromtimestamp(exp, tz=UTC)
        except (OverflowError, OSError, ValueError):
            _reject(f"claim exp {exp!r} is not a representable date")

    def _groups(self, claims: dict[str, Any]) -> frozenset[str]:
        raw = _claim(claims, self.config.groups_claim)
        groups: list[str]
        if raw is _MISSING or raw is None:
            groups = []
        elif isinstance(raw, str):
            groups = _GROUP_SEPARATORS.split(raw)
        elif isinstance(raw, list) and all(isinstance(g, str) for g in raw):
            groups = raw
        else:
            # Refusing beats guessing: a groups claim wardgate misreads could grant or hide access.
            _reject(
                f"groups_claim {self.config.groups_claim!r} is {_show(raw)}, neither a list of "
                "strings nor a space/comma separated string; point identity.oidc[].groups_claim "
                "at the right claim"
            )
        return frozenset(g for g in groups if g) | frozenset(self.config.static_groups)

    async def _refresh_if_allowed(self) -> bool:
        """Fetch the JWKS unless one was attempted within ``jwks_min_refresh_seconds``.

        Returns whether a fetch happened (or was joined). Callers that arrive while a fetch is
        running wait for that same fetch instead of starting their own.
        """
        if self._inflight is None:
            now = self._clock()
            if (
                self._last_attempt is not None
                and _elapsed(now, self._last_attempt) < self.config.jwks_min_refresh_seconds
            ):
                return False
            self._last_attempt = now
            self._inflight = asyncio.create_task(self._fetch())
        # shield: a client that disconnects mid-verify must not cancel the fetch other
        # verifications are waiting on.
        await asyncio.shield(self._inflight)
        return True

    async def cancel_fetch(self) -> None:
        task = self._inflight
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _fetch(self) -> None:
        try:
            url = self.config.jwks_url or self._discovered_jwks_url or await self._discover()
            try:
                document = await self._get_json(url, "JWKS")
                self._ring = _KeyRing.from_jwks(document, url, self._clock())
            except _FetchError:
                # The issuer may have moved its jwks_uri; look it up again next time.
                self._discovered_jwks_url = None
                raise
            self._last_error = "no error"
        except _FetchError as error:
            # A cached key ring, if any, stays in use: an outage of the issuer should not
            # lock every machine out while the keys it already published are still good.
            self._last_error = str(error)
        finally:
            self._inflight = None

    async def _discover(self) -> str:
        url = self.config.discovery_url
        document = await self._get_json(url, "OIDC discovery document")
        if not isinstance(document, dict):
            raise _FetchError(f"OIDC discovery document at {url} is not a JSON object")
        if document.get("issuer") != self.config.issuer:
            # OIDC Discovery 1.0 section 4.3: the document must be about this very issuer.
            raise _FetchError(
                f"OIDC discovery document at {url} names issuer {_show(document.get('issuer'))},"
                f" not {self.config.issuer!r}; fix identity.oidc[].issuer to match exactly"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise _FetchError(
                f"OIDC discovery document at {url} has no http(s) jwks_uri; "
                "set identity.oidc[].jwks_url explicitly"
            )
        self._discovered_jwks_url = jwks_uri
        return jwks_uri

    async def _get_json(self, url: str, what: str) -> object:
        body = bytearray()
        try:
            async with self._client().stream(
                "GET", url, timeout=_FETCH_TIMEOUT, headers={"Accept": "application/json"}
            ) as response:
                if response.status_code != 200:
                    raise _FetchError(f"{what} at {url} answered HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_DOCUMENT_BYTES:
                        raise _FetchError(f"{what} at {url} exceeds {_MAX_DOCUMENT_BYTES} bytes")
        except httpx.HTTPError as error:
            raise _FetchError(f"{what} at {url} failed: {type(error).__name__}: {error}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise _FetchError(f"{what} at {url} is not JSON") from None


@contextlib.contextmanager
def _eddsa_warning_silenced(alg: str) -> Iterator[None]:
    # joserfc warns on every use of the RFC 8037 name "EdDSA" (deprecated by RFC 9864); the
    # operator chose it in identity.oidc[].algorithms, and a warning per token only floods logs.
    if alg != "EdDSA":
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        yield


def _import_public_signing_key(entry: object) -> Key | None:
    """A JWKS entry as a joserfc key, or None for an entry wardgate must not or cannot use."""
    if not isinstance(entry, dict):
        return None
    # Symmetric ("oct") keys are never loaded: with no oct key in the ring, an HS256 token
    # has nothing to be verified against, whatever its header claims.
    if entry.get("kty") not in _ASYMMETRIC_KTY or entry.get("use", "sig") != "sig":
        return None
    if _SECRET_MEMBERS.intersection(entry):
        return None
    try:
        with warnings.catch_warnings():
            # Small RSA keys are dropped just below; joserfc's warning about them is noise.
            warnings.simplefilter("ignore", SecurityWarning)
            key = JWKRegistry.import_key(entry)
    except (JoseError, ValueError, TypeError):
        return None
    if isinstance(key, RSAKey) and key.raw_value.key_size < _MIN_RSA_BITS:
        return None
    return key


def _key_fits(alg: str, key: Key) -> bool:
    """Whether ``key`` may verify ``alg``: right kty, right curve, no conflicting JWK alg.

    This is the key-confusion guard: an RSA public key must never end up as an HMAC secret,
    and an EC P-384 key must not verify ES256.
    """
    requirement = SUPPORTED_ALGORITHMS.get(alg)
    if requirement is None or key.key_type != requirement.kty:
        return False
    if requirement.curves is not None and (
        not isinstance(key, ECKey | OKPKey) or key.curve_name not in requirement.curves
    ):
        return False
    return key.alg is None or key.alg == alg


def _describe(key: Key) -> str:
    if isinstance(key, ECKey | OKPKey):
        return f"{key.key_type}/{key.curve_name}"
    return key.key_type


def _split_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, decoded strictly but NOT verified."""
    if len(token) > MAX_TOKEN_BYTES:
        _reject(f"token is {len(token)} bytes, more than the {MAX_TOKEN_BYTES} bytes allowed")
    if not token.isascii():
        _reject("token contains non-ASCII characters")
    parts = token.split(".")
    if len(parts) != 3:
        _reject(
            f"token has {len(parts)} dot-separated parts, not 3; only signed compact JWTs "
            "are accepted (encrypted 5-part JWEs are not)"
        )
    try:
        header = _json_object(_b64url_decode(parts[0]))
        payload = _json_object(_b64url_decode(parts[1]))
        _b64url_decode(parts[2])
    except ValueError as error:
        _reject(f"token is malformed: {error}")
    if "alg" not in header:
        _reject("token header has no alg")
    return header, payload


def _b64url_decode(segment: str) -> bytes:
    # Strict: base64url alphabet only, no padding, no whitespace (the stdlib decoder would
    # silently skip characters outside the alphabet).
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("a segment is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as error:
        raise ValueError("a segment is not base64url") from error


def _json_object(data: bytes) -> dict[str, Any]:
    value = _STRICT_JSON.decode(data.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("a segment is not a JSON object")
    return value


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate members are how parser differentials are smuggled ("alg" twice, "iss" twice);
    # RFC 7515 section 5.2 lets us reject them.
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate JSON member {name!r}")
        result[name] = value
    return result


class _StrictJSONDecoder(json.JSONDecoder):
    """JSON as RFC 8259 has it: no NaN/Infinity (an ``exp`` of Infinity never expires)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("parse_constant", None)
        kwargs.pop("object_pairs_hook", None)
        super().__init__(
            parse_constant=_reject_constant, object_pairs_hook=_unique_members, **kwargs
        )


_STRICT_JSON: Final = _StrictJSONDecoder()


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        _reject(f"claim {name} is {_show(value)}, not a NumericDate")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        _reject(f"claim {name} is not a finite NumericDate")
    return number


def _claim(claims: Mapping[str, Any], path: str) -> object:
    """A claim by exact name, else by dotted path ("realm_access.roles"); _MISSING if absent.

    The exact name wins so that URL-named claims ("https://example.com/groups") work.
    """
    if path in claims:
        return claims[path]
    node: object = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _elapsed(now: float, since: float) -> float:
    # A clock that stepped backwards counts as "long ago", so caches expire rather than
    # being trusted for however far the clock jumped.
    delta = now - since
    return delta if delta >= 0 else math.inf


def _show(value: object) -> str:
    """An attacker-controlled value, quoted and cut short, safe to put in a log line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _reject(reason: str) -> NoReturn:
    raise AuthenticationError(f"JWT rejected: {reason}")
