package policy

import (
	"fmt"
	"strings"
	"testing"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
)

// TestLightFieldReadsSame evaluates conditions over the list fields with
// and without lightFieldReads, on nil, empty and non-empty lists: the
// results (values and errors) must be the same.
func TestLightFieldReadsSame(t *testing.T) {
	shared, err := cel.NewEnv(envOptions(true)...)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := cel.NewEnv(envOptions(false)...)
	if err != nil {
		t.Fatal(err)
	}
	exprs := []string{
		`size(statement.functions) == 0`,
		`statement.functions == []`,
		`"x" in statement.functions`,
		`statement.functions + ["a"] == ["a"]`,
		`(statement.tables + statement.tables_written).size()`,
		`statement.tables.exists(t, t == "orders")`,
		`statement.columns.all(c, c.startsWith("t."))`,
		`statement.tables_qualified.map(t, t.upperAscii())`,
		`statement.tables_written.filter(t, t != "")`,
		`sets.contains(statement.tables, ["orders"])`,
		`sets.intersects(statement.functions, ["pg_sleep"])`,
		`statement.tables[0]`,
		`type(statement.columns)`,
		`has(statement.tables)`,
		`policy.Statement{}.functions`,
		`policy.Statement{functions: ["a"]}.functions + statement.functions`,
		`dyn(statement.tables) == dyn([])`,
		`statement.kind`,
		`statement.kind == "select"`,
		`statement.kind.startsWith("drop_") || statement.kind in ["truncate", "alter_table"]`,
		`statement.object_kind == "" && size(statement.kind) > 0`,
		`policy.Statement{kind: "x"}.kind + statement.kind`,
		`type(statement.kind) == string`,
	}
	inputs := []Statement{
		{},
		{Kind: "select"},
		{Kind: "drop_table", ObjectKind: "table"},
		{Kind: "alter_table", ObjectKind: "table", Tables: []string{"t"}},
		{Tables: []string{}, TablesQualified: []string{}, TablesWritten: []string{}, Columns: []string{}, Functions: []string{}},
		{Tables: []string{"orders"}, TablesQualified: []string{"public.orders"}, TablesWritten: []string{"orders"},
			Columns: []string{"t.a"}, Functions: []string{"pg_sleep"}},
	}
	for _, expr := range exprs {
		var prgs [2]cel.Program
		for i, env := range []*cel.Env{shared, plain} {
			ast, iss := env.Compile(expr)
			if iss.Err() != nil {
				t.Fatalf("%s: %v", expr, iss.Err())
			}
			if prgs[i], err = env.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
				t.Fatal(err)
			}
		}
		for _, st := range inputs {
			in := &Input{Statement: st}
			got, _, gotErr := prgs[0].Eval((*activation)(in))
			want, _, wantErr := prgs[1].Eval((*activation)(in))
			if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
				t.Errorf("%s on %+v: error %v, want %v", expr, st, gotErr, wantErr)
				continue
			}
			if gotErr == nil && (got.Type() != want.Type() || got.Equal(want) != types.True || fmt.Sprint(got) != fmt.Sprint(want)) {
				t.Errorf("%s on %+v: %v (%s), want %v (%s)", expr, st, got, got.Type(), want, want.Type())
			}
		}
	}
}

// TestInternTable checks interned values against fresh ones, with more
// strings than slots (so slots are replaced).
func TestInternTable(t *testing.T) {
	var tbl internTable
	for round := range 3 {
		for i := range 500 {
			s := fmt.Sprintf("kind_%d", i*(round+1))
			if i%7 == 0 {
				s = strings.Repeat("x", 60+i%10) // some too long to intern
			}
			v := tbl.get(s)
			if v != any(types.String(s)) {
				t.Fatalf("get(%q) = %#v", s, v)
			}
		}
	}
	if v := tbl.get(""); v != any(types.String("")) {
		t.Fatalf("get(\"\") = %#v", v)
	}
	tbl.get("select")
	if n := testing.AllocsPerRun(100, func() { tbl.get("select") }); n != 0 {
		t.Errorf("an interned string allocates %v times", n)
	}
}

// TestLightFieldReadsAllocs checks that reading a nil list field
// allocates nothing (the point of lightFieldReads).
func TestLightFieldReadsAllocs(t *testing.T) {
	prg, _, iss, err := compile(`"pg_sleep" in statement.functions || "x" in statement.tables_written || statement.kind == "drop_table"`)
	if err != nil || iss.Err() != nil {
		t.Fatal(err, iss.Err())
	}
	in := &Input{Statement: Statement{Kind: "select"}}
	if n := testing.AllocsPerRun(100, func() {
		if m, err := evalBool(prg, in); err != nil || m {
			t.Fatal(m, err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per evaluation, want 0", n)
	}
}
