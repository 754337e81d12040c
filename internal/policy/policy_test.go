package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/internal/access"
)

func mustParse(t testing.TB, src string) *Set {
	t.Helper()
	s, err := ParseBytes("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const agentsPolicy = `
policies:
  - name: agents
    connections: [orders]
    principals: ["group:agents"]
    rules:
      - deny: statement.kind in ["drop_table", "truncate", "alter_table"]
        message: destructive DDL is not allowed for agents
      - deny: statement.kind in ["update", "delete"] && !statement.has_where
      - deny: '"pg_terminate_backend" in statement.functions'
      - review: statement.writes
        approvers: ["group:dba"]
        timeout: 5m
      - allow: statement.kind == "select"
    masking:
      columns:
        - { column: "public.customers.card_number", method: last4 }
`

func agentInput(kind string) *Input {
	return &Input{
		Statement:  Statement{Kind: kind, Tables: []string{"orders"}},
		Principal:  Principal{Subject: "a", Groups: []string{"agents"}},
		Connection: Connection{Name: "orders", Type: "postgres"},
		Action:     Action{Kind: "statement", Protocol: "simple"},
	}
}

func TestParseNodeShapes(t *testing.T) {
	src := `
listen: {api: "127.0.0.1:1"}
policies:
  - name: p
    connections: "*"
    principals: "*"
`
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	mapping := doc.Content[0]
	list := mapping.Content[3]
	for name, n := range map[string]*yaml.Node{"document": &doc, "mapping": mapping, "list": list} {
		s, err := Parse("gatehouse.yaml", n)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := s.Names(); !reflect.DeepEqual(got, []string{"p"}) {
			t.Errorf("%s: names %v", name, got)
		}
		// A policy with no rules falls to its default (deny).
		if d := s.Evaluate(agentInput("select")); d.Verdict != Deny || d.Rule != "p/default" {
			t.Errorf("%s: %+v", name, d)
		}
	}
	for name, n := range map[string]*yaml.Node{"nil": nil, "null": {Kind: yaml.ScalarNode, Tag: "!!null"}, "empty doc": {Kind: yaml.DocumentNode}} {
		s, err := Parse("x", n)
		if err != nil || s.Len() != 0 {
			t.Errorf("%s: %v, %d policies", name, err, s.Len())
		}
	}
	s, err := ParseBytes("empty.yaml", nil)
	if err != nil || s.Len() != 0 {
		t.Errorf("empty file: %v", err)
	}
}

func TestAliasesResolve(t *testing.T) {
	s, err := ParseFile("testdata/alias.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := agentInput("select")
	in.Connection.Name = "orders"
	if d := s.Evaluate(in); d.Policy != "a" {
		t.Errorf("got %+v", d)
	}
}

func TestAliasBombStops(t *testing.T) {
	// A few KB of YAML that expands to 200,000 rules through aliases.
	src := "r: &r {deny: 'true'}\nrs: &rs [" + strings.Repeat("*r, ", 199) + "*r]\n" +
		"p: &p {name: p, connections: ['*'], principals: ['*'], rules: *rs}\n" +
		"policies: [" + strings.Repeat("*p, ", 999) + "*p]\n"
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("bomb.yaml", &doc)
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("want a size error, got %.300v", err)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	_, err := ParseBytes("p.yaml", []byte("policies:\n  - name: p\n    connections: [x]\n    principals: ['*']\n    rules:\n      - deny: statment.kind == 'x'\n"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("not an *Error: %v", err)
	}
	want := Error{File: "p.yaml", Line: 6, Key: "policies[0].rules[0].deny", Policy: "p", Rule: 1}
	e.Problem = ""
	if *e != want {
		t.Errorf("got %+v, want %+v", *e, want)
	}
}

func TestCheckConnections(t *testing.T) {
	s := mustParse(t, "policies:\n  - name: p\n    connections: [orders, ordres, '*']\n    principals: ['*']\n")
	err := s.CheckConnections(func(n string) bool { return n == "orders" })
	if err == nil || err.Error() != `test.yaml:3: policies[0].connections (policy "p"): unknown connection "ordres"` {
		t.Errorf("got %v", err)
	}
	if err := s.CheckConnections(func(string) bool { return true }); err != nil {
		t.Error(err)
	}
}

func TestMerge(t *testing.T) {
	a := mustParse(t, "policies:\n  - name: p\n    connections: ['*']\n    principals: ['*']\n    default: allow\n")
	b := mustParse(t, "policies:\n  - name: q\n    connections: ['*']\n    principals: ['*']\n")
	m, err := Merge(a, nil, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Names(); !reflect.DeepEqual(got, []string{"p", "q"}) {
		t.Errorf("names %v", got)
	}
	if _, err := Merge(a, a); err == nil {
		t.Error("duplicate names merged")
	}
}

// TestCombining checks the combining rules directly (the decisions golden
// files cover them by example too).
func TestCombining(t *testing.T) {
	s := mustParse(t, `
policies:
  - name: allow-all
    connections: ["*"]
    principals: ["*"]
    default: allow
  - name: review-writes
    connections: ["*"]
    principals: ["*"]
    rules:
      - review: statement.writes
    default: allow
  - name: deny-ddl
    connections: ["*"]
    principals: ["*"]
    rules:
      - deny: statement.kind == "drop_table"
    default: allow
  - name: never-applies
    connections: [other]
    principals: ["*"]
`)
	cases := []struct {
		st     Statement
		want   Verdict
		policy string
	}{
		{Statement{Kind: "select"}, Allow, "allow-all"},
		{Statement{Kind: "insert", Writes: true}, Review, "review-writes"},
		{Statement{Kind: "drop_table", Writes: true}, Deny, "deny-ddl"},
	}
	for _, c := range cases {
		in := agentInput("")
		in.Statement = c.st
		d := s.Evaluate(in)
		if d.Verdict != c.want || d.Policy != c.policy {
			t.Errorf("%s: got %v by %q, want %v by %q", c.st.Kind, d.Verdict, d.Policy, c.want, c.policy)
		}
	}
	in := agentInput("select")
	in.Connection.Name = "other"
	// never-applies has no rules: its default deny wins on its connection.
	if d := s.Evaluate(in); d.Verdict != Deny || d.Rule != "never-applies/default" {
		t.Errorf("other: %+v", d)
	}
	if d := (&Set{}).Evaluate(in); d.Verdict != NoPolicy || d.Applied() {
		t.Errorf("empty set: %+v", d)
	}
	var nilSet *Set
	if d := nilSet.Evaluate(in); d.Verdict != NoPolicy {
		t.Errorf("nil set: %+v", d)
	}
	if d := s.Evaluate(nil); d.Verdict != Deny {
		t.Errorf("nil input: %+v", d)
	}
	var zero Decision
	if zero.Verdict != Deny {
		t.Error("the zero Decision must deny")
	}
}

func TestFailClosedEvaluation(t *testing.T) {
	s := mustParse(t, `
policies:
  - name: p
    connections: ["*"]
    principals: ["*"]
    rules:
      - allow: principal.claims.trusted == true
      - review: principal.claims.tier == "gold"
      - allow: "true"
`)
	in := agentInput("select")
	d := s.Evaluate(in) // no claims: the allow fails (not matched), the review fails (matched)
	if d.Verdict != Review || d.Rule != "p/rule-2" || len(d.Errors) != 2 {
		t.Fatalf("got %+v", d)
	}
	if !strings.Contains(d.Message, "fail closed") {
		t.Errorf("message %q", d.Message)
	}
	in.Principal.Claims = map[string]any{"trusted": true}
	if d := s.Evaluate(in); d.Verdict != Allow || d.Rule != "p/rule-1" || d.Errors != nil {
		t.Errorf("got %+v", d)
	}
	// A dyn condition that is not a bool at run time fails closed too.
	s = mustParse(t, "policies:\n  - name: p\n    connections: ['*']\n    principals: ['*']\n    default: allow\n    rules:\n      - deny: principal.claims.blocked\n")
	in.Principal.Claims = map[string]any{"blocked": "yes"}
	if d := s.Evaluate(in); d.Verdict != Deny || len(d.Errors) != 1 {
		t.Errorf("got %+v", d)
	}
	in.Principal.Claims = map[string]any{"blocked": false}
	if d := s.Evaluate(in); d.Verdict != Allow {
		t.Errorf("got %+v", d)
	}
}

func TestCostLimitFailsClosed(t *testing.T) {
	s := mustParse(t, `
policies:
  - name: p
    connections: ["*"]
    principals: ["*"]
    default: allow
    rules:
      - deny: statement.tables.all(a, statement.tables.all(b, statement.tables.all(c, a != "x")))
`)
	in := agentInput("select")
	for i := 0; i < 100; i++ {
		in.Statement.Tables = append(in.Statement.Tables, "t")
	}
	d := s.Evaluate(in)
	if d.Verdict != Deny || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "cost") {
		t.Errorf("got %+v", d)
	}
}

func TestEvaluateDoesNotModifyInput(t *testing.T) {
	s := mustParse(t, agentsPolicy)
	in := agentInput("select")
	before := *in
	s.Evaluate(in)
	if !reflect.DeepEqual(before, *in) || in.Statement.TablesQualified != nil {
		t.Error("Evaluate modified its input")
	}
	// A caller-supplied tables_qualified is used as given.
	s = mustParse(t, "policies:\n  - name: p\n    connections: ['*']\n    principals: ['*']\n    rules:\n      - allow: '\"crm.t\" in statement.tables_qualified'\n")
	in.Statement.TablesQualified = []string{"crm.t"}
	if d := s.Evaluate(in); d.Verdict != Allow {
		t.Errorf("got %+v", d)
	}
}

func TestQualifyTables(t *testing.T) {
	got := QualifyTables([]string{"orders", "crm.customers"})
	if !reflect.DeepEqual(got, []string{"public.orders", "crm.customers"}) {
		t.Errorf("got %v", got)
	}
	if QualifyTables(nil) != nil {
		t.Error("nil in, non-nil out")
	}
}

func TestMaskPlan(t *testing.T) {
	plan := mergePlans([]*MaskPlan{
		{Columns: []ColumnRule{{"*.email", "email-domain"}, {"customers.card_number", "last4"}}, Entities: []string{"email"}, Derived: "mask", Predicates: "allow"},
		{Columns: []ColumnRule{{"*.email", "hash"}, {"crm.*.ssn", "null"}}, Entities: []string{"iban", "email"}, Derived: "mask", Predicates: "deny"},
		{Columns: []ColumnRule{{"*.email", "last4"}}, Derived: "deny", Predicates: "allow"},
	})
	want := MaskPlan{
		Columns:    []ColumnRule{{"*.email", "hash"}, {"customers.card_number", "last4"}, {"crm.*.ssn", "null"}},
		Entities:   []string{"email", "iban"},
		Derived:    "deny",
		Predicates: "deny",
	}
	if !reflect.DeepEqual(plan, want) {
		t.Fatalf("got %+v\nwant %+v", plan, want)
	}
	for _, c := range []struct {
		schema, table, column, method string
	}{
		{"public", "users", "email", "hash"},
		{"public", "users", "EMAIL", "hash"},
		{"sales", "customers", "card_number", "last4"},
		{"crm", "people", "ssn", "null"},
		{"public", "people", "ssn", ""},
		{"public", "orders", "total", ""},
	} {
		m, ok := plan.MethodFor(c.schema, c.table, c.column)
		if m != c.method || ok != (c.method != "") {
			t.Errorf("%s.%s.%s: got %q %v, want %q", c.schema, c.table, c.column, m, ok, c.method)
		}
	}
	// Overlapping patterns: the strictest that matches wins.
	p := MaskPlan{Columns: []ColumnRule{{"email", "last4"}, {"public.users.email", "redact"}, {"card_*", "last4"}}}
	if m, _ := p.MethodFor("public", "users", "email"); m != "redact" {
		t.Errorf("got %q", m)
	}
	if m, _ := p.MethodFor("public", "users", "card_no"); m != "last4" {
		t.Errorf("got %q", m)
	}
	if !(&MaskPlan{}).Empty() {
		t.Error("zero plan not empty")
	}
}

func TestMaskingDefaultsFailClosed(t *testing.T) {
	s := mustParse(t, "policies:\n  - name: p\n    connections: ['*']\n    principals: ['*']\n    default: allow\n    masking:\n      columns: [{column: email, method: redact}]\n")
	d := s.Evaluate(agentInput("select"))
	if d.Mask.Derived != "deny" || d.Mask.Predicates != "deny" {
		t.Errorf("defaults: %+v", d.Mask)
	}
}

func TestInputFor(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := &access.Action{
		Kind: access.ActionStatement, Protocol: "extended", Statement: "SELECT 1",
		Session: &access.Session{
			Principal: &access.Principal{Subject: "s", Groups: []string{"g"}, ClientID: "c", Issuer: "i",
				Claims: map[string]any{"k": "v"}, Act: []access.Actor{{Subject: "bot", ClientID: "agent"}}},
			Target:     access.Target{Name: "orders", Type: "postgres"},
			ClientAddr: "127.0.0.1", ClientUser: "u", ApplicationName: "psql", TLS: true,
		},
	}
	got := InputFor(a, now)
	want := &Input{
		Principal: Principal{Subject: "s", Groups: []string{"g"}, ClientID: "c", Issuer: "i",
			Claims: map[string]any{"k": "v"}, Act: []Actor{{Subject: "bot", ClientID: "agent"}}},
		Connection: Connection{Name: "orders", Type: "postgres"},
		Session:    Session{ClientAddr: "127.0.0.1", ApplicationName: "psql", User: "u", TLS: true, Time: now},
		Action:     Action{Kind: "statement", Protocol: "extended"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if in := InputFor(&access.Action{Kind: access.ActionFunctionCall}, now); in.Principal.matches([]string{"group:g"}) {
		t.Error("a missing principal matched a group")
	}
}

func TestExplain(t *testing.T) {
	s := mustParse(t, agentsPolicy+`
  - name: elsewhere
    connections: [billing]
    principals: ["*"]
`)
	d, steps := s.Explain(agentInput("select"))
	if d.Verdict != Allow {
		t.Fatalf("got %+v", d)
	}
	var outs []string
	for _, st := range steps {
		outs = append(outs, st.Policy+" "+st.Rule+" "+st.Outcome)
	}
	want := []string{
		"agents agents/rule-1 not matched",
		"agents agents/rule-2 not matched",
		"agents agents/rule-3 not matched",
		"agents agents/rule-4 not matched",
		"agents agents/rule-5 matched: allow",
		"elsewhere  not applicable",
	}
	if !reflect.DeepEqual(outs, want) {
		t.Errorf("got %q", outs)
	}
}

// TestReloadableConcurrent evaluates from many goroutines while the set is
// swapped; run with -race. Each decision must come wholly from one set.
func TestReloadableConcurrent(t *testing.T) {
	allow := mustParse(t, "policies:\n  - name: allow\n    connections: ['*']\n    principals: ['*']\n    default: allow\n")
	deny := mustParse(t, agentsPolicy)
	r := NewReloadable(allow)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := agentInput("drop_table")
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := r.Evaluate(in)
				switch {
				case d.Policy == "allow" && d.Verdict == Allow:
				case d.Policy == "agents" && d.Verdict == Deny && d.Rule == "agents/rule-1":
				default:
					t.Errorf("mixed decision %+v", d)
					return
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			r.Store(deny)
		} else {
			r.Store(allow)
		}
	}
	close(stop)
	wg.Wait()
	var zero Reloadable
	if d := zero.Evaluate(agentInput("select")); d.Verdict != NoPolicy {
		t.Errorf("zero Reloadable: %+v", d)
	}
}

func TestReloadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policies.yaml")
	base := mustParse(t, "policies:\n  - name: base\n    connections: [billing]\n    principals: ['*']\n")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(agentsPolicy)
	r := NewReloadable(nil)
	if _, err := r.ReloadFile(base, path); err != nil {
		t.Fatal(err)
	}
	if got := r.Load().Names(); !reflect.DeepEqual(got, []string{"base", "agents"}) {
		t.Errorf("names %v", got)
	}
	write("policies:\n  - name: broken\n    connections: [orders]\n    principals: ['*']\n    rules:\n      - deny: nope(\n")
	if _, err := r.ReloadFile(base, path); err == nil || !strings.Contains(err.Error(), "policies.yaml:6") {
		t.Errorf("got %v", err)
	}
	if got := r.Load().Names(); !reflect.DeepEqual(got, []string{"base", "agents"}) {
		t.Errorf("a failed reload replaced the set: %v", got)
	}
	write("policies:\n  - name: base\n    connections: ['*']\n    principals: ['*']\n")
	if _, err := r.ReloadFile(base, path); err == nil {
		t.Error("duplicate name across base and file accepted")
	}
}

// TestJSONClaims uses claims shaped as encoding/json decodes a token:
// numbers are float64, objects map[string]any, arrays []any.
func TestJSONClaims(t *testing.T) {
	s := mustParse(t, `
policies:
  - name: p
    connections: ["*"]
    principals: ["*"]
    rules:
      - allow: principal.claims.level >= 3 && principal.claims.org.name == "acme" && "ops" in principal.claims.roles && principal.claims.admin
`)
	in := agentInput("select")
	in.Principal.Claims = map[string]any{
		"level": float64(5), "org": map[string]any{"name": "acme"}, "roles": []any{"dev", "ops"}, "admin": true,
	}
	if d := s.Evaluate(in); d.Verdict != Allow || d.Errors != nil {
		t.Errorf("got %+v", d)
	}
}

// TestReadsRelations checks which sets need the tables behind views: the
// checkpoint skips the catalog look-up for the others (an allow-all policy
// must not refuse a statement because a view could not be read).
func TestReadsRelations(t *testing.T) {
	set := func(rules, extra string) *Set {
		return mustParse(t, "policies:\n  - name: p\n    connections: ['*']\n    principals: ['*']\n    rules:\n"+rules+"    default: allow\n"+extra)
	}
	for _, tc := range []struct {
		rules, extra string
		want         bool
	}{
		{"      - allow: 'true'\n", "", false},
		{"      - deny: statement.kind == 'drop_table' && !statement.has_where\n", "", false},
		{"      - deny: '\"pg_sleep\" in statement.functions || statement.writes'\n", "", false},
		{"      - deny: principal.subject == 'x' && statement.text.contains('x')\n", "", false},
		{"      - deny: '\"audit_log\" in statement.tables'\n", "", true},
		{"      - deny: '\"public.audit_log\" in statement.tables_qualified'\n", "", true},
		{"      - deny: statement.tables_written.size() > 0\n", "", true},
		{"      - deny: statement.columns.exists(c, c.endsWith('.card_number'))\n", "", true},
		{"      - deny: 'statement == statement'\n", "", true}, // the whole statement: assumed to read them
		{"      - allow: 'true'\n", "    masking:\n      columns:\n        - { column: 'public.t.c', method: redact }\n", true},
	} {
		if got := set(tc.rules, tc.extra).ReadsRelations(); got != tc.want {
			t.Errorf("%q %q: ReadsRelations() = %v, want %v", tc.rules, tc.extra, got, tc.want)
		}
	}
	if (*Set)(nil).ReadsRelations() {
		t.Error("nil set reads relations")
	}
	allowAll, err := ParseFile("../../test/regress/allow-all.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if allowAll.ReadsRelations() {
		t.Error("test/regress/allow-all.yaml reads relations: the regression suite would depend on catalog look-ups")
	}
}
