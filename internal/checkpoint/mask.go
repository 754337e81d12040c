package checkpoint

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/policy"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// maskDecision completes the masking side of a decision from the statement's
// facts: whether it reads masked columns (so computed result fields are
// masked too) and whether it uses masked columns where their values leak
// without being returned (WHERE, JOIN, ORDER BY, GROUP BY: inference by
// binary search), which is denied unless the plan allows it.
//
// d.Mask may be shared with other decisions (see accessMask): it is copied
// before it is changed.
func (c *Checkpoint) maskDecision(d *access.Decision, plan policy.MaskPlan, facts []*sqlinspect.Statement) {
	if plan.Empty() {
		return
	}
	d.Mask = c.masks.accessMask(plan)
	for _, st := range facts {
		if reason := bypassesMasking(st); reason != "" {
			d.Verdict, d.Rule, d.Reason = access.Deny, "gatehouse/masking", reason
			return
		}
	}
	if len(plan.Columns) == 0 {
		return
	}
	for _, st := range facts {
		if f := runsSQLText(st); f != "" {
			// The SQL (or table name) in its string argument is never
			// inspected, and its output carries no column metadata.
			d.Verdict, d.Rule = access.Deny, "gatehouse/masking"
			d.Reason = fmt.Sprintf("%s runs SQL given as text, which gatehouse cannot inspect or mask; run the query directly", f)
			return
		}
		if st.Kind == "copy_to" && copiesMaskedTable(plan, st) {
			d.Verdict, d.Rule = access.Deny, "gatehouse/masking"
			d.Reason = "COPY TO of a table with masked columns is refused; select the columns instead, so they can be masked"
			return
		}
		if (st.Kind == "create_table_as" || st.Kind == "create_materialized_view") && readsMasked(plan, facts) != "" {
			// The values land in a new table, whose columns no rule masks:
			// neither the wire metadata nor derived: mask can follow them.
			d.Verdict, d.Rule = access.Deny, "gatehouse/masking"
			d.Reason = fmt.Sprintf("CREATE TABLE AS / SELECT INTO / CREATE MATERIALIZED VIEW would copy masked column %s into a new table, unmasked; select the column instead (it will be masked)", readsMasked(plan, facts))
			return
		}
		for _, c := range st.Columns {
			if !columnMasked(plan, st, c) {
				continue
			}
			if c.Clause == "values" && (st.Kind == "insert" || st.Kind == "merge") {
				// INSERT … SELECT masked / VALUES ((SELECT masked …)): the
				// value is written into a table, where masking of results
				// (derived: mask) never sees it.
				d.Verdict, d.Rule = access.Deny, "gatehouse/masking"
				d.Reason = fmt.Sprintf("this would copy masked column %s into a table, unmasked; select the column instead (it will be masked)", colName(c))
				return
			}
			switch c.Clause {
			case "select", "returning", "other", "values", "insert", "set":
				if c.Bare && c.Clause == "select" {
					continue // passed through unchanged: masked by its wire metadata
				}
				// A value computed from a masked column (upper(email),
				// card || '', row_to_json(t)…) has no source column on the
				// wire: refuse the statement or mask the computed fields.
				if plan.Derived != policy.DerivedMask {
					d.Verdict, d.Rule = access.Deny, "gatehouse/masking"
					d.Reason = fmt.Sprintf("a result value is computed from masked column %s, which could reveal it; select the column itself (it will be masked) or ask for a policy with derived: mask", colName(c))
					return
				}
				if !d.Mask.ReadsMasked {
					m := *d.Mask
					m.ReadsMasked = true
					d.Mask = &m
				}
			default:
				if plan.Predicates != policy.PredicatesAllow {
					d.Verdict, d.Rule = access.Deny, "gatehouse/masking"
					d.Reason = fmt.Sprintf("masked column %s may not be used in %s (it would reveal values by inference); ask for a policy that allows it", colName(c), clauseName(c.Clause))
					return
				}
			}
		}
	}
}

