"""Start an embedded PostgreSQL (pgserver) for the quickstart and print env assignments.

Used only when no PostgreSQL answers on 127.0.0.1:5432; prints
``export WARDGATE_DEMO_PGHOST=<socket dir> WARDGATE_DEMO_PGPORT=<port>`` for ``eval``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pgserver  # type: ignore[import-not-found]


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else ".wardgate/pgdata").resolve()
    data.mkdir(parents=True, exist_ok=True)
    srv = pgserver.get_server(str(data), cleanup_mode=None)
    host = srv.get_postmaster_info().socket_dir
    port = srv.get_postmaster_info().port
    print(f"export WARDGATE_DEMO_PGHOST={host} WARDGATE_DEMO_PGPORT={port}")


if __name__ == "__main__":
    main()
