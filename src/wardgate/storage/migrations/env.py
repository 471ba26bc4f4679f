"""Alembic environment: runs on the connection ``wardgate.storage.db.upgrade`` hands in."""

from __future__ import annotations

from alembic import context

from wardgate.storage.registry import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` CLI with a URL
    raise SystemExit("run migrations through `wardgate db upgrade`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
