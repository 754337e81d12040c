package sqlinspect

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// one inspects sql, which must hold exactly one statement.
func one(t *testing.T, sql string) Statement {
	t.Helper()
	f, err := Inspect(sql)
	if err != nil {
		t.Fatalf("Inspect(%q): %v", sql, err)
	}
	if len(f.Statements) != 1 {
		t.Fatalf("Inspect(%q): %d statements, want 1", sql, len(f.Statements))
	}
	return f.Statements[0]
}

func TestKinds(t *testing.T) {
	cases := []struct {
		sql, kind, object string
		writes            bool
		name              string
	}{
		{"SELECT 1", "select", "", false, ""},
		{"VALUES (1), (2)", "select", "", false, ""},
		{"TABLE t", "select", "", false, ""},
		{"SELECT * FROM t FOR UPDATE", "select", "", false, ""},
		{"INSERT INTO t VALUES (1)", "insert", "", true, ""},
		{"UPDATE t SET a = 1", "update", "", true, ""},
		{"DELETE FROM t", "delete", "", true, ""},
		{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "merge", "", true, ""},
		{"COPY t FROM STDIN", "copy_from", "", true, ""},
		{"COPY t TO STDOUT", "copy_to", "", false, ""},
		{"COPY (SELECT 1) TO STDOUT", "copy_to", "", false, ""},
		{"COPY t TO '/tmp/x'", "copy_to", "", false, ""},
		{"COPY t FROM PROGRAM 'curl x'", "copy_program", "", true, ""},
		{"COPY t TO PROGRAM 'gzip > /tmp/x'", "copy_program", "", true, ""},
		{"CREATE TABLE t (id int)", "create_table", "table", true, ""},
		{"CREATE TABLE t AS SELECT 1", "create_table_as", "table", true, ""},
		{"SELECT 1 INTO t", "create_table_as", "table", true, ""},
		{"CREATE MATERIALIZED VIEW m AS SELECT 1", "create_materialized_view", "materialized_view", true, ""},
		{"REFRESH MATERIALIZED VIEW m", "refresh_materialized_view", "", true, ""},
		{"ALTER TABLE t ADD COLUMN b int", "alter_table", "table", true, ""},
		{"ALTER TABLE t RENAME TO u", "alter_table", "table", true, ""},
		{"ALTER TABLE t RENAME COLUMN a TO b", "alter_table", "table", true, ""},
		{"ALTER TABLE t SET SCHEMA s", "alter_table", "table", true, ""},
		{"ALTER TABLE t OWNER TO bob", "alter_table", "table", true, ""},
		{"ALTER INDEX i RENAME TO j", "alter_index", "index", true, ""},
		{"ALTER VIEW v RENAME TO w", "alter_view", "view", true, ""},
		{"DROP TABLE t", "drop_table", "table", true, ""},
		{"DROP VIEW IF EXISTS v", "drop_view", "view", true, ""},
		{"DROP INDEX i", "drop_index", "index", true, ""},
		{"DROP FUNCTION f(int)", "drop_function", "function", true, ""},
		{"DROP SCHEMA s CASCADE", "drop_schema", "schema", true, ""},
		{"DROP EXTENSION e", "drop_extension", "extension", true, ""},
		{"TRUNCATE t, u", "truncate", "", true, ""},
		{"CREATE INDEX i ON t (a)", "create_index", "index", true, ""},
		{"CREATE VIEW v AS SELECT * FROM t", "create_view", "view", true, ""},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "create_function", "function", true, ""},
		{"CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'", "create_procedure", "procedure", true, ""},
		{"CREATE ROLE r", "create_role", "role", true, ""},
		{"CREATE USER u PASSWORD 'x'", "create_role", "role", true, ""},
		{"ALTER ROLE r SUPERUSER", "alter_role", "role", true, ""},
		{"ALTER USER r SET work_mem = '1MB'", "alter_role", "role", true, ""},
		{"DROP ROLE r", "drop_role", "role", true, ""},
		{"GRANT SELECT ON t TO r", "grant", "table", true, ""},
		{"GRANT SELECT ON ALL TABLES IN SCHEMA public TO r", "grant", "schema", true, ""},
		{"GRANT admin TO bob", "grant", "role", true, ""},
		{"REVOKE ALL ON t FROM r", "revoke", "table", true, ""},
		{"REVOKE admin FROM bob", "revoke", "role", true, ""},
		{"SET search_path = public", "set", "", false, "search_path"},
		{"SET LOCAL statement_timeout = 0", "set", "", false, "statement_timeout"},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "set", "", false, "transaction"},
		{"RESET ALL", "reset", "", false, ""},
		{"RESET work_mem", "reset", "", false, "work_mem"},
		{"SET ROLE admin", "set_role", "", false, "role"},
		{"SET SESSION AUTHORIZATION bob", "set_session_authorization", "", false, "session_authorization"},
		{"SHOW search_path", "show", "", false, "search_path"},
		{"PREPARE p AS SELECT 1", "prepare", "", false, "p"},
		{"PREPARE p (int) AS DELETE FROM t WHERE id = $1", "prepare", "", true, "p"},
		{"EXECUTE p(1)", "execute", "", true, "p"},
		{"DEALLOCATE p", "deallocate", "", false, "p"},
		{"DEALLOCATE ALL", "deallocate", "", false, ""},
		{"DO $$ BEGIN PERFORM 1; END $$", "do", "", true, ""},
		{"CALL p(1)", "call", "", true, ""},
		{"BEGIN", "begin", "", false, ""},
		{"START TRANSACTION READ ONLY", "begin", "", false, ""},
		{"COMMIT", "commit", "", false, ""},
		{"END", "commit", "", false, ""},
		{"ROLLBACK", "rollback", "", false, ""},
		{"ABORT", "rollback", "", false, ""},
		{"SAVEPOINT s1", "savepoint", "", false, "s1"},
		{"RELEASE SAVEPOINT s1", "release", "", false, "s1"},
		{"ROLLBACK TO SAVEPOINT s1", "rollback_to", "", false, "s1"},
		{"PREPARE TRANSACTION 'g1'", "prepare_transaction", "", false, "g1"},
		{"COMMIT PREPARED 'g1'", "commit_prepared", "", false, "g1"},
		{"ROLLBACK PREPARED 'g1'", "rollback_prepared", "", false, "g1"},
		{"LISTEN ch", "listen", "", false, "ch"},
		{"NOTIFY ch, 'x'", "notify", "", true, "ch"},
		{"UNLISTEN *", "unlisten", "", false, ""},
		{"VACUUM t", "vacuum", "", true, ""},
		{"VACUUM (ANALYZE) t (a)", "vacuum", "", true, ""},
		{"ANALYZE t", "analyze", "", true, ""},
		{"EXPLAIN SELECT 1", "explain", "", false, ""},
		{"EXPLAIN DELETE FROM t", "explain", "", false, ""},
		{"EXPLAIN ANALYZE DELETE FROM t", "explain", "", true, ""},
		{"EXPLAIN (ANALYZE false) DELETE FROM t", "explain", "", false, ""},
		{"EXPLAIN (ANALYZE on, BUFFERS) DELETE FROM t", "explain", "", true, ""},
		{"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "lock", "", true, ""},
		{"DECLARE c CURSOR FOR SELECT * FROM t", "declare_cursor", "", false, "c"},
		{"FETCH 10 FROM c", "fetch", "", false, "c"},
		{"MOVE NEXT IN c", "fetch", "", false, "c"},
		{"CLOSE c", "close", "", false, "c"},
		{"DISCARD ALL", "discard", "", false, ""},
		{"COMMENT ON TABLE t IS 'x'", "comment", "table", true, ""},
		{"CREATE SCHEMA s", "create_schema", "schema", true, ""},
		{"CREATE EXTENSION IF NOT EXISTS pgcrypto", "create_extension", "extension", true, ""},
		{"CREATE SEQUENCE s", "create_sequence", "sequence", true, ""},
		{"ALTER SEQUENCE s RESTART", "alter_sequence", "sequence", true, ""},
		{"CREATE TYPE mood AS ENUM ('a')", "create_type", "type", true, ""},
		{"CREATE AGGREGATE a (int) (sfunc = int4pl, stype = int)", "create_aggregate", "aggregate", true, ""},
		{"CREATE DATABASE d", "create_database", "database", true, ""},
		{"DROP DATABASE d", "drop_database", "database", true, ""},
		{"ALTER SYSTEM SET work_mem = '1GB'", "alter_system", "", true, ""},
		{"CHECKPOINT", "checkpoint", "", true, ""},
		{"LOAD 'auto_explain'", "load", "", true, ""},
		{"CLUSTER t USING i", "cluster", "", true, ""},
		{"REINDEX TABLE t", "reindex", "", true, ""},
		{"CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", "create_trigger", "trigger", true, ""},
		{"SET CONSTRAINTS ALL DEFERRED", "set_constraints", "", false, ""},
		{"SECURITY LABEL ON TABLE t IS 'x'", "security_label", "", true, ""},
		{"CREATE POLICY p ON t USING (true)", "create_policy", "", true, ""},
		{"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r", "alter_default_privileges", "", true, ""},
		{"IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y", "import_foreign_schema", "", true, ""},
		{"CREATE CONVERSION c FOR 'LATIN1' TO 'UTF8' FROM f", "create_conversion", "", true, ""},
	}
	for _, c := range cases {
		st := one(t, c.sql)
		if st.Kind != c.kind || st.ObjectKind != c.object || st.Writes != c.writes || st.Name != c.name {
			t.Errorf("%s:\n got kind=%q object=%q writes=%v name=%q\nwant kind=%q object=%q writes=%v name=%q",
				c.sql, st.Kind, st.ObjectKind, st.Writes, st.Name, c.kind, c.object, c.writes, c.name)
		}
	}
}

