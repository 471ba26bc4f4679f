"""Identities, tokens and the session ledger: the gateway's own state tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wardgate.storage.base import Base


class Identity(Base):
    """A named caller and the groups it may currently hold.

    A token carries a subset of these groups; removing a group here takes it away from
    every token (and ends live sessions that depended on it).
    """

    __tablename__ = "identities"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A short-lived secret issued by the gateway. Only a SHA-256 of the secret is stored."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    identity: Mapped[str] = mapped_column(
        String(200), ForeignKey("identities.name", ondelete="CASCADE"), index=True
    )
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class SessionRecord(Base):
    """One client connection through the gateway: who, from where, to what, how it ended."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    node: Mapped[str] = mapped_column(String(100))
    protocol: Mapped[str] = mapped_column(String(20))
    principal: Mapped[str | None] = mapped_column(String(200), index=True, default=None)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    auth_method: Mapped[str | None] = mapped_column(String(20), default=None)
    token_id: Mapped[str | None] = mapped_column(String(32), default=None)
    subject: Mapped[str | None] = mapped_column(String(300), default=None)
    issuer: Mapped[str | None] = mapped_column(String(500), default=None)
    client_addr: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200), index=True, default=None)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    bytes_from_client: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_to_client: Mapped[int] = mapped_column(BigInteger, default=0)
    statements: Mapped[int] = mapped_column(Integer, default=0)
    end_reason: Mapped[str | None] = mapped_column(String(40), default=None)
    end_detail: Mapped[str | None] = mapped_column(Text, default=None)


class SessionKill(Base):
    """An operator's request to end a live session, picked up by whichever node holds it.

    Going through the store (not a signal to one process) is what makes ``sessions kill``
    work the same with one gateway, ``--workers N`` or several nodes.
    """

    __tablename__ = "session_kills"

    session_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
