package sqlinspect

import (
	"strings"

	pgq "github.com/pganalyze/pg_query_go/v6"
)

// Statement kinds.
//
// Each libpg_query statement node has one stable name below; a few nodes
// are split by what they do (COPY by direction, SET by parameter,
// transaction control by command, DROP/ALTER by object kind). A node not
// listed here is "other", and counts as a write.
//
//	select                     SELECT, VALUES, TABLE (Writes when a CTE holds DML)
//	insert update delete merge
//	copy_from copy_to          COPY … FROM / TO (file, STDIN, STDOUT)
//	copy_program               COPY … FROM PROGRAM / TO PROGRAM (runs a shell command)
//	create_table create_table_as (also SELECT … INTO) create_materialized_view
//	create_view create_index create_sequence create_function create_procedure
//	create_trigger create_schema create_extension create_type create_domain
//	create_role create_database create_policy create_rule create_<object> (DefineStmt: aggregate, operator, collation, …)
//	alter_<object>             ALTER TABLE/INDEX/VIEW/SEQUENCE/…, RENAME, SET SCHEMA, OWNER TO
//	alter_role alter_function alter_database alter_system alter_extension
//	alter_default_privileges alter_type alter_domain alter_sequence alter_policy
//	drop_<object>              DROP TABLE/VIEW/INDEX/FUNCTION/SCHEMA/…
//	drop_role drop_database drop_owned reassign_owned truncate refresh_materialized_view
//	grant revoke               privileges, and role membership (ObjectKind "role")
//	comment security_label
//	set reset set_role set_session_authorization show discard set_constraints
//	prepare execute deallocate
//	declare_cursor fetch close (FETCH and MOVE are "fetch")
//	do call
//	begin commit rollback savepoint release rollback_to
//	prepare_transaction commit_prepared rollback_prepared
//	listen notify unlisten
//	vacuum analyze cluster reindex checkpoint load lock explain
//	other                      anything else
//
// Writes is false for: select, copy_to, explain and prepare and
// declare_cursor (unless what they wrap writes: EXPLAIN only with ANALYZE),
// show, set, reset, set_role, set_session_authorization, set_constraints,
// discard, deallocate, fetch, close, listen, unlisten and transaction
// control. Those change nothing outside the session (SET ROLE changes the
// session's privileges; policies that care name the kind). Every other kind
// writes — including execute (its statement is opaque here: look it up by
// Name), do and call (opaque bodies), notify, lock, vacuum/analyze,
// checkpoint, load and other. A statement that runs DML anywhere (in a CTE,
// a subquery of COPY (…) TO) or SELECT … INTO writes too.

// readOnlyKinds are the kinds that do not write by themselves.
var readOnlyKinds = map[string]bool{
	"select": true, "copy_to": true, "explain": true, "prepare": true, "declare_cursor": true,
	"show": true, "set": true, "reset": true, "set_role": true, "set_session_authorization": true,
	"set_constraints": true, "discard": true, "deallocate": true, "fetch": true, "close": true,
	"listen": true, "unlisten": true,
	"begin": true, "commit": true, "rollback": true, "savepoint": true, "release": true, "rollback_to": true,
	"prepare_transaction": true, "commit_prepared": true, "rollback_prepared": true,
}

