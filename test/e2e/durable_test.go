package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/checkpoint"
	"github.com/gatehouse/gatehouse/internal/identity"
	"github.com/gatehouse/gatehouse/internal/pgtest"
	"github.com/gatehouse/gatehouse/internal/store/storeopen"
)

// gatehouseBinary builds the gatehouse binary once per test run.
func gatehouseBinary(t *testing.T) string {
	t.Helper()
	cliBuild.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-cli-")
		if err != nil {
			cliBuild.err = err
			return
		}
		cliBuild.path = filepath.Join(dir, "gatehouse")
		out, err := exec.Command("go", "build", "-o", cliBuild.path, "../../cmd/gatehouse").CombinedOutput()
		if err != nil {
			cliBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cliBuild.err != nil {
		t.Fatal(cliBuild.err)
	}
	return cliBuild.path
}

// procGateway is `gatehouse serve` as a separate process, so a test can
// SIGKILL it.
type procGateway struct {
	t       *testing.T
	bin     string
	cfg     string
	dataDir string
	api     string
	pgPort  int
	cmd     *exec.Cmd
	log     *os.File
	extra   []string // more serve flags for the next start
}

func newProcGateway(t *testing.T, db string) *procGateway {
	t.Helper()
	pgtest.Need(t, shared)
	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(dir, "secret.key")
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600)
	apiPort, pgPort := pgtest.FreePort(t), pgtest.FreePort(t)
	g := &procGateway{t: t, bin: gatehouseBinary(t), cfg: filepath.Join(dir, "gatehouse.yaml"), dataDir: filepath.Join(dir, "data"),
		api: fmt.Sprintf("http://127.0.0.1:%d", apiPort), pgPort: pgPort}
	yaml := fmt.Sprintf(`
listen: { api: 127.0.0.1:%d, postgres: 127.0.0.1:%d }
data_dir: %s
secret_key: file:%s
log: { level: info }
identity:
  dev_issuer: true
admins: ["group:platform-admins"]
audit: { node: durable-test, checkpoint_interval: 200ms }
connections:
  - name: orders
    type: postgres
    address: %s
    database: %s
    username: postgres
    password: env:ORDERS_DB_PASSWORD
    tls: disable
    access: ["group:analysts"]
`, apiPort, pgPort, g.dataDir, keyFile, shared.Addr(), db)
	os.WriteFile(g.cfg, []byte(yaml), 0o600)
	var err error
	if g.log, err = os.Create(filepath.Join(dir, "gatehouse.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.stop(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(g.log.Name())
			t.Logf("gateway log:\n%s", b)
		}
	})
	return g
}

