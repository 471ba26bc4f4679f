"""Engine and schema lifecycle for the state store (SQLite by default, PostgreSQL for HA).

Schema changes go through Alembic migrations shipped inside the package; ``upgrade``
brings any store to the newest schema and is run by ``serve`` on start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, Table, Update, bindparam, create_engine, event, update
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_PAGE_SIZE = 16384


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # A new file gets 16 KiB pages (before WAL mode creates it; an existing file
            # keeps its own, the pragma is then a no-op). Recorded results are large
            # values: with 4 KiB pages the store writer spent ~45 % of a core in the
            # kernel at ~75 MB/s of recording (every page written to the WAL, read back
            # and written again by the checkpoint); 16 KiB pages cut its CPU per
            # megabyte by ~40 % and leave small statement events as they were.
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            # WAL lets the CLI read and approve while the gateway writes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def upgrade(engine: Engine) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def update_by_id(table: Table, *columns: str) -> Update:
    """``UPDATE table SET c = :b_c, ... WHERE id = :b_id``, built once (a statement built
    per row costs more than the row) and run as an executemany: one parameter dict per
    row, keyed ``b_id`` and ``b_<column>``."""
    return (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({c: bindparam(f"b_{c}") for c in columns})
    )