// simpleKinds names nodes whose kind does not depend on their fields.
var simpleKinds = map[string]string{
	"CreateStmt":                   "create_table",
	"CreateForeignTableStmt":       "create_foreign_table",
	"ViewStmt":                     "create_view",
	"IndexStmt":                    "create_index",
	"CreateSeqStmt":                "create_sequence",
	"AlterSeqStmt":                 "alter_sequence",
	"CreateTrigStmt":               "create_trigger",
	"CreateEventTrigStmt":          "create_event_trigger",
	"CreateSchemaStmt":             "create_schema",
	"CreateExtensionStmt":          "create_extension",
	"AlterExtensionStmt":           "alter_extension",
	"AlterExtensionContentsStmt":   "alter_extension",
	"CompositeTypeStmt":            "create_type",
	"CreateEnumStmt":               "create_type",
	"CreateRangeStmt":              "create_type",
	"AlterEnumStmt":                "alter_type",
	"AlterTypeStmt":                "alter_type",
	"CreateDomainStmt":             "create_domain",
	"AlterDomainStmt":              "alter_domain",
	"CreateRoleStmt":               "create_role",
	"AlterRoleStmt":                "alter_role",
	"AlterRoleSetStmt":             "alter_role",
	"DropRoleStmt":                 "drop_role",
	"CreatedbStmt":                 "create_database",
	"AlterDatabaseStmt":            "alter_database",
	"AlterDatabaseSetStmt":         "alter_database",
	"AlterDatabaseRefreshCollStmt": "alter_database",
	"DropdbStmt":                   "drop_database",
	"CreatePolicyStmt":             "create_policy",
	"AlterPolicyStmt":              "alter_policy",
	"RuleStmt":                     "create_rule",
	"AlterFunctionStmt":            "alter_function",
	"AlterSystemStmt":              "alter_system",
	"AlterDefaultPrivilegesStmt":   "alter_default_privileges",
	"DropOwnedStmt":                "drop_owned",
	"ReassignOwnedStmt":            "reassign_owned",
	"TruncateStmt":                 "truncate",
	"RefreshMatViewStmt":           "refresh_materialized_view",
	"SecLabelStmt":                 "security_label",
	"VariableShowStmt":             "show",
	"DiscardStmt":                  "discard",
	"ConstraintsSetStmt":           "set_constraints",
	"PrepareStmt":                  "prepare",
	"ExecuteStmt":                  "execute",
	"DeallocateStmt":               "deallocate",
	"DeclareCursorStmt":            "declare_cursor",
	"FetchStmt":                    "fetch",
	"ClosePortalStmt":              "close",
	"DoStmt":                       "do",
	"CallStmt":                     "call",
	"ListenStmt":                   "listen",
	"NotifyStmt":                   "notify",
	"UnlistenStmt":                 "unlisten",
	"ClusterStmt":                  "cluster",
	"ReindexStmt":                  "reindex",
	"CheckPointStmt":               "checkpoint",
	"LoadStmt":                     "load",
	"LockStmt":                     "lock",
	"ExplainStmt":                  "explain",
	"CreateTableSpaceStmt":         "create_tablespace",
	"DropTableSpaceStmt":           "drop_tablespace",
	"AlterTableSpaceOptionsStmt":   "alter_tablespace",
	"AlterTableMoveAllStmt":        "alter_table",
	"CreateFdwStmt":                "create_foreign_data_wrapper",
	"AlterFdwStmt":                 "alter_foreign_data_wrapper",
	"CreateForeignServerStmt":      "create_server",
	"AlterForeignServerStmt":       "alter_server",
	"CreateUserMappingStmt":        "create_user_mapping",
	"AlterUserMappingStmt":         "alter_user_mapping",
	"DropUserMappingStmt":          "drop_user_mapping",
	"ImportForeignSchemaStmt":      "import_foreign_schema",
	"CreateAmStmt":                 "create_access_method",
	"CreatePlangStmt":              "create_language",
	"CreateStatsStmt":              "create_statistics",
	"AlterStatsStmt":               "alter_statistics",
	"CreateConversionStmt":         "create_conversion",
	"CreateCastStmt":               "create_cast",
	"CreateTransformStmt":          "create_transform",
	"CreateOpClassStmt":            "create_operator_class",
	"CreateOpFamilyStmt":           "create_operator_family",
	"AlterOpFamilyStmt":            "alter_operator_family",
	"AlterOperatorStmt":            "alter_operator",
	"AlterEventTrigStmt":           "alter_event_trigger",
	"AlterCollationStmt":           "alter_collation",
	"AlterTsdictionaryStmt":        "alter_text_search_dictionary",
	"AlterTsconfigurationStmt":     "alter_text_search_configuration",
	"CreatePublicationStmt":        "create_publication",
	"AlterPublicationStmt":         "alter_publication",
	"CreateSubscriptionStmt":       "create_subscription",
	"AlterSubscriptionStmt":        "alter_subscription",
	"DropSubscriptionStmt":         "drop_subscription",
	"AlterObjectDependsStmt":       "alter_extension_depends",
	"ReplicaIdentityStmt":          "alter_table",
}

