package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/audit"
)

func TestAuditSessionsAndReplay(t *testing.T) {
	g := startGateway(t)
	env := map[string]string{"GATEHOUSE_API": g.url, "GATEHOUSE_TOKEN": g.token(t, "alice", "admins")}
	t0 := time.Now().Add(-time.Minute)
	ev := func(typ, decision, stmt, reason, detail string) audit.Event {
		e := audit.Event{Time: t0, Type: typ, SessionID: "s1", Issuer: "https://issuer.test", Subject: "agent-7",
			Connection: "orders", Decision: decision, Statement: stmt, Reason: reason}
		if detail != "" {
			e.Detail = json.RawMessage(detail)
		}
		return e
	}
	evs := []audit.Event{
		ev(audit.TypeSessionOpened, "allow", "", "", `{"protocol":"postgres","client_addr":"127.0.0.1:5123","application_name":"psql","tls":false,"groups":["agents","ops"],"act":[{"subject":"orchestrator","client_id":"ci"},{"subject":"carol"}]}`),
		ev(audit.TypeStatement, "allow", "SELECT id, number, note FROM cards WHERE id <= $1", "",
			`{"kind":"statement","duration_ms":1.5,"rows":3,"command":"SELECT 3","columns":[{"name":"id","type":"int4"},{"name":"number","type":"text"},{"name":"note","type":"text"}],"params":["2"],"sample":[["1","************1111",null],["12","************4242","x"]]}`),
		ev(audit.TypeStatement, "deny", "DROP TABLE cards", "DROP is not allowed for agents", `{"kind":"statement","policy":"agents","rule":"no-ddl"}`),
		ev("review.created", "hold", "UPDATE cards SET note = 'y'", "", `{"review_id":"rv_1","actor":"agent-7"}`),
		ev(audit.TypeStatement, "allow", "UPDATE cards SET note = 'y'", "", `{"kind":"statement","rows":3,"command":"UPDATE 3","review_id":"rv_1","approvers":["dana"],"notices":["WARNING 01000: careful"]}`),
		ev(audit.TypeStatement, "allow", "SELECT 1/0", "", `{"kind":"statement","error":"22012: division by zero"}`),
		ev(audit.TypeSessionClosed, "", "", "", `{"duration_ms":60000}`),
	}
	if err := g.store.AppendEvents(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	r := gh(t, env, "", "audit", "sessions")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "SESSION") || !strings.HasPrefix(lines[1], "s1 ") ||
		!strings.Contains(lines[1], "agent-7") || !strings.Contains(lines[1], "127.0.0.1:5123 (psql)") || !strings.HasSuffix(lines[1], " 4") {
		t.Fatalf("sessions: %+v", r)
	}
	r = gh(t, env, "", "audit", "replay", "s1")
	want := []string{
		"-- principal:  agent-7 (issuer https://issuer.test)",
		"-- groups:     agents, ops\n-- act chain:  orchestrator (client ci) < carol (current actor first)\n",
		"-- client:     127.0.0.1:5123, application psql, no TLS",
		"-- statements: 4",
		"orders=> SELECT id, number, note FROM cards WHERE id <= $1;\n-- parameters: $1 = '2'\n" +
			" id |      number      | note \n" +
			"----+------------------+------\n" +
			"  1 | ************1111 |\n" +
			" 12 | ************4242 | x\n" +
			"(3 rows; 2 recorded)\n",
		"deny (policy \"agents\" rule \"no-ddl\")",
		"orders=> DROP TABLE cards;\nERROR:  DROP is not allowed for agents\n",
		"review.created (hold) review rv_1 by agent-7",
		"allow, review rv_1 approved by dana",
		"orders=> UPDATE cards SET note = 'y';\nWARNING 01000: careful\nUPDATE 3\n",
		"orders=> SELECT 1/0;\nERROR:  22012: division by zero\n",
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("replay lacks %q:\n%s", w, r.stdout)
		}
	}
	r = gh(t, env, "", "audit", "replay", "s1", "-o", "json")
	var se adminapi.SessionEvents
	if err := json.Unmarshal([]byte(r.stdout), &se); err != nil || len(se.Events) != 7 || se.Session.Statements != 4 {
		t.Fatalf("replay -o json: %v %+v", err, r)
	}
	if r = gh(t, env, "", "audit", "replay", "nope"); r.code == 0 || !strings.Contains(r.stderr, "no session") {
		t.Errorf("replay of an unknown session: %+v", r)
	}
}

func TestTerminalSafe(t *testing.T) {
	in := "select 1 /*\x1b[1A\x1b[2K*/;\n\u009b31m\tend"
	got := terminalSafe(in)
	want := `select 1 /*\x1b[1A\x1b[2K*/;` + "\n" + `\x9b31m end`
	if got != want {
		t.Fatalf("terminalSafe(%q) = %q, want %q", in, got, want)
	}
	if terminalSafe("plain\n") != "plain\n" {
		t.Fatal("clean text changed")
	}
}
