package sqlinspect

import (
	"strings"

	pgq "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// walker collects tables, columns and functions from a parse tree.
//
// Statements and clauses whose meaning matters (FROM lists, targets of DML,
// the clause a column appears in) are walked by hand; every other node is
// walked generically through protobuf reflection, so a table or function
// call in a place this file does not know about is still found.
type walker struct {
	tables   []Table
	tableIdx map[[2]string]int
	cols     []Column
	colIdx   map[Column]struct{}
	funcs    []string
	funcIdx  map[string]struct{}

	ctes   []map[string]struct{} // CTE names in scope, innermost last
	scopes []*scope              // FROM scopes, innermost last
	clause string                // clause being walked
	bare   bool                  // walking a select-list entry that is just a column reference
	// computed > 0 while walking inside a value the outer query computes (a
	// non-column select-list entry, a set operation's branches): columns of
	// nested select lists are not bare there, since the result field seen
	// on the wire has no source column.
	computed int

	// capture, when set, receives every column reference walked (before
	// de-duplication): which columns one condition or output uses.
	capture *[]captured
	// outputsOf is the SELECT whose select-list entries are captured one by
	// one into outputs (AnalyzeView).
	outputsOf *pgq.SelectStmt
	outputs   [][]captured

	dml          bool // an INSERT/UPDATE/DELETE/MERGE was seen (also nested)
	defaultWrite bool // relations met by the generic walk are written (DDL)
}

// scope is the set of relations one query level can name.
type scope struct {
	byName map[string]rel // by alias, or by name when unaliased
	items  []rel          // FROM items in order
}

// rel is a FROM item. Only plain relations resolve columns to a table;
// subqueries, CTE references and functions resolve to "".
type rel struct {
	schema, name string
	table        bool
}

func newWalker() *walker {
	return &walker{
		tableIdx: map[[2]string]int{},
		colIdx:   map[Column]struct{}{},
		funcIdx:  map[string]struct{}{},
		clause:   "other",
	}
}

// finish copies what was collected into st.
func (w *walker) finish(st *Statement) {
	st.Tables = w.tables
	st.Columns = w.cols
	st.Functions = w.funcs
	if w.dml {
		st.Writes = true
	}
}

// merge adds the facts of a wrapped statement.
func (w *walker) merge(in *Statement) {
	for _, t := range in.Tables {
		w.addTable(t.Schema, t.Name, t.Write)
	}
	for _, c := range in.Columns {
		w.addColumn(c)
	}
	for _, f := range in.Functions {
		w.addFunc(f)
	}
}

func (w *walker) addTable(schema, name string, write bool) {
	k := [2]string{schema, name}
	if i, ok := w.tableIdx[k]; ok {
		w.tables[i].Write = w.tables[i].Write || write
		return
	}
	w.tableIdx[k] = len(w.tables)
	w.tables = append(w.tables, Table{Schema: schema, Name: name, Write: write})
}

func (w *walker) addColumn(c Column) { w.addColumnRef(c, c.Table != "") }

// addColumnRef adds c; qualified says whether it was written with a table
// or alias qualifier (c.Table is "" for one that names a subquery).
func (w *walker) addColumnRef(c Column, qualified bool) {
	if w.capture != nil {
		*w.capture = append(*w.capture, captured{c, qualified})
	}
	if _, ok := w.colIdx[c]; ok {
		return
	}
	w.colIdx[c] = struct{}{}
	w.cols = append(w.cols, c)
}

func (w *walker) addFunc(name string) {
	if _, ok := w.funcIdx[name]; ok {
		return
	}
	w.funcIdx[name] = struct{}{}
	w.funcs = append(w.funcs, name)
}

// withClause walks f with the current clause set to c.
func (w *walker) withClause(c string, f func()) {
	old := w.clause
	w.clause = c
	f()
	w.clause = old
}

func (w *walker) nodesIn(c string, ns []*pgq.Node) {
	w.withClause(c, func() { w.nodes(ns) })
}

func (w *walker) nodeIn(c string, n *pgq.Node) {
	w.withClause(c, func() { w.node(n) })
}

func (w *walker) nodes(ns []*pgq.Node) {
	for _, n := range ns {
		w.node(n)
	}
}

func (w *walker) pushScope() *scope {
	s := &scope{byName: map[string]rel{}}
	w.scopes = append(w.scopes, s)
	return s
}

func (w *walker) popScope() { w.scopes = w.scopes[:len(w.scopes)-1] }

func (w *walker) cur() *scope {
	if len(w.scopes) == 0 {
		return w.pushScope()
	}
	return w.scopes[len(w.scopes)-1]
}

func (s *scope) add(alias string, r rel) {
	if alias != "" {
		s.byName[alias] = r
	}
	s.items = append(s.items, r)
}

// isCTE reports whether an unqualified relation name refers to a CTE in scope.
func (w *walker) isCTE(name string) bool {
	for i := len(w.ctes) - 1; i >= 0; i-- {
		if _, ok := w.ctes[i][name]; ok {
			return true
		}
	}
	return false
}

// with walks a WITH clause and leaves its names in scope; the caller pops
// them (popWith) after walking the statement the clause belongs to.
func (w *walker) with(wc *pgq.WithClause) {
	names := map[string]struct{}{}
	w.ctes = append(w.ctes, names)
	if wc == nil {
		return
	}
	for _, c := range wc.GetCtes() {
		cte := c.GetCommonTableExpr()
		if cte == nil {
			continue
		}
		// A recursive CTE sees itself; any CTE sees the ones before it.
		if wc.GetRecursive() {
			names[cte.GetCtename()] = struct{}{}
		}
		w.subquery(cte.GetCtequery(), "")
		names[cte.GetCtename()] = struct{}{}
	}
}

func (w *walker) popWith() { w.ctes = w.ctes[:len(w.ctes)-1] }

// relation records a RangeVar and returns the FROM item it makes.
func (w *walker) relation(rv *pgq.RangeVar, write bool) rel {
	if rv == nil {
		return rel{}
	}
	if rv.GetSchemaname() == "" && rv.GetCatalogname() == "" && w.isCTE(rv.GetRelname()) {
		return rel{name: rv.GetRelname()}
	}
	w.addTable(rv.GetSchemaname(), rv.GetRelname(), write)
	return rel{schema: rv.GetSchemaname(), name: rv.GetRelname(), table: true}
}

// fromRelation records a RangeVar as a FROM item of the current scope.
func (w *walker) fromRelation(rv *pgq.RangeVar, write bool) {
	r := w.relation(rv, write)
	alias := rv.GetRelname()
	if a := rv.GetAlias().GetAliasname(); a != "" {
		alias = a
	}
	w.cur().add(alias, r)
}

// from walks FROM items, adding them to the current scope.
func (w *walker) from(items []*pgq.Node) {
	for _, it := range items {
		w.fromItem(it)
	}
}

func (w *walker) fromItem(n *pgq.Node) {
	switch x := n.GetNode().(type) {
	case *pgq.Node_RangeVar:
		w.fromRelation(x.RangeVar, false)
	case *pgq.Node_JoinExpr:
		j := x.JoinExpr
		w.fromItem(j.GetLarg())
		w.fromItem(j.GetRarg())
		if j.GetIsNatural() {
			// NATURAL joins on every column the sides share: any column.
			w.addColumn(Column{Star: true, Clause: "join"})
		}
		// USING columns exist on both sides: no single table.
		for _, u := range j.GetUsingClause() {
			w.addColumn(Column{Name: u.GetString_().GetSval(), Clause: "join"})
		}
		w.nodeIn("join", j.GetQuals())
		if a := j.GetAlias().GetAliasname(); a != "" {
			w.cur().add(a, rel{name: a})
		}
	case *pgq.Node_RangeSubselect:
		w.subquery(x.RangeSubselect.GetSubquery(), "")
		a := x.RangeSubselect.GetAlias().GetAliasname()
		w.cur().add(a, rel{name: a})
	case *pgq.Node_RangeFunction:
		w.nodeIn("other", n)
		a := x.RangeFunction.GetAlias().GetAliasname()
		w.cur().add(a, rel{name: a})
	case *pgq.Node_RangeTableSample:
		ts := x.RangeTableSample
		w.fromItem(ts.GetRelation())
		w.nodesIn("other", ts.GetMethod())
		w.nodesIn("other", ts.GetArgs())
		w.nodeIn("other", ts.GetRepeatable())
	default:
		// XMLTABLE, JSON_TABLE and the like: walk generically.
		w.nodeIn("other", n)
		w.cur().add("", rel{})
	}
}

// subquery walks a nested statement in a scope of its own. outerClause is
// the clause of the enclosing query the subquery sits in; its select list
// takes that clause unless it is "" (FROM items and CTEs, whose output the
// enclosing query reads like a table).
func (w *walker) subquery(n *pgq.Node, outerClause string) {
	if n == nil {
		return
	}
	old := w.clause
	defer func() { w.clause = old }()
	switch x := n.GetNode().(type) {
	case *pgq.Node_SelectStmt:
		w.selectStmt(x.SelectStmt, outerClause)
	case *pgq.Node_InsertStmt:
		w.insertStmt(x.InsertStmt)
	case *pgq.Node_UpdateStmt:
		w.updateStmt(x.UpdateStmt)
	case *pgq.Node_DeleteStmt:
		w.deleteStmt(x.DeleteStmt)
	case *pgq.Node_MergeStmt:
		w.mergeStmt(x.MergeStmt)
	default:
		w.node(n)
	}
}

// selectStmt walks a SELECT (or VALUES, or a set operation).
func (w *walker) selectStmt(s *pgq.SelectStmt, outerClause string) {
	if s == nil {
		return
	}
	w.with(s.GetWithClause())
	defer w.popWith()
	w.pushScope()
	defer w.popScope()

	selectClause := "select"
	if outerClause != "" && outerClause != "select" {
		selectClause = outerClause
	}
	if s.GetOp() != pgq.SetOperation_SET_OPERATION_UNDEFINED && s.GetOp() != pgq.SetOperation_SETOP_NONE {
		// A set operation's output fields carry no source table.
		w.computed++
		w.selectStmt(s.GetLarg(), outerClause)
		w.selectStmt(s.GetRarg(), outerClause)
		w.computed--
		// ORDER BY of a set operation names its output columns.
		w.cur().add("", rel{})
	}
	if into := s.GetIntoClause(); into != nil {
		w.relation(into.GetRel(), true)
		w.dml = true
	}
	w.from(s.GetFromClause())
	w.withClause(selectClause, func() {
		for _, t := range s.GetTargetList() {
			// A target that is exactly a column passes the value through
			// unchanged (so result metadata names its source column); any
			// other target computes a new value.
			rt := t.GetResTarget()
			isCol := rt != nil && rt.GetVal().GetColumnRef() != nil
			w.bare = isCol && w.computed == 0
			if !isCol {
				w.computed++ // e.g. a scalar subquery: its columns feed a computed value
			}
			if s == w.outputsOf {
				w.outputs = append(w.outputs, w.captureIn(func() { w.node(t) }))
			} else {
				w.node(t)
			}
			if !isCol {
				w.computed--
			}
			w.bare = false
		}
	})
	valuesClause := "values"
	if outerClause != "" && outerClause != "select" && outerClause != "values" {
		valuesClause = outerClause
	}
	for _, v := range s.GetValuesLists() {
		w.nodeIn(valuesClause, v)
	}
	w.nodesIn("other", s.GetDistinctClause())
	w.nodeIn("where", s.GetWhereClause())
	w.nodesIn("group", s.GetGroupClause())
	w.nodeIn("having", s.GetHavingClause())
	w.nodesIn("other", s.GetWindowClause())
	w.nodesIn("order", s.GetSortClause())
	w.outputRefs(s, "group", s.GetGroupClause())
	w.outputRefs(s, "order", s.GetSortClause())
	w.outputRefs(s, "other", s.GetDistinctClause())
	w.nodeIn("other", s.GetLimitOffset())
	w.nodeIn("other", s.GetLimitCount())
	// The locking clause names FROM items (FOR UPDATE OF a), not tables.
}

// outputRefs handles ORDER BY / GROUP BY / DISTINCT ON items that name a
// select-list entry by position (ORDER BY 2) or output name (ORDER BY x):
// the columns of that entry are used in the clause too.
//
// This and defElemTrue are the only places facts read a constant's value:
// the shape cache (shape.go) relies on it, and constScan marks these
// places. A new reader of constant values must be added there too.
func (w *walker) outputRefs(s *pgq.SelectStmt, clause string, items []*pgq.Node) {
	targets := s.GetTargetList()
	for _, it := range items {
		if sb := it.GetSortBy(); sb != nil {
			it = sb.GetNode()
		}
		if c := it.GetAConst(); c != nil && c.GetIval() != nil {
			if i := int(c.GetIval().GetIval()); i >= 1 && i <= len(targets) {
				w.nodeIn(clause, targets[i-1].GetResTarget().GetVal())
			}
			continue
		}
		cr := it.GetColumnRef()
		if cr == nil || len(cr.GetFields()) != 1 || cr.GetFields()[0].GetString_() == nil {
			continue
		}
		name := cr.GetFields()[0].GetString_().GetSval()
		for _, t := range targets {
			if rt := t.GetResTarget(); rt != nil && rt.GetName() == name {
				w.nodeIn(clause, rt.GetVal())
			}
		}
	}
}

func (w *walker) insertStmt(s *pgq.InsertStmt) {
	w.dml = true
	w.with(s.GetWithClause())
	defer w.popWith()
	w.pushScope()
	defer w.popScope()
	target := w.relation(s.GetRelation(), true)
	for _, c := range s.GetCols() {
		if rt := c.GetResTarget(); rt != nil {
			w.addColumn(Column{Schema: target.schema, Table: target.name, Name: rt.GetName(), Clause: "insert"})
			w.nodesIn("insert", rt.GetIndirection())
		}
	}
	// The source query does not see the target table.
	w.withClause("values", func() { w.subquery(s.GetSelectStmt(), "values") })

	// ON CONFLICT and RETURNING see the target, and EXCLUDED is its row.
	sc := w.cur()
	alias := s.GetRelation().GetRelname()
	if a := s.GetRelation().GetAlias().GetAliasname(); a != "" {
		alias = a
	}
	sc.add(alias, target)
	sc.byName["excluded"] = target
	if oc := s.GetOnConflictClause(); oc != nil {
		w.nodeIn("other", oc.GetInfer().GetWhereClause())
		for _, e := range oc.GetInfer().GetIndexElems() {
			w.nodeIn("other", e)
			if ie := e.GetIndexElem(); ie != nil && ie.GetName() != "" {
				w.addColumn(Column{Schema: target.schema, Table: target.name, Name: ie.GetName(), Clause: "other"})
			}
		}
		w.setList(oc.GetTargetList(), target)
		w.nodeIn("where", oc.GetWhereClause())
	}
	w.nodesIn("returning", s.GetReturningList())
}

// setList walks UPDATE-style SET targets: the target column is a "set"
// column of the target table, and so are the columns its value reads.
func (w *walker) setList(list []*pgq.Node, target rel) {
	for _, t := range list {
		rt := t.GetResTarget()
		if rt == nil {
			w.nodeIn("set", t)
			continue
		}
		if rt.GetName() != "" {
			c := Column{Name: rt.GetName(), Clause: "set"}
			if target.table {
				c.Schema, c.Table = target.schema, target.name
			}
			w.addColumn(c)
		}
		w.nodesIn("set", rt.GetIndirection())
		w.nodeIn("set", rt.GetVal())
	}
}

func (w *walker) updateStmt(s *pgq.UpdateStmt) {
	w.dml = true
	w.with(s.GetWithClause())
	defer w.popWith()
	w.pushScope()
	defer w.popScope()
	w.fromRelation(s.GetRelation(), true)
	target := w.cur().items[0]
	w.from(s.GetFromClause())
	w.setList(s.GetTargetList(), target)
	w.nodeIn("where", s.GetWhereClause())
	w.nodesIn("returning", s.GetReturningList())
}

func (w *walker) deleteStmt(s *pgq.DeleteStmt) {
	w.dml = true
	w.with(s.GetWithClause())
	defer w.popWith()
	w.pushScope()
	defer w.popScope()
	w.fromRelation(s.GetRelation(), true)
	w.from(s.GetUsingClause())
	w.nodeIn("where", s.GetWhereClause())
	w.nodesIn("returning", s.GetReturningList())
}

// mergeStmt walks a MERGE and returns its actions: one statement per WHEN
// clause that changes rows (see Statement.Actions).
func (w *walker) mergeStmt(s *pgq.MergeStmt) []Statement {
	w.dml = true
	w.with(s.GetWithClause())
	defer w.popWith()
	w.pushScope()
	defer w.popScope()
	w.fromRelation(s.GetRelation(), true)
	target := w.cur().items[0]
	w.fromItem(s.GetSourceRelation())
	onFilters := w.filtersTarget(target, func() { w.nodeIn("join", s.GetJoinCondition()) })
	var actions []Statement
	for _, n := range s.GetMergeWhenClauses() {
		mw := n.GetMergeWhenClause()
		if mw == nil {
			w.node(n)
			continue
		}
		condFilters := w.filtersTarget(target, func() { w.nodeIn("where", mw.GetCondition()) })
		if mw.GetCommandType() == pgq.CmdType_CMD_INSERT {
			for _, t := range mw.GetTargetList() {
				if rt := t.GetResTarget(); rt != nil && rt.GetName() != "" {
					w.addColumn(Column{Schema: target.schema, Table: target.name, Name: rt.GetName(), Clause: "insert"})
				}
			}
			w.nodesIn("values", mw.GetValues())
		} else {
			w.setList(mw.GetTargetList(), target)
		}
		a := Statement{Writes: true}
		switch mw.GetCommandType() {
		case pgq.CmdType_CMD_INSERT:
			a.Kind = "insert"
		case pgq.CmdType_CMD_UPDATE:
			a.Kind = "update"
		case pgq.CmdType_CMD_DELETE:
			a.Kind = "delete"
		default:
			continue // DO NOTHING
		}
		if a.Kind != "insert" {
			// WHEN NOT MATCHED BY SOURCE acts on the target rows the join
			// does not reach: only its own condition restricts them.
			bySource := mw.GetMatchKind() == pgq.MergeMatchKind_MERGE_WHEN_NOT_MATCHED_BY_SOURCE
			a.HasWhere = condFilters || (onFilters && !bySource)
		}
		if target.table {
			a.Tables = []Table{{Schema: target.schema, Name: target.name, Write: true}}
		}
		actions = append(actions, a)
	}
	w.nodesIn("returning", s.GetReturningList())
	return actions
}

// filtersTarget walks with f and reports whether it referenced a column of
// the MERGE target, qualified by the target's name or alias: a condition
// that does not (ON true, ON s.id = 1) lets an action reach every target
// row. An unqualified column may be the source's (the grammar alone cannot
// tell), so it does not count: fail closed for rules that deny unfiltered
// writes.
func (w *walker) filtersTarget(target rel, f func()) bool {
	for _, c := range w.captureIn(f) {
		if c.qualified && target.table && c.Table == target.name && c.Schema == target.schema {
			return true
		}
	}
	return false
}

// captured is a column reference seen while capturing.
type captured struct {
	Column
	qualified bool
}

// captureIn walks with f and returns every column reference it met (also
// those already recorded), passing them on to an enclosing capture.
func (w *walker) captureIn(f func()) []captured {
	old := w.capture
	var got []captured
	w.capture = &got
	f()
	w.capture = old
	if old != nil {
		*old = append(*old, got...)
	}
	return got
}

// columnRef records a column reference, resolving its table through the
// scopes.
func (w *walker) columnRef(cr *pgq.ColumnRef) {
	var parts []string
	star := false
	for _, f := range cr.GetFields() {
		switch {
		case f.GetAStar() != nil:
			star = true
		case f.GetString_() != nil:
			parts = append(parts, f.GetString_().GetSval())
		}
	}
	c := Column{Clause: w.clause, Star: star, Bare: w.bare}
	if !star && len(parts) > 0 {
		c.Name = parts[len(parts)-1]
		parts = parts[:len(parts)-1]
	}
	switch len(parts) {
	case 0:
		if r, ok := w.wholeRow(c.Name); ok {
			// A bare FROM item name is its whole row (row_to_json(c)),
			// unless the table has a column of that name: the star
			// covers both readings.
			c.Name, c.Star, c.Schema, c.Table = "", true, r.schema, r.name
			c.Bare = false // a composite value is computed, not passed through
			if !r.table {
				c.Schema, c.Table = "", ""
			}
			break
		}
		c.Schema, c.Table = w.unqualified()
	case 1:
		c.Schema, c.Table = w.qualified(parts[0])
	default:
		// schema.table.column (or catalog.schema.table.column).
		c.Schema, c.Table = parts[len(parts)-2], parts[len(parts)-1]
	}
	w.addColumnRef(c, len(parts) > 0)
}

// qualified resolves a column qualifier (an alias or a table name) from the
// innermost scope outwards, as PostgreSQL does.
func (w *walker) qualified(q string) (string, string) {
	for i := len(w.scopes) - 1; i >= 0; i-- {
		if r, ok := w.scopes[i].byName[q]; ok {
			if r.table {
				return r.schema, r.name
			}
			return "", ""
		}
	}
	// Not a FROM item we know of (a record variable, a composite column):
	// keep the qualifier as written.
	return "", q
}

// wholeRow reports whether an unqualified name is a FROM item in scope.
func (w *walker) wholeRow(name string) (rel, bool) {
	if name == "" {
		return rel{}, false
	}
	for i := len(w.scopes) - 1; i >= 0; i-- {
		if r, ok := w.scopes[i].byName[name]; ok {
			return r, true
		}
	}
	return rel{}, false
}

// unqualified resolves an unqualified column: only when the innermost query
// level with FROM items has exactly one, a plain table, and no enclosing
// level has any (otherwise the column might be an outer reference).
func (w *walker) unqualified() (string, string) {
	found := false
	var r rel
	for i := len(w.scopes) - 1; i >= 0; i-- {
		items := w.scopes[i].items
		if len(items) == 0 {
			continue
		}
		if found || len(items) != 1 {
			return "", ""
		}
		found, r = true, items[0]
	}
	if found && r.table {
		return r.schema, r.name
	}
	return "", ""
}

// funcCall records a function name.
func (w *walker) funcCall(fc *pgq.FuncCall) {
	parts := make([]string, 0, 2)
	for _, p := range fc.GetFuncname() {
		parts = append(parts, p.GetString_().GetSval())
	}
	if fc.GetFuncformat() == pgq.CoercionForm_COERCE_SQL_SYNTAX && len(parts) == 2 && parts[0] == "pg_catalog" {
		parts = parts[1:]
	}
	w.addFunc(strings.Join(parts, "."))
}

// node walks any node: known ones by hand, the rest generically.
func (w *walker) node(n *pgq.Node) {
	if n == nil {
		return
	}
	switch x := n.GetNode().(type) {
	case nil:
		return
	case *pgq.Node_ColumnRef:
		w.columnRef(x.ColumnRef)
		return
	case *pgq.Node_FuncCall:
		w.funcCall(x.FuncCall)
		w.reflect(x.FuncCall.ProtoReflect())
		return
	case *pgq.Node_RangeVar:
		w.relation(x.RangeVar, w.defaultWrite)
		return
	case *pgq.Node_SubLink:
		w.node(x.SubLink.GetTestexpr())
		w.subquery(x.SubLink.GetSubselect(), w.clause)
		return
	case *pgq.Node_SelectStmt, *pgq.Node_InsertStmt, *pgq.Node_UpdateStmt, *pgq.Node_DeleteStmt, *pgq.Node_MergeStmt:
		w.subquery(n, "")
		return
	case *pgq.Node_String_, *pgq.Node_Integer, *pgq.Node_Float, *pgq.Node_Boolean, *pgq.Node_BitString, *pgq.Node_AConst, *pgq.Node_ParamRef:
		return
	}
	w.reflect(n.ProtoReflect())
}

var nodeDesc = (&pgq.Node{}).ProtoReflect().Descriptor()

// reflect walks every message field of m.
func (w *walker) reflect(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				w.msg(l.Get(i).Message())
			}
			return true
		}
		if fd.IsMap() {
			return true
		}
		w.msg(v.Message())
		return true
	})
}

func (w *walker) msg(m protoreflect.Message) {
	if m.Descriptor() == nodeDesc {
		w.node(m.Interface().(*pgq.Node))
		return
	}
	// A typed field (RangeVar, FuncCall, …) rather than a Node: wrap the
	// ones with meaning so they take the same path.
	switch x := m.Interface().(type) {
	case *pgq.RangeVar:
		w.relation(x, w.defaultWrite)
	case *pgq.FuncCall:
		w.funcCall(x)
		w.reflect(m)
	case *pgq.SelectStmt:
		w.selectStmt(x, "")
	case *pgq.WithClause:
		// A WITH met generically (rare): walk its queries.
		w.with(x)
		w.popWith()
	default:
		w.reflect(m)
	}
}
