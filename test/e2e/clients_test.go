package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestPsql(t *testing.T) {
	e := startEnv(t, envOpts{})
	tok := e.token("agent-1")
	out := e.run(tok, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-Atc", "select current_user, current_database(), current_setting('application_name')")
	if want := "postgres|" + e.db + "|psql"; strings.TrimSpace(out) != want {
		t.Fatalf("psql -c: got %q want %q", out, want)
	}
	script := filepath.Join(e.dir, "script.sql")
	os.WriteFile(script, []byte(`
create table t (id int, v text);
insert into t select g, 'row ' || g from generate_series(1, 1000) g;
-- a multi-statement line
update t set v = v || ';' where id <= 10; delete from t where id > 900;
do $$ begin perform 1; end $$;
select count(*) from t;
`), 0o600)
	out = e.run(tok, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-f", script)
	if !strings.HasSuffix(strings.TrimSpace(out), "900") {
		t.Fatalf("script: %s", out)
	}
	// \copy both ways.
	csv := filepath.Join(e.dir, "t.csv")
	e.run(tok, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `\copy t to '`+csv+`' csv`)
	b, _ := os.ReadFile(csv)
	if n := strings.Count(string(b), "\n"); n != 900 {
		t.Fatalf("copy out wrote %d lines", n)
	}
	e.run(tok, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `\copy t from '`+csv+`' csv`)
	out = e.run(tok, "psql", "-X", "-Atc", "select count(*) from t")
	if strings.TrimSpace(out) != "1800" {
		t.Fatalf("after copy in: %s", out)
	}
	// Every statement of the script reached the audit log.
	evs := e.events(t, "type=statement&limit=500")
	var texts []string
	for _, ev := range evs {
		texts = append(texts, ev.Statement)
	}
	joined := strings.Join(texts, "\n")
	for _, want := range []string{"update t set v = v || ';' where id <= 10", "delete from t where id > 900", "do $$ begin perform 1; end $$"} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit lacks statement %q", want)
		}
	}
}

func TestPgbench(t *testing.T) {
	e := startEnv(t, envOpts{})
	tok := e.token("agent-1")
	e.run(tok, "pgbench", "-i", "-s", "1", "-q")
	for _, mode := range []string{"simple", "extended", "prepared"} {
		out := e.run(tok, "pgbench", "-M", mode, "-c", "4", "-j", "2", "-t", "50", "-n")
		if !strings.Contains(out, "number of transactions actually processed: 200/200") {
			t.Fatalf("pgbench -M %s:\n%s", mode, out)
		}
		if !strings.Contains(out, "number of failed transactions: 0") {
			t.Fatalf("pgbench -M %s failures:\n%s", mode, out)
		}
	}
}

func TestPgxCancelAndNotify(t *testing.T) {
	e := startEnv(t, envOpts{})
	tok := e.token("agent-1")
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", tok))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.Exec(tctx, "select pg_sleep(20)")
	cancel()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" {
		// pgx may report the context error; in either case the backend must
		// be idle afterwards, which the next check proves.
		t.Logf("cancel error: %v", err)
	}
	c2, err := pgx.Connect(ctx, e.dsn("orders", tok))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		c2.QueryRow(ctx, "select count(*) from pg_stat_activity where query = 'select pg_sleep(20)' and state = 'active'").Scan(&n)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pg_sleep still running upstream: the cancel did not reach PostgreSQL")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// LISTEN/NOTIFY across two gateway sessions.
	if _, err := c2.Exec(ctx, "listen jobs"); err != nil {
		t.Fatal(err)
	}
	c3, err := pgx.Connect(ctx, e.dsn("orders", tok))
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close(ctx)
	c3.Exec(ctx, "notify jobs, 'payload-1'")
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	n, err := c2.WaitForNotification(wctx)
	if err != nil || n.Payload != "payload-1" {
		t.Fatalf("notification: %+v %v", n, err)
	}
}

func TestNodePg(t *testing.T) {
	e := startEnv(t, envOpts{})
	tok := e.token("agent-1")
	dir := nodeClientDir(t)
	cmd := exec.Command("node", filepath.Join(dir, "client.js"))
	cmd.Env = e.pgEnv(tok)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node pg: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OK rows=3 sum=6") {
		t.Fatalf("node pg output: %s", out)
	}
}

// nodeClientDir installs the node `pg` package next to test/node/client.js
// (cached in node_modules) and returns the directory.
func nodeClientDir(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs("../node")
	if _, err := exec.LookPath("node"); err != nil {
		skipOrFail(t, "node is not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "pg")); err != nil {
		cmd := exec.Command("npm", "install", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			skipOrFail(t, "npm install (node pg) failed: %v\n%s", err, out)
		}
	}
	return dir
}

// TestJDBC runs a pgjdbc client (Debian's libpostgresql-jdbc-java) through
// the gateway: named server-side prepared statements, batches, transactions.
func TestJDBC(t *testing.T) {
	jar := "/usr/share/java/postgresql.jar"
	if _, err := os.Stat(jar); err != nil {
		skipOrFail(t, "pgjdbc not installed (apt-get install libpostgresql-jdbc-java)")
	}
	for _, tool := range []string{"javac", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "%s not installed", tool)
		}
	}
	e := startEnv(t, envOpts{})
	src, _ := filepath.Abs("../jdbc/Client.java")
	classes := t.TempDir()
	if out, err := exec.Command("javac", "-d", classes, src).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	cmd := exec.Command("java", "-cp", classes+":"+jar, "Client")
	cmd.Env = append(e.pgEnv(e.token("agent-1")), "JDBC_URL=jdbc:postgresql://"+e.pgHost+":"+e.pgPort+"/orders?sslmode=disable")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK sum=10") {
		t.Fatalf("jdbc: %v\n%s", err, out)
	}
}
