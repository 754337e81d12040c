package sqlinspect

import (
	"errors"
	"runtime"
	"strings"
	"sync"

	pgq "github.com/pganalyze/pg_query_go/v6"
	pgquery "github.com/wasilibs/go-pgquery"
	"github.com/wasilibs/go-pgquery/parser"
)

// Facts are what the PostgreSQL grammar says about one query string.
//
// Facts returned by Inspect are shared through the cache: callers must treat
// them (and everything they point to) as read-only.
type Facts struct {
	// Statements holds one entry per statement of the text, in order. An
	// empty text, or one holding only comments and semicolons, has none.
	Statements []Statement `json:"statements"`
}

// Statement holds the facts of one statement.
type Statement struct {
	// Text is this statement's text, as libpg_query delimits it (from just
	// after the previous semicolon to just before its own), trimmed of
	// surrounding white space. It is empty for a wrapped statement (Wraps).
	Text string `json:"text"`
	// Kind names the statement; see kinds.go for the full list. Kinds the
	// package does not know are "other", and count as writes.
	Kind string `json:"kind"`
	// ObjectKind is the kind of object a create/alter/drop/grant/comment
	// statement acts on: "table", "view", "index", "function", "schema",
	// "role", "extension", "sequence", "materialized_view", …
	ObjectKind string `json:"object_kind,omitempty"`
	// Tables are the relations read or written, in order of first mention,
	// one entry per distinct (Schema, Name). CTE names are not tables.
	Tables []Table `json:"tables,omitempty"`
	// Columns are the distinct column references with the clause they
	// appear in. Table is "" when it cannot be determined from the text
	// alone; callers must then assume it may be any table in Tables.
	Columns []Column `json:"columns,omitempty"`
	// Functions are the functions called, as the grammar names them:
	// unquoted identifiers folded to lower case, schema-qualified only when
	// written so ("pg_catalog.pg_terminate_backend" and
	// "pg_terminate_backend" are both possible: match on the last part).
	// SQL-syntax functions (EXTRACT, SUBSTRING … FROM, TRIM …) are listed
	// under the name the grammar gives them without the implied
	// "pg_catalog." ("extract", "substring", "btrim").
	Functions []string `json:"functions,omitempty"`
	// HasWhere reports an UPDATE or DELETE with a WHERE clause (including
	// WHERE CURRENT OF). For a MERGE it is true unless one of its UPDATE or
	// DELETE actions may reach every target row (see Actions).
	HasWhere bool `json:"has_where,omitempty"`
	// Writes reports that the statement can change data, schema, privileges
	// or state visible outside the session; see kinds.go for the rule. It
	// is decided from statement structure only: calls to functions with side
	// effects (nextval, pg_terminate_backend, …) do not set it; they are
	// listed in Functions.
	Writes bool `json:"writes"`
	// Wraps is the statement inside EXPLAIN, PREPARE, DECLARE CURSOR,
	// CREATE TABLE AS / SELECT INTO, CREATE MATERIALIZED VIEW, CREATE VIEW
	// and COPY (query) TO. Its tables, columns and functions are also listed
	// in the wrapping statement.
	Wraps *Statement `json:"wraps,omitempty"`
	// ServerFile reports a COPY that reads or writes a file (or runs a
	// program) on the database server rather than using STDIN/STDOUT.
	ServerFile bool `json:"server_file,omitempty"`
	// Actions are what a MERGE does, one entry per WHEN clause that changes
	// rows (DO NOTHING has none): Kind "insert", "update" or "delete", the
	// target in Tables (written) and, for update/delete, HasWhere: whether
	// the rows acted on are restricted by a condition that mentions a
	// column of the target table qualified by its name or alias (t.id) —
	// in ON (not for WHEN NOT MATCHED BY SOURCE) or in the clause's own AND
	// condition. ON true, or ON s.id = 1 with a one-row source, reaches
	// every row: HasWhere is false, as for a DELETE without WHERE. An
	// unqualified column may be the source's and does not count. Policies evaluate each action as a statement of
	// its own, so rules on UPDATE/DELETE apply to MERGE.
	Actions []Statement `json:"actions,omitempty"`
	// Analyze reports EXPLAIN ANALYZE (which executes the wrapped statement).
	Analyze bool `json:"analyze,omitempty"`
	// Name is the statement name of PREPARE/EXECUTE/DEALLOCATE, the cursor
	// name of DECLARE/FETCH/MOVE/CLOSE, the parameter of SET/RESET/SHOW
	// (lower case), the channel of LISTEN/NOTIFY/UNLISTEN, and the savepoint
	// or transaction id of SAVEPOINT/RELEASE/ROLLBACK TO/… PREPARED.
	Name string `json:"name,omitempty"`
}

// Table is a relation named in a statement.
type Table struct {
	Schema string `json:"schema,omitempty"` // "" when the name is not schema-qualified
	Name   string `json:"name"`
	// Write reports that the statement (or one it wraps) changes the
	// relation's rows, definition, privileges or statistics.
	Write bool `json:"write,omitempty"`
}

