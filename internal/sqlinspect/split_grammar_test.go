package sqlinspect

import (
	"slices"
	"testing"
)

// grammarTexts returns libpg_query's statement texts, or ok=false when it
// rejects the text.
func grammarTexts(sql string) ([]string, bool) {
	f, err := inspect(sql)
	if err != nil {
		return nil, false
	}
	var texts []string
	for _, s := range f.Statements {
		texts = append(texts, s.Text)
	}
	return texts, true
}

// TestSplitAgreesWithGrammar pins lexical corner cases on which Split and
// libpg_query must find the same statements.
func TestSplitAgreesWithGrammar(t *testing.T) {
	for _, q := range []string{
		"select 1 as begin, 2 atomic; select 3",
		"create function f() returns int language sql begin atomic select case when true then 1 end; end; select 2",
		`create function f() returns int language sql begin atomic select 1 as "end"; end; select 2`,
		"create procedure p() language sql begin atomic select 1; end; call p()",
		"select x$a$; select $a$;$a$",
		"select e'\\\\'; select 2",
		"select 1 /*/ ; */; select 2",
		"select 1 +/* ; */ 2; select 3",
		"select $_$;$_$; select 2",
		"select n'a\\'; select 2",
		"select b'1'; select x'f'",
	} {
		texts, ok := grammarTexts(q)
		if !ok {
			t.Errorf("grammar rejects %q", q)
			continue
		}
		if sp := Split(q); !slices.Equal(sp, texts) {
			t.Errorf("%q:\n Split:       %q\n libpg_query: %q", q, sp, texts)
		}
	}
}

// TestSplitKnownDisagreements lists texts the grammar accepts on which Split
// finds different statements. They are reported to the owner of split.go;
// each subtest skips while the disagreement stands and passes once fixed.
func TestSplitKnownDisagreements(t *testing.T) {
	for _, q := range []string{
		// BEGIN and ATOMIC are bare column labels / aliases here, not the
		// start of a SQL-standard function body: Split waits for an END
		// that never comes and merges the DROP into the SELECT.
		"select begin atomic from t; drop table x",
		"select * from begin atomic; drop table x",
	} {
		t.Run("", func(t *testing.T) {
			texts, ok := grammarTexts(q)
			if !ok {
				t.Fatalf("grammar rejects %q", q)
			}
			if sp := Split(q); !slices.Equal(sp, texts) {
				t.Skipf("known: %q\n Split:       %q\n libpg_query: %q", q, sp, texts)
			}
		})
	}
}
