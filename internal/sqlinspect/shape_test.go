package sqlinspect

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, key string }{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;", "SELECT abalance FROM pgbench_accounts WHERE aid = \x00i;"},
		{"select 'a''b', 'é', 2147483647, 2147483648, 0002147483647, 1.5", "select \x00s, \x00s, \x00i, \x00n, \x00i, \x00n"},
		// Left as written: prefixed strings, backslashes, parameters,
		// numbers that are not a whole token, comments, quoted identifiers
		// and dollar quotes.
		{`select E'a\'b', e'x', B'01', X'ff', N'n', U&'\0041', 'a\b', $1, t1, 1e5, 0x1f, 1_000, .5, 1., 1..2`, ""},
		{"select x'1' -- 5\n/* 'a' 6 */, \"7\", $$ 8 $$, $f$'9'$f$", "select x'1' -- 5\n/* 'a' 6 */, \"7\", $$ 8 $$, $f$'9'$f$"},
		{"select 1\x00", ""},
		{"select date'2020-01-01', date '2020-01-01'", "select date'2020-01-01', date \x00s"},
	} {
		key, spans, ok := normalize(tc.in, nil, nil)
		if tc.key == "" || tc.key == tc.in {
			if ok {
				t.Errorf("normalize(%q) = %q, want nothing normalized", tc.in, key)
			}
			continue
		}
		if !ok || string(key) != tc.key {
			t.Errorf("normalize(%q) = %q, %v; want %q", tc.in, key, ok, tc.key)
			continue
		}
		// Offsets map both ways through the spans.
		for i := 0; i <= len(tc.in); i++ {
			inside := false
			for _, s := range spans {
				inside = inside || i > s.start && i < s.end
			}
			if !inside && origOffset(normOffset(i, spans), spans) != i {
				t.Errorf("%q: offset %d maps to %d and back to %d", tc.in, i, normOffset(i, spans), origOffset(normOffset(i, spans), spans))
			}
		}
	}
}

// teach makes c learn sql's shape: a shape is learnt on its second exact
// miss, so sql is inspected twice with the exact cache emptied between.
func teach(c *cache, sql string) (*Facts, error) {
	_, _ = c.inspect(sql)
	c.exact = newLRU[exactEntry](100, 1<<20)
	return c.inspect(sql)
}

// TestShapeLearntOnSecondSight: a statement seen once costs one parse; the
// shape serves from the third text on.
func TestShapeLearntOnSecondSight(t *testing.T) {
	c := newCache(1000, 1<<20)
	for i, q := range []string{"select 1", "select 2", "select 3", "select 4"} {
		if _, err := c.inspect(q); err != nil {
			t.Fatal(err)
		}
		st := c.stats()
		if wantMisses := uint64(min(i+1, 2)); st.Misses != wantMisses || st.Shapes != 1 {
			t.Errorf("after %q: %+v, want %d misses, 1 shape", q, st, wantMisses)
		}
	}
}

