package checkpoint

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/policy"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// testPolicies mirror the bypass suite's: agents may read and write, not
// unfiltered UPDATE/DELETE, not the audit log; card numbers and e-mails
// are masked (derived: deny, predicates: deny).
const testPolicies = `
policies:
  - name: agents
    connections: [orders]
    principals: ["group:agents"]
    rules:
      - deny: statement.kind in ["update", "delete"] && !statement.has_where
        message: UPDATE/DELETE without WHERE
      - deny: statement.tables_written.exists(t, t == "audit_log" || t.endsWith(".audit_log"))
        message: the audit log is not writable by agents
      - deny: '"customers" in statement.tables && statement.kind == "delete"'
        message: no deleting customers
      - allow: "true"
    masking:
      columns:
        - { column: "customers.card_number", method: last4 }
        - { column: "*.email", method: redact }
  - name: unmasked
    connections: [orders]
    principals: ["group:admins"]
    rules:
      - deny: statement.kind in ["update", "delete"] && !statement.has_where
        message: UPDATE/DELETE without WHERE
      - allow: "true"
`

// fakeCatalog answers with fixed views, as the postgres engine's catalog
// would for the bypass suite's schema.
type fakeCatalog struct {
	views map[engine.Relation][]engine.View
	err   error
	asked [][]engine.Relation
	user  []string // names UserFunctions reports as defined in the database
}

