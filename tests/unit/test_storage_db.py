"""The SQLite state store's connection settings (``storage.db.make_engine``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from wardgate.storage.db import SQLITE_PAGE_SIZE, make_engine, upgrade


def pragma(engine_url: str, name: str) -> object:
    engine = make_engine(engine_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"PRAGMA {name}")).scalar()
    finally:
        engine.dispose()


def test_a_new_store_gets_large_pages_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(make_engine(url))
    assert pragma(url, "page_size") == SQLITE_PAGE_SIZE == 16384
    assert pragma(url, "journal_mode") == "wal"
    assert pragma(url, "foreign_keys") == 1
    # what the file says, read without wardgate's settings
    with sqlite3.connect(tmp_path / "state.db") as raw:
        assert raw.execute("PRAGMA page_size").fetchone()[0] == 16384


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_an_existing_store_keeps_its_page_size_and_its_rows(tmp_path: Path, journal: str) -> None:
    """A store created before (4 KiB pages) opens as it is: the pragma cannot change a
    file that has pages, and must not fail on one."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA page_size=4096")
        raw.execute(f"PRAGMA journal_mode={journal}")
        raw.execute("CREATE TABLE t (x INTEGER)")
        raw.execute("INSERT INTO t VALUES (1)")
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 2]
        assert conn.execute(text("PRAGMA page_size")).scalar() == 4096
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()
