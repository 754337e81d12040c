package policy

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// costLimit bounds the work a condition with a comprehension (all, exists,
// map, filter, …) may do at evaluation time: nested comprehensions over
// long lists are the one way a CEL expression does super-linear work.
// Exceeding the limit is an evaluation error, so it fails closed. Other
// conditions do work linear in the input (bounded by the message size the
// gateway accepts) and run without cost tracking, which costs ~5× the
// evaluation itself.
const costLimit = 100_000

// The CEL variables. Their types are the Go structs in input.go, exposed
// through cel-go's native types so a misspelled field (statement.kidn) is a
// compile error at load time, not a runtime surprise.
var (
	envOnce sync.Once
	envVal  *cel.Env
	envErr  error
)

// celEnv returns the shared CEL environment (building it costs ~1 ms, and
// a cel.Env is safe for concurrent use).
func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		envVal, envErr = cel.NewEnv(envOptions(true)...)
	})
	return envVal, envErr
}

// envOptions are the options of the CEL environment; shared adds
// lightFieldReads (tests build the environment without it to compare).
func envOptions(shared bool) []cel.EnvOption {
	opts := []cel.EnvOption{
		ext.NativeTypes(
			reflect.TypeFor[Statement](),
			reflect.TypeFor[Principal](),
			reflect.TypeFor[Actor](),
			reflect.TypeFor[Connection](),
			reflect.TypeFor[Session](),
			reflect.TypeFor[Action](),
			ext.ParseStructTags(true),
		),
	}
	if shared {
		opts = append(opts, lightFieldReads())
	}
	return append(opts,
		cel.Variable("statement", cel.ObjectType("policy.Statement")),
		cel.Variable("principal", cel.ObjectType("policy.Principal")),
		cel.Variable("connection", cel.ObjectType("policy.Connection")),
		cel.Variable("session", cel.ObjectType("policy.Session")),
		cel.Variable("action", cel.ObjectType("policy.Action")),
		// String helpers (lowerAscii, split, …) and
		// sets.contains/intersects/equivalent are what policies over
		// table and function lists need. ext.Lists is left out on
		// purpose: lists.range(n) allocates n elements.
		ext.Strings(),
		ext.Sets(),
	)
}

// lightFieldReads wraps the native type provider so that the commonest
// field reads of a Statement allocate nothing. cel-go builds a new value on
// every read of a field: a list around a slice field, a boxed string. Most
// statements leave most lists (functions, tables_written, …) nil, and
// rules read statement.kind more than anything else. So a nil list field
// reads as one list value built at load time (what the provider's own
// getter returns for a nil slice: an immutable empty list with the same
// adapter), and kind and object_kind as interned string values (kindValues).
// Conditions see exactly the values they would see without it.
func lightFieldReads() cel.EnvOption {
	return func(e *cel.Env) (*cel.Env, error) {
		return cel.CustomTypeProvider(&lightFieldProvider{Provider: e.CELTypeProvider()})(e)
	}
}

type lightFieldProvider struct {
	types.Provider
}

// statementLists reads the list fields of a Statement by their cel names.
var statementLists = map[string]func(*Statement) []string{
	"tables":           func(s *Statement) []string { return s.Tables },
	"tables_qualified": func(s *Statement) []string { return s.TablesQualified },
	"tables_written":   func(s *Statement) []string { return s.TablesWritten },
	"columns":          func(s *Statement) []string { return s.Columns },
	"functions":        func(s *Statement) []string { return s.Functions },
}

// kindFields read the string fields whose values come from a small fixed
// vocabulary (statement and object kinds): their CEL values are interned.
var kindFields = map[string]func(*Statement) string{
	"kind":        func(s *Statement) string { return s.Kind },
	"object_kind": func(s *Statement) string { return s.ObjectKind },
}

func (p *lightFieldProvider) FindStructFieldType(structType, fieldName string) (*types.FieldType, bool) {
	ft, ok := p.Provider.FindStructFieldType(structType, fieldName)
	if !ok || ft == nil || ft.GetFrom == nil || structType != "policy.Statement" {
		return ft, ok
	}
	get := ft.GetFrom
	if str := kindFields[fieldName]; str != nil {
		out := *ft
		out.GetFrom = func(obj any) (any, error) {
			if st, isStmt := obj.(*Statement); isStmt && st != nil {
				return kindValues.get(str(st)), nil
			}
			return get(obj)
		}
		return &out, true
	}
	list := statementLists[fieldName]
	if list == nil {
		return ft, ok
	}
	empty, err := get(&Statement{})
	if err != nil || empty == nil {
		return ft, ok
	}
	out := *ft
	out.GetFrom = func(obj any) (any, error) {
		if st, isStmt := obj.(*Statement); isStmt && st != nil && list(st) == nil {
			return empty, nil
		}
		return get(obj)
	}
	return &out, true
}

