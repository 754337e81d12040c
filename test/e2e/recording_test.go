package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/audit"
)

// recordingPolicies mask two columns for agents, deny DROP with a message
// and hold UPDATE for a DBA.
const recordingPolicies = `
policies:
  - name: agents
    connections: [orders]
    principals: ["group:agents"]
    rules:
      - deny: statement.kind in ["drop_table", "truncate"]
        message: destructive DDL is not allowed for agents
      - review: statement.kind == "update"
        approvers: ["group:dba"]
        message: updates need a DBA
      - allow: "true"
    default: deny
    masking:
      columns:
        - { column: "public.customers.card_number", method: last4 }
        - { column: "*.email", method: redact }
`

// rawValues are the unmasked values of the masked columns. Nothing the
// gateway stores, exports or logs may contain them.
var rawValues = []string{"4111111111111111", "5500005555555559", "ann@example.com", "bob@corp.test"}

// TestRecordingReplay is the acceptance test of session recording: one psql
// session runs a masked SELECT, a denied DROP and an UPDATE held for review
// and approved with `gatehouse reviews approve`. `gatehouse audit replay`
// then shows all three like psql did, with the masked values, the deny
// reason and the approver; `audit sessions` lists the session and `audit
// tail --follow` streamed its events. The raw values of the masked columns
// appear nowhere in the audit API, the export, the store's files or the
// gateway's log, and the chain covers the recording: changing a recorded
// cell in the export fails verification.
func TestRecordingReplay(t *testing.T) {
	logs := &syncBuffer{}
	e := startEnv(t, envOpts{policies: recordingPolicies + signSoon, access: `["group:agents"]`, logs: logs})
	// Loaded straight into PostgreSQL: the agents' policy (derived: deny)
	// refuses them writes to masked columns. (Through the gateway the
	// INSERT's values would be recorded redacted: TestRecordingMaskedWrites.)
	e.pg.Exec(t, e.db, `
create table customers (id int primary key, name text, email text, card_number text);
insert into customers values (1, 'Ann', 'ann@example.com', '4111111111111111'), (2, 'Bob', 'bob@corp.test', '5500005555555559');`)
	admin := e.token("root", "platform-admins")
	agent := e.token("agent-7", "agents")

	// Follow the audit log with the CLI while the session runs.
	e.runCLI(admin, "audit", "sessions") // builds the CLI
	follow := exec.Command(cliBuild.path, "audit", "tail", "--follow", "-o", "json", "--principal", "agent-7", "-n", "1")
	follow.Env = append(os.Environ(), "GATEHOUSE_API="+e.api, "GATEHOUSE_TOKEN="+admin)
	followOut, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	follow.Stderr = os.Stderr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer follow.Process.Kill()
	var (
		mu       sync.Mutex
		followed []audit.Event
		closedCh = make(chan struct{})
	)
	go func() {
		sc := bufio.NewScanner(followOut)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		closed := false
		for sc.Scan() {
			var ev audit.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("tail --follow printed a line that is not an event: %q", sc.Text())
				continue
			}
			mu.Lock()
			followed = append(followed, ev)
			mu.Unlock()
			if ev.Type == audit.TypeSessionClosed && !closed {
				closed = true
				close(closedCh)
			}
		}
	}()

	const (
		sel  = "select id, name, email, card_number from customers order by id"
		drop = "drop table customers"
		upd  = "update customers set name = 'Zed' where id = 1"
	)
	psql := exec.Command("psql", "-X", "-c", sel, "-c", drop, "-c", upd)
	psql.Env = e.pgEnv(agent)
	var out bytes.Buffer
	psql.Stdout, psql.Stderr = &out, &out
	if err := psql.Start(); err != nil {
		skipOrFail(t, "psql: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- psql.Wait() }()
	r := e.pendingReview(t, e.client(e.token("dana", "dba")), upd)
	if got := e.runCLI(e.token("dana", "dba"), "reviews", "approve", r.ID, "--reason", "ticket 12"); !strings.Contains(got, "approved") {
		t.Fatalf("cli approve: %s", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("psql: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("psql still waiting after approval:\n%s", out.String())
	}
	psqlOut := out.String()
	if !strings.Contains(psqlOut, "destructive DDL is not allowed for agents") || !strings.Contains(psqlOut, "UPDATE 1") {
		t.Fatalf("psql output:\n%s", psqlOut)
	}
	for _, v := range rawValues {
		if strings.Contains(psqlOut, v) {
			t.Fatalf("psql received the raw value %q:\n%s", v, psqlOut)
		}
	}

	// audit sessions: the session, closed, with its three statements.
	var sess adminapi.Session
	for deadline := time.Now().Add(20 * time.Second); ; {
		var l adminapi.SessionList
		if err := json.Unmarshal([]byte(e.runCLI(admin, "audit", "sessions", "--principal", "agent-7", "-o", "json")), &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Sessions) == 1 && l.Sessions[0].EndedAt != nil && l.Sessions[0].Statements == 3 {
			sess = l.Sessions[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit sessions: %+v", l)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if sess.Connection != "orders" || sess.ApplicationName != "psql" || len(sess.Groups) != 1 || sess.Groups[0] != "agents" {
		t.Errorf("session summary: %+v", sess)
	}
	table := e.runCLI(admin, "audit", "sessions", "--connection", "orders")
	if !strings.Contains(table, sess.ID) || !strings.Contains(table, "agent-7") {
		t.Errorf("audit sessions table:\n%s", table)
	}

	// audit replay: the transcript.
	replay := e.runCLI(admin, "audit", "replay", sess.ID)
	t.Logf("psql:\n%s\nreplay:\n%s", psqlOut, replay)
	want := []string{
		"-- principal:  agent-7",
		"-- groups:     agents",
		"orders=> " + sel + ";",
		"orders=> " + drop + ";\nERROR:  ",
		"destructive DDL is not allowed for agents",
		"allow, review " + r.ID + " approved by dana",
		"orders=> " + upd + ";\nUPDATE 1\n",
		"review.approved (allow) review " + r.ID + " by dana",
	}
	for _, w := range want {
		if !strings.Contains(replay, w) {
			t.Errorf("replay lacks %q", w)
		}
	}
	// The masked result is the table psql printed, byte for byte.
	if tbl := psqlTable(psqlOut); tbl == "" || !strings.Contains(replay, tbl) {
		t.Errorf("replay lacks psql's table:\n%s", tbl)
	}
	if strings.Count(replay, "************") < 2 {
		t.Errorf("replay lacks the masked card numbers")
	}

	// tail --follow streamed the session as it happened.
	select {
	case <-closedCh:
	case <-time.After(20 * time.Second):
		t.Fatal("tail --follow did not show the session's end")
	}
	follow.Process.Kill()
	mu.Lock()
	var stmts []string
	for _, ev := range followed {
		if ev.Type == audit.TypeStatement && ev.SessionID == sess.ID {
			stmts = append(stmts, ev.Decision+" "+ev.Statement)
		}
	}
	mu.Unlock()
	if got, want := strings.Join(stmts, "\n"), strings.Join([]string{"allow " + sel, "deny " + drop, "allow " + upd}, "\n"); got != want {
		t.Errorf("tail --follow statements:\n%s\nwant:\n%s", got, want)
	}

	// No raw value anywhere: the audit API, the export, the store's files
	// and the log.
	evs, _ := json.Marshal(e.events(t, "limit=1000"))
	export := filepath.Join(e.dir, "audit.jsonl")
	exported := e.exportSigned(admin, export)
	if !bytes.Contains(exported, []byte(`"sample":[`)) {
		t.Fatalf("the export holds no recorded sample:\n%s", exported)
	}
	places := map[string][]byte{"audit API": evs, "export": exported, "gateway log": []byte(logs.String()),
		"replay": []byte(replay), "replay -o json": []byte(e.runCLI(admin, "audit", "replay", sess.ID, "-o", "json"))}
	// The store's files (SQLite database and WAL) hold the masked sample,
	// so grepping them for the raw values means something.
	files, _ := filepath.Glob(filepath.Join(e.dir, "data", "*"))
	sampled := false
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			places[f] = b
			sampled = sampled || bytes.Contains(b, []byte("************1111"))
		}
	}
	if !sampled || !bytes.Contains(exported, []byte("************1111")) {
		t.Fatalf("the store's files %v or the export lack the masked sample", files)
	}
	for where, b := range places {
		for _, v := range rawValues {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s contains the raw value %q", where, v)
			}
		}
	}

	// The recording is in the chained event: verification covers it.
	pub := filepath.Join(e.dir, "audit.pub")
	resp, err := http.Get(e.api + "/api/v1/audit/public-key")
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	os.WriteFile(pub, pem, 0o644)
	if out, err := offlineCLI("audit", "verify", "--file", export, "--public-key", pub); err != nil || !strings.Contains(out, "OK: ") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	tampered := filepath.Join(e.dir, "tampered.jsonl")
	os.WriteFile(tampered, bytes.Replace(exported, []byte(`"Ann"`), []byte(`"Eve"`), 1), 0o600)
	if out, err := offlineCLI("audit", "verify", "--file", tampered, "--public-key", pub); err == nil || !strings.Contains(out, "does not match its hash") {
		t.Fatalf("verify of an export with a changed recorded cell: %v\n%s", err, out)
	}
}

// psqlTable cuts the first aligned table, header to "(N rows)", out of
// psql's output.
func psqlTable(out string) string {
	lines := strings.Split(out, "\n")
	for i := 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "---") {
			for j := i + 1; j < len(lines); j++ {
				if strings.HasPrefix(lines[j], "(") && strings.HasSuffix(lines[j], "rows)") {
					return strings.Join(lines[i-1:j+1], "\n")
				}
			}
		}
	}
	return ""
}

