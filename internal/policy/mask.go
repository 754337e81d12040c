package policy

import (
	"path"
	"slices"
	"strings"
)

// MaskPlan says which result values to mask. The zero value masks nothing
// (Derived and Predicates are then irrelevant).
type MaskPlan struct {
	// Columns are column rules in the order policies list them (merged
	// plans: one rule per distinct pattern, with the strictest method).
	Columns []ColumnRule
	// Entities are the entity kinds to look for in text values
	// ("credit_card", "email", …; see the Entities variable), sorted.
	Entities []string
	// Derived says what to do with result fields computed from a masked
	// column (expressions, casts, row_to_json, …): "mask" the field
	// entirely or "deny" the statement. Default "deny".
	Derived string
	// Predicates says whether masked columns may be used in WHERE, JOIN,
	// ORDER BY and GROUP BY (where they leak by binary search): "deny"
	// the statement or "allow" it. Default "deny".
	Predicates string
}

// ColumnRule masks the columns a pattern names.
//
// Pattern is "schema.table.column", "table.column" or "column"; each part
// may be a glob (path.Match syntax: *, ?, [a-z]). Missing leading parts
// match anything, so "email" and "*.email" and "*.*.email" are the same.
// Matching is case-insensitive: masking too much is safer than missing a
// quoted mixed-case identifier.
type ColumnRule struct {
	Pattern string // lower case
	Method  string // one of Methods
}

// Methods are the masking methods, strictest first (merging keeps the
// strictest): null hides even whether a value exists, redact hides the
// value, hash keeps equality (joins still work), email-domain and last4
// reveal part of the value.
var Methods = []string{"null", "redact", "hash", "email-domain", "last4"}

// Entities are the entity kinds the masking layer can detect in text.
var Entities = []string{"credit_card", "email", "phone", "us_ssn", "iban", "ipv4", "ipv6", "jwt", "secret"}

// Values for MaskPlan.Derived and MaskPlan.Predicates.
const (
	DerivedMask     = "mask"
	DerivedDeny     = "deny"
	PredicatesAllow = "allow"
	PredicatesDeny  = "deny"
)

func methodRank(m string) int {
	i := slices.Index(Methods, m)
	if i < 0 {
		return 0 // unknown methods cannot reach a compiled Set
	}
	return len(Methods) - i
}

// Empty reports whether the plan masks nothing.
func (m *MaskPlan) Empty() bool {
	return len(m.Columns) == 0 && len(m.Entities) == 0
}

// MethodFor returns the masking method for one result column (its schema,
// table and column name as the catalog has them) and whether it is masked.
// When several patterns match, the strictest method wins.
func (m *MaskPlan) MethodFor(schema, table, column string) (string, bool) {
	if len(m.Columns) == 0 {
		return "", false
	}
	parts := [3]string{strings.ToLower(schema), strings.ToLower(table), strings.ToLower(column)}
	best := ""
	for _, c := range m.Columns {
		if matchColumn(c.Pattern, parts) && methodRank(c.Method) > methodRank(best) {
			best = c.Method
		}
	}
	return best, best != ""
}

// matchColumn matches a validated pattern against schema, table, column,
// aligning the pattern's parts to the right.
func matchColumn(pattern string, parts [3]string) bool {
	return matchRight(pattern, parts[:])
}

// TableMatches reports whether a column pattern could name a column of
// schema.table (both lower case): its parts before the column part match
// them, right-aligned; a pattern naming only a column matches every table.
func TableMatches(pattern, schema, table string) bool {
	i := strings.LastIndexByte(pattern, '.')
	if i < 0 {
		return true
	}
	return matchRight(pattern[:i], []string{schema, table})
}

// matchRight matches the dot-separated parts of pattern against the last
// parts of names ("*" matches anything). It walks the pattern in place (no
// strings.Split): it runs for every column reference of every statement
// while masking applies.
func matchRight(pattern string, names []string) bool {
	n := strings.Count(pattern, ".") + 1
	if n > len(names) {
		return false
	}
	rest := pattern
	for _, name := range names[len(names)-n:] {
		p, r, _ := strings.Cut(rest, ".")
		rest = r
		if p != "*" && !MatchGlob(p, name) {
			return false
		}
	}
	return true
}

// MatchGlob is path.Match(pattern, name) for one part of a column pattern,
// with a bad pattern matching nothing. A part without glob syntax (the
// usual case) is compared directly: path.Match would compare it byte by
// byte too, and cannot fail on it.
func MatchGlob(pattern, name string) bool {
	if !strings.ContainsAny(pattern, `*?[\`) {
		return pattern == name
	}
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// validColumnPattern reports whether a pattern has 1-3 non-empty parts,
// each a valid glob.
func validColumnPattern(p string) bool {
	pp := strings.Split(p, ".")
	if len(pp) > 3 {
		return false
	}
	for _, s := range pp {
		if s == "" {
			return false
		}
		if _, err := path.Match(s, ""); err != nil {
			return false
		}
	}
	return true
}

// mergePlans unions the plans of several applying policies: every column
// rule (the strictest method per pattern), every entity, and the stricter
// Derived and Predicates settings.
func mergePlans(plans []*MaskPlan) MaskPlan {
	out := MaskPlan{Derived: DerivedMask, Predicates: PredicatesAllow}
	idx := map[string]int{}
	for _, p := range plans {
		for _, c := range p.Columns {
			if i, ok := idx[c.Pattern]; ok {
				if methodRank(c.Method) > methodRank(out.Columns[i].Method) {
					out.Columns[i].Method = c.Method
				}
				continue
			}
			idx[c.Pattern] = len(out.Columns)
			out.Columns = append(out.Columns, c)
		}
		for _, e := range p.Entities {
			if !slices.Contains(out.Entities, e) {
				out.Entities = append(out.Entities, e)
			}
		}
		if p.Derived != DerivedMask {
			out.Derived = DerivedDeny
		}
		if p.Predicates != PredicatesAllow {
			out.Predicates = PredicatesDeny
		}
	}
	slices.Sort(out.Entities)
	return out
}
