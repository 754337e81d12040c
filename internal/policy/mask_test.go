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
		"public.customers.card_number", "s*.c?stomers.e[a-z]ail", "a.b.c.d", "email.", ".email", "*", "*.*", "[", "x.[.y"}
	names := [][3]string{{"public", "customers", "email"}, {"public", "customers", "card_number"},
		{"sales", "customers", "email"}, {"*", "customers", "email"}, {"*", "*", "email"}, {"", "", ""},
		{"public", "", "email"}, {"a", "b", "c"}}
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
