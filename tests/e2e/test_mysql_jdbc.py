"""MariaDB Connector/J (Debian's libmariadb-java) through the gateway: the JDBC code path of
GUI tools and Java services, with server-side prepared statements (binary rows)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from gateway_harness import RunningGateway

JAR = Path("/usr/share/java/mariadb-java-client.jar")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not JAR.exists() or not shutil.which("javac"),
        reason="needs libmariadb-java and a JDK (.ci/run installs them)",
    ),
]

SOURCE = r"""
import java.math.BigDecimal;
import java.sql.*;

public class MySqlJdbc {
    public static void main(String[] a) throws Exception {
        String url = a[0], user = a[1], token = a[2], table = a[3], hex = a[4];
        byte[] blob = new byte[hex.length() / 2];
        for (int i = 0; i < blob.length; i++) {
            blob[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        }
        try (Connection c = DriverManager.getConnection(url, user, token)) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product=" + md.getDatabaseProductName());
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT DATABASE()")) {
                rs.next();
                System.out.println("database=" + rs.getString(1));
            }
            try (PreparedStatement ps = c.prepareStatement(
                    "INSERT INTO " + table + " (id, price, day, note, data) VALUES (?, ?, ?, ?, ?)")) {
                ps.setInt(1, 7);
                ps.setBigDecimal(2, new BigDecimal("-12.345"));
                ps.setDate(3, Date.valueOf("2024-02-29"));
                ps.setNull(4, Types.VARCHAR);
                ps.setBytes(5, blob);
                System.out.println("inserted=" + ps.executeUpdate());
            }
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT id, price, day, note, HEX(data) FROM " + table + " WHERE id = ?")) {
                ps.setInt(1, 7);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("row=" + rs.getInt(1) + "," + rs.getBigDecimal(2) + ","
                        + rs.getDate(3) + "," + rs.getString(4) + "," + rs.getString(5));
                }
            }
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM " + table)) {
                ps.executeUpdate();
                System.out.println("denied=no");
            } catch (SQLException e) {
                System.out.println("denied=" + e.getErrorCode() + "/" + e.getSQLState());
            }
            try (Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SELECT COUNT(*) FROM " + table)) {
                rs.next();
                System.out.println("count=" + rs.getInt(1));
            }
        }
    }
}
"""


def admin() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host="127.0.0.1", port=3306, user="root", database="test", autocommit=True
    )


@pytest.fixture
def table() -> Iterator[str]:
    name = "wg_jdbc_" + uuid.uuid4().hex[:10]
    with admin() as c, c.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {name} (id INT PRIMARY KEY, price DECIMAL(8,3), day DATE, "
            "note VARCHAR(20), data BLOB)"
        )
    yield name
    with admin() as c, c.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("jdbc")
    (d / "MySqlJdbc.java").write_text(SOURCE)
    subprocess.run(
        ["javac", "-d", str(d), str(d / "MySqlJdbc.java")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return d


# Client-side prepared statements inline a BLOB as _binary '...' in the SQL text, where
# Connector/J escapes a zero byte as a backslash and a raw NUL, which the MySQL classifier
# refuses (fail closed on NUL). Server-side prepared statements send it as a parameter.
@pytest.mark.parametrize(("prepared", "blob"), [("server", "0001FF"), ("client", "01FF7F")])
def test_connector_j_over_tls(
    gateway: RunningGateway, compiled: Path, table: str, prepared: str, blob: str
) -> None:
    tok = gateway.token("jdbc-agent", "agents")
    crt = gateway.state_dir / "tls" / "gateway.crt"
    tls = f"serverSslCert={crt}" if prepared == "server" else "trustServerCertificate=true"
    url = (
        f"jdbc:mariadb://127.0.0.1:{gateway.mysql_port}/demo_mysql"
        f"?useSsl=true&{tls}&jdbcCompliantTruncation=false"
        f"&useServerPrepStmts={'true' if prepared == 'server' else 'false'}"
    )
    r = subprocess.run(
        ["java", "-cp", f"{compiled}:{JAR}", "MySqlJdbc", url, "jdbc-agent", tok, table, blob],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr + r.stdout
    out = r.stdout.splitlines()
    assert "product=MariaDB" in out
    assert "database=test" in out
    assert "inserted=1" in out
    assert f"row=7,-12.345,2024-02-29,null,{blob}" in out
    assert "denied=1142/42000" in out
    assert "count=1" in out