// TestShapeCases feeds a fresh cache a text, then another of the same shape,
// and requires the second answer to equal an uncached parse; served says
// whether the shape must serve it (true) or must not (false: its facts, or
// its parse errors, depend on the literals).
func TestShapeCases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a, b   string
		served bool
	}{
		{"pgbench", "SELECT abalance FROM pgbench_accounts WHERE aid = 1;", "SELECT abalance FROM pgbench_accounts WHERE aid = 987654;", true},
		{"strings and text", "select * from customers where email = 'a@x' and id > 5", "select * from customers where email = 'it''s é' and id > 123456", true},
		{"dml", "UPDATE t SET a = 5, b = 'x' WHERE id = 3 RETURNING a", "UPDATE t SET a = 6, b = '' WHERE id = 4 RETURNING a", true},
		{"insert", "INSERT INTO t (a, b) VALUES (1, 'a'), (2, 'b')", "INSERT INTO t (a, b) VALUES (10, 'aa'), (20, 'bb')", true},
		{"negative", "select * from t where a = -1 and b = - 2.5", "select * from t where a = -100 and b = - 0.5", true},
		{"limit offset", "SELECT a FROM t LIMIT 5 OFFSET 10", "SELECT a FROM t LIMIT 50 OFFSET 0", true},
		{"typed literals", "select interval '1 day', DATE '2020-01-01', '1'::int", "select interval '2 years', DATE '1999-12-31', '22'::int", true},
		{"regclass", "select 'customers'::regclass, pg_relation_size('customers')", "select 'orders'::regclass, pg_relation_size('orders')", true},
		{"sql text in functions", "select query_to_xml('select 1', true, false, ''), dblink('c', 'select email from customers')", "select query_to_xml('select card from customers', true, false, ''), dblink('d', 'delete from t')", true},
		{"E string verbatim", `select E'it\'s', 1`, `select E'it\'s', 2`, true},
		{"E string differs", `select E'it\'s', 1`, `select E'it\'s; drop table t; --', 2`, false},
		{"set value", "SET statement_timeout = 5000", "SET statement_timeout = 10", true},
		{"set string", "SET search_path = 'a'", "SET search_path = 'b'", true},
		{"multi", "select 1; select 'a' ; update t set a = 2 where b = 3", "select 11; select 'abc' ; update t set a = 22 where b = 33", true},
		{"explain", "EXPLAIN SELECT * FROM t WHERE a = 1", "EXPLAIN SELECT * FROM t WHERE a = 2", true},
		{"cursor", "DECLARE c CURSOR FOR SELECT * FROM t WHERE a = 1", "DECLARE c CURSOR FOR SELECT * FROM t WHERE a = 22", true},
		{"interval precision", "select interval(3) '1 s'", "select interval(7) '1 s'", true}, // an A_Const the parser does not check
		{"tokens that look alike", "select * from t where a = 1 and b in (2, 3)", "select * from t where a = 1 and b in (2, 30)", true},

		{"order by position", "SELECT a, b FROM t ORDER BY 1", "SELECT a, b FROM t ORDER BY 2", false},
		{"group by position", "SELECT a, count(*) FROM t WHERE x = 1 GROUP BY 1", "SELECT a, count(*) FROM t WHERE x = 2 GROUP BY 2", false},
		{"distinct on position", "SELECT DISTINCT ON (1) a, b FROM t", "SELECT DISTINCT ON (2) a, b FROM t", false},
		{"rollup position", "SELECT a, b FROM t GROUP BY ROLLUP (1)", "SELECT a, b FROM t GROUP BY ROLLUP (2)", false},
		{"window order", "SELECT rank() OVER (ORDER BY 1) FROM t", "SELECT rank() OVER (ORDER BY 2) FROM t", false},
		{"set role", "SET ROLE 'alice'", "SET ROLE 'admin'", false},
		{"session authorization", "SET SESSION AUTHORIZATION 'alice'", "SET SESSION AUTHORIZATION 'postgres'", false},
		{"copy to file", "COPY t TO '/tmp/a'", "COPY t TO '/tmp/b'", false},
		{"copy query", "COPY (SELECT * FROM t WHERE a = 1) TO STDOUT", "COPY (SELECT * FROM t WHERE a = 2) TO STDOUT", false},
		{"notify", "NOTIFY ch, 'a'", "NOTIFY ch, 'b'", false},
		{"prepare", "PREPARE p AS SELECT * FROM t WHERE a = 1", "PREPARE p AS SELECT * FROM t WHERE a = 2", false},
		{"execute", "EXECUTE p(1)", "EXECUTE p(2)", false},
		{"prepared transaction", "PREPARE TRANSACTION 'a'", "PREPARE TRANSACTION 'b'", false},
		{"commit prepared", "COMMIT PREPARED 'a'", "COMMIT PREPARED 'b'", false},
		{"ddl default", "CREATE TABLE t (a int DEFAULT 5)", "CREATE TABLE t (a int DEFAULT 6)", false},
		{"comment", "COMMENT ON TABLE t IS 'a'", "COMMENT ON TABLE t IS 'b'", false},
		{"explain options", "EXPLAIN (ANALYZE 1) DELETE FROM t", "EXPLAIN (ANALYZE 0) DELETE FROM t", false},
		{"string continuation", "select 'a'\n'b'", "select 'c'\n'd'", false},
		{"float precision", "select 1::float(20)", "select 1::float(60)", false},
		{"float precision type", "select 1::float(20)", "select 1::float(30)", false},
		{"uescape", `select U&'!0041' UESCAPE '!'`, `select U&'!0041' UESCAPE '+'`, false},
		{"uescape invalid", `select U&'!0041' UESCAPE '!'`, `select U&'!0041' UESCAPE '''`, false},
		{"double negation", "select - - 1", "select - - 2", false},
		{"negated string", "select - 'a'", "select - 'b'", false},
		{"alter statistics", "ALTER TABLE t ALTER COLUMN 1 SET STATISTICS 100", "ALTER TABLE t ALTER COLUMN 0 SET STATISTICS 100", false},
		{"do", "DO $$ begin perform 1; end $$; select 1", "DO $$ begin perform 1; end $$; select 2", false},
		{"call", "CALL p(1)", "CALL p(2)", false},
		{"syntax error", "select 'a' 'b'", "select 'c' 'd'", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(1000, 1<<20)
			if _, err := teach(c, tc.a); err != nil && tc.served {
				t.Fatalf("%q: %v", tc.a, err)
			}
			before := c.stats()
			got, gotErr := c.inspect(tc.b)
			served := c.stats().NormalizedHits > before.NormalizedHits
			want, wantErr := inspect(tc.b)
			if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q after %q:\n got  %+v, %v\n want %+v, %v", tc.b, tc.a, got, gotErr, want, wantErr)
			}
			if served != tc.served {
				t.Errorf("%q after %q: served by shape = %v, want %v", tc.b, tc.a, served, tc.served)
			}
		})
	}
}