// objectKinds names PostgreSQL object types (ObjectType) for ObjectKind and
// the create_/alter_/drop_ kinds built from it.
func objectKind(t pgq.ObjectType) string {
	switch t {
	case pgq.ObjectType_OBJECT_TYPE_UNDEFINED:
		return ""
	case pgq.ObjectType_OBJECT_MATVIEW:
		return "materialized_view"
	case pgq.ObjectType_OBJECT_FDW:
		return "foreign_data_wrapper"
	case pgq.ObjectType_OBJECT_FOREIGN_SERVER:
		return "server"
	case pgq.ObjectType_OBJECT_LARGEOBJECT:
		return "large_object"
	case pgq.ObjectType_OBJECT_OPCLASS:
		return "operator_class"
	case pgq.ObjectType_OBJECT_OPFAMILY:
		return "operator_family"
	case pgq.ObjectType_OBJECT_STATISTIC_EXT:
		return "statistics"
	case pgq.ObjectType_OBJECT_TABCONSTRAINT:
		return "constraint"
	case pgq.ObjectType_OBJECT_DOMCONSTRAINT:
		return "domain_constraint"
	case pgq.ObjectType_OBJECT_TSCONFIGURATION:
		return "text_search_configuration"
	case pgq.ObjectType_OBJECT_TSDICTIONARY:
		return "text_search_dictionary"
	case pgq.ObjectType_OBJECT_TSPARSER:
		return "text_search_parser"
	case pgq.ObjectType_OBJECT_TSTEMPLATE:
		return "text_search_template"
	case pgq.ObjectType_OBJECT_DEFACL:
		return "default_privileges"
	}
	return strings.ToLower(strings.TrimPrefix(t.String(), "OBJECT_"))
}

// relationObject reports object kinds that are relations (listed in Tables).
func relationObject(t pgq.ObjectType) bool {
	switch t {
	case pgq.ObjectType_OBJECT_TABLE, pgq.ObjectType_OBJECT_VIEW, pgq.ObjectType_OBJECT_MATVIEW,
		pgq.ObjectType_OBJECT_FOREIGN_TABLE, pgq.ObjectType_OBJECT_SEQUENCE:
		return true
	}
	return false
}

