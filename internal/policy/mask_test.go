package policy

import (
	"path"
	"strings"
	"testing"
)

// matchColumnRef is matchColumn as a split of the pattern, which the
// in-place walk must equal.
func matchColumnRef(pattern string, parts [3]string) bool {
	pp := strings.Split(pattern, ".")
	if len(pp) > 3 {
		return false
	}
	off := 3 - len(pp)
	for i, p := range pp {
		if p == "*" {
			continue
		}
		ok, err := path.Match(p, parts[off+i])
		if err != nil || !ok {
			return false
		}
	}
	return true
}

func TestMatchColumnEquivalent(t *testing.T) {
	patterns := []string{"", ".", "..", "...", "email", "*.email", "*.*.email", "customers.card_number",
		"public.customers.card_number", "s*.c?stomers.e[a-z]ail", "a.b.c.d", "email.", ".email", "*", "*.*", "[", "x.[.y",
		"e]mail", "a/b", `x\\y`, `x\y`, "*.a/*", "t.?mail", "\xe9mail"}
	names := [][3]string{{"public", "customers", "email"}, {"public", "customers", "card_number"},
		{"sales", "customers", "email"}, {"*", "customers", "email"}, {"*", "*", "email"}, {"", "", ""},
		{"public", "", "email"}, {"a", "b", "c"},
		{"s", "t", "e]mail"}, {"s", "a", "a/b"}, {"s", "x", "xy"}, {"s", "t", `x\y`}, {"s", "t", "\xe9mail"}}
	for _, p := range patterns {
		for _, n := range names {
			if got, want := matchColumn(p, n), matchColumnRef(p, n); got != want {
				t.Errorf("matchColumn(%q, %q) = %v, want %v", p, n, got, want)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { matchColumn("*.customers.e[a-z]ail", [3]string{"public", "customers", "email"}) }); n != 0 {
		t.Errorf("matchColumn allocates %v times", n)
	}
}

// TestMatchGlobExhaustive compares MatchGlob with path.Match on every short
// pattern and name over glob syntax and plain characters.
func TestMatchGlobExhaustive(t *testing.T) {
	all := func(alphabet string, maxLen int) []string {
		out := []string{""}
		prev := []string{""}
		for range maxLen {
			var next []string
			for _, p := range prev {
				for _, c := range alphabet {
					next = append(next, p+string(c))
				}
			}
			out = append(out, next...)
			prev = next
		}
		return out
	}
	names := all(`ab/]\-`, 3)
	for _, p := range all(`a*?[]\-/`, 4) {
		for _, n := range names {
			ok, err := path.Match(p, n)
			if want := err == nil && ok; MatchGlob(p, n) != want {
				t.Fatalf("MatchGlob(%q, %q) = %v, path.Match says %v, %v", p, n, !want, ok, err)
			}
		}
	}
}
