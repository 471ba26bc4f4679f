import java.sql.*;
import java.util.Properties;

/** What DBeaver/DataGrip do on connect: metadata calls over the extended protocol. */
public class JdbcCatalog {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        Properties p = new Properties();
        p.setProperty("user", args[1]);
        p.setProperty("password", args[2]);
        p.setProperty("sslmode", args.length > 3 ? args[3] : "prefer");
        try (Connection c = DriverManager.getConnection(url, p)) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product=" + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
            int tables = 0;
            boolean sawTarget = false;
            try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    tables++;
                    if (rs.getString("TABLE_NAME").equals("wg_jdbc")) sawTarget = true;
                }
            }
            System.out.println("tables=" + tables + " saw_wg_jdbc=" + sawTarget);
            try (ResultSet rs = md.getColumns(null, "public", "wg_jdbc", "%")) {
                StringBuilder sb = new StringBuilder();
                while (rs.next()) sb.append(rs.getString("COLUMN_NAME")).append(":").append(rs.getString("TYPE_NAME")).append(",");
                System.out.println("columns=" + sb);
            }
            try (ResultSet rs = md.getSchemas()) { int n = 0; while (rs.next()) n++; System.out.println("schemas=" + n); }
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "wg_jdbc")) { while (rs.next()) System.out.println("pk=" + rs.getString("COLUMN_NAME")); }
            try (PreparedStatement ps = c.prepareStatement("select id, name from wg_jdbc where id = ?")) {
                for (int i = 0; i < 8; i++) {  // crosses prepareThreshold=5: server-side named statements
                    ps.setInt(1, 2);
                    try (ResultSet rs = ps.executeQuery()) { rs.next(); if (i == 7) System.out.println("row=" + rs.getInt(1) + "," + rs.getString(2)); }
                }
            }
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.setFetchSize(10);  // portal suspension: Execute with a row limit
                int n = 0;
                try (ResultSet rs = s.executeQuery("select g from generate_series(1, 95) g")) { while (rs.next()) n++; }
                System.out.println("fetched=" + n);
            }
            c.commit();
        }
    }
}
