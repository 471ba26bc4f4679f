"""The ``approval_requests`` table: every held statement, its decision and any grant it made.

One row is the whole story of a request, so an audit reads one table: who asked, for what
target and statement, which rule sent it to review, who decided, when and why. The store
is the only shared state between gateway nodes and the CLI, which is why status changes
are written as conditional updates (``WHERE status = 'pending'``) by the service: two
approvers on two nodes cannot both decide the same request.

Timestamps are always written as timezone-aware UTC. SQLite keeps them as naive UTC text
(which still compares correctly); the service re-attaches UTC when it reads them back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wardgate.storage.base import Base

APPROVAL_STATUSES = ("pending", "approved", "denied", "expired", "cancelled")


class ApprovalRequestRow(Base):
    """One request for a just-in-time approval of a held statement."""

    __tablename__ = "approval_requests"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')",
            name="status",
        ),
        CheckConstraint("scope IN ('statement', 'fingerprint')", name="scope"),
        # `preapproved` looks grants up by requester + target + fingerprint.
        Index(
            "ix_approval_requests_grant",
            "requester_credential_id",
            "target",
            "fingerprint",
            "status",
        ),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # apr_7K3P9Q
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    requester_name: Mapped[str] = mapped_column(String(200), index=True)
    requester_credential_id: Mapped[str] = mapped_column(String(600))
    requester_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    target: Mapped[str] = mapped_column(String(200))
    # The full statement, literals included: the approver must see exactly what will run.
    # It never goes to logs, and to the webhook only when configured.
    statement_text: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(128), default="")
    classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    rule: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    approver_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(200), default=None)
    decided_by_credential_id: Mapped[str | None] = mapped_column(String(600), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    decision_reason: Mapped[str | None] = mapped_column(Text, default=None)
    session_id: Mapped[str | None] = mapped_column(String(64), default=None)
    scope: Mapped[str] = mapped_column(String(16), default="statement")
    # Until when the held client waits; a still-pending row past this is stale (its
    # gateway node died) and can no longer be approved.
    deadline_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # For an approved fingerprint-scope request: until when the grant covers repeats.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