// TestShapeErrorsNotShared: a text of a learnt shape that the grammar
// refuses is refused, not answered with the shape's facts.
func TestShapeErrorsNotShared(t *testing.T) {
	c := newCache(1000, 1<<20)
	if _, err := teach(c, "select 'a'"); err != nil {
		t.Fatal(err)
	}
	_, err := c.inspect("select '\xff'") // invalid UTF-8: not in the string class
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Errorf("invalid UTF-8 constant: got %v, want a parse error", err)
	}
	// A parse error teaches no shape.
	c = newCache(1000, 1<<20)
	if _, err := c.inspect("select 1::float(60)"); err == nil {
		t.Fatal("float(60) parsed")
	}
	if st := c.stats(); st.Shapes != 0 {
		t.Errorf("a parse error was cached as a shape: %+v", st)
	}
}

// TestShapeText: Statement.Text is cut from the text inspected, never the
// one the shape was learnt from.
func TestShapeText(t *testing.T) {
	c := newCache(1000, 1<<20)
	if _, err := teach(c, "  select 1 ;  select 'a' ;"); err != nil {
		t.Fatal(err)
	}
	q := "  select 123456 ;  select 'bcd''e' ;"
	f, err := c.inspect(q)
	if err != nil || c.stats().NormalizedHits != 1 {
		t.Fatalf("%v %+v", err, c.stats())
	}
	var texts []string
	for _, st := range f.Statements {
		texts = append(texts, st.Text)
	}
	if want := []string{"select 123456", "select 'bcd''e'"}; !reflect.DeepEqual(texts, want) {
		t.Errorf("texts %q, want %q", texts, want)
	}
	for _, st := range f.Statements {
		if !strings.Contains(q, st.Text) {
			t.Errorf("text %q is not in %q", st.Text, q)
		}
	}
}