// start runs the gateway and waits until it is ready.
func (g *procGateway) start() {
	g.t.Helper()
	g.cmd = exec.Command(g.bin, append([]string{"serve", "--dev", "--config", g.cfg}, g.extra...)...)
	g.cmd.Env = append(os.Environ(), "ORDERS_DB_PASSWORD="+shared.Password)
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(g.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("gateway not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop signals the gateway and waits for it to exit.
func (g *procGateway) stop(sig os.Signal) {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	g.cmd.Process.Signal(sig)
	g.cmd.Wait()
	g.cmd = nil
}

func (g *procGateway) token(sub string, groups ...string) string {
	g.t.Helper()
	tok, err := identity.FetchDevToken(context.Background(), g.api, sub, groups, time.Hour)
	if err != nil {
		g.t.Fatal(err)
	}
	return tok
}

// TestAuditDurableKill SIGKILLs the gateway during a pgbench run of unique
// INSERTs, restarts it on the same data_dir, and checks that every row that
// reached PostgreSQL has its statement's decision in the audit store, and
// that the chain verifies.
func TestAuditDurableKill(t *testing.T) {
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		skipOrFail(t, "pgbench not installed")
	}
	pgtest.Need(t, shared)
	db := shared.CreateDB(t)
	shared.Exec(t, db, "CREATE TABLE t (v bigint NOT NULL)")
	g := newProcGateway(t, db)
	g.start()
	tok := g.token("agent-1", "analysts")

	script := filepath.Join(t.TempDir(), "insert.sql")
	// Values are random in a space so large that a repeat is negligible; the
	// statement text pgbench sends (-M simple substitutes the variable)
	// names the row.
	os.WriteFile(script, []byte("\\set v random(1, 1000000000000000)\nINSERT INTO t (v) VALUES (:v);\n"), 0o600)
	bench := exec.Command(pgbench, "-n", "-c", "4", "-j", "4", "-T", "10", "-M", "simple", "-f", script)
	bench.Env = append(os.Environ(), "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(g.pgPort), "PGDATABASE=orders",
		"PGUSER=agent", "PGPASSWORD="+tok, "PGSSLMODE=disable")
	out := &strings.Builder{}
	bench.Stdout, bench.Stderr = out, out
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	g.stop(syscall.SIGKILL) // mid-run: statements in flight, events queued
	bench.Wait()            // fails: its connections were cut
	t.Logf("pgbench: %s", lastLines(out.String(), 3))

	rows := map[string]bool{}
	conn, err := pgx.Connect(t.Context(), shared.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := conn.Query(t.Context(), "SELECT v FROM t")
	for r.Next() {
		var v int64
		r.Scan(&v)
		rows[strconv.FormatInt(v, 10)] = true
	}
	conn.Close(t.Context())
	if r.Err() != nil || len(rows) < 100 {
		t.Fatalf("rows in t: %d (%v); pgbench:\n%s", len(rows), r.Err(), out)
	}

	// Restart on the same data_dir: recovery runs before it is ready.
	g.start()
	admin := g.token("root", "platform-admins")
	verify := exec.Command(g.bin, "audit", "verify")
	verify.Env = append(os.Environ(), "GATEHOUSE_API="+g.api, "GATEHOUSE_TOKEN="+admin)
	vout, err := verify.CombinedOutput()
	if err != nil || !strings.Contains(string(vout), "OK: ") {
		t.Fatalf("audit verify after the kill: %v\n%s", err, vout)
	}
	g.stop(syscall.SIGTERM)

	st, err := storeopen.Open(t.Context(), "", g.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen := map[string]bool{}
	unknown, statements := 0, 0
	f := audit.Filter{Type: audit.TypeStatement, Ascending: true, Limit: 1000}
	for {
		evs, err := st.ListEvents(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			statements++
			v, ok := strings.CutPrefix(e.Statement, "INSERT INTO t (v) VALUES (")
			if !ok || e.Decision != "allow" {
				continue
			}
			seen[strings.TrimSuffix(v, ")")] = true
			if strings.Contains(string(e.Detail), checkpoint.RecoveredOutcome) {
				unknown++
			}
		}
		if len(evs) < f.Limit {
			break
		}
		f.AfterSeq = evs[len(evs)-1].Seq
	}
	missing := 0
	for v := range rows {
		if !seen[v] {
			missing++
			if missing <= 5 {
				t.Errorf("row %s reached PostgreSQL but its statement has no audit event", v)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d rows have no audit event", missing, len(rows))
	}
	t.Logf("%d rows, %d statement events, %d recovered with an unknown outcome", len(rows), statements, unknown)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// TestAuditDurableStoreUnwritable makes the PostgreSQL audit store refuse
// writes: statements are then refused with SQLSTATE 58000 and a message
// saying why, nothing runs, /readyz and the metrics say so; once the store
// accepts writes again statements run, and the refused attempts are in the
// audit as denials.
func TestAuditDurableStoreUnwritable(t *testing.T) {
	pgtest.Need(t, shared)
	storeDB := shared.CreateDB(t)
	t.Setenv("GATEHOUSE_TEST_STORE", shared.DSN(storeDB))
	e := startEnv(t, envOpts{store: "env:GATEHOUSE_TEST_STORE"})
	tok := e.token("agent-1", "analysts")
	ctx := t.Context()
	shared.Exec(t, e.db, "CREATE TABLE t (v int)")
	conn, err := pgx.Connect(ctx, e.dsn("orders", tok))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(sql string) error {
		_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		return err
	}
	if err := exec("insert into t values (1)"); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		c, err := pgx.Connect(ctx, shared.DSN(e.db))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	readOnly := func(on bool) {
		set := "SET default_transaction_read_only = on"
		if !on {
			set = "RESET default_transaction_read_only"
		}
		shared.Exec(t, "postgres", "ALTER DATABASE "+storeDB+" "+set)
		// Sessions already open keep their setting: end them, the store's
		// pool reconnects with the new one.
		shared.Exec(t, "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+storeDB+"' AND pid <> pg_backend_pid()")
	}
	ready := func() (int, string) {
		resp, err := http.Get(e.api + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitReady := func(want int, reason string) string {
		for deadline := time.Now().Add(20 * time.Second); ; {
			code, body := ready()
			if code == want && strings.Contains(body, reason) {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz %d, want %d: %s", code, want, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	readOnly(true)
	// This statement is journaled before it runs, so it may run: the
	// store's failure shows at the audit writer's next write, which it
	// triggers.
	if err := exec("insert into t values (2)"); err != nil {
		t.Fatal(err)
	}
	body := waitReady(503, "audit")
	t.Logf("/readyz while the store is read-only: %s", body)
	before := count()
	for i := 3; i <= 5; i++ {
		err := exec(fmt.Sprintf("insert into t values (%d)", i))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "58000" || !strings.Contains(pe.Message, "could not write the audit record") ||
			!strings.Contains(pe.Message, "was not run") {
			t.Fatalf("statement %d with the store unwritable: %v", i, err)
		}
		if i == 3 {
			t.Logf("client sees: %s (SQLSTATE %s)", pe.Message, pe.Code)
		}
	}
	if n := count(); n != before {
		t.Fatalf("rows changed from %d to %d while statements were refused", before, n)
	}
	metrics := getMetrics(t, e.api)
	if !strings.Contains(metrics, "gatehouse_audit_refused_statements_total 3") || !strings.Contains(metrics, "gatehouse_audit_durable 0") {
		t.Fatalf("metrics while refusing:\n%s", grepLines(metrics, "gatehouse_audit"))
	}

	readOnly(false)
	waitReady(200, "")
	if err := exec("insert into t values (6)"); err != nil {
		t.Fatalf("after the store recovered: %v", err)
	}
	if n := count(); n != before+1 {
		t.Fatalf("rows %d, want %d", n, before+1)
	}
	if m := getMetrics(t, e.api); !strings.Contains(m, "gatehouse_audit_durable 1") {
		t.Fatalf("metrics after recovery:\n%s", grepLines(m, "gatehouse_audit"))
	}
	// The refused attempts are recorded as denials; the statement that ran
	// while the store was failing is recorded with its outcome.
	want := map[string]string{"insert into t values (2)": "allow", "insert into t values (3)": "deny",
		"insert into t values (4)": "deny", "insert into t values (5)": "deny", "insert into t values (6)": "allow"}
	for deadline := time.Now().Add(20 * time.Second); ; {
		got := map[string]string{}
		for _, ev := range e.events(t, "type=statement&principal=agent-1&limit=100") {
			if _, ok := want[ev.Statement]; ok {
				got[ev.Statement] = ev.Decision
				if ev.Decision == "deny" && !strings.Contains(ev.Reason, "audit") {
					t.Fatalf("denial reason: %q", ev.Reason)
				}
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit events %v, want %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getMetrics(t *testing.T, api string) string {
	t.Helper()
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
