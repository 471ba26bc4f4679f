"""Developer tool: autogenerate the next Alembic migration from the models.

.venv/bin/python scripts/make_migration.py 0002 "approvals"
"""

from __future__ import annotations

import sys
import tempfile

from alembic import command
from alembic.config import Config

from wardgate.storage.db import MIGRATIONS, make_engine, upgrade


def main() -> None:
    rev_id, message = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/m.db")
        upgrade(engine)
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)


if __name__ == "__main__":
    main()
