package sqlinspect

import (
	"reflect"
	"strings"

	pgq "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A shape is the normalized form of a text (normalize.go): facts found by
// shape are served for every text of that shape, so the cache must be sure
// that no literal value of the shape changes them. The facts cache is a
// security boundary — a wrong hit is a policy bypass — so a shape is only
// served when the text it was learnt from passes every check below;
// otherwise the shape is remembered as exact-only and its texts are parsed.
//
// Why facts are then the same for every text T' of the shape as for the
// text T they were learnt from:
//
//  1. Same tokens. T and T' differ only inside candidate literals. checkShape
//     requires a constant node (A_Const) at each literal's start in T's
//     tree, so PostgreSQL's lexer starts a token there. The bytes before
//     the first literal are identical, so the lexer reaches it in the same
//     state; a token beginning with a quote or a digit that the class rules
//     admit (normalize.go) ends where the normalizer says in both texts and
//     has the same token type (the class is the type: ICONST only when the
//     value fits int32, as the lexer decides). By induction every token of
//     T' has the type of T's token in the same place; only constant values
//     differ. (A '…' string the lexer continues across a newline into the
//     next string has no A_Const at the second part: exact-only.)
//  2. Same tree. The grammar's derivation depends on token types only. Its
//     actions read the values of constants in a few places (float(p)
//     precision, ALTER … SET STATISTICS column numbers, UESCAPE), none of
//     which leaves an A_Const at the literal's place, so those shapes are
//     exact-only. A literal that becomes a name (PREPARE TRANSACTION 'x',
//     COPY … TO 'file', NOTIFY payloads, EXPLAIN options) leaves no A_Const
//     either. Negation folds a number into the constant and reports the
//     '-' as its place, which is accepted when the '-' directly precedes it.
//  3. Same facts. The walker never reads a constant's value except where
//     ORDER BY / GROUP BY / DISTINCT ON name an output column by position
//     and in options (DefElem); constants in those places make the shape
//     exact-only. Statement kinds are limited to those whose facts come
//     from the tree alone (shapeKinds), Name included.
//  4. Same text. Statement.Text is cut from each text's own bytes at the
//     statement boundaries learnt from T, mapped through the literal spans:
//     semicolons and statement edges are never inside a literal.
//  5. Errors are never served by shape: a text whose parse fails is cached
//     by its exact text only.
//
// As a last guard against a gap in that argument, checkShape also parses a
// variant of T with every literal changed and requires the facts served for
// it by shape to equal its own.

// shapeKinds are the statement kinds whose facts may be served by shape.
// Others (DDL, COPY, transaction control, LISTEN/NOTIFY, PREPARE, EXECUTE,
// SET ROLE, …) are rare with changing literals, and several take names or
// file paths from string constants.
var shapeKinds = map[string]bool{
	"select": true, "insert": true, "update": true, "delete": true, "merge": true,
	"set": true, "explain": true, "declare_cursor": true,
}

// shape is a second-level cache entry: the facts of every text of a shape.
// It has three states: seen once (neither field set), exact-only, or
// serving facts.
type shape struct {
	// exactOnly marks a shape whose facts may depend on its literals: its
	// texts are parsed (and cached by exact text).
	exactOnly bool
	facts     *Facts // nil unless the shape serves
	// bounds are the statements' byte ranges in the normalized key.
	bounds [][2]int
}

// learnShape builds the shape entry of a text from its parse: sql has the
// literal spans given, and tree, facts and bounds are its parse results.
func learnShape(sql string, spans []litSpan, tree *pgq.ParseResult, f *Facts, bounds [][2]int) *shape {
	if !checkShape(sql, spans, tree, f) {
		return &shape{exactOnly: true}
	}
	sh := &shape{facts: f, bounds: make([][2]int, len(bounds))}
	for i, b := range bounds {
		sh.bounds[i] = [2]int{normOffset(b[0], spans), normOffset(b[1], spans)}
	}
	if !perturbedAgrees(sql, spans, sh) {
		return &shape{exactOnly: true}
	}
	return sh
}

// factsFor returns the shape's facts for a text of the shape with the given
// literal spans: the shared statement facts with each Text cut from sql.
func (sh *shape) factsFor(sql string, spans []litSpan) *Facts {
	var out *Facts
	if len(sh.facts.Statements) == 1 {
		// One allocation for the common single statement.
		one := &struct {
			f  Facts
			st [1]Statement
		}{}
		one.f.Statements = one.st[:]
		out = &one.f
	} else {
		out = &Facts{Statements: make([]Statement, len(sh.facts.Statements))}
	}
	copy(out.Statements, sh.facts.Statements)
	for i, b := range sh.bounds {
		start, end := origOffset(b[0], spans), origOffset(b[1], spans)
		out.Statements[i].Text = strings.TrimSpace(sql[start:end])
	}
	return out
}

// checkShape reports whether the facts learnt from sql hold for every text
// of its shape (steps 1–3 above).
func checkShape(sql string, spans []litSpan, tree *pgq.ParseResult, f *Facts) bool {
	for i := range f.Statements {
		if !shapeKinds[f.Statements[i].Kind] {
			return false
		}
	}
	consts := constScan{at: map[int]bool{}}
	for _, raw := range tree.GetStmts() {
		consts.walk(raw.ProtoReflect(), false)
	}
	for _, s := range spans {
		loc := s.start
		if !consts.at[loc] {
			// A negated number is reported at its '-'.
			j := s.start - 1
			for j >= 0 && isSpace(sql[j]) {
				j--
			}
			if s.class == litStr || j < 0 || sql[j] != '-' || !consts.at[j] {
				return false
			}
			loc = j
		}
		if consts.blocked[loc] {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// constScan collects the places of the constants in a parse tree, and of
// those whose value the walker reads (blocked).
type constScan struct {
	at      map[int]bool
	blocked map[int]bool
}

func (c *constScan) block(loc int) {
	if c.blocked == nil {
		c.blocked = map[int]bool{}
	}
	c.blocked[loc] = true
}

var (
	aConstDesc   = (&pgq.A_Const{}).ProtoReflect().Descriptor()
	sortByDesc   = (&pgq.SortBy{}).ProtoReflect().Descriptor()
	defElemDesc  = (&pgq.DefElem{}).ProtoReflect().Descriptor()
	selectDesc   = (&pgq.SelectStmt{}).ProtoReflect().Descriptor()
	groupSetDesc = (&pgq.GroupingSet{}).ProtoReflect().Descriptor()
)

// walk visits every message under m; blocked marks a subtree whose
// constants' values are read.
func (c *constScan) walk(m protoreflect.Message, blocked bool) {
	switch m.Descriptor() {
	case aConstDesc:
		loc := int(m.Interface().(*pgq.A_Const).GetLocation())
		c.at[loc] = true
		if blocked {
			c.block(loc)
		}
		return
	case sortByDesc:
		// ORDER BY 2 names the second output column (outputRefs), in any
		// ORDER BY: block them all.
		if k := m.Interface().(*pgq.SortBy).GetNode().GetAConst(); k != nil {
			c.block(int(k.GetLocation()))
		}
	case defElemDesc, groupSetDesc:
		blocked = true
	case selectDesc:
		s := m.Interface().(*pgq.SelectStmt)
		for _, n := range append(s.GetGroupClause(), s.GetDistinctClause()...) {
			if k := n.GetAConst(); k != nil {
				c.block(int(k.GetLocation()))
			}
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				c.walk(l.Get(i).Message(), blocked)
			}
			return true
		}
		if !fd.IsMap() {
			c.walk(v.Message(), blocked)
		}
		return true
	})
}

// perturbedAgrees parses sql with every literal changed (to a value of the
// same class) and reports whether its facts are the ones the shape serves.
func perturbedAgrees(sql string, spans []litSpan, sh *shape) bool {
	var b strings.Builder
	last := 0
	for _, s := range spans {
		b.WriteString(sql[last:s.start])
		b.WriteString(perturb(sql[s.start:s.end], s.class))
		last = s.end
	}
	b.WriteString(sql[last:])
	alt := b.String()
	altKey, altSpans, ok := normalize(alt, nil, nil)
	origKey, _, _ := normalize(sql, nil, nil)
	if !ok || string(altKey) != string(origKey) {
		return false
	}
	tree, err := parse(alt)
	if err != nil {
		return false
	}
	want, _ := treeFacts(alt, tree)
	return reflect.DeepEqual(want, sh.factsFor(alt, altSpans))
}

// perturb returns another literal of the class, of another length so that
// statement boundaries move.
func perturb(lit string, class byte) string {
	var alts []string
	switch class {
	case litInt:
		alts = []string{"73", "4"}
	case litNum:
		alts = []string{"9876543210.5", "3.25"}
	default:
		alts = []string{"'zq''é'", "'y'"}
	}
	if lit == alts[0] {
		return alts[1]
	}
	return alts[0]
}