func tables(ts ...any) []Table {
	var out []Table
	for i := 0; i < len(ts); i += 3 {
		out = append(out, Table{Schema: ts[i].(string), Name: ts[i+1].(string), Write: ts[i+2].(bool)})
	}
	return out
}

func TestTables(t *testing.T) {
	cases := []struct {
		sql    string
		want   []Table
		writes bool
	}{
		{"WITH x AS (DELETE FROM a RETURNING *) SELECT * FROM x", tables("", "a", true), true},
		{"WITH x AS (SELECT * FROM a), y AS (SELECT * FROM x JOIN b USING (id)) SELECT * FROM y", tables("", "a", false, "", "b", false), false},
		{"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r", nil, false},
		// A CTE name only hides a table inside the statement that defines it.
		{"SELECT (WITH a AS (SELECT 1) SELECT * FROM a), * FROM a", tables("", "a", false), false},
		// A schema-qualified name is never a CTE.
		{"WITH a AS (SELECT 1) SELECT * FROM public.a", tables("public", "a", false), false},
		{"SELECT * FROM t WHERE id IN (SELECT tid FROM u WHERE EXISTS (SELECT 1 FROM v))", tables("", "t", false, "", "u", false, "", "v", false), false},
		{"SELECT * FROM (SELECT * FROM s.t) q LEFT JOIN u ON q.id = u.id CROSS JOIN LATERAL (SELECT * FROM w) l", tables("s", "t", false, "", "u", false, "", "w", false), false},
		{"SELECT a FROM t UNION SELECT b FROM u EXCEPT SELECT c FROM v", tables("", "t", false, "", "u", false, "", "v", false), false},
		{"SELECT * FROM customer_view", tables("", "customer_view", false), false},
		{"SELECT * INTO new_t FROM old_t", tables("", "new_t", true, "", "old_t", false), true},
		{`SELECT * FROM "Public"."My Table", public."x""y"`, tables("Public", "My Table", false, "public", `x"y`, false), false},
		{"SELECT * FROM MySchema.MyTable", tables("myschema", "mytable", false), false},
		{"INSERT INTO a SELECT * FROM b", tables("", "a", true, "", "b", false), true},
		{"INSERT INTO a SELECT * FROM a", tables("", "a", true), true},
		{"UPDATE a SET x = b.x FROM b WHERE a.id = b.id", tables("", "a", true, "", "b", false), true},
		{"DELETE FROM a USING b WHERE a.id = b.id", tables("", "a", true, "", "b", false), true},
		{"MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)", tables("", "t", true, "", "s", false), true},
		{"SELECT * FROM t TABLESAMPLE SYSTEM (10)", tables("", "t", false), false},
		{"SELECT * FROM generate_series(1, 3) g, t", tables("", "t", false), false},
		{"SELECT (SELECT max(x) FROM m) FROM t", tables("", "t", false, "", "m", false), false},
		{"SELECT * FROM t WHERE x = ANY (ARRAY(SELECT y FROM u))", tables("", "t", false, "", "u", false), false},
		{"COPY (DELETE FROM t RETURNING *) TO STDOUT", tables("", "t", true), true},
		{"COPY t (a, b) FROM STDIN", tables("", "t", true), true},
		{"EXPLAIN ANALYZE WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x", tables("", "t", true), true},
		{"CREATE VIEW v AS SELECT * FROM t JOIN u USING (id)", tables("", "v", true, "", "t", false, "", "u", false), true},
		{"CREATE TABLE c (id int REFERENCES p (id)) INHERITS (base)", tables("", "c", true, "", "base", false, "", "p", false), true},
		{"ALTER TABLE c ADD FOREIGN KEY (pid) REFERENCES p (id)", tables("", "c", true, "", "p", false), true},
		{"DROP TABLE a, s.b", tables("", "a", true, "s", "b", true), true},
		{"TRUNCATE a, b", tables("", "a", true, "", "b", true), true},
		{"GRANT SELECT ON s.t TO r", tables("s", "t", true), true},
		{"CREATE INDEX i ON t (a)", tables("", "t", true), true},
		{"DROP INDEX i", nil, true},
		{"LOCK TABLE t", tables("", "t", true), true},
		{"CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM t; END", tables("", "t", true), true},
		{"PREPARE p AS INSERT INTO t SELECT * FROM u", tables("", "t", true, "", "u", false), true},
		{"DECLARE c CURSOR FOR SELECT * FROM t", tables("", "t", false), false},
		{"CREATE SCHEMA s CREATE TABLE s1 (a int)", tables("", "s1", true), true},
	}
	for _, c := range cases {
		st := one(t, c.sql)
		if !reflect.DeepEqual(st.Tables, c.want) || st.Writes != c.writes {
			t.Errorf("%s:\n got %v writes=%v\nwant %v writes=%v", c.sql, st.Tables, st.Writes, c.want, c.writes)
		}
	}
}

