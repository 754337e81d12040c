package checkpoint

import (
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/policy"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// policyStatementRef is the straightforward mapping PolicyStatement must
// equal (it builds every name and list separately).
func policyStatementRef(st *sqlinspect.Statement) policy.Statement {
	ps := policy.Statement{Kind: st.Kind, ObjectKind: st.ObjectKind, HasWhere: st.HasWhere,
		Writes: st.Writes, Analyze: st.Analyze, Text: st.Text}
	for _, t := range st.Tables {
		name := t.Name
		if t.Schema != "" {
			name = t.Schema + "." + t.Name
		}
		ps.Tables = append(ps.Tables, name)
		if t.Write {
			ps.TablesWritten = append(ps.TablesWritten, name)
		}
	}
	ps.TablesQualified = policy.QualifyTables(ps.Tables)
	for _, col := range st.Columns {
		name := col.Name
		if col.Star {
			name = "*"
		}
		if col.Table != "" {
			name = col.Table + "." + name
		}
		ps.Columns = append(ps.Columns, name)
	}
	for _, f := range st.Functions {
		if i := strings.LastIndexByte(f, '.'); i >= 0 {
			f = f[i+1:]
		}
		ps.Functions = append(ps.Functions, strings.ToLower(f))
	}
	return ps
}

func checkPolicyStatement(t *testing.T, st *sqlinspect.Statement) {
	t.Helper()
	got, want := PolicyStatement(st), policyStatementRef(st)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PolicyStatement(%q):\n got %#v\nwant %#v", st.Text, got, want)
	}
	// Each list is capped at its length: appending to one must not write
	// the next.
	for _, l := range [][]string{got.Tables, got.TablesQualified, got.TablesWritten, got.Columns, got.Functions} {
		if cap(l) != len(l) {
			t.Errorf("PolicyStatement(%q): a list has cap %d, len %d", st.Text, cap(l), len(l))
		}
	}
}

// TestPolicyStatementEquivalent checks PolicyStatement against the
// reference mapping on every statement of the inspector's corpus and on
// hand-made facts the grammar does not produce easily.
func TestPolicyStatementEquivalent(t *testing.T) {
	files, err := filepath.Glob("../sqlinspect/testdata/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	n := 0
	for _, file := range files {
		sql, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f, err := sqlinspect.Inspect(string(sql))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for i := range f.Statements {
			for st := &f.Statements[i]; st != nil; st = st.Wraps {
				checkPolicyStatement(t, st)
				for j := range st.Actions {
					checkPolicyStatement(t, &st.Actions[j])
				}
				n++
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d statements in the corpus", n)
	}
	for _, st := range []sqlinspect.Statement{
		{Kind: "select"},
		{Kind: "select", Tables: []sqlinspect.Table{{Name: "a.b"}, {Schema: "S", Name: "T", Write: true}, {Name: "x", Write: true}}},
		{Kind: "select", Columns: []sqlinspect.Column{{Name: "c"}, {Table: "t", Star: true}, {Star: true}, {Table: "t", Name: "c"}}},
		{Kind: "select", Functions: []string{"pg_catalog.Upper", "count", "a.b.C"}},
	} {
		checkPolicyStatement(t, &st)
	}
}

// tableHasMaskRuleRef is tableHasMaskRule as a split of each pattern.
func tableHasMaskRuleRef(plan policy.MaskPlan, schema, table string) bool {
	names := []string{strings.ToLower(orPublic(schema)), strings.ToLower(table)}
	for _, r := range plan.Columns {
		parts := strings.Split(r.Pattern, ".")
		if len(parts) == 1 {
			return true
		}
		pp := parts[:len(parts)-1]
		ok := true
		for i, p := range pp {
			n := names[len(names)-len(pp)+i]
			if m, err := path.Match(p, n); p != "*" && (err != nil || !m) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func TestTableHasMaskRuleEquivalent(t *testing.T) {
	patterns := []string{"email", "*.email", "*.*.email", "customers.card_number", "public.customers.card_number",
		"s*.c?stomers.email", "sales.*.email", "[.email", ".email", "customers.", "*.[.x"}
	tables := [][2]string{{"", "customers"}, {"public", "customers"}, {"sales", "Customers"}, {"", "orders"}, {"Sales", "orders"}, {"", ""}}
	for _, p := range patterns {
		plan := policy.MaskPlan{Columns: []policy.ColumnRule{{Pattern: p, Method: "redact"}}}
		for _, tb := range tables {
			if got, want := tableHasMaskRule(plan, tb[0], tb[1]), tableHasMaskRuleRef(plan, tb[0], tb[1]); got != want {
				t.Errorf("tableHasMaskRule(%q, %q.%q) = %v, want %v", p, tb[0], tb[1], got, want)
			}
		}
	}
}

// TestMaskPlanShared checks that decisions sharing the cached engine form of
// a masking plan do not see each other's ReadsMasked.
func TestMaskPlanShared(t *testing.T) {
	set, err := policy.ParseFile("../../bench/policies-realistic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cp := New(nil, func(string) ([]string, bool) { return []string{"*"}, true }, nil).WithPolicies(policy.NewReloadable(set), nil)
	sess := &access.Session{ID: "s1", Principal: &access.Principal{Subject: "bob"}, Target: access.Target{Name: "bench", Type: "postgres"}}
	decide := func(sql string) access.Decision {
		d := cp.Decide(&access.Action{Session: sess, Kind: access.ActionStatement, Statement: sql, Protocol: "simple"})
		if !d.Allowed() || d.Mask == nil {
			t.Fatalf("%s: %+v", sql, d)
		}
		return d
	}
	plain1 := decide("SELECT id FROM customers")
	derived := decide("SELECT upper(email) FROM customers")
	plain2 := decide("SELECT id FROM customers")
	if plain1.Mask.ReadsMasked || !derived.Mask.ReadsMasked || plain2.Mask.ReadsMasked {
		t.Fatalf("ReadsMasked: %v %v %v, want false true false", plain1.Mask.ReadsMasked, derived.Mask.ReadsMasked, plain2.Mask.ReadsMasked)
	}
	if plain1.Mask != plain2.Mask {
		t.Errorf("the plan's engine form was built again for the same plan")
	}
	if m, ok := plain2.Mask.MethodFor("public", "customers", "card_number"); !ok || m != "last4" {
		t.Errorf("MethodFor(card_number) = %q, %v", m, ok)
	}
	if len(plain2.Mask.Columns) != 2 || plain2.Mask.Columns[0] != (access.ColumnMask{Column: "*.email", Method: "redact"}) {
		t.Errorf("columns: %+v", plain2.Mask.Columns)
	}
}