// Column is a column reference.
type Column struct {
	// Schema and Table name the relation the column belongs to, resolved
	// through aliases; Table is "" when undeterminable (an unqualified column
	// with several relations in scope, a column of a subquery or CTE).
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table,omitempty"`
	// Name is the column name; "" for a star.
	Name string `json:"name,omitempty"`
	// Clause is where the reference appears: "select", "where", "join",
	// "order", "group", "having", "returning", "set", "insert", "values"
	// or "other". The select list of a subquery inside another clause takes
	// that clause (a column compared through IN (SELECT c …) is a "where").
	Clause string `json:"clause"`
	// Star marks t.* or *.
	Star bool `json:"star,omitempty"`
	// Bare marks a select-list entry that is exactly this column reference:
	// its value passes through unchanged. A column used inside an expression
	// of the select list (upper(c), c || '', row_to_json(t)) is not bare.
	Bare bool `json:"bare,omitempty"`
}

// ParseError is returned for text PostgreSQL would not parse.
type ParseError struct {
	// Message is PostgreSQL's own message, e.g. `syntax error at or near "FROM"`.
	Message string
	// Cursor is the 1-based character position of the error in the text, 0
	// when the error has no position (as in PostgreSQL's ErrorResponse).
	Cursor int
}

func (e *ParseError) Error() string { return e.Message }

// Inspect returns the facts of every statement in sql. Results are cached by
// the exact text, so repeated statements cost a map lookup.
func Inspect(sql string) (*Facts, error) {
	return defaultCache.inspect(sql)
}

// Warm loads the grammar: one instance per parse slot, compiled in
// parallel (about two seconds of CPU each, spent compiling libpg_query's
// WebAssembly). Call it at startup so that no statement waits for, or pays
// the CPU of, a compilation.
func Warm() {
	var wg sync.WaitGroup
	for range cap(parseSlots) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = parse("SELECT 1")
		}()
	}
	wg.Wait()
}

// parseSlots bounds the parses in flight. go-pgquery keeps a pool of
// grammar instances and compiles a new one (its own wazero runtime: ~2 s of
// CPU and tens of MB) whenever all are busy, so unbounded concurrency
// (sessions missing the cache at once) grows the pool to the number of
// concurrent callers, each paying a compilation on the request path. With
// the bound, the pool never exceeds the slots Warm fills; a parse that
// finds every slot busy waits a few hundred microseconds instead.
var parseSlots = make(chan struct{}, min(runtime.GOMAXPROCS(0), 4))

// inspect parses sql without the cache.
func inspect(sql string) (*Facts, error) {
	tree, err := parse(sql)
	if err != nil {
		return nil, err
	}
	f, _ := treeFacts(sql, tree)
	return f, nil
}

// parse runs the grammar over sql.
func parse(sql string) (*pgq.ParseResult, error) {
	// The grammar takes a C string: a NUL would end the text early and hide
	// what follows from inspection. PostgreSQL itself cannot receive one in
	// a query, so refuse it.
	if i := strings.IndexByte(sql, 0); i >= 0 {
		return nil, &ParseError{Message: "query text contains a NUL byte", Cursor: len([]rune(sql[:i])) + 1}
	}
	parseSlots <- struct{}{}
	tree, err := pgquery.Parse(sql)
	<-parseSlots
	if err != nil {
		var pe *parser.Error
		if errors.As(err, &pe) {
			return nil, &ParseError{Message: pe.Message, Cursor: pe.Cursorpos}
		}
		return nil, &ParseError{Message: err.Error()}
	}
	return tree, nil
}

// treeFacts returns the facts of a parse tree of sql, and each statement's
// byte range in sql as libpg_query delimits it (before trimming).
func treeFacts(sql string, tree *pgq.ParseResult) (*Facts, [][2]int) {
	f := &Facts{Statements: make([]Statement, 0, len(tree.Stmts))}
	bounds := make([][2]int, 0, len(tree.Stmts))
	for _, raw := range tree.Stmts {
		st := statementFacts(raw.GetStmt())
		b := stmtBounds(sql, raw)
		st.Text = strings.TrimSpace(sql[b[0]:b[1]])
		f.Statements = append(f.Statements, st)
		bounds = append(bounds, b)
	}
	return f, bounds
}

// stmtBounds returns a statement's byte range in sql from its location and
// length. A length of 0 means "to the end of the text".
func stmtBounds(sql string, raw *pgq.RawStmt) [2]int {
	start, n := int(raw.GetStmtLocation()), int(raw.GetStmtLen())
	if start < 0 || start > len(sql) {
		return [2]int{len(sql), len(sql)}
	}
	end := len(sql)
	if n > 0 && start+n <= len(sql) {
		end = start + n
	}
	return [2]int{start, end}
}

// statementFacts walks one statement's tree.
func statementFacts(n *pgq.Node) Statement {
	w := newWalker()
	st := Statement{}
	w.statement(n, &st)
	w.finish(&st)
	return st
}
