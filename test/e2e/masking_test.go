package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

const maskPolicies = `
policies:
  - name: analysts-pii
    connections: [orders]
    principals: ["group:analysts"]
    rules:
      - allow: "true"
    default: allow
    masking:
      columns:
        - { column: "public.customers.card_number", method: last4 }
        - { column: "*.email", method: redact }
        - { column: "customers.ssn", method: "null" }
        - { column: "customers.customer_key", method: hash }
      entities: [credit_card, email]
      derived: mask
      predicates: deny
`

// TestColumnMasking: result values are masked by the column they come from
// (RowDescription table OID + attnum resolved through the catalog), in the
// simple and the extended protocol, text and binary formats, SELECT *,
// joins and aliases; computed fields derived from masked columns are masked;
// masked columns in WHERE are refused; entities in free text are masked.
func TestColumnMasking(t *testing.T) {
	e := startEnv(t, envOpts{policies: maskPolicies, access: `["group:analysts", "group:admins"]`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `
create table customers (id int primary key, name text, email text, card_number text, ssn text, customer_key text, notes text);
insert into customers values
 (1, 'Ann', 'ann@example.com', '4111111111111111', '078-05-1120', 'k-1', 'paid with 4111 1111 1111 1111, mail ann@example.com'),
 (2, 'Bob', 'bob@corp.test', '5500005555555559', '219-09-9999', 'k-2', 'nothing sensitive');
create table orders (id int, customer_id int, total numeric);
insert into orders values (10, 1, 9.5), (11, 2, 20);`)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", e.token("ana", "analysts")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	// Extended protocol (pgx default), SELECT * .
	var id int
	var name, email, card, key, notes string
	var ssn *string
	err = c.QueryRow(ctx, "select * from customers where id = $1", 1).Scan(&id, &name, &email, &card, &ssn, &key, &notes)
	if err != nil {
		t.Fatal(err)
	}
	if name != "Ann" || strings.Contains(email, "ann@") || !strings.HasSuffix(card, "1111") || strings.Contains(card, "41111111") || ssn != nil {
		t.Fatalf("masked row: name=%q email=%q card=%q ssn=%v", name, email, card, ssn)
	}
	if strings.Contains(notes, "4111 1111 1111 1111") || strings.Contains(notes, "ann@example.com") {
		t.Fatalf("entities in free text not masked: %q", notes)
	}
	// hash is stable per value (joins keep working) and hides the value.
	var key2 string
	c.QueryRow(ctx, "select customer_key from customers where id = $1", 1).Scan(&key2)
	if key == "k-1" || key != key2 {
		t.Fatalf("hash: %q then %q", key, key2)
	}
	// Simple protocol, join and aliases.
	rows, err := c.Query(ctx, "select o.id, x.card_number as cc, x.email from orders o join customers x on x.id = o.customer_id order by o.id", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var oid int
		var cc, em string
		rows.Scan(&oid, &cc, &em)
		if len(cc) != 16 || strings.Count(cc, "*")+strings.Count(cc, "X") < 12 || strings.Contains(em, "@") {
			t.Errorf("simple-protocol join row %d: cc=%q email=%q", oid, cc, em)
		}
	}
	rows.Close()
	// Binary result format (pgx asks for binary ints; text columns too).
	var cnt int64
	var total float64
	if err := c.QueryRow(ctx, "select count(*), sum(total)::float8 from orders").Scan(&cnt, &total); err != nil || cnt != 2 {
		t.Fatalf("aggregates over unmasked columns must pass: %d %v %v", cnt, total, err)
	}
	// A computed field derived from a masked column is masked entirely.
	var up *string
	if err := c.QueryRow(ctx, "select upper(email) from customers where id = $1", 1).Scan(&up); err != nil || up != nil {
		t.Fatalf("derived field: %v %v", up, err)
	}
	// Masked columns in predicates are refused (inference by binary search).
	_, err = c.Exec(ctx, "select id from customers where card_number like '4111%'")
	if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "card_number") {
		t.Fatalf("predicate on masked column: %v", err)
	}
	// COPY TO of a table with masked columns is refused.
	_, err = c.Exec(ctx, "copy customers to stdout", pgx.QueryExecModeSimpleProtocol)
	if sqlstate(err) != "42501" {
		t.Fatalf("copy to: %v", err)
	}
	// psql (text format, simple protocol) sees masked values too.
	out := e.run(e.token("ana", "analysts"), "psql", "-X", "-Atc", "select email, card_number from customers order by id")
	if strings.Contains(out, "@example.com") || strings.Contains(out, "4111111111111111") {
		t.Fatalf("psql saw unmasked values: %s", out)
	}
	// Someone no policy applies to sees the real values.
	out = e.run(e.token("root", "admins"), "psql", "-X", "-Atc", "select card_number from customers where id = 1")
	if strings.TrimSpace(out) != "4111111111111111" {
		t.Fatalf("unmasked principal: %s", out)
	}
}

