package checkpoint

import (
	"context"
	"fmt"
	"slices"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// Seeing through views. A statement names a view, not the tables behind
// it: DELETE FROM v_audit writes audit_log, SELECT cc FROM v_cards reads
// customers.card_number. With the session's catalog (bound by the engine),
// each statement's facts are expanded with what is behind the views it
// names before policies and masking look at them.

var _ engine.CatalogBinder = (*Checkpoint)(nil)

// WithCatalog returns the checkpoint bound to a session's target catalog.
func (c *Checkpoint) WithCatalog(cat engine.Catalog) engine.Checkpoint {
	return &boundCheckpoint{Checkpoint: c, cat: cat}
}

type boundCheckpoint struct {
	*Checkpoint
	cat engine.Catalog
}

// Check decides a, seeing through views.
func (b *boundCheckpoint) Check(ctx context.Context, a *access.Action) (access.Decision, error) {
	return b.check(ctx, a, b.cat)
}

// Hold waits for the decision on a held action; approvers see the facts
// as the policy saw them, through views.
func (b *boundCheckpoint) Hold(ctx context.Context, a *access.Action, d access.Decision, hc access.HoldContext, notify func(msg string)) access.Decision {
	return b.hold(ctx, a, d, hc, notify, b.cat)
}

// catalogError is a catalog that could not be read: the statement is
// refused (fail closed), since a view it names might hide anything.
type catalogError struct{ err error }

func (e *catalogError) Error() string {
	return fmt.Sprintf("gatehouse could not read the target's catalog to see which tables are behind the views this statement names (%v), so it was not run (fail closed); try again", e.err)
}

func (e *catalogError) Unwrap() error { return e.err }

// lookupViews asks the catalog about every relation the statements name.
func lookupViews(ctx context.Context, cat engine.Catalog, facts *sqlinspect.Facts) (map[engine.Relation][]engine.View, error) {
	if cat == nil {
		return nil, nil
	}
	var names []engine.Relation
	seen := map[engine.Relation]bool{}
	var add func(st *sqlinspect.Statement)
	add = func(st *sqlinspect.Statement) {
		if !expandKinds[st.Kind] {
			return
		}
		for _, t := range st.Tables {
			r := engine.Relation{Schema: t.Schema, Name: t.Name}
			if !seen[r] {
				seen[r] = true
				names = append(names, r)
			}
		}
		if st.Wraps != nil {
			add(st.Wraps)
		}
	}
	for i := range facts.Statements {
		add(&facts.Statements[i])
	}
	if len(names) == 0 {
		return nil, nil
	}
	views, err := cat.Views(ctx, names)
	if err != nil {
		return nil, &catalogError{err}
	}
	return views, nil
}

// expandKinds are the statements that read or write rows of the relations
// they name; DDL on a view (DROP VIEW, ALTER VIEW) acts on the view only.
var expandKinds = map[string]bool{
	"select": true, "insert": true, "update": true, "delete": true, "merge": true,
	"copy_to": true, "copy_from": true, "explain": true, "prepare": true, "declare_cursor": true,
	"create_table_as": true, "create_materialized_view": true, "create_view": true,
}

// writeKinds write rows through a view they name as written.
var writeKinds = map[string]bool{
	"select": true, "insert": true, "update": true, "delete": true, "merge": true,
	"copy_from": true, "explain": true, "prepare": true, "declare_cursor": true,
}

// expandViews returns st with what is behind its views added: the base
// relations in Tables (written when the view is written), and for each
// column reference of a view column the base-table columns it carries, in
// the same clause (a pass-through stays bare; a computed view column makes
// its base columns derived). st is shared (the facts cache): it is copied,
// never changed; without views it is returned as is.
func expandViews(st *sqlinspect.Statement, views map[engine.Relation][]engine.View) *sqlinspect.Statement {
	if len(views) == 0 || !expandKinds[st.Kind] {
		return st
	}
	var wraps *sqlinspect.Statement
	if st.Wraps != nil {
		wraps = expandViews(st.Wraps, views)
	}
	var actions []sqlinspect.Statement
	actionsChanged := false
	for i := range st.Actions {
		a := expandViews(&st.Actions[i], views)
		actions = append(actions, *a)
		actionsChanged = actionsChanged || a != &st.Actions[i]
	}
	var inScope []engine.View // views among the statement's tables
	for _, t := range st.Tables {
		inScope = append(inScope, views[engine.Relation{Schema: t.Schema, Name: t.Name}]...)
	}
	if len(inScope) == 0 && wraps == st.Wraps && !actionsChanged {
		return st
	}
	out := *st
	out.Wraps = wraps
	if actionsChanged {
		out.Actions = actions
	}
	if len(inScope) == 0 {
		return &out
	}
	out.Tables = append([]sqlinspect.Table(nil), st.Tables...)
	out.Columns = append([]sqlinspect.Column(nil), st.Columns...)
	idx := map[[2]string]int{}
	for i, t := range out.Tables {
		idx[[2]string{t.Schema, t.Name}] = i
	}
	addTable := func(r engine.Relation, write bool) {
		schema := r.Schema
		if schema == "public" {
			schema = "" // as an unqualified name would be written
		}
		k := [2]string{schema, r.Name}
		if i, ok := idx[k]; ok {
			out.Tables[i].Write = out.Tables[i].Write || write
			return
		}
		idx[k] = len(out.Tables)
		out.Tables = append(out.Tables, sqlinspect.Table{Schema: schema, Name: r.Name, Write: write})
	}
	out.Functions = slices.Clone(st.Functions)
	for _, t := range st.Tables {
		for _, v := range views[engine.Relation{Schema: t.Schema, Name: t.Name}] {
			for _, b := range v.Behind {
				addTable(b, t.Write && writeKinds[st.Kind])
			}
			// Reading the view calls what its definition calls: rules on
			// statement.functions and the masking check of functions
			// defined in the database see them.
			for _, f := range v.Functions {
				if !slices.Contains(out.Functions, f) {
					out.Functions = append(out.Functions, f)
				}
			}
		}
	}
	colIdx := map[sqlinspect.Column]bool{}
	for _, c := range out.Columns {
		colIdx[c] = true
	}
	addCol := func(r engine.ColumnRef, clause string, bare bool) {
		c := sqlinspect.Column{Schema: r.Schema, Table: r.Table, Name: r.Column, Clause: clause, Bare: bare}
		if !colIdx[c] {
			colIdx[c] = true
			out.Columns = append(out.Columns, c)
		}
	}
	carry := func(vc engine.ViewColumn, c sqlinspect.Column) {
		if c.Bare && vc.Source != nil {
			addCol(*vc.Source, c.Clause, true)
			return
		}
		for _, f := range vc.From {
			addCol(f, c.Clause, false)
		}
	}
	for _, c := range st.Columns {
		cands := inScope // an unresolved column may belong to any view in scope
		if c.Table != "" {
			cands = views[engine.Relation{Schema: c.Schema, Name: c.Table}]
		}
		for _, v := range cands {
			for _, vc := range v.Columns {
				if c.Star || vc.Name == c.Name {
					carry(vc, c)
				}
			}
		}
	}
	return &out
}