// writePolicies mask three columns for agents and let them write.
const writePolicies = `
policies:
  - name: agents
    connections: [orders]
    principals: ["group:agents"]
    rules:
      - allow: "true"
    default: deny
    masking:
      columns:
        - { column: "customers.card_number", method: last4 }
        - { column: "customers.ssn", method: "null" }
        - { column: "customers.note", method: redact }
      entities: [credit_card, email]
      derived: mask
`

// TestRecordingMaskedWrites: values written to masked columns — bound
// parameters of the extended protocol (pgx) and literals in the text of
// simple-protocol statements (psql) — never reach the audit store, the
// export, `audit replay` or the log, even when no entity detector
// recognises them (a card number failing Luhn, a free-text note, an SSN
// with an invalid area number). A statement refused for comparing a masked
// column with a literal is recorded without the literal too.
func TestRecordingMaskedWrites(t *testing.T) {
	logs := &syncBuffer{}
	e := startEnv(t, envOpts{policies: writePolicies, access: `["group:agents"]`, logs: logs})
	e.pg.Exec(t, e.db, `
create table customers (id int primary key, name text, ssn text, card_number text, note text);
insert into customers values (1, 'Ann', '078-05-1120', '4111111111111111', 'n1'), (2, 'Bob', '219-09-9999', '5500005555555559', 'n2');`)
	admin := e.token("root", "platform-admins")
	agent := e.token("agent-7", "agents")
	secrets := []string{"987-65-4329", "4111111111111112", "sekrit-note-3", "5500005555555550", "sekrit-note-7",
		"987-65-4328", "4111111111111113", "sekrit-note-4", "sekrit-note-5", "987-65-4327", "sekrit-note-6"}

	// Extended protocol: the values are bound parameters.
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", agent))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		sql  string
		args []any
	}{
		{"insert into customers (id, name, ssn, card_number, note) values ($1, $2, $3, $4, $5)", []any{3, "Cy", "987-65-4329", "4111111111111112", "sekrit-note-3"}},
		{"update customers set card_number = $1 where id = $2", []any{"5500005555555550", 2}},
		{"update customers set name = $2, note = $1 where id = $3", []any{"sekrit-note-7", "Bo", 2}},
	} {
		if _, err := c.Exec(ctx, s.sql, s.args...); err != nil {
			t.Fatalf("%s: %v", s.sql, err)
		}
	}
	c.Close(ctx)

	// Simple protocol: the values are literals in the text.
	out, _ := e.runErr(agent, "psql", "-X",
		"-c", "insert into customers (id, name, ssn, card_number, note) values (4, 'Di', '987-65-4328', '4111111111111113', 'sekrit-note-4')",
		"-c", "update customers set note = 'sekrit-note-5' where id = 1",
		"-c", "select id from customers where ssn = '987-65-4327'",
		"-c", "insert into customers values (5, 'Ed', null, null, $$sekrit-note-6$$)")
	if !strings.Contains(out, "INSERT 0 1") || !strings.Contains(out, "UPDATE 1") || !strings.Contains(out, "may not be used in WHERE") {
		t.Fatalf("psql:\n%s", out)
	}
	up, err := pgx.Connect(ctx, shared.DSN(e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close(ctx)
	var n int
	if err := up.QueryRow(ctx, "select count(*) from customers where note like 'sekrit-note-%'").Scan(&n); err != nil || n != 5 {
		t.Fatalf("the writes did not all run: %d notes written", n)
	}

	// Every statement is in the audit log, with its parameters.
	var evs []audit.Event
	for deadline := time.Now().Add(20 * time.Second); ; {
		evs = e.events(t, "limit=1000&principal=agent-7")
		stmts, params := 0, 0
		for _, ev := range evs {
			if ev.Type == audit.TypeStatement {
				stmts++
				var det struct {
					Params []string `json:"params"`
				}
				if json.Unmarshal(ev.Detail, &det) == nil && len(det.Params) > 0 {
					params++
				}
			}
		}
		if stmts >= 7 && params >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit log holds %d statements, %d with parameters", stmts, params)
		}
		time.Sleep(100 * time.Millisecond)
	}
	apiOut, _ := json.Marshal(evs)
	export := filepath.Join(e.dir, "audit.jsonl")
	e.runCLI(admin, "audit", "export", "--out", export)
	exported, _ := os.ReadFile(export)
	places := map[string][]byte{"audit API": apiOut, "export": exported, "gateway log": []byte(logs.String())}
	var l adminapi.SessionList
	if err := json.Unmarshal([]byte(e.runCLI(admin, "audit", "sessions", "--principal", "agent-7", "-o", "json")), &l); err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Sessions {
		replay := e.runCLI(admin, "audit", "replay", s.ID)
		t.Logf("replay:\n%s", replay)
		places["replay "+s.ID] = []byte(replay)
	}
	files, _ := filepath.Glob(filepath.Join(e.dir, "data", "*"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			places[f] = b
		}
	}
	for where, b := range places {
		for _, v := range secrets {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s contains the raw value %q", where, v)
			}
		}
	}
}