// shapeSeeds are statements with literals in the places the shape checks
// are about, for FuzzNormalizedFacts.
var shapeSeeds = []string{
	"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
	"select a, b from t where c = 'x' order by 1 limit 10 offset 5",
	"select a, count(*) from t group by 1 having count(*) > 2",
	"select distinct on (1) a from t order by 1, 2",
	"select * from t where a between -1 and - 2.5 and b in ('a', 'b''c', '')",
	"select interval '1 day', date '2020-01-01', 'customers'::regclass, 1::float(20), 2::numeric(10, 2), 'x'::char(5)",
	"select query_to_xml('select 1', true, false, ''), dblink('c', 'select 1')",
	"SET statement_timeout = 5000; SET search_path = 'a'; SHOW search_path; RESET statement_timeout",
	"SET ROLE 'alice'", "COPY t TO '/tmp/x'", "COPY (select 1) TO STDOUT", "NOTIFY c, 'payload'",
	"PREPARE p AS SELECT * FROM t WHERE a = 1; EXECUTE p(2)", "PREPARE TRANSACTION 'g'",
	"CREATE TABLE t (a int DEFAULT 5 CHECK (a > 0), b text DEFAULT 'x')", "COMMENT ON TABLE t IS 'c'",
	`select E'it\'s', 'a'` + "\n'b', U&'!0041' UESCAPE '!'",
	"EXPLAIN (ANALYZE 0) DELETE FROM t WHERE a = 1", "explain analyze select 1",
	"insert into t values (1, 'a'), (2147483647, 'b'), (2147483648, 'c') on conflict (a) do update set b = 'd' returning 1",
	"update t set a = 1 where b = 'x'; delete from t where c = 2",
	"select rank() over (order by 1 rows between 1 preceding and 2 following) from t fetch first 3 rows only",
	"select * from t tablesample bernoulli (10) repeatable (1)",
	"select array[1, 2][1:2], x[1], substring('abc' from 1 for 2), extract('year' from now())",
	"select json_object('a' : 1), '{\"a\":1}'::jsonb -> 'a' ->> 0",
	"DECLARE c CURSOR FOR SELECT * FROM t WHERE a = 1",
	"select 1 from t where a = 1 group by rollup (1), cube (2)",
	"alter table t alter column 1 set statistics 5",
	"select - - 1, - 'x', -0.0, 00012",
}

// literalPool holds replacement literals by class.
var literalPool = map[byte][]string{
	litInt: {"0", "1", "2", "3", "10", "00", "007", "2147483647", "0002147483647", "999999999"},
	litNum: {"2147483648", "99999999999999999999", "1.0", "0.5", "3.14159", "0.00"},
	litStr: {"''", "'a'", "'it''s'", "'é'", "'select * from customers'", "' ; drop table t; -- '", "'/*'", "'$$'"},
}

// FuzzNormalizedFacts is the differential test of the shape cache: after a
// cache has learnt a text, every text of the same shape (the same text with
// other literals of the same classes) must get exactly the facts, or the
// error, that an uncached parse of it gives — in both directions.
func FuzzNormalizedFacts(f *testing.F) {
	for _, s := range append(seedTexts(f), shapeSeeds...) {
		if len(s) > 4000 {
			continue // whole corpus files: their statements are seeds too
		}
		f.Add(s, "", uint64(0))
		f.Add(s, "x'y", uint64(0x9e3779b97f4a7c15))
	}
	// Compile the grammar before the first input: the fuzzing engine takes
	// an input that runs for seconds for a hung worker. One instance is
	// enough for one worker's sequential inputs.
	_, _ = parse("SELECT 1")
	f.Fuzz(func(t *testing.T, sql, alt string, pick uint64) {
		key, spans, ok := normalize(sql, nil, nil)
		if !ok {
			return
		}
		var b strings.Builder
		last := 0
		for i, s := range spans {
			b.WriteString(sql[last:s.start])
			pool := literalPool[s.class]
			choice := int((pick >> (uint(i*5) % 60)) % uint64(len(pool)+2))
			switch {
			case choice == len(pool):
				b.WriteString(sql[s.start:s.end]) // keep this one
			case choice == len(pool)+1 && s.class == litStr:
				b.WriteString("'" + strings.ReplaceAll(alt, "'", "''") + "'")
			default:
				b.WriteString(pool[choice%len(pool)])
			}
			last = s.end
		}
		b.WriteString(sql[last:])
		variant := b.String()
		if k2, _, ok := normalize(variant, nil, nil); !ok || string(k2) != string(key) {
			return // alt made a literal of another class (a backslash, bad UTF-8)
		}
		for _, pair := range [][2]string{{sql, variant}, {variant, sql}} {
			c := newCache(100, 1<<20)
			_, _ = teach(c, pair[0])
			got, gotErr := c.inspect(pair[1])
			want, wantErr := inspect(pair[1])
			if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q after learning %q:\n got  %+v, %v\n want %+v, %v", pair[1], pair[0], got, gotErr, want, wantErr)
			}
		}
	})
}