// col builds a column: "schema.table.name@clause", "table.name@clause",
// "name@clause"; a name of * is a star.
func col(s string) Column {
	var c Column
	at := len(s) - 1
	for s[at] != '@' {
		at--
	}
	c.Clause = s[at+1:]
	parts := splitDots(s[:at])
	c.Name = parts[len(parts)-1]
	if c.Name == "*" {
		c.Name, c.Star = "", true
	}
	switch len(parts) {
	case 2:
		c.Table = parts[0]
	case 3:
		c.Schema, c.Table = parts[0], parts[1]
	}
	return c
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func cols(ss ...string) []Column {
	out := make([]Column, 0, len(ss))
	for _, s := range ss {
		out = append(out, col(s))
	}
	return out
}

func TestColumns(t *testing.T) {
	cases := []struct {
		sql  string
		want []Column
	}{
		{"select c.card from customers c where c.email = $1",
			cols("customers.card@select", "customers.email@where")},
		{"SELECT card, email FROM customers ORDER BY id",
			cols("customers.card@select", "customers.email@select", "customers.id@order")},
		{"SELECT public.customers.card FROM public.customers",
			cols("public.customers.card@select")},
		{"SELECT p.card FROM public.customers p",
			cols("public.customers.card@select")},
		{"SELECT * FROM t", cols("t.*@select")},
		{"SELECT t.*, u.* FROM t, u", cols("t.*@select", "u.*@select")},
		{"SELECT * FROM t, u", cols(".*@select")},
		// Unqualified with two tables in scope: undeterminable.
		{"SELECT a FROM t JOIN u ON t.id = u.tid", cols("t.id@join", "u.tid@join", ".a@select")},
		{"SELECT x FROM t JOIN u USING (id)", cols(".id@join", ".x@select")},
		{"SELECT dept, count(*) FROM emp GROUP BY dept HAVING sum(salary) > 10",
			cols("emp.dept@select", "emp.dept@group", "emp.salary@having")},
		// A column of a subquery or CTE has no table of its own.
		{"SELECT q.a FROM (SELECT a FROM t) q", cols("t.a@select", ".a@select")},
		{"WITH x AS (SELECT card FROM c) SELECT card FROM x", cols("c.card@select", ".card@select")},
		// A subquery in WHERE makes its select list a "where" use.
		{"SELECT id FROM t WHERE x IN (SELECT card FROM c)", cols("t.id@select", "t.x@where", ".card@where")},
		// Correlated: the inner unqualified column may be an outer one.
		{"SELECT id FROM t WHERE EXISTS (SELECT 1 FROM c WHERE c.card = t.card)",
			cols("t.id@select", "c.card@where", "t.card@where")},
		{"UPDATE customers SET card = $1, note = upper(note) WHERE id = $2 RETURNING email",
			cols("customers.card@set", "customers.note@set", "customers.id@where", "customers.email@returning")},
		{"UPDATE customers c SET card = o.card FROM other o WHERE c.id = o.id",
			cols("customers.card@set", "other.card@set", "customers.id@where", "other.id@where")},
		{"INSERT INTO customers (card, email) VALUES ($1, lower($2)) ON CONFLICT (email) DO UPDATE SET card = excluded.card RETURNING id",
			cols("customers.card@insert", "customers.email@insert", "customers.email@other", "customers.card@set", "customers.id@returning")},
		{"INSERT INTO a (x) SELECT y FROM b WHERE z > 0", cols("a.x@insert", "b.y@values", "b.z@where")},
		{"DELETE FROM sessions WHERE expires < now()", cols("sessions.expires@where")},
		{"DELETE FROM t WHERE CURRENT OF c", nil},
		{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.del THEN DELETE WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)",
			cols("t.id@join", "s.id@join", "s.del@where", "t.v@set", "s.v@set", "t.id@insert", "t.v@insert", "s.id@values", "s.v@values")},
		{"SELECT a FROM t ORDER BY 1", cols("t.a@select", "t.a@order")},
		{"SELECT id, card AS x FROM c GROUP BY 1 ORDER BY x", cols("c.id@select", "c.card@select", "c.x@order", "c.id@group", "c.card@order")},
		{"SELECT DISTINCT ON (2) id, card FROM c", cols("c.id@select", "c.card@select", "c.card@other")},
		{"SELECT 1 FROM c NATURAL JOIN probe", cols(".*@join")},
		{"SELECT * FROM t a, t b WHERE a.x = b.y FOR UPDATE OF a", cols(".*@select", "t.x@where", "t.y@where")},
		{"SELECT a FROM t UNION SELECT b FROM u ORDER BY a", cols("t.a@select", "u.b@select", ".a@order")},
		{"COPY customers (card) TO STDOUT", cols("customers.card@select")},
		{`SELECT "Card" FROM "Customers"`, cols("Customers.Card@select")},
		// A whole-row reference is every column of the row.
		{"SELECT row_to_json(c) FROM customers c", cols("customers.*@select")},
		{"SELECT c FROM customers c JOIN orders o ON o.cid = c.id", cols("orders.cid@join", "customers.id@join", "customers.*@select")},
	}
	for _, c := range cases {
		st := one(t, c.sql)
		got := append([]Column(nil), st.Columns...)
		for i := range got {
			got[i].Bare = false // TestBareColumns covers it
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.sql, got, c.want)
		}
	}
}

