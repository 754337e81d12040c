package policy

import (
	"fmt"
	"reflect"
	"sync"

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
		envVal, envErr = cel.NewEnv(
			ext.NativeTypes(
				reflect.TypeFor[Statement](),
				reflect.TypeFor[Principal](),
				reflect.TypeFor[Actor](),
				reflect.TypeFor[Connection](),
				reflect.TypeFor[Session](),
				reflect.TypeFor[Action](),
				ext.ParseStructTags(true),
			),
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
	})
	return envVal, envErr
}

// compile type-checks one condition and plans it. The condition must be a
// bool expression.
func compile(expr string) (cel.Program, *cel.Issues, error) {
	env, err := celEnv()
	if err != nil {
		return nil, nil, fmt.Errorf("CEL environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss, nil
	}
	// dyn is accepted (a claim such as principal.claims.admin has no
	// static type); a non-bool at evaluation time is an error, which fails
	// closed.
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, nil, fmt.Errorf("condition must be a bool expression (got %s)", t)
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if hasComprehension(ast) {
		opts = append(opts, cel.CostLimit(costLimit))
	}
	prg, err := env.Program(ast, opts...)
	if err != nil {
		return nil, nil, err
	}
	return prg, nil, nil
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
