package e2e

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const agentPolicies = `
policies:
  - name: agents-on-orders
    connections: [orders]
    principals: ["group:agents"]
    rules:
      - deny: statement.kind in ["drop_table", "truncate", "alter_table"]
        message: destructive DDL is not allowed for agents
      - deny: statement.kind in ["update", "delete"] && !statement.has_where
        message: UPDATE/DELETE without WHERE
      - deny: '"pg_terminate_backend" in statement.functions'
        message: agents may not terminate backends
      - review: statement.kind == "delete"
        approvers: ["group:dba"]
        timeout: 2s
        message: deletes need a DBA
      - allow: statement.kind in ["select", "insert", "update", "begin", "commit", "rollback", "create_table", "set", "show", "prepare", "execute", "deallocate", "explain", "empty"]
    default: deny
`

// TestPolicyDecisions: statement policies from gatehouse.yaml decide every
// statement through real clients; denials are SQLSTATE 42501 naming the
// policy and rule, nothing of a denied multi-statement message runs, and the
// session stays usable (transaction blocks behave as in PostgreSQL).
func TestPolicyDecisions(t *testing.T) {
	e := startEnv(t, envOpts{policies: agentPolicies, access: `["group:agents", "group:admins"]`})
	agent := e.token("agent-7", "agents")
	ctx := context.Background()
	// Setup as a principal no policy applies to (only the access list).
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c",
		"create table items (id int primary key, name text); insert into items values (1, 'a'), (2, 'b')")

	c, err := pgx.Connect(ctx, e.dsn("orders", agent))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	deny := func(sql, wantRule, wantMsg string) {
		t.Helper()
		_, err := c.Exec(ctx, sql)
		if sqlstate(err) != "42501" || !strings.Contains(err.Error(), wantMsg) || !strings.Contains(err.Error(), wantRule) {
			t.Errorf("%s: got %v, want 42501 with rule %q and %q", sql, err, wantRule, wantMsg)
		}
	}
	deny("drop table items", "agents-on-orders/rule-1", "destructive DDL is not allowed for agents")
	deny("update items set name = 'x'", "agents-on-orders/rule-2", "UPDATE/DELETE without WHERE")
	deny("select pg_terminate_backend(1)", "agents-on-orders/rule-3", "agents may not terminate backends")
	// Nobody approves: the hold times out and says so.
	deny("delete from items where id = 1", "agents-on-orders/rule-4", "no decision within 2s")
	deny("vacuum items", "agents-on-orders/default", "")
	// Allowed statements run, extended and simple protocol alike.
	if _, err := c.Exec(ctx, "update items set name = 'z' where id = $1", 1); err != nil {
		t.Fatal(err)
	}
	// EXPLAIN ANALYZE runs the statement: it is decided as what it wraps.
	deny("explain analyze update items set name = 'y'", "agents-on-orders/rule-2", "UPDATE/DELETE without WHERE")
	// SQL-level PREPARE/EXECUTE: EXECUTE is decided as the prepared statement.
	// PREPARE runs nothing, so a reviewed statement may be prepared; its
	// EXECUTE is held (and here times out).
	if _, err := c.Exec(ctx, "prepare wipe as delete from items where id > 0", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("PREPARE of a reviewed statement: %v", err)
	}
	deny("execute wipe", "agents-on-orders/rule-4", "no decision within 2s")
	// A multi-statement message with one denied statement runs none of it.
	_, err = c.Exec(ctx, "insert into items values (3, 'c'); drop table items", pgx.QueryExecModeSimpleProtocol)
	if sqlstate(err) != "42501" {
		t.Fatalf("multi-statement: %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "select count(*) from items").Scan(&n); err != nil || n != 2 {
		t.Fatalf("partial execution of a denied message: count=%d err=%v", n, err)
	}
	// Inside a transaction block a denial aborts the block, as PostgreSQL would.
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.Exec(ctx, "insert into items values (4, 'd')")
	if _, err := tx.Exec(ctx, "truncate items"); sqlstate(err) != "42501" {
		t.Fatalf("deny in tx: %v", err)
	}
	if _, err := tx.Exec(ctx, "select 1"); sqlstate(err) != "25P02" {
		t.Fatalf("after deny in tx want 25P02: %v", err)
	}
	tx.Rollback(ctx)
	// Unparseable SQL is refused by the gateway (never forwarded) with the
	// error PostgreSQL itself would give: 42601 and its message.
	_, err = c.Exec(ctx, "selec 1", pgx.QueryExecModeSimpleProtocol)
	if sqlstate(err) != "42601" || !strings.Contains(err.Error(), `syntax error at or near "selec"`) {
		t.Fatalf("unparseable: %v", err)
	}
	// ... all of it: the whole text's position (not the split statement's
	// "at end of input"), DETAIL and HINT, which only the server has.
	_, err = c.Exec(ctx, "select 1; create policy p on items as ugly using (true);", pgx.QueryExecModeSimpleProtocol)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Message != `unrecognized row security option "ugly"` || pe.Position != 39 ||
		pe.Hint != "Only PERMISSIVE or RESTRICTIVE policies are supported currently." {
		t.Fatalf("unparseable, server's words: %#v", err)
	}
	// psql sees the same.
	out, err := e.runErr(agent, "psql", "-X", "-c", "drop table items")
	if err == nil || !strings.Contains(out, "destructive DDL is not allowed for agents") {
		t.Fatalf("psql denial: %v %s", err, out)
	}
	// Denials are audited with policy and rule.
	evs := e.events(t, "decision=deny&principal=agent-7&limit=50")
	found := false
	for _, ev := range evs {
		if ev.Statement == "drop table items" && strings.Contains(string(ev.Detail), "agents-on-orders/rule-1") {
			found = true
		}
	}
	if !found {
		t.Fatalf("denial not audited with its rule: %+v", evs)
	}
}

