package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/pgtest"
)

// events reads /api/v1/audit/events as an admin, after giving the audit
// log a moment to flush its queue.
func (e *env) events(t *testing.T, query string) []audit.Event {
	t.Helper()
	e.auditSettled(t)
	admin := e.token("root", "platform-admins")
	var out []audit.Event
	for attempt := 0; attempt < 20; attempt++ {
		req, _ := http.NewRequest("GET", e.api+"/api/v1/audit/events?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Events []audit.Event `json:"events"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("audit events: %d %v", resp.StatusCode, err)
		}
		out = body.Events
		if len(out) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out
}

func TestAuditSessionLifecycle(t *testing.T) {
	e := startEnv(t, envOpts{})
	tok := e.token("agent-1", "analysts")
	e.run(tok, "psql", "-X", "-Atc", "select 42; select 'x'")
	time.Sleep(300 * time.Millisecond)
	evs := e.events(t, "principal=agent-1&limit=50")
	var types []string
	var sessionID string
	for _, ev := range evs {
		types = append(types, ev.Type)
		if ev.Type == audit.TypeSessionOpened {
			sessionID = ev.SessionID
			var d struct {
				Groups  []string `json:"groups"`
				AppName string   `json:"application_name"`
			}
			json.Unmarshal(ev.Detail, &d)
			if len(d.Groups) != 1 || d.Groups[0] != "analysts" || d.AppName != "psql" {
				t.Errorf("session.opened detail: %s", ev.Detail)
			}
		}
	}
	want := []string{"session.opened", "statement", "statement", "session.closed"}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("event types = %v, want %v", types, want)
	}
	st := evs[1]
	if st.Statement != "select 42" || st.Decision != "allow" || st.SessionID != sessionID || st.Connection != "orders" {
		t.Errorf("statement event: %+v", st)
	}
	var sd struct {
		Rows    int64  `json:"rows"`
		Command string `json:"command"`
	}
	json.Unmarshal(st.Detail, &sd)
	if sd.Rows != 1 || sd.Command != "SELECT 1" {
		t.Errorf("statement detail: %s", st.Detail)
	}
}

// TestPostgresStore runs the gateway on the PostgreSQL store instead of
// SQLite: connections sync, sessions and statements are audited there.
func TestPostgresStore(t *testing.T) {
	pgtest.Need(t, shared)
	storeDB := shared.CreateDB(t)
	t.Setenv("GATEHOUSE_TEST_STORE", shared.DSN(storeDB))
	e := startEnv(t, envOpts{store: "env:GATEHOUSE_TEST_STORE"})
	tok := e.token("agent-1")
	e.run(tok, "psql", "-X", "-Atc", "select 1")
	evs := e.events(t, "type=statement&principal=agent-1")
	if len(evs) != 1 || evs[0].Statement != "select 1" {
		t.Fatalf("statement events in the PostgreSQL store: %+v", evs)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, shared.DSN(storeDB))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "select count(*) from audit_events where type = 'statement'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("audit_events rows: %d %v", n, err)
	}
	var name string
	if err := c.QueryRow(ctx, "select name from connections").Scan(&name); err != nil || name != "orders" {
		t.Fatalf("connections: %q %v", name, err)
	}
}

// auditSettled waits until every audit event appended so far is stored
// (gatehouse_audit_queue_depth 0): the writer batches for up to 50 ms, so
// a read right after a statement may not see its event yet.
func (e *env) auditSettled(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := grepLines(getMetrics(t, e.api), "gatehouse_audit_queue_depth ")
		if strings.HasSuffix(strings.TrimSpace(m), " 0") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit events still unwritten after 10 s: %q", m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