func (f *fakeCatalog) UserFunctions(ctx context.Context, names []string) ([]string, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []string
	for _, n := range names {
		if slices.Contains(f.user, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f *fakeCatalog) Views(ctx context.Context, names []engine.Relation) (map[engine.Relation][]engine.View, error) {
	f.asked = append(f.asked, names)
	if f.err != nil {
		return nil, f.err
	}
	out := map[engine.Relation][]engine.View{}
	for _, n := range names {
		for k, v := range f.views {
			if k.Name == n.Name && (n.Schema == "" || n.Schema == k.Schema) {
				out[n] = append(out[n], v...)
			}
		}
	}
	return out, nil
}

func col(t, c string) *engine.ColumnRef {
	return &engine.ColumnRef{Schema: "public", Table: t, Column: c}
}

func passThrough(name string, src *engine.ColumnRef) engine.ViewColumn {
	return engine.ViewColumn{Name: name, Source: src, From: []engine.ColumnRef{*src}}
}

func bypassCatalog() *fakeCatalog {
	customers := engine.Relation{Schema: "public", Name: "customers"}
	return &fakeCatalog{views: map[engine.Relation][]engine.View{
		{Schema: "public", Name: "v_audit"}: {{Schema: "public", Name: "v_audit",
			Behind:  []engine.Relation{{Schema: "public", Name: "audit_log"}},
			Columns: []engine.ViewColumn{passThrough("id", col("audit_log", "id")), passThrough("msg", col("audit_log", "msg"))}}},
		{Schema: "public", Name: "v_cards"}: {{Schema: "public", Name: "v_cards", Behind: []engine.Relation{customers},
			Columns: []engine.ViewColumn{passThrough("id", col("customers", "id")), passThrough("cc", col("customers", "card_number")),
				passThrough("contact", col("customers", "email"))}}},
		// v_upper: a computed column over a masked one, and a view over a view.
		{Schema: "public", Name: "v_upper"}: {{Schema: "public", Name: "v_upper",
			Behind: []engine.Relation{{Schema: "public", Name: "v_cards"}, customers},
			Columns: []engine.ViewColumn{passThrough("id", col("customers", "id")),
				{Name: "u", From: []engine.ColumnRef{*col("customers", "email")}}}}},
		{Schema: "sales", Name: "v_orders"}: {{Schema: "sales", Name: "v_orders",
			Behind:  []engine.Relation{{Schema: "sales", Name: "orders"}},
			Columns: []engine.ViewColumn{passThrough("id", &engine.ColumnRef{Schema: "sales", Table: "orders", Column: "id"})}}},
	}}
}

func testCheckpoint(t *testing.T) *Checkpoint {
	t.Helper()
	set, err := policy.ParseBytes("test.yaml", []byte(testPolicies))
	if err != nil {
		t.Fatal(err)
	}
	acl := func(string) ([]string, bool) { return []string{"*"}, true }
	return New(nil, acl, nil).WithPolicies(policy.NewReloadable(set), nil)
}

func action(group, sql string) *access.Action {
	return &access.Action{Kind: access.ActionStatement, Statement: sql, Protocol: "simple",
		Session: &access.Session{ID: "s-" + group, Principal: &access.Principal{Subject: "x", Groups: []string{group}},
			Target: access.Target{Name: "orders", Type: "postgres"}}}
}

// TestViewsPolicyFacts: writes through a view are decided as writes of the
// tables behind it; DDL on a view is not.
func TestViewsPolicyFacts(t *testing.T) {
	cp := testCheckpoint(t)
	cat := bypassCatalog()
	cases := []struct {
		sql, group string
		allowed    bool
		reason     string
	}{
		{"delete from v_audit where id = 1", "agents", false, "audit log"},
		{"insert into v_audit values (2, 'x')", "agents", false, "audit log"},
		{"insert into public.v_audit values (2, 'x')", "agents", false, "audit log"},
		{"with x as (delete from v_audit where id = 1 returning id) select id from x", "agents", false, "audit log"},
		{"explain analyze update v_audit set msg = 'x' where id = 1", "agents", false, "audit log"},
		{"prepare p as delete from v_audit where id = 1", "agents", false, "audit log"},
		{"select msg from v_audit", "agents", true, ""},
		{"drop view v_audit", "agents", true, ""},
		{"delete from v_cards where id = 1", "agents", false, "no deleting customers"},
		{"delete from v_upper where id = 1", "agents", false, "no deleting customers"},
		{"delete from sales.v_orders where id = 1", "agents", true, ""},
	}
	for _, c := range cases {
		d := cp.decide(context.Background(), action(c.group, c.sql), cat)
		if d.Allowed() != c.allowed || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: %+v", c.sql, d)
		}
		// Without the catalog the view hides the table (what the engine
		// binding fixes).
		if !c.allowed && c.sql != "prepare p as delete from v_audit where id = 1" {
			if d := cp.decide(context.Background(), action(c.group, c.sql), nil); !d.Allowed() {
				t.Errorf("%s: denied without catalog: the test does not test the catalog: %+v", c.sql, d)
			}
		}
	}
	// The policy facts name the tables as written: public tables unqualified.
	stmts, _, _, err := cp.statements(context.Background(), action("agents", "insert into v_audit select * from sales.v_orders"), cat)
	if err != nil {
		t.Fatal(err)
	}
	if got := stmts[0].TablesWritten; !reflect.DeepEqual(got, []string{"v_audit", "audit_log"}) {
		t.Errorf("tables_written %q", got)
	}
	if got := stmts[0].Tables; !reflect.DeepEqual(got, []string{"v_audit", "sales.v_orders", "audit_log", "sales.orders"}) {
		t.Errorf("tables %q", got)
	}
}

// TestViewsMasking: a view column is masked, derived or used in a predicate
// exactly as the base-table column it carries.
func TestViewsMasking(t *testing.T) {
	cp := testCheckpoint(t)
	cat := bypassCatalog()
	cases := []struct {
		sql     string
		allowed bool
		reason  string
	}{
		{"select * from v_cards", true, ""},
		{"select cc, contact from v_cards", true, ""},
		{"select v.cc from v_cards v join probe p on p.id = v.id", true, ""},
		{"select id from v_cards where cc like '4111%'", false, "customers.card_number may not be used in WHERE"},
		{"select id from v_cards order by contact", false, "ORDER BY"},
		{"select id from v_cards v, probe p where p.note = cc", false, "WHERE"},
		{"select upper(contact) from v_cards", false, "computed from masked column"},
		{"select row_to_json(v) from v_cards v", false, "computed from masked column"},
		{"select u from v_upper", false, "computed from masked column"},
		{"select id from v_upper where u = 'X'", false, "WHERE"},
		{"select id from v_upper", true, ""},
	}
	for _, c := range cases {
		d := cp.decide(context.Background(), action("agents", c.sql), cat)
		if d.Allowed() != c.allowed || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: %+v", c.sql, d)
		}
	}
	// Principals without masking are not affected.
	if d := cp.decide(context.Background(), action("admins", "select id from v_cards where cc like '4%'"), cat); !d.Allowed() {
		t.Errorf("unmasked principal: %+v", d)
	}
}

// TestViewsCatalogFailsClosed: when the catalog cannot be read, statements
// naming relations are refused; statements naming none do not ask.
func TestViewsCatalogFailsClosed(t *testing.T) {
	cp := testCheckpoint(t)
	cat := &fakeCatalog{err: errors.New("connection refused")}
	d := cp.decide(context.Background(), action("agents", "select * from v_cards"), cat)
	if d.Allowed() || d.Rule != "gatehouse/catalog" || !strings.Contains(d.Reason, "connection refused") {
		t.Errorf("catalog error: %+v", d)
	}
	cat.asked = nil
	if d := cp.decide(context.Background(), action("agents", "select 1; begin; drop view v_cards"), cat); !d.Allowed() || len(cat.asked) != 0 {
		t.Errorf("no relation to resolve: %+v, asked %v", d, cat.asked)
	}
}