// kindValues interns the CEL values of statement kinds: cel-go boxes a
// string field into a new value on every read, and rules read
// statement.kind more than anything else.
var kindValues internTable

// internTable caches the CEL string values of a few strings in a fixed
// table of slots (no lock, bounded memory); a string whose slot holds
// another takes the slot over. The value is the same either way.
type internTable [256]atomic.Pointer[internEntry]

type internEntry struct {
	s string
	v any // types.String(s)
}

func (t *internTable) get(s string) any {
	h := uint(len(s))
	if len(s) > 0 {
		h = h*31 + uint(s[0])
		h = h*31 + uint(s[len(s)/2])
		h = h*31 + uint(s[len(s)-1])
	}
	slot := &t[h%uint(len(t))]
	if e := slot.Load(); e != nil && e.s == s {
		return e.v
	}
	if len(s) > 64 {
		return types.String(s) // not a kind: not worth a slot
	}
	s = strings.Clone(s) // the slot must not pin the caller's memory
	e := &internEntry{s: s, v: types.String(s)}
	slot.Store(e)
	return e.v
}

// compile type-checks one condition and plans it. The condition must be a
// bool expression.
// rel reports whether the condition reads what is behind views (see
// readsRelations).
func compile(expr string) (prg cel.Program, rel bool, iss *cel.Issues, err error) {
	env, err := celEnv()
	if err != nil {
		return nil, false, nil, fmt.Errorf("CEL environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, false, iss, nil
	}
	// dyn is accepted (a claim such as principal.claims.admin has no
	// static type); a non-bool at evaluation time is an error, which fails
	// closed.
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, false, nil, fmt.Errorf("condition must be a bool expression (got %s)", t)
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if hasComprehension(ast) {
		opts = append(opts, cel.CostLimit(costLimit))
	}
	prg, err = env.Program(ast, opts...)
	if err != nil {
		return nil, false, nil, err
	}
	return prg, readsRelations(ast), nil, nil
}

// viewFields are the statement facts that seeing through views changes:
// the checkpoint adds the tables and columns behind each view a statement
// names (internal/checkpoint/views.go). Kind, text, functions, writes …
// are the same either way.
var viewFields = map[string]bool{"tables": true, "tables_qualified": true, "tables_written": true, "columns": true}

// readsRelations reports whether a condition may decide differently once
// the views a statement names are expanded: it reads one of viewFields, or
// uses the statement as a whole (any use other than selecting a field
// known not to change), which is assumed to read them (fail closed).
func readsRelations(a *cel.Ast) bool {
	nav := celast.NavigateAST(a.NativeRep())
	for _, id := range celast.MatchDescendants(nav, celast.KindMatcher(celast.IdentKind)) {
		if id.AsIdent() != "statement" {
			continue
		}
		p, ok := id.Parent()
		if !ok || p.Kind() != celast.SelectKind {
			return true
		}
		if f := p.AsSelect().FieldName(); viewFields[f] || !statementField(f) {
			return true
		}
	}
	return false
}

// statementField reports whether f is a field of policy.Statement (its cel
// tag); an unknown name cannot type-check, but is treated as reading views.
func statementField(f string) bool {
	t := reflect.TypeFor[Statement]()
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("cel") == f {
			return true
		}
	}
	return false
}

func hasComprehension(a *cel.Ast) bool {
	nav := celast.NavigateAST(a.NativeRep())
	return len(celast.MatchDescendants(nav, celast.KindMatcher(celast.ComprehensionKind))) > 0
}

// activation exposes an Input to CEL without copying it: a conversion of
// the pointer, so evaluating allocates no activation.
type activation Input

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "statement":
		return &a.Statement, true
	case "principal":
		return &a.Principal, true
	case "connection":
		return &a.Connection, true
	case "session":
		return &a.Session, true
	case "action":
		return &a.Action, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// evalBool runs a compiled condition. ok is false when the condition could
// not be evaluated (err says why); callers then fail closed.
func evalBool(prg cel.Program, in *Input) (matched bool, err error) {
	out, _, err := prg.Eval((*activation)(in))
	if err != nil {
		return false, err
	}
	b, isBool := out.(types.Bool)
	if !isBool {
		return false, fmt.Errorf("condition gave %s, not a bool", out.Type())
	}
	return bool(b), nil
}
