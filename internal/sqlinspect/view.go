package sqlinspect

import (
	"errors"
	"fmt"

	pgquery "github.com/wasilibs/go-pgquery"
)

// View is what a view's definition says about its output columns, so a
// result field that names a view column (the wire metadata of a query on a
// view names the view, not its tables) can be traced to the columns it
// carries.
type View struct {
	// Tables are the relations the definition reads (as written in it).
	Tables []Table
	// Refs are every column reference of the definition.
	Refs []Column
	// Columns are the output columns in order: attribute number i+1. Nil
	// when Opaque.
	Columns []ViewColumn
	// Opaque is set when output columns cannot be told apart (a set
	// operation, VALUES): any of them may carry any column in Refs.
	Opaque bool
	// Functions are the functions the definition calls, as Statement's.
	Functions []string
}

// ViewColumn is one output column of a view.
type ViewColumn struct {
	// Name is the output column name when the definition gives one (an
	// alias, or the column's own name for a bare reference); "" otherwise.
	Name string
	// Source is the column the output passes through unchanged (a bare
	// column reference); nil for a computed value.
	Source *Column
	// From are the column references the value is computed from (just
	// Source for a pass-through). A reference with Table "" (a column of a
	// subquery or CTE) or a star may stand for any column of any relation
	// in Tables.
	From []Column
}

// AnalyzeView inspects a view definition as pg_get_viewdef prints it: one
// SELECT (star-expanded by PostgreSQL). Errors mean the view cannot be
// traced; callers must then assume any output may carry any column.
func AnalyzeView(def string) (*View, error) {
	tree, err := pgquery.Parse(def)
	if err != nil {
		return nil, fmt.Errorf("view definition: %w", err)
	}
	if len(tree.GetStmts()) != 1 {
		return nil, errors.New("view definition is not one statement")
	}
	sel := tree.GetStmts()[0].GetStmt().GetSelectStmt()
	if sel == nil {
		return nil, errors.New("view definition is not a SELECT")
	}
	w := newWalker()
	w.outputsOf = sel
	w.selectStmt(sel, "")
	v := &View{Tables: w.tables, Refs: w.cols, Functions: w.funcs}
	if len(sel.GetTargetList()) == 0 || len(w.outputs) != len(sel.GetTargetList()) {
		v.Opaque = true // a set operation or VALUES: no select list of its own
		return v, nil
	}
	for i, t := range sel.GetTargetList() {
		rt := t.GetResTarget()
		vc := ViewColumn{Name: rt.GetName()}
		for _, c := range w.outputs[i] {
			if c.Star && rt.GetVal().GetColumnRef() != nil {
				// An unexpanded star makes the output positions unknown.
				return nil, errors.New("view definition has a star in its select list")
			}
			vc.From = append(vc.From, c.Column)
		}
		if rt.GetVal().GetColumnRef() != nil && len(vc.From) == 1 {
			src := vc.From[0]
			vc.Source = &src
			if vc.Name == "" {
				vc.Name = src.Name
			}
		}
		v.Columns = append(v.Columns, vc)
	}
	return v, nil
}
