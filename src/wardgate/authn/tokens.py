"""Tokens the gateway issues itself: ``wg_<id>_<secret>``, stored as SHA-256 of the secret.

The secret has 256 bits of entropy, so a fast hash is the right tool (a slow KDF guards
low-entropy passwords; it would only make every connect slower here). Verification is
cached for a few seconds so connection storms do not hit the store, and the cache is
short enough that revocation still bites within seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from wardgate.core.errors import AuthenticationError, WardgateError
from wardgate.core.model import Principal
from wardgate.storage.models import ApiToken, Identity

TOKEN_PREFIX = "wg_"  # noqa: S105 - a prefix, not a secret
_ID_LEN = 12


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(dt: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone=True columns.
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    id: str
    identity: str
    groups: tuple[str, ...]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    identity: str
    groups: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    description: str

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= _now():
            return "expired"
        return "active"


def looks_like_token(secret: str) -> bool:
    return secret.startswith(TOKEN_PREFIX) and secret.count("_") >= 2


class TokenService:
    def __init__(self, sessions: sessionmaker[Session], *, cache_seconds: float = 2.0) -> None:
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}

    # -- issuing -----------------------------------------------------------------------
    def create(
        self,
        identity: str,
        groups: list[str],
        ttl: timedelta,
        *,
        max_ttl: timedelta | None = None,
        description: str = "",
    ) -> IssuedToken:
        if not identity or len(identity) > 200 or any(c in identity for c in "\x00\n\r"):
            raise WardgateError(f"invalid identity name {identity!r}")
        if ttl.total_seconds() <= 0:
            raise WardgateError("token ttl must be positive")
        if max_ttl is not None and ttl > max_ttl:
            raise WardgateError(
                f"token ttl {ttl} exceeds identity.tokens.max_ttl ({max_ttl}); "
                "issue a shorter-lived token or raise max_ttl in the config"
            )
        token_id = secrets.token_hex(_ID_LEN // 2)
        secret = secrets.token_urlsafe(32)
        now = _now()
        wanted = sorted(set(groups))
        with self._sessions.begin() as db:
            ident = db.get(Identity, identity)
            if ident is None:
                ident = Identity(name=identity, groups=wanted, disabled=False, created_at=now)
                db.add(ident)
                db.flush()  # the token row references it
            else:
                ident.groups = sorted(set(ident.groups) | set(wanted))
            db.add(
                ApiToken(
                    id=token_id,
                    identity=identity,
                    groups=wanted,
                    secret_sha256=_sha256(secret),
                    description=description,
                    created_at=now,
                    expires_at=now + ttl,
                    revoked_at=None,
                )
            )
        return IssuedToken(
            token=f"{TOKEN_PREFIX}{token_id}_{secret}",
            id=token_id,
            identity=identity,
            groups=tuple(wanted),
            expires_at=now + ttl,
        )

    def revoke(self, token_id: str) -> bool:
        with self._sessions.begin() as db:
            tok = db.get(ApiToken, token_id)
            if tok is None:
                return False
            if tok.revoked_at is None:
                tok.revoked_at = _now()
        self._cache.clear()
        return True

    def list_tokens(
        self, identity: str | None = None, *, include_inactive: bool = False
    ) -> list[TokenInfo]:
        with self._sessions() as db:
            q = select(ApiToken).order_by(ApiToken.created_at)
            if identity:
                q = q.where(ApiToken.identity == identity)
            out = [
                TokenInfo(
                    id=t.id,
                    identity=t.identity,
                    groups=tuple(t.groups),
                    created_at=_aware(t.created_at),
                    expires_at=_aware(t.expires_at),
                    revoked_at=_aware(t.revoked_at) if t.revoked_at else None,
                    description=t.description,
                )
                for t in db.scalars(q)
            ]
        return out if include_inactive else [t for t in out if t.status == "active"]

    # -- identity groups -----------------------------------------------------------------
    def set_groups(self, identity: str, groups: list[str]) -> None:
        with self._sessions.begin() as db:
            ident = db.get(Identity, identity)
            if ident is None:
                raise WardgateError(f"no identity named {identity!r}")
            ident.groups = sorted(set(groups))
        self._cache.clear()

    def set_disabled(self, identity: str, disabled: bool) -> None:
        with self._sessions.begin() as db:
            ident = db.get(Identity, identity)
            if ident is None:
                raise WardgateError(f"no identity named {identity!r}")
            ident.disabled = disabled
        self._cache.clear()

    # -- verification --------------------------------------------------------------------
    def verify(self, presented: str, *, use_cache: bool = True) -> Principal:
        """Principal for a presented token, or AuthenticationError (reason for logs only)."""
        now_mono = time.monotonic()
        if use_cache:
            hit = self._cache.get(presented)
            if hit is not None and hit[0] > now_mono:
                principal = hit[1]
                if principal.expires_at is None or principal.expires_at > _now():
                    return principal
        if not looks_like_token(presented) or len(presented) > 200:
            raise AuthenticationError("not a wardgate token")
        token_id, _, secret = presented.removeprefix(TOKEN_PREFIX).partition("_")
        with self._sessions() as db:
            tok = db.get(ApiToken, token_id)
            ident = db.get(Identity, tok.identity) if tok is not None else None
            if tok is None or ident is None:
                raise AuthenticationError(f"unknown token id {token_id}")
            if not hmac.compare_digest(tok.secret_sha256, _sha256(secret)):
                raise AuthenticationError(f"bad secret for token {token_id}")
            if tok.revoked_at is not None:
                raise AuthenticationError(f"token {token_id} was revoked")
            expires = _aware(tok.expires_at)
            if expires <= _now():
                raise AuthenticationError(f"token {token_id} expired at {expires.isoformat()}")
            if ident.disabled:
                raise AuthenticationError(f"identity {ident.name} is disabled")
            groups = frozenset(tok.groups) & frozenset(ident.groups)
            principal = Principal(
                name=ident.name,
                groups=groups,
                auth_method="token",
                token_id=tok.id,
                expires_at=expires,
            )
        if use_cache:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[presented] = (now_mono + self._cache_seconds, principal)
        return principal

    def still_valid(self, principal: Principal) -> str | None:
        """Why a live session's token no longer holds (revoked, expired, group removed), or None."""
        if principal.token_id is None:
            if principal.expires_at is not None and principal.expires_at <= _now():
                return "credential expired"
            return None
        with self._sessions() as db:
            tok = db.get(ApiToken, principal.token_id)
            ident = db.get(Identity, principal.name)
            if tok is None or tok.revoked_at is not None:
                return f"token {principal.token_id} was revoked"
            if _aware(tok.expires_at) <= _now():
                return f"token {principal.token_id} expired"
            if ident is None or ident.disabled:
                return f"identity {principal.name} was disabled"
            lost = principal.groups - frozenset(ident.groups)
            if lost:
                return (
                    f"identity {principal.name} was removed from group(s) {', '.join(sorted(lost))}"
                )
        return None