// statement fills st's kind and facts from a statement node.
func (w *walker) statement(n *pgq.Node, st *Statement) {
	st.Kind = "other"
	if n == nil || n.GetNode() == nil {
		return
	}
	name := string(n.ProtoReflect().WhichOneof(nodeOneof).Message().Name())
	if k, ok := simpleKinds[name]; ok {
		st.Kind = k
	}
	w.defaultWrite = true // relations named by DDL and utility statements
	switch x := n.GetNode().(type) {
	case *pgq.Node_SelectStmt:
		st.Kind = "select"
		w.defaultWrite = false
		if x.SelectStmt.GetIntoClause() != nil {
			st.Kind, st.ObjectKind = "create_table_as", "table"
		}
		w.selectStmt(x.SelectStmt, "")
	case *pgq.Node_InsertStmt:
		st.Kind = "insert"
		w.defaultWrite = false
		w.insertStmt(x.InsertStmt)
	case *pgq.Node_UpdateStmt:
		st.Kind = "update"
		w.defaultWrite = false
		st.HasWhere = x.UpdateStmt.GetWhereClause() != nil
		w.updateStmt(x.UpdateStmt)
	case *pgq.Node_DeleteStmt:
		st.Kind = "delete"
		w.defaultWrite = false
		st.HasWhere = x.DeleteStmt.GetWhereClause() != nil
		w.deleteStmt(x.DeleteStmt)
	case *pgq.Node_MergeStmt:
		st.Kind = "merge"
		w.defaultWrite = false
		st.Actions = w.mergeStmt(x.MergeStmt)
		st.HasWhere = true
		for _, a := range st.Actions {
			if a.Kind != "insert" && !a.HasWhere {
				st.HasWhere = false
			}
		}
	case *pgq.Node_CopyStmt:
		c := x.CopyStmt
		w.defaultWrite = false
		switch {
		case c.GetIsProgram():
			st.Kind = "copy_program"
		case c.GetIsFrom():
			st.Kind = "copy_from"
		default:
			st.Kind = "copy_to"
		}
		st.ServerFile = c.GetFilename() != "" || c.GetIsProgram()
		if c.GetRelation() != nil {
			w.pushScope()
			w.fromRelation(c.GetRelation(), c.GetIsFrom())
			clause := "select"
			if c.GetIsFrom() {
				clause = "insert"
			}
			for _, a := range c.GetAttlist() {
				w.columnRefName(a.GetString_().GetSval(), clause)
			}
			w.nodeIn("where", c.GetWhereClause())
		}
		if q := c.GetQuery(); q != nil {
			st.Wraps = w.wrapped(q)
			st.Writes = st.Wraps.Writes
		}
		w.nodesIn("other", c.GetOptions())
	case *pgq.Node_ExplainStmt:
		for _, o := range x.ExplainStmt.GetOptions() {
			if d := o.GetDefElem(); d != nil && d.GetDefname() == "analyze" {
				st.Analyze = defElemTrue(d)
			}
		}
		st.Wraps = w.wrapped(x.ExplainStmt.GetQuery())
		if st.Analyze && st.Wraps.Writes {
			st.Writes = true
		}
	case *pgq.Node_PrepareStmt:
		st.Name = x.PrepareStmt.GetName()
		w.nodesIn("other", x.PrepareStmt.GetArgtypes())
		st.Wraps = w.wrapped(x.PrepareStmt.GetQuery())
		st.Writes = st.Wraps.Writes
	case *pgq.Node_DeclareCursorStmt:
		st.Name = x.DeclareCursorStmt.GetPortalname()
		st.Wraps = w.wrapped(x.DeclareCursorStmt.GetQuery())
		st.Writes = st.Wraps.Writes
	case *pgq.Node_CreateTableAsStmt:
		c := x.CreateTableAsStmt
		st.ObjectKind = objectKind(c.GetObjtype())
		st.Kind = "create_" + st.ObjectKind
		if c.GetObjtype() == pgq.ObjectType_OBJECT_TABLE {
			st.Kind = "create_table_as"
		}
		w.relation(c.GetInto().GetRel(), true)
		st.Wraps = w.wrapped(c.GetQuery())
	case *pgq.Node_ViewStmt:
		st.ObjectKind = "view"
		w.relation(x.ViewStmt.GetView(), true)
		w.nodesIn("other", x.ViewStmt.GetOptions())
		st.Wraps = w.wrapped(x.ViewStmt.GetQuery())
	case *pgq.Node_ExecuteStmt:
		st.Name = x.ExecuteStmt.GetName()
		w.nodesIn("values", x.ExecuteStmt.GetParams())
	case *pgq.Node_DeallocateStmt:
		st.Name = x.DeallocateStmt.GetName()
	case *pgq.Node_FetchStmt:
		st.Name = x.FetchStmt.GetPortalname()
	case *pgq.Node_ClosePortalStmt:
		st.Name = x.ClosePortalStmt.GetPortalname()
	case *pgq.Node_VariableSetStmt:
		v := x.VariableSetStmt
		st.Name = strings.ToLower(v.GetName())
		switch {
		case v.GetKind() == pgq.VariableSetKind_VAR_RESET || v.GetKind() == pgq.VariableSetKind_VAR_RESET_ALL:
			st.Kind = "reset"
		case st.Name == "role":
			st.Kind = "set_role"
		case st.Name == "session_authorization":
			st.Kind = "set_session_authorization"
		default:
			st.Kind = "set"
		}
		w.nodesIn("other", v.GetArgs())
	case *pgq.Node_VariableShowStmt:
		st.Name = strings.ToLower(x.VariableShowStmt.GetName())
	case *pgq.Node_TransactionStmt:
		t := x.TransactionStmt
		st.Kind = map[pgq.TransactionStmtKind]string{
			pgq.TransactionStmtKind_TRANS_STMT_BEGIN:             "begin",
			pgq.TransactionStmtKind_TRANS_STMT_START:             "begin",
			pgq.TransactionStmtKind_TRANS_STMT_COMMIT:            "commit",
			pgq.TransactionStmtKind_TRANS_STMT_ROLLBACK:          "rollback",
			pgq.TransactionStmtKind_TRANS_STMT_SAVEPOINT:         "savepoint",
			pgq.TransactionStmtKind_TRANS_STMT_RELEASE:           "release",
			pgq.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:       "rollback_to",
			pgq.TransactionStmtKind_TRANS_STMT_PREPARE:           "prepare_transaction",
			pgq.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED:   "commit_prepared",
			pgq.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED: "rollback_prepared",
		}[t.GetKind()]
		if st.Kind == "" {
			st.Kind = "other"
		}
		st.Name = t.GetSavepointName()
		if t.GetGid() != "" {
			st.Name = t.GetGid()
		}
	case *pgq.Node_ListenStmt:
		st.Name = x.ListenStmt.GetConditionname()
	case *pgq.Node_UnlistenStmt:
		st.Name = x.UnlistenStmt.GetConditionname()
	case *pgq.Node_NotifyStmt:
		st.Name = x.NotifyStmt.GetConditionname()
	case *pgq.Node_VacuumStmt:
		st.Kind = "analyze"
		if x.VacuumStmt.GetIsVacuumcmd() {
			st.Kind = "vacuum"
		}
		for _, r := range x.VacuumStmt.GetRels() {
			vr := r.GetVacuumRelation()
			w.pushScope()
			w.fromRelation(vr.GetRelation(), true)
			for _, c := range vr.GetVaCols() {
				w.columnRefName(c.GetString_().GetSval(), "other")
			}
			w.popScope()
		}
	case *pgq.Node_DropStmt:
		d := x.DropStmt
		st.ObjectKind = objectKind(d.GetRemoveType())
		st.Kind = "drop_" + st.ObjectKind
		if relationObject(d.GetRemoveType()) {
			for _, o := range d.GetObjects() {
				if schema, name, ok := qualifiedName(o.GetList().GetItems()); ok {
					w.addTable(schema, name, true)
				}
			}
		}
	case *pgq.Node_AlterTableStmt:
		st.ObjectKind = objectKind(x.AlterTableStmt.GetObjtype())
		st.Kind = "alter_" + st.ObjectKind
		w.pushScope()
		// ALTER INDEX names an index, not a table.
		if x.AlterTableStmt.GetObjtype() != pgq.ObjectType_OBJECT_INDEX {
			w.fromRelation(x.AlterTableStmt.GetRelation(), true)
		}
		w.defaultWrite = false // tables a command references (REFERENCES t) are read
		w.nodesIn("other", x.AlterTableStmt.GetCmds())
	case *pgq.Node_RenameStmt:
		r := x.RenameStmt
		st.ObjectKind = objectKind(r.GetRenameType())
		if r.GetRenameType() == pgq.ObjectType_OBJECT_COLUMN || r.GetRenameType() == pgq.ObjectType_OBJECT_TABCONSTRAINT {
			st.ObjectKind = objectKind(r.GetRelationType())
		}
		st.Kind = "alter_" + st.ObjectKind
		if r.GetRenameType() != pgq.ObjectType_OBJECT_INDEX {
			w.relation(r.GetRelation(), true)
		}
		w.nodeIn("other", r.GetObject())
	case *pgq.Node_AlterObjectSchemaStmt:
		a := x.AlterObjectSchemaStmt
		st.ObjectKind = objectKind(a.GetObjectType())
		st.Kind = "alter_" + st.ObjectKind
		if a.GetObjectType() != pgq.ObjectType_OBJECT_INDEX {
			w.relation(a.GetRelation(), true)
		}
	case *pgq.Node_AlterOwnerStmt:
		a := x.AlterOwnerStmt
		st.ObjectKind = objectKind(a.GetObjectType())
		st.Kind = "alter_" + st.ObjectKind
		w.relation(a.GetRelation(), true)
	case *pgq.Node_GrantStmt:
		g := x.GrantStmt
		st.Kind = "revoke"
		if g.GetIsGrant() {
			st.Kind = "grant"
		}
		st.ObjectKind = objectKind(g.GetObjtype())
		if g.GetTargtype() == pgq.GrantTargetType_ACL_TARGET_ALL_IN_SCHEMA {
			st.ObjectKind = "schema"
		}
		if relationObject(g.GetObjtype()) {
			w.nodes(g.GetObjects())
		}
	case *pgq.Node_GrantRoleStmt:
		st.Kind = "revoke"
		if x.GrantRoleStmt.GetIsGrant() {
			st.Kind = "grant"
		}
		st.ObjectKind = "role"
	case *pgq.Node_CommentStmt:
		st.Kind = "comment"
		st.ObjectKind = objectKind(x.CommentStmt.GetObjtype())
		if relationObject(x.CommentStmt.GetObjtype()) {
			if schema, name, ok := qualifiedName(x.CommentStmt.GetObject().GetList().GetItems()); ok {
				w.addTable(schema, name, true)
			}
		}
	case *pgq.Node_CreateStmt:
		st.ObjectKind = "table"
		w.pushScope()
		w.fromRelation(x.CreateStmt.GetRelation(), true)
		w.defaultWrite = false // inherited and referenced tables are read
		w.nodesIn("other", x.CreateStmt.GetInhRelations())
		w.nodesIn("other", x.CreateStmt.GetTableElts())
		w.nodesIn("other", x.CreateStmt.GetConstraints())
		if pb := x.CreateStmt.GetPartbound(); pb != nil {
			w.reflect(pb.ProtoReflect())
		}
		if ps := x.CreateStmt.GetPartspec(); ps != nil {
			w.reflect(ps.ProtoReflect())
		}
	case *pgq.Node_IndexStmt:
		st.ObjectKind = "index"
		w.pushScope()
		w.fromRelation(x.IndexStmt.GetRelation(), true)
		w.nodesIn("other", x.IndexStmt.GetIndexParams())
		w.nodesIn("other", x.IndexStmt.GetIndexIncludingParams())
		w.nodeIn("where", x.IndexStmt.GetWhereClause())
		for _, p := range append(x.IndexStmt.GetIndexParams(), x.IndexStmt.GetIndexIncludingParams()...) {
			if ie := p.GetIndexElem(); ie != nil && ie.GetName() != "" {
				w.columnRefName(ie.GetName(), "other")
			}
		}
	case *pgq.Node_CreateFunctionStmt:
		st.Kind, st.ObjectKind = "create_function", "function"
		if x.CreateFunctionStmt.GetIsProcedure() {
			st.Kind, st.ObjectKind = "create_procedure", "procedure"
		}
		// A SQL-standard body (BEGIN ATOMIC … END) is parsed: its tables
		// are read or written as its statements say.
		w.defaultWrite = false
		w.nodeIn("other", x.CreateFunctionStmt.GetSqlBody())
	case *pgq.Node_DefineStmt:
		st.ObjectKind = objectKind(x.DefineStmt.GetKind())
		st.Kind = "create_" + st.ObjectKind
	case *pgq.Node_CallStmt:
		w.nodeIn("other", &pgq.Node{Node: &pgq.Node_FuncCall{FuncCall: x.CallStmt.GetFunccall()}})
	case *pgq.Node_CreateSchemaStmt:
		st.ObjectKind = "schema"
		w.nodes(x.CreateSchemaStmt.GetSchemaElts())
	case *pgq.Node_CreateRoleStmt:
		st.ObjectKind = "role"
	case *pgq.Node_AlterRoleStmt, *pgq.Node_AlterRoleSetStmt, *pgq.Node_DropRoleStmt:
		st.ObjectKind = "role"
	case *pgq.Node_CreateExtensionStmt, *pgq.Node_AlterExtensionStmt:
		st.ObjectKind = "extension"
	case *pgq.Node_CreatedbStmt, *pgq.Node_DropdbStmt, *pgq.Node_AlterDatabaseStmt, *pgq.Node_AlterDatabaseSetStmt:
		st.ObjectKind = "database"
	case *pgq.Node_CreateSeqStmt:
		st.ObjectKind = "sequence"
		w.relation(x.CreateSeqStmt.GetSequence(), true)
		w.nodesIn("other", x.CreateSeqStmt.GetOptions())
	case *pgq.Node_AlterSeqStmt:
		st.ObjectKind = "sequence"
		w.relation(x.AlterSeqStmt.GetSequence(), true)
		w.nodesIn("other", x.AlterSeqStmt.GetOptions())
	case *pgq.Node_CreateTrigStmt:
		st.ObjectKind = "trigger"
		w.node(n)
	case *pgq.Node_AlterFunctionStmt:
		st.ObjectKind = objectKind(x.AlterFunctionStmt.GetObjtype())
	case *pgq.Node_CreateEnumStmt, *pgq.Node_CompositeTypeStmt, *pgq.Node_CreateRangeStmt, *pgq.Node_AlterEnumStmt:
		st.ObjectKind = "type"
	default:
		w.node(n)
	}
	if !readOnlyKinds[st.Kind] {
		st.Writes = true
	}
}