// TestBareColumns: a select-list entry that is exactly a column passes its
// value through (masking identifies it by wire metadata); any expression,
// cast or whole-row reference computes a new value.
func TestBareColumns(t *testing.T) {
	cases := []struct {
		sql  string
		want string // "table.column" of the select-clause references, bare ones marked "!"
	}{
		{"SELECT email, upper(email) FROM c", "c.email! c.email"},
		{"SELECT c.card AS x, c.card || '' FROM c", "c.card! c.card"},
		{"SELECT email::varchar(3) FROM c", "c.email"},
		{"SELECT * FROM c", "c.*!"},
		{"SELECT c.* FROM c", "c.*!"},
		{"SELECT row_to_json(c) FROM c", "c.*"},
		{"SELECT c FROM c", "c.*"},
		{"SELECT x FROM (SELECT lower(email) AS x FROM c) s", "c.email .x!"},
		{"SELECT card FROM c UNION ALL SELECT 'x'", "c.card"},
		{"SELECT (SELECT card FROM c LIMIT 1)", "c.card"},
		{"SELECT id, (SELECT max(card) FROM c) FROM c", "c.id! .card"}, // possibly an outer reference: table unresolved
	}
	for _, tc := range cases {
		st := one(t, tc.sql)
		var got []string
		for _, col := range st.Columns {
			if col.Clause != "select" {
				continue
			}
			n := col.Table + "." + col.Name
			if col.Star {
				n = col.Table + ".*"
			}
			if col.Bare {
				n += "!"
			}
			got = append(got, n)
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%s: got %q, want %q", tc.sql, g, tc.want)
		}
	}
}

