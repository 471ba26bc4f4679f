"""pgJDBC (Debian's libpostgresql-jdbc-java) through the gateway: the GUI-tool code path."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from gateway_harness import RunningGateway

pytestmark = pytest.mark.e2e

JAR = Path("/usr/share/java/postgresql.jar")
SRC = Path(__file__).parent / "java" / "JdbcCatalog.java"


@pytest.mark.skipif(
    not JAR.exists() or not shutil.which("javac"),
    reason="needs libpostgresql-jdbc-java and a JDK (.ci/run installs them)",
)
@pytest.mark.parametrize("sslmode", ["require", "disable"])
def test_jdbc_metadata_and_prepared(gateway: RunningGateway, tmp_path: Path, sslmode: str) -> None:
    tok = gateway.token("jdbc-user", "dba")
    with psycopg.connect(gateway.dsn("jdbc-user", tok), autocommit=True) as conn:
        conn.execute(
            "drop table if exists wg_jdbc; create table wg_jdbc (id int primary key, name text)"
        )
        conn.execute("insert into wg_jdbc values (1, 'one'), (2, 'two')")
    subprocess.run(
        ["javac", "-d", str(tmp_path), str(SRC)], check=True, capture_output=True, timeout=120
    )
    url = f"jdbc:postgresql://127.0.0.1:{gateway.pg_port}/demo"
    r = subprocess.run(
        ["java", "-cp", f"{tmp_path}:{JAR}", "JdbcCatalog", url, "jdbc-user", tok, sslmode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr + r.stdout
    out = r.stdout
    assert "product=PostgreSQL" in out
    assert "saw_wg_jdbc=true" in out
    assert "columns=id:int4,name:text," in out
    assert "pk=id" in out
    assert "row=2,two" in out
    assert "fetched=95" in out
