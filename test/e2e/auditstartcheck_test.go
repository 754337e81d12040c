package e2e

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, to tamper with the store file

	"github.com/gatehouse/gatehouse/internal/pgtest"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
)

// TestAuditStartCheckTamper stops the gateway, tampers with its SQLite
// store (deletes the newest events, edits one, deletes the newest
// checkpoint) and sees the next start refused naming the first bad
// node_seq; then starts it with --audit-accept-break and sees `audit
// verify` show the break. Clean and SIGKILL restarts before that start
// without complaint.
func TestAuditStartCheckTamper(t *testing.T) {
	pgtest.Need(t, shared)
	db := shared.CreateDB(t)
	g := newProcGateway(t, db)
	// Checkpoints only at shutdown (and every 1000 events), so the test
	// knows where they are.
	cfg, _ := os.ReadFile(g.cfg)
	os.WriteFile(g.cfg, []byte(strings.Replace(string(cfg), "checkpoint_interval: 200ms", "checkpoint_interval: 1h", 1)), 0o600)

	psql := func(stmts ...string) {
		t.Helper()
		tok := g.token("agent-1", "analysts")
		args := []string{"-X", "-At", "-v", "ON_ERROR_STOP=1"}
		for _, s := range stmts {
			args = append(args, "-c", s)
		}
		cmd := exec.Command("psql", args...)
		cmd.Env = append(os.Environ(), "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(g.pgPort), "PGDATABASE=orders",
			"PGUSER=agent", "PGPASSWORD="+tok, "PGSSLMODE=disable")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql: %v\n%s", err, out)
		}
	}
	dbFile := filepath.Join(g.dataDir, sqlite.FileName)
	query := func(q string) int64 {
		t.Helper()
		d, err := sql.Open("sqlite", dbFile)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var v int64
		if err := d.QueryRow(q).Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return v
	}

	g.start()
	psql("select 1", "select 2")
	g.stop(syscall.SIGTERM) // clean: signs the head
	g.start()               // a clean restart starts
	psql("select 3", "select 4", "select 5")
	time.Sleep(300 * time.Millisecond) // the writer's linger: stored, not signed
	g.stop(syscall.SIGKILL)            // a crash: unsigned events, the journal
	g.start()                          // recovering starts too
	psql("select 6", "select 7", "select 8")
	g.stop(syscall.SIGTERM)

	signed1 := query(`SELECT node_seq FROM audit_checkpoints ORDER BY node_seq DESC LIMIT 1 OFFSET 1`)
	head := query(`SELECT max(node_seq) FROM audit_events WHERE node = 'durable-test'`)
	if last := query(`SELECT max(node_seq) FROM audit_checkpoints`); last != head || head-signed1 < 6 {
		t.Fatalf("checkpoints at %d and %d, head %d", signed1, last, head)
	}
	edited := signed1 + 2
	d, err := sql.Open("sqlite", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DELETE FROM audit_events WHERE node = 'durable-test' AND node_seq > ` + strconv.FormatInt(head-2, 10),
		`UPDATE audit_events SET statement = 'select 42' WHERE node = 'durable-test' AND node_seq = ` + strconv.FormatInt(edited, 10),
		`DELETE FROM audit_checkpoints WHERE node_seq = ` + strconv.FormatInt(head, 10),
	} {
		if res, err := d.Exec(q); err != nil {
			t.Fatal(err)
		} else if n, _ := res.RowsAffected(); n == 0 {
			t.Fatalf("changed nothing: %s", q)
		}
	}
	d.Close()

	// Refused, naming the node, the first bad node_seq and the way on.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	serve := exec.CommandContext(ctx, g.bin, "serve", "--dev", "--config", g.cfg)
	serve.Env = append(os.Environ(), "ORDERS_DB_PASSWORD="+shared.Password)
	out, err := serve.CombinedOutput()
	msg := string(out)
	if err == nil || ctx.Err() != nil || !strings.Contains(msg, `node \"durable-test\"`) && !strings.Contains(msg, `node "durable-test"`) ||
		!strings.Contains(msg, "at node_seq "+strconv.FormatInt(edited, 10)+":") ||
		!strings.Contains(msg, "gatehouse audit verify") || !strings.Contains(msg, "--audit-accept-break") {
		t.Fatalf("start on a tampered store (want a refusal at node_seq %d): %v\n%s", edited, err, msg)
	}

	// Accepted: it starts, and verify shows the break and what it hides.
	g.extra = []string{"--audit-accept-break"}
	g.start()
	g.extra = nil
	psql("select 9")
	admin := g.token("root", "platform-admins")
	verify := exec.Command(g.bin, "audit", "verify")
	verify.Env = append(os.Environ(), "GATEHOUSE_API="+g.api, "GATEHOUSE_TOKEN="+admin)
	vout, err := verify.CombinedOutput()
	v := string(vout)
	if err == nil || !strings.Contains(v, "CHAIN BREAK at node_seq "+strconv.FormatInt(head+1, 10)) ||
		!strings.Contains(v, "failed its startup check at node_seq "+strconv.FormatInt(edited, 10)) ||
		!strings.Contains(v, "FAIL node durable-test node_seq "+strconv.FormatInt(edited, 10)+": the event's content does not match its hash") {
		t.Fatalf("verify after the accepted break: %v\n%s", err, v)
	}
	// The new segment is checked and signed: no problem after the break.
	for _, l := range strings.Split(v, "\n") {
		if strings.HasPrefix(l, "FAIL ") && !strings.Contains(l, "node_seq "+strconv.FormatInt(edited, 10)+":") {
			t.Errorf("a problem besides the tampering: %s", l)
		}
	}
	g.stop(syscall.SIGTERM)
	g.start() // the new segment is what this node signed: a clean start
	g.stop(syscall.SIGTERM)
}
