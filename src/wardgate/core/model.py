"""The nouns every stage shares: who is calling (Principal) and what they reach (Target).

These are protocol-neutral on purpose: a stage that decides something about a Principal
never learns whether the bytes were PostgreSQL or MySQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

AuthMethod = Literal["token", "jwt"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a person, a CI job or an agent."""

    name: str
    groups: frozenset[str]
    auth_method: AuthMethod
    token_id: str | None = None
    subject: str | None = None
    issuer: str | None = None
    expires_at: datetime | None = None
    claims: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def credential_id(self) -> str:
        """What revocation keys on: the token id, or issuer+subject for a JWT."""
        if self.token_id is not None:
            return f"token:{self.token_id}"
        return f"jwt:{self.issuer}#{self.subject}"