// TestViewsFactsNotMutated: expansion copies the cached facts.
func TestViewsFactsNotMutated(t *testing.T) {
	cp := testCheckpoint(t)
	const sql = "select cc from v_cards where id = 1; delete from v_audit where id = 2"
	before, err := sqlinspect.Inspect(sql)
	if err != nil {
		t.Fatal(err)
	}
	want := cloneFacts(before)
	cp.decide(context.Background(), action("agents", sql), bypassCatalog())
	after, _ := sqlinspect.Inspect(sql)
	if !reflect.DeepEqual(cloneFacts(after), want) {
		t.Errorf("cached facts changed:\n%+v\n%+v", after, want)
	}
}

func cloneFacts(f *sqlinspect.Facts) []sqlinspect.Statement {
	out := slices.Clone(f.Statements)
	for i := range out {
		out[i].Tables = slices.Clone(out[i].Tables)
		out[i].Columns = slices.Clone(out[i].Columns)
	}
	return out
}

// TestMergeDecidedAsItsActions: a MERGE is decided as the UPDATE, DELETE
// and INSERT it performs.
func TestMergeDecidedAsItsActions(t *testing.T) {
	cp := testCheckpoint(t)
	cases := []struct {
		sql     string
		allowed bool
		reason  string
	}{
		{"merge into customers c using (select 1 as id) s on true when matched then delete", false, "without WHERE"},
		{"merge into customers c using (select 1 as id) s on s.id = 1 when matched then update set name = 'x'", false, "without WHERE"},
		{"merge into probe c using (select 1 as id) s on c.id = s.id when matched then update set note = 'x'", true, ""},
		{"merge into customers c using (select 1 as id) s on c.id = s.id when matched then delete", false, "no deleting customers"},
		{"merge into audit_log a using (select 1 as id) s on a.id = s.id when not matched then insert values (s.id, 'x')", false, "audit log"},
		{"prepare m as merge into probe c using (select 1 as id) s on true when matched then delete", false, "without WHERE"},
	}
	for _, c := range cases {
		d := cp.decide(context.Background(), action("agents", c.sql), nil)
		if d.Allowed() != c.allowed || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: %+v", c.sql, d)
		}
	}
	// EXECUTE of a prepared MERGE is decided as its actions too.
	if d := cp.decide(context.Background(), action("admins", "prepare m2 as merge into probe c using (select 1 as id) s on c.id = s.id when matched then delete"), nil); !d.Allowed() {
		t.Fatalf("prepare: %+v", d)
	}
	stmts, _, _, err := cp.statements(context.Background(), action("admins", "execute m2"), nil)
	if err != nil || len(stmts) != 3 || stmts[2].Kind != "delete" || !stmts[2].HasWhere {
		t.Errorf("execute: %+v %v", stmts, err)
	}
}

// TestMaskingRefusesStatisticsAndServerFiles: planner statistics and
// server files hold column values masking never sees.
func TestMaskingRefusesStatisticsAndServerFiles(t *testing.T) {
	cp := testCheckpoint(t)
	for _, sql := range []string{
		"select histogram_bounds::text from pg_stats where tablename = 'customers'",
		"select most_common_vals from pg_catalog.pg_stats",
		"select * from pg_stats_ext",
		"select * from pg_stats_ext_exprs",
		"select stavalues1 from pg_statistic",
		"select * from pg_catalog.pg_mcv_list_items(null)",
		"select encode(pg_read_binary_file(pg_relation_filepath('customers')), 'escape')",
		"select pg_catalog.pg_read_file('/etc/passwd')",
		"select pg_ls_dir('.')",
		"select lo_import('/var/lib/postgresql/data/base/1/1259')",
		"select lo_export(1, '/tmp/x')",
		"copy probe from '/tmp/x'",
		"copy probe to '/tmp/x'",
		"copy probe from program 'cat /etc/passwd'",
		"explain analyze select * from pg_stats",
	} {
		d := cp.decide(context.Background(), action("agents", sql), nil)
		if d.Allowed() || d.Rule != "gatehouse/masking" {
			t.Errorf("%s: %+v", sql, d)
		}
		if d := cp.decide(context.Background(), action("admins", sql), nil); !d.Allowed() {
			t.Errorf("%s: refused without masking: %+v", sql, d)
		}
	}
	for _, sql := range []string{"copy probe from stdin", "select pg_relation_filepath('customers')"} {
		if d := cp.decide(context.Background(), action("agents", sql), nil); !d.Allowed() {
			t.Errorf("%s: %+v", sql, d)
		}
	}
}