func TestFunctions(t *testing.T) {
	cases := []struct {
		sql  string
		want []string
	}{
		{"SELECT pg_terminate_backend(pid) FROM pg_stat_activity", []string{"pg_terminate_backend"}},
		{"SELECT PG_CATALOG.PG_TERMINATE_BACKEND(1)", []string{"pg_catalog.pg_terminate_backend"}},
		{`SELECT "pg_terminate_backend"(1)`, []string{"pg_terminate_backend"}},
		{"SELECT nextval('s'), count(*) FILTER (WHERE f(x)) OVER () FROM t", []string{"nextval", "count", "f"}},
		{"SELECT extract(year FROM now()), substring('abc' FROM 2), trim(' x ')", []string{"extract", "now", "substring", "btrim"}},
		{"SELECT * FROM generate_series(1, 3)", []string{"generate_series"}},
		{"CALL s.proc(g(1))", []string{"s.proc", "g"}},
		{"EXECUTE p(pg_sleep(10))", []string{"pg_sleep"}},
		{"EXPLAIN ANALYZE SELECT dblink_exec('x')", []string{"dblink_exec"}},
		{"INSERT INTO t VALUES (gen_random_uuid())", []string{"gen_random_uuid"}},
		{"SELECT 1 WHERE EXISTS (SELECT lo_export(1, '/tmp/x'))", []string{"lo_export"}},
	}
	for _, c := range cases {
		st := one(t, c.sql)
		if !slices.Equal(st.Functions, c.want) {
			t.Errorf("%s: got %q, want %q", c.sql, st.Functions, c.want)
		}
	}
}