var nodeOneof = nodeDesc.Oneofs().ByName("node")

// wrapped returns the facts of a statement inside another one and adds its
// tables, columns and functions to the outer statement's.
func (w *walker) wrapped(n *pgq.Node) *Statement {
	in := statementFacts(n)
	w.merge(&in)
	return &in
}

// columnRefName records a bare column name (COPY t (a, b), VACUUM t (a),
// CREATE INDEX … (a)) as a column of the current scope's table.
func (w *walker) columnRefName(name, clause string) {
	if name == "" {
		return
	}
	schema, table := w.unqualified()
	w.addColumn(Column{Schema: schema, Table: table, Name: name, Clause: clause})
}

// qualifiedName turns a name list ([schema,] name) into its parts.
func qualifiedName(items []*pgq.Node) (schema, name string, ok bool) {
	var parts []string
	for _, it := range items {
		parts = append(parts, it.GetString_().GetSval())
	}
	switch len(parts) {
	case 0:
		return "", "", false
	case 1:
		return "", parts[0], true
	default:
		return parts[len(parts)-2], parts[len(parts)-1], true
	}
}

// defElemTrue reads a boolean option (EXPLAIN (ANALYZE [true|false|on|off|1|0])).
func defElemTrue(d *pgq.DefElem) bool {
	a := d.GetArg()
	if a == nil {
		return true
	}
	if b := a.GetBoolean(); b != nil {
		return b.GetBoolval()
	}
	if c := a.GetAConst(); c != nil {
		if b := c.GetBoolval(); b != nil {
			return b.GetBoolval()
		}
		if i := c.GetIval(); i != nil {
			return i.GetIval() != 0
		}
		if s := c.GetSval(); s != nil {
			return parseBool(s.GetSval())
		}
	}
	if s := a.GetString_(); s != nil {
		return parseBool(s.GetSval())
	}
	if i := a.GetInteger(); i != nil {
		return i.GetIval() != 0
	}
	// Anything else: assume the statement runs (fail closed).
	return true
}

func parseBool(s string) bool {
	switch strings.ToLower(s) {
	case "false", "off", "no", "0", "f", "n", "of":
		return false
	}
	return true
}
