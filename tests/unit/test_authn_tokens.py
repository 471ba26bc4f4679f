from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from wardgate.authn.tokens import TokenService
from wardgate.core.errors import AuthenticationError, WardgateError
from wardgate.storage.db import make_engine, session_factory, upgrade


@pytest.fixture
def tokens(tmp_path: Path) -> TokenService:
    engine = make_engine(f"sqlite:///{tmp_path}/s.db")
    upgrade(engine)
    return TokenService(session_factory(engine), cache_seconds=0)


def test_issue_verify_revoke(tokens: TokenService) -> None:
    t = tokens.create("alice", ["engineers"], timedelta(hours=1))
    p = tokens.verify(t.token)
    assert p.name == "alice" and p.groups == {"engineers"} and p.token_id == t.id
    assert tokens.revoke(t.id)
    with pytest.raises(AuthenticationError, match="revoked"):
        tokens.verify(t.token, use_cache=False)


def test_secret_is_stored_hashed(tokens: TokenService, tmp_path: Path) -> None:
    t = tokens.create("bob", [], timedelta(hours=1))
    secret = t.token.split("_", 2)[2]
    assert secret.encode() not in (tmp_path / "s.db").read_bytes()


def test_forged_and_expired(tokens: TokenService) -> None:
    t = tokens.create("carol", ["dba"], timedelta(seconds=1))
    with pytest.raises(AuthenticationError):
        tokens.verify(t.token[:-1] + ("A" if t.token[-1] != "A" else "B"), use_cache=False)
    import time

    time.sleep(1.2)
    with pytest.raises(AuthenticationError, match="expired"):
        tokens.verify(t.token, use_cache=False)


def test_groups_are_capped_by_the_identity(tokens: TokenService) -> None:
    t = tokens.create("dan", ["dba", "oncall"], timedelta(hours=1))
    tokens.set_groups("dan", ["oncall"])
    p = tokens.verify(t.token, use_cache=False)
    assert p.groups == {"oncall"}
    assert tokens.still_valid(p) is None
    tokens.set_groups("dan", [])
    assert "removed from group(s) oncall" in (tokens.still_valid(p) or "")


def test_ttl_limits(tokens: TokenService) -> None:
    with pytest.raises(WardgateError, match="max_ttl"):
        tokens.create("erin", [], timedelta(days=40), max_ttl=timedelta(days=30))
    with pytest.raises(WardgateError, match="positive"):
        tokens.create("erin", [], timedelta(seconds=0))