func TestHasWhere(t *testing.T) {
	for sql, want := range map[string]bool{
		"UPDATE t SET a = 1":                      false,
		"UPDATE t SET a = 1 WHERE true":           true,
		"DELETE FROM t":                           false,
		"DELETE FROM t WHERE id = 1":              true,
		"DELETE FROM t WHERE CURRENT OF c":        true,
		"DELETE FROM t USING u":                   false,
		"WITH x AS (SELECT 1) DELETE FROM t":      false,
		"SELECT * FROM t WHERE id = 1":            false, // only UPDATE/DELETE
		"WITH d AS (DELETE FROM t) SELECT 1":      false,
		"UPDATE t SET a = (SELECT 1 WHERE false)": false,
	} {
		if got := one(t, sql).HasWhere; got != want {
			t.Errorf("%s: HasWhere=%v, want %v", sql, got, want)
		}
	}
}

func TestWraps(t *testing.T) {
	st := one(t, "EXPLAIN ANALYZE UPDATE t SET a = 1 WHERE id = 2")
	if !st.Analyze || !st.Writes || st.Wraps == nil || st.Wraps.Kind != "update" || !st.Wraps.HasWhere || !st.Wraps.Writes {
		t.Errorf("EXPLAIN ANALYZE UPDATE: %+v / %+v", st, st.Wraps)
	}
	st = one(t, "EXPLAIN UPDATE t SET a = 1")
	if st.Analyze || st.Writes || st.Wraps == nil || !st.Wraps.Writes {
		t.Errorf("EXPLAIN UPDATE: %+v", st)
	}
	st = one(t, "PREPARE q(int) AS DELETE FROM t WHERE id = $1")
	if st.Name != "q" || st.Wraps == nil || st.Wraps.Kind != "delete" || !st.Wraps.HasWhere || !st.Writes {
		t.Errorf("PREPARE: %+v", st)
	}
	st = one(t, "CREATE TABLE n AS SELECT card FROM customers")
	if st.Wraps == nil || st.Wraps.Kind != "select" || !reflect.DeepEqual(st.Wraps.Tables, tables("", "customers", false)) {
		t.Errorf("CREATE TABLE AS: %+v", st)
	}
	st = one(t, "CREATE VIEW v AS SELECT card FROM customers")
	if st.Wraps == nil || st.Wraps.Kind != "select" {
		t.Errorf("CREATE VIEW: %+v", st)
	}
	st = one(t, "PREPARE p AS WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d")
	if !st.Writes || st.Wraps == nil || st.Wraps.Kind != "select" || !st.Wraps.Writes {
		t.Errorf("PREPARE of CTE DML: %+v", st)
	}
}