// TestDerivedDeny: with the default `derived: deny`, a statement computing a
// value from a masked column is refused before it runs; selecting the column
// itself is allowed and masked.
func TestDerivedDeny(t *testing.T) {
	e := startEnv(t, envOpts{access: `["group:analysts", "group:admins"]`, policies: `
policies:
  - name: pii
    connections: [orders]
    principals: ["group:analysts"]
    rules:
      - allow: "true"
    masking:
      columns:
        - { column: "*.email", method: email-domain }
`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c",
		"create table people (id int, email text); insert into people values (1, 'ann@example.com')")
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", e.token("ana", "analysts")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, q := range []string{"select upper(email) from people", "select email || '' from people", "select row_to_json(p) from people p"} {
		if _, err := c.Exec(ctx, q); sqlstate(err) != "42501" || !strings.Contains(err.Error(), "computed from masked column") {
			t.Errorf("%s: %v", q, err)
		}
	}
	var email string
	if err := c.QueryRow(ctx, "select email from people").Scan(&email); err != nil || strings.HasPrefix(email, "ann") || !strings.HasSuffix(email, "@example.com") {
		t.Fatalf("bare masked column: %q %v", email, err)
	}
	var n int
	if err := c.QueryRow(ctx, "select count(*) from people").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count: %d %v", n, err)
	}
}

// TestNodePgMasking reads a masked table with node-postgres (text format,
// simple and extended protocol): column rules (last4, redact) and entities
// in a free-text column are masked, and no unmasked value reaches the
// client. The same script run by a principal without a masking policy sees
// the real values, so the checks would fail if masking were off.
func TestNodePgMasking(t *testing.T) {
	e := startEnv(t, envOpts{access: `["group:analysts", "group:admins"]`, policies: `
policies:
  - name: analysts-pii
    connections: [orders]
    principals: ["group:analysts"]
    rules:
      - allow: "true"
    masking:
      columns:
        - { column: "customers.card_number", method: last4 }
        - { column: "*.email", method: redact }
      entities: [credit_card, email, phone]
`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `
create table customers (id int primary key, name text, email text, card_number text, notes text);
insert into customers values
 (1, 'Ann', 'ann@example.com', '4111111111111111', 'paid with 4111 1111 1111 1111, call +1 (415) 627-3980'),
 (2, 'Bob', 'bob@corp.test', '5500005555555559', 'mail bob.smith@corp.test about the refund');`)
	dir := nodeClientDir(t)
	read := func(tok string) (raw string, res map[string][]map[string]any) {
		t.Helper()
		cmd := exec.Command("node", filepath.Join(dir, "masking.js"))
		cmd.Env = e.pgEnv(tok)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node pg: %v\n%s", err, out)
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("node pg output: %v\n%s", err, out)
		}
		return string(out), res
	}

	// The admin (no policy applies) sees the real values: the script reads
	// what the checks below expect to be hidden.
	raw, _ := read(e.token("root", "admins"))
	secrets := []string{"ann@example.com", "bob@corp.test", "4111111111111111", "5500005555555559",
		"4111 1111 1111 1111", "627-3980", "bob.smith@corp.test"}
	for _, s := range secrets {
		if !strings.Contains(raw, s) {
			t.Fatalf("unmasked read lacks %q: %s", s, raw)
		}
	}

	raw, res := read(e.token("ana", "analysts"))
	for _, s := range secrets {
		if strings.Contains(raw, s) {
			t.Errorf("node pg saw the unmasked value %q: %s", s, raw)
		}
	}
	want := []map[string]any{
		{"id": 1.0, "name": "Ann", "email": "[REDACTED]", "card_number": "************1111",
			"notes": "paid with **** **** **** 1111, call +* (***) ***-**80"},
		{"id": 2.0, "name": "Bob", "email": "[REDACTED]", "card_number": "************5559",
			"notes": "mail ***.*****@corp.test about the refund"},
	}
	for _, proto := range []string{"simple", "extended"} {
		rows := res[proto]
		if len(rows) != len(want) {
			t.Fatalf("%s: %d rows: %s", proto, len(rows), raw)
		}
		for i, w := range want {
			for k, v := range w {
				if rows[i][k] != v {
					t.Errorf("%s row %d %s = %#v, want %#v", proto, i+1, k, rows[i][k], v)
				}
			}
		}
	}
}

