package sqlinspect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seeds are the fuzz seeds: the golden corpus plus statements with the
// lexical traps the splitter and the grammar must agree on.
func seeds(f *testing.F) {
	for _, s := range seedTexts(f) {
		f.Add(s)
	}
}

func seedTexts(f *testing.F) []string {
	var out []string
	files, _ := filepath.Glob("testdata/*.sql")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, string(b))
		out = append(out, Split(string(b))...)
	}
	return append(out,
		"select 1; select 2", "select ';'; select E'\\';'", `select "a;b" from t; x`,
		"do $$ begin perform 1; end $$; select 1", "do $f$ a; $$ b; $f$; select 1",
		"select 1 /* a; /* nested; */ b; */; select 2", "select 1 -- c;\n; select 2",
		"create function f() returns int language sql begin atomic select 1; select case when true then 2 end; end; select 3",
		"select $1; select $2", "select 'a' 'b'; select U&'\\0041'", "select b'101'; select x'ff'",
		"select 1;;; ;", "", "-- only a comment", "select e'\\\\'; select 1",
		"WITH x AS (DELETE FROM a RETURNING *) SELECT * FROM x", "explain analyze update t set a = 1",
	)
}

// FuzzInspect checks that Inspect never panics, returns either facts or a
// ParseError, and that every statement text is a piece of the input.
func FuzzInspect(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, sql string) {
		facts, err := inspect(sql)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Message == "" {
				t.Fatalf("Inspect(%q): error %v is not a ParseError with a message", sql, err)
			}
			return
		}
		for _, st := range facts.Statements {
			if !strings.Contains(sql, st.Text) {
				t.Fatalf("Inspect(%q): statement text %q is not in the input", sql, st.Text)
			}
			if st.Kind == "" {
				t.Fatalf("Inspect(%q): empty kind", sql)
			}
		}
	})
}

// FuzzSplitMatchesGrammar is a differential test: for every text the
// grammar accepts, the lexical splitter (Split) must find the same
// statements, with the same texts, as libpg_query does.
func FuzzSplitMatchesGrammar(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, sql string) {
		facts, err := inspect(sql)
		if err != nil {
			return // only texts the grammar accepts are compared
		}
		var texts []string
		for _, st := range facts.Statements {
			texts = append(texts, st.Text)
		}
		split := Split(sql)
		if len(split) != len(texts) {
			t.Fatalf("statement count differs for %q:\n Split:      %q\n libpg_query: %q", sql, split, texts)
		}
		for i := range split {
			if split[i] != texts[i] {
				t.Fatalf("statement %d differs for %q:\n Split:      %q\n libpg_query: %q", i, sql, split[i], texts[i])
			}
		}
	})
}
