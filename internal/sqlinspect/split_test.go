package sqlinspect

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ;; -- only a comment\n", nil},
		{"select 1", []string{"select 1"}},
		{"select 1; select 2;", []string{"select 1", "select 2"}},
		{"select ';'; select 2", []string{"select ';'", "select 2"}},
		{"select 'it''s;'; x", []string{"select 'it''s;'", "x"}},
		{`select E'a\';b'; x`, []string{`select E'a\';b'`, "x"}},
		{`select 'a\'; x`, []string{`select 'a\'`, "x"}},
		{`select "a;b" from t; x`, []string{`select "a;b" from t`, "x"}},
		{"do $$ begin perform 1; end $$; x", []string{"do $$ begin perform 1; end $$", "x"}},
		{"do $f$ a; $$ b; $f$; x", []string{"do $f$ a; $$ b; $f$", "x"}},
		{"select $1; select $2", []string{"select $1", "select $2"}},
		{"select 1 /* a; /* nested; */ b; */; x", []string{"select 1 /* a; /* nested; */ b; */", "x"}},
		{"select 1 -- c;\n; x", []string{"select 1 -- c;", "x"}},
		{"create function f() returns int language sql begin atomic select 1; select case when true then 2 end; end; select 3",
			[]string{"create function f() returns int language sql begin atomic select 1; select case when true then 2 end; end", "select 3"}},
		{"begin; commit", []string{"begin", "commit"}},
		{"create rule r as on insert to t do instead (insert into a values (1); insert into b values (2)); select 1",
			[]string{"create rule r as on insert to t do instead (insert into a values (1); insert into b values (2))", "select 1"}},
		{"select begin atomic from t; drop table x", []string{"select begin atomic from t", "drop table x"}},
		{"select * from begin atomic; drop table x", []string{"select * from begin atomic", "drop table x"}},
		{"select 'unterminated; x", []string{"select 'unterminated; x"}},
	}
	for _, c := range cases {
		if got := Split(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Split(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzSplit checks that splitting never panics, never invents text, and that
// each statement is a substring of the input.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"select 1; select 2", "do $$ x; $$", "E'\\';'", "/* /* */ ; */", "begin atomic ; end", "$a$;$b$;$a$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, st := range Split(s) {
			if st == "" || !strings.Contains(s, st) {
				t.Fatalf("Split(%q) produced %q", s, st)
			}
		}
	})
}

func BenchmarkSplit(b *testing.B) {
	q := "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"
	for b.Loop() {
		Split(q)
	}
}

func TestSplitAmbiguous(t *testing.T) {
	for sql, want := range map[string]bool{
		`select 'x\'' ; drop table probe; -- '`: true,
		`select 'C:\path\'`:                     false,
		`select E'a\'b'; select 1`:              false,
		`select 'a'; select 'b'`:                false,
	} {
		if got := SplitAmbiguous(sql); got != want {
			t.Errorf("SplitAmbiguous(%q) = %v, want %v", sql, got, want)
		}
	}
}

func TestPlainBackslash(t *testing.T) {
	for sql, want := range map[string]bool{
		`select 'C:\path'`:       true,
		`select E'a\'b'`:         false,
		`select $$a\b$$`:         false,
		`select "a\b" from t`:    false,
		`select 1 -- it's a \ x`: false,
	} {
		if got := PlainBackslash(sql); got != want {
			t.Errorf("PlainBackslash(%q) = %v, want %v", sql, got, want)
		}
	}
}