// TestMaskingPreparedReuse: a prepared statement executed again reuses its
// masking plan, in every result format the client asks for, and DDL through
// the gateway that changes what is behind the statement's result rebuilds
// the plan. (PostgreSQL refuses to run a prepared statement whose result
// columns changed, so the case that remains is a view redefined with the
// same columns drawn from other base columns.)
func TestMaskingPreparedReuse(t *testing.T) {
	e := startEnv(t, envOpts{policies: maskPolicies, access: `["group:analysts", "group:admins"]`})
	admin := e.token("root", "admins")
	e.run(admin, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `
create table customers (id int primary key, name text, email text, card_number text, ssn text, customer_key text, notes text);
insert into customers values (1, 'Ann', 'ann@example.com', '4111111111111111', '078-05-1120', 'k-1', 'n');
create view people as select id, name as a, email as b from customers;`)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", e.token("ana", "analysts")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Prepare(ctx, "byid", "select * from people where id = $1"); err != nil {
		t.Fatal(err)
	}
	read := func(mode pgx.QueryExecMode) (string, string) {
		t.Helper()
		var id int
		var a, b string
		if err := c.QueryRow(ctx, "byid", mode, 1).Scan(&id, &a, &b); err != nil {
			t.Fatal(err)
		}
		return a, b
	}
	for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		if a, b := read(mode); a != "Ann" || strings.Contains(b, "ann@") {
			t.Fatalf("execution %d (%v): a=%q b=%q", i, mode, a, b)
		}
	}
	// The simple protocol caches its plan per result shape (queryPlan).
	simple := func() (string, string) {
		t.Helper()
		var id int
		var a, b string
		if err := c.QueryRow(ctx, "select * from people where id = 1", pgx.QueryExecModeSimpleProtocol).Scan(&id, &a, &b); err != nil {
			t.Fatal(err)
		}
		return a, b
	}
	for i := 0; i < 2; i++ {
		if a, b := simple(); a != "Ann" || strings.Contains(b, "ann@") {
			t.Fatalf("simple protocol, execution %d: a=%q b=%q", i, a, b)
		}
	}
	// Same view columns, other base columns: a now carries email. The
	// result is described with the same bytes as before (the view's OID and
	// attribute numbers), so only the catalog generation tells the plans
	// apart.
	e.run(admin, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c",
		"create or replace view people as select id, email as a, name as b from customers")
	for i := 0; i < 2; i++ {
		if a, b := read(pgx.QueryExecModeCacheStatement); strings.Contains(a, "ann@") || b != "Ann" {
			t.Fatalf("after the view changed, execution %d: a (now email)=%q b (now name)=%q", i, a, b)
		}
		if a, b := simple(); strings.Contains(a, "ann@") || b != "Ann" {
			t.Fatalf("after the view changed, simple protocol, execution %d: a (now email)=%q b (now name)=%q", i, a, b)
		}
	}
}

// TestMaskingUncommittedView: a view created in the client's own open
// transaction is invisible to the gateway's catalog connection; its columns
// may carry masked ones, so they are hidden rather than passed through.
func TestMaskingUncommittedView(t *testing.T) {
	e := startEnv(t, envOpts{policies: maskPolicies, access: `["group:analysts", "group:admins"]`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `
create table customers (id int primary key, name text, email text, card_number text, ssn text, customer_key text, notes text);
insert into customers values (1, 'Ann', 'ann@example.com', '4111111111111111', '078-05-1120', 'k-1', 'n');`)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", e.token("ana", "analysts")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "create view v as select ssn from customers"); err != nil {
		t.Skipf("creating the view was refused (fine): %v", err)
	}
	// ssn is masked by a column rule only (no entity scan catches it).
	var ssn *string
	err = tx.QueryRow(ctx, "select * from v").Scan(&ssn)
	if err == nil && ssn != nil && strings.Contains(*ssn, "078-05") {
		t.Fatalf("uncommitted view passed the masked ssn: %q", *ssn)
	}
}
