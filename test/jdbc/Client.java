// A JDBC (pgjdbc) client run by the end-to-end tests: connects through
// gatehouse with the token as password, uses plain statements, server-side
// prepared statements (prepareThreshold=1 forces named statements), a
// transaction and a batch, and prints a summary line.
import java.sql.*;
import java.util.Properties;

public class Client {
    public static void main(String[] args) throws Exception {
        String url = System.getenv("JDBC_URL");
        Properties p = new Properties();
        p.setProperty("user", "jdbc-agent");
        p.setProperty("password", System.getenv("PGPASSWORD"));
        p.setProperty("prepareThreshold", "1");
        try (Connection c = DriverManager.getConnection(url, p)) {
            try (Statement s = c.createStatement()) {
                s.execute("create temp table j (v int)");
            }
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("insert into j values (?)")) {
                for (int i = 1; i <= 4; i++) {
                    ps.setInt(1, i);
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            c.commit();
            c.setAutoCommit(true);
            int sum = 0;
            try (PreparedStatement ps = c.prepareStatement("select v from j where v > ? order by v")) {
                for (int round = 0; round < 3; round++) {
                    ps.setInt(1, 0);
                    sum = 0;
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) sum += rs.getInt(1);
                    }
                }
            }
            System.out.println("OK sum=" + sum);
        }
    }
}