// TestPolicyReload: a policies file is reloaded through the API without
// dropping sessions; the live session's next statement uses the new rules.
func TestPolicyReload(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "policies.yaml")
	write := func(kind string) {
		os.WriteFile(pf, []byte(`
policies:
  - name: file-policy
    connections: [orders]
    principals: ["*"]
    rules:
      - deny: statement.kind == "`+kind+`"
        message: no `+kind+` today
    default: allow
`), 0o600)
	}
	write("insert")
	e := startEnv(t, envOpts{policies: "policies_file: " + pf})
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", e.token("agent-1")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "create temp table t (v int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "insert into t values (1)"); sqlstate(err) != "42501" {
		t.Fatalf("before reload: %v", err)
	}
	// A statement pgx prepared and caches (re-run by Bind/Execute only).
	cached := func() error {
		var v int
		return c.QueryRow(ctx, "select $1::int", 7).Scan(&v)
	}
	if err := cached(); err != nil {
		t.Fatal(err)
	}
	write("select")
	req, _ := http.NewRequest("POST", e.api+"/api/v1/policies/reload", nil)
	req.Header.Set("Authorization", "Bearer "+e.token("root", "platform-admins"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reload: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := c.Exec(ctx, "insert into t values (1)"); err != nil {
		t.Fatalf("after reload, insert: %v", err)
	}
	if _, err := c.Exec(ctx, "select 1"); sqlstate(err) != "42501" || !strings.Contains(err.Error(), "no select today") {
		t.Fatalf("after reload, select: %v", err)
	}
	if err := cached(); sqlstate(err) != "42501" || !strings.Contains(err.Error(), "no select today") {
		t.Fatalf("after reload, the prepared select: %v", err)
	}
	// A broken file keeps the current policies and says why.
	os.WriteFile(pf, []byte("policies:\n  - name: x\n    connections: [orders]\n    principals: ['*']\n    rules:\n      - deny: statement.kind ==\n"), 0o600)
	resp, err = http.DefaultClient.Do(req.Clone(ctx))
	if err != nil || resp.StatusCode != 422 {
		t.Fatalf("bad reload: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := c.Exec(ctx, "select 1"); sqlstate(err) != "42501" {
		t.Fatalf("after a failed reload the previous policies must stay: %v", err)
	}
}