func TestMultiStatement(t *testing.T) {
	sql := "  select 1 ;\n-- a comment\nUPDATE t SET a = ';' WHERE b = $$;$$;;; /* x; */ delete from \"u;\"  "
	f, err := Inspect(sql)
	if err != nil {
		t.Fatal(err)
	}
	var texts, kinds []string
	for _, s := range f.Statements {
		texts = append(texts, s.Text)
		kinds = append(kinds, s.Kind)
	}
	wantTexts := []string{"select 1", "-- a comment\nUPDATE t SET a = ';' WHERE b = $$;$$", `/* x; */ delete from "u;"`}
	if !slices.Equal(texts, wantTexts) || !slices.Equal(kinds, []string{"select", "update", "delete"}) {
		t.Errorf("texts %q kinds %q", texts, kinds)
	}
	if !slices.Equal(texts, Split(sql)) {
		t.Errorf("Split disagrees: %q", Split(sql))
	}
	for _, empty := range []string{"", "  ", ";;", "-- only\n", "/* c */ ;"} {
		f, err := Inspect(empty)
		if err != nil || len(f.Statements) != 0 {
			t.Errorf("Inspect(%q) = %v, %v; want no statements", empty, f, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		sql    string
		msg    string
		cursor int
	}{
		{"SELECT * FORM t", `syntax error at or near "FORM"`, 10},
		{"SELECT FROM WHERE", `syntax error at or near "WHERE"`, 13},
		{"select 1; selec 2", `syntax error at or near "selec"`, 11},
		{"SELECT 'unterminated", "unterminated quoted string at or near \"'unterminated\"", 8},
		{"SELECT 1 /* open", "unterminated /* comment at or near \"/* open\"", 10},
		{"SELECT 1\x00; DROP TABLE t", "query text contains a NUL byte", 9},
		{"DELETE", "syntax error at end of input", 7},
	}
	for _, c := range cases {
		_, err := Inspect(c.sql)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: err %v, want a ParseError", c.sql, err)
			continue
		}
		if pe.Message != c.msg || pe.Cursor != c.cursor {
			t.Errorf("%q: got %q at %d, want %q at %d", c.sql, pe.Message, pe.Cursor, c.msg, c.cursor)
		}
	}
}

// TestCopyServerFile: COPY to or from a server file or program is told
// apart from COPY over the client connection.
func TestCopyServerFile(t *testing.T) {
	for sql, want := range map[string]bool{
		"COPY t FROM STDIN":                      false,
		"COPY t TO STDOUT":                       false,
		"COPY (SELECT 1) TO STDOUT":              false,
		"COPY t FROM '/tmp/x'":                   true,
		"COPY t TO '/tmp/x' WITH (FORMAT csv)":   true,
		"COPY (SELECT 1) TO '/tmp/x'":            true,
		"COPY t FROM PROGRAM 'cat /etc/passwd'":  true,
		"COPY (SELECT 1) TO PROGRAM 'tee /tmp'":  true,
		"copy t (a, b) from '/dev/stdin' binary": true,
	} {
		if got := one(t, sql).ServerFile; got != want {
			t.Errorf("%s: server_file %v, want %v", sql, got, want)
		}
	}
}
