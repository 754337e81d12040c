package postgres

import "testing"

// TestExecRecShape: executions of one prepared statement share the
// recorded shape while the described fields and result formats stay the
// same, and get a new one when either changes.
func TestExecRecShape(t *testing.T) {
	fs := []field{{name: "id", typeOID: 23}, {name: "name", typeOID: 25}}
	ps := &prepared{}
	ps.fields.Store(&fs)
	exec := func(formats []int16) *stmtRec {
		return execRec(&pending{kind: rExecute, stmt: ps, portal: &portal{stmt: ps, formats: formats}})
	}
	a, b := exec([]int16{1}), exec([]int16{1})
	if &a.columns[0] != &b.columns[0] || &a.fields[0] != &b.fields[0] {
		t.Fatal("same shape rebuilt for a second Execute")
	}
	if a.fields[0].format != 1 || a.fields[1].format != 1 || a.columns[0].Name != "id" || a.columns[1].Type != "text" {
		t.Fatalf("shape = %+v %+v", a.fields, a.columns)
	}
	c := exec(nil) // text results: a new shape
	if c.fields[0].format != 0 || &c.fields[0] == &a.fields[0] {
		t.Fatalf("formats changed, shape kept: %+v", c.fields)
	}
	fs2 := []field{{name: "renamed", typeOID: 23}}
	ps.fields.Store(&fs2) // described again
	if d := exec(nil); len(d.columns) != 1 || d.columns[0].Name != "renamed" {
		t.Fatalf("re-described statement kept its old shape: %+v", d.columns)
	}
	// A portal of its own description, and a statement never described.
	pt := &portal{stmt: ps}
	pf := []field{{name: "p", typeOID: 25, format: 1}}
	pt.fields.Store(&pf)
	if r := execRec(&pending{kind: rExecute, stmt: ps, portal: pt}); r.columns[0].Name != "p" {
		t.Fatalf("portal description ignored: %+v", r.columns)
	}
	if r := execRec(&pending{kind: rExecute, stmt: &prepared{}, portal: &portal{}}); r.fields != nil || len(r.columns) != 0 {
		t.Fatalf("undescribed statement got a shape: %+v", r)
	}
}