// maskCache remembers the engine form of the last masking plan decided, so
// the statements of a session under the same policies (the usual case) share
// one instead of building it per statement.
type maskCache struct {
	last atomic.Pointer[maskEntry]
}

type maskEntry struct {
	plan policy.MaskPlan // a copy of the plan: its slices are the key
	out  access.MaskPlan // read-only: shared by the decisions using it
}

// accessMask returns the engine form of plan. The result is shared: callers
// copy it before changing it. A cached one is used when plan holds the very
// same column and entity lists (same backing arrays and lengths) and the
// same settings: the lists of a compiled policy set are never written, and
// a merged plan's are new per evaluation and never written once returned;
// the cache keeps the arrays it compares alive, so their addresses cannot be
// reused by different lists. Equal identity is therefore equal content.
func (mc *maskCache) accessMask(plan policy.MaskPlan) *access.MaskPlan {
	if e := mc.last.Load(); e != nil && sameList(e.plan.Columns, plan.Columns) && sameList(e.plan.Entities, plan.Entities) &&
		e.plan.Derived == plan.Derived && e.plan.Predicates == plan.Predicates {
		return &e.out
	}
	e := &maskEntry{plan: plan}
	e.out = access.MaskPlan{Entities: plan.Entities, Derived: plan.Derived, Predicates: plan.Predicates,
		MethodFor: e.plan.MethodFor}
	if len(plan.Columns) > 0 {
		e.out.Columns = make([]access.ColumnMask, len(plan.Columns))
		for i, c := range plan.Columns {
			e.out.Columns[i] = access.ColumnMask{Column: c.Pattern, Method: c.Method}
		}
	}
	mc.last.Store(e)
	return &e.out
}