// BenchmarkDecideThroughViews measures what asking the catalog adds to a
// policy decision (the fake answers like a warm cache: no views).
func BenchmarkDecideThroughViews(b *testing.B) {
	set, err := policy.ParseBytes("test.yaml", []byte(testPolicies))
	if err != nil {
		b.Fatal(err)
	}
	cp := New(nil, func(string) ([]string, bool) { return []string{"*"}, true }, nil).WithPolicies(policy.NewReloadable(set), nil)
	a := action("agents", "select id, name from customers where id = 1")
	cp.decide(context.Background(), a, nil) // load the grammar
	for _, bc := range []struct {
		name string
		cat  engine.Catalog
	}{{"no-catalog", nil}, {"catalog", emptyCatalog{}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := cp.decide(context.Background(), a, bc.cat); !d.Allowed() {
					b.Fatal(d)
				}
			}
		})
	}
}

type emptyCatalog struct{}

func (emptyCatalog) Views(context.Context, []engine.Relation) (map[engine.Relation][]engine.View, error) {
	return nil, nil
}

func (emptyCatalog) UserFunctions(context.Context, []string) ([]string, error) { return nil, nil }

// TestViewsNotAskedWhenNoPolicyReadsThem: under policies whose rules read
// no tables or columns and that mask nothing (allow-all), the catalog is
// not asked, so a view it cannot read (locked, or a definition the grammar
// cannot re-read) refuses nothing; the regression suite runs with such a
// policy.
func TestViewsNotAskedWhenNoPolicyReadsThem(t *testing.T) {
	set, err := policy.ParseBytes("allow.yaml", []byte(`
policies:
  - name: allow-all
    connections: ["*"]
    principals: ["*"]
    rules:
      - deny: statement.kind == "drop_database"
      - allow: "true"
    default: allow
`))
	if err != nil {
		t.Fatal(err)
	}
	acl := func(string) ([]string, bool) { return []string{"*"}, true }
	cp := New(nil, acl, nil).WithPolicies(policy.NewReloadable(set), nil)
	cat := &fakeCatalog{err: errors.New("catalog query: timeout: context deadline exceeded")}
	for _, sql := range []string{"select * from v_cards", "create view v2 as select * from v_cards", "lock table v_cards"} {
		if d := cp.decide(context.Background(), action("agents", sql), cat); !d.Allowed() {
			t.Errorf("%s: %+v", sql, d)
		}
	}
	if len(cat.asked) != 0 {
		t.Errorf("catalog asked %v", cat.asked)
	}
	if d := cp.decide(context.Background(), action("agents", "drop database x"), cat); d.Allowed() {
		t.Errorf("drop database allowed: %+v", d)
	}
	// A policy that reads tables still asks, and still fails closed.
	if d := testCheckpoint(t).decide(context.Background(), action("agents", "select * from v_cards"), cat); d.Allowed() || len(cat.asked) != 1 {
		t.Errorf("reading policy: %+v, asked %v", d, cat.asked)
	}
}

// TestUserFunctionsRefusedUnderMasking: while column masking applies, a
// statement calling a function defined in the database is refused (it can
// return a masked column in a field with no source column); built-in
// functions are not, principals without masking are not, and a catalog that
// cannot answer refuses.
func TestUserFunctionsRefusedUnderMasking(t *testing.T) {
	cp := testCheckpoint(t)
	cat := bypassCatalog()
	cat.user = []string{"first_card", "public.first_card"}
	for _, c := range []struct {
		sql     string
		allowed bool
	}{
		{"select first_card()", false},
		{"select public.first_card()", false},
		{"select id from customers where id = (select length(first_card()))", false},
		{"select lower(name), now() from customers", true},
	} {
		d := cp.decide(context.Background(), action("agents", c.sql), cat)
		if d.Allowed() != c.allowed || (!c.allowed && (d.Rule != "gatehouse/masking" || !strings.Contains(d.Reason, "first_card"))) {
			t.Errorf("%s: %+v", c.sql, d)
		}
	}
	if d := cp.decide(context.Background(), action("admins", "select first_card()"), cat); !d.Allowed() {
		t.Errorf("unmasked principal: %+v", d)
	}
	broken := &fakeCatalog{err: errors.New("connection refused")}
	if d := cp.decide(context.Background(), action("agents", "select first_card()"), broken); d.Allowed() || d.Rule != "gatehouse/catalog" {
		t.Errorf("catalog error: %+v", d)
	}
}
