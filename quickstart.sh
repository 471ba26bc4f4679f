#!/usr/bin/env bash
# Install wardgate into ./.venv and start it with examples/quickstart.yaml.
# State: an SQLite file in ./.wardgate. Target `demo` is the local PostgreSQL on
# 127.0.0.1:5432; if none answers there, an embedded one (the `pgserver` package) is
# started instead so the demo still works.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev]'
if ! .venv/bin/python - <<'PY' 2>/dev/null
import socket; socket.create_connection(("127.0.0.1", 5432), 1).close()
PY
then
  echo "no PostgreSQL on 127.0.0.1:5432: starting an embedded one (pgserver)" >&2
  .venv/bin/pip install -q pgserver
  eval "$(.venv/bin/python scripts/embedded_pg.py .wardgate/pgdata)"
fi
cat >&2 <<MSG

wardgate is starting: PostgreSQL clients on 127.0.0.1:15432, REST API on http://127.0.0.1:8080/docs
In another terminal:
  TOKEN=\$(.venv/bin/wardgate --config examples/quickstart.yaml token create alice --group engineers --ttl 1h)
  psql "host=127.0.0.1 port=15432 dbname=demo user=alice password=\$TOKEN"

MSG
exec .venv/bin/wardgate --config examples/quickstart.yaml serve