// sameList reports whether a and b are the same list: same length and, if
// not empty, the same backing array.
func sameList[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// readsMasked names a masked column any of facts uses, or "".
func readsMasked(plan policy.MaskPlan, facts []*sqlinspect.Statement) string {
	for _, st := range facts {
		for _, c := range st.Columns {
			if columnMasked(plan, st, c) {
				return colName(c)
			}
		}
	}
	return ""
}

// serverFileFunctions read (or list, or write) files on the database
// server: the raw table files under masking (pg_read_binary_file of
// pg_relation_filepath('customers')) when the upstream role may use them.
var serverFileFunctions = map[string]bool{
	"pg_read_file": true, "pg_read_binary_file": true, "pg_stat_file": true,
	"pg_ls_dir": true, "pg_ls_logdir": true, "pg_ls_waldir": true, "pg_ls_tmpdir": true,
	"pg_ls_archive_statusdir": true, "pg_ls_logicalsnapdir": true, "pg_ls_logicalmapdir": true, "pg_ls_replslotdir": true,
	"lo_import": true, "lo_export": true,
	"pg_file_write": true, "pg_file_read": true, "pg_file_rename": true, "pg_file_unlink": true, "pg_logdir_ls": true, "pg_file_sync": true,
}

// statisticsRelations hold samples of column values (most common values,
// histogram bounds) that masking never sees.
var statisticsRelations = map[string]bool{
	"pg_stats": true, "pg_stats_ext": true, "pg_stats_ext_exprs": true,
	"pg_statistic": true, "pg_statistic_ext": true, "pg_statistic_ext_data": true,
}

// bypassesMasking says why a statement would read data around masking
// (server files, planner statistics), or "".
func bypassesMasking(st *sqlinspect.Statement) string {
	for _, f := range st.Functions {
		name := strings.ToLower(f[strings.LastIndexByte(f, '.')+1:])
		if serverFileFunctions[name] {
			return fmt.Sprintf("%s reads or writes files on the database server, around masking; it is refused while masking applies to you", name)
		}
		if name == "pg_mcv_list_items" {
			return "pg_mcv_list_items shows sampled column values (planner statistics), which masking cannot see; it is refused while masking applies to you"
		}
	}
	if st.Kind == "copy_program" || (st.ServerFile && (st.Kind == "copy_from" || st.Kind == "copy_to")) {
		return "COPY to or from a file or program on the database server is refused while masking applies to you; use COPY … FROM STDIN / TO STDOUT"
	}
	for _, t := range st.Tables {
		if statisticsRelations[strings.ToLower(t.Name)] {
			return fmt.Sprintf("%s holds sampled column values (planner statistics), which masking cannot see; it is refused while masking applies to you", t.Name)
		}
	}
	return ""
}

// sqlTextFunctions run SQL (or read a table) named in a string argument.
var sqlTextFunctions = map[string]bool{
	"query_to_xml": true, "query_to_xmlschema": true, "query_to_xml_and_xmlschema": true,
	"cursor_to_xml": true, "cursor_to_xmlschema": true,
	"table_to_xml": true, "table_to_xmlschema": true, "table_to_xml_and_xmlschema": true,
	"schema_to_xml": true, "schema_to_xmlschema": true, "schema_to_xml_and_xmlschema": true,
	"database_to_xml": true, "database_to_xmlschema": true, "database_to_xml_and_xmlschema": true,
	"dblink": true, "dblink_exec": true, "dblink_open": true, "dblink_fetch": true, "dblink_send_query": true,
}

func runsSQLText(st *sqlinspect.Statement) string {
	for _, f := range st.Functions {
		name := strings.ToLower(f[strings.LastIndexByte(f, '.')+1:])
		if sqlTextFunctions[name] {
			return name
		}
	}
	return ""
}

// columnMasked reports whether a column reference may name a masked column.
// Unknown parts (an unqualified column with several tables in scope, a
// star) match any table the statement reads: fail closed.
func columnMasked(plan policy.MaskPlan, st *sqlinspect.Statement, c sqlinspect.Column) bool {
	if c.Star {
		for _, t := range st.Tables {
			if c.Table == "" || c.Table == t.Name {
				if tableHasMaskRule(plan, t.Schema, t.Name) {
					return true
				}
			}
		}
		return false
	}
	if c.Table != "" {
		_, ok := plan.MethodFor(orPublic(c.Schema), c.Table, c.Name)
		if !ok && c.Schema == "" {
			_, ok = plan.MethodFor("*", c.Table, c.Name)
		}
		return ok
	}
	for _, t := range st.Tables {
		if _, ok := plan.MethodFor(orPublic(t.Schema), t.Name, c.Name); ok {
			return true
		}
	}
	_, ok := plan.MethodFor("*", "*", c.Name)
	return ok
}

// tableHasMaskRule reports whether any column rule could apply to a column
// of the table (a rule naming only a column applies to every table).
func tableHasMaskRule(plan policy.MaskPlan, schema, table string) bool {
	schema, table = strings.ToLower(orPublic(schema)), strings.ToLower(table)
	for _, r := range plan.Columns {
		if policy.TableMatches(r.Pattern, schema, table) {
			return true
		}
	}
	return false
}

func copiesMaskedTable(plan policy.MaskPlan, st *sqlinspect.Statement) bool {
	for _, t := range st.Tables {
		if tableHasMaskRule(plan, t.Schema, t.Name) {
			return true
		}
	}
	for _, c := range st.Columns {
		if columnMasked(plan, st, c) {
			return true
		}
	}
	return false
}

func orPublic(schema string) string {
	if schema == "" {
		return "public"
	}
	return schema
}

func colName(c sqlinspect.Column) string {
	if c.Star {
		return c.Table + ".*"
	}
	if c.Table != "" {
		return c.Table + "." + c.Name
	}
	return c.Name
}

func clauseName(clause string) string {
	switch clause {
	case "where":
		return "WHERE"
	case "join":
		return "JOIN conditions"
	case "order":
		return "ORDER BY"
	case "group":
		return "GROUP BY"
	case "having":
		return "HAVING"
	}
	return clause
}
