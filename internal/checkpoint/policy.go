package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/policy"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// inputPool recycles the policy inputs of decidePolicy.
var inputPool = sync.Pool{New: func() any { return new(policy.Input) }}

// Inspector turns SQL text into statement facts; sqlinspect.Inspect in
// production.
type Inspector func(sql string) (*sqlinspect.Facts, error)

// decidePolicy applies the statement policies to an action the access list
// already allows. With no policies (or none applying) the action is allowed.
func (c *Checkpoint) decidePolicy(ctx context.Context, a *access.Action, cat engine.Catalog) access.Decision {
	set := c.policies.Load()
	if set == nil || set.Len() == 0 {
		return access.Decision{Verdict: access.Allow}
	}
	now := time.Now() // session.time: when the action arrived
	// Most actions carry one statement: these back the lists without an
	// allocation (they do not outlive the decision).
	var stmtBuf [2]policy.Statement
	var rawBuf [2]*sqlinspect.Statement
	stmts, raws := stmtBuf[:0], rawBuf[:0]
	var unknown []string
	if a.Kind == access.ActionStatement {
		if !set.ReadsRelations() {
			// No rule reads tables or columns and nothing is masked: what
			// is behind a view cannot change the decision, so the catalog
			// is not asked (a view it cannot read must not refuse, say,
			// everything under an allow-all policy).
			cat = nil
		}
		var err error
		if stmts, raws, unknown, err = c.appendStatements(ctx, a, cat, stmts, raws); err != nil {
			var ce *catalogError
			if errors.As(err, &ce) {
				return access.Decision{Verdict: access.Deny, Rule: "gatehouse/catalog", Reason: ce.Error()}
			}
			// Fail closed: what cannot be parsed cannot be decided. The
			// client gets the server's own syntax error (PostgreSQL would
			// have refused it too), with its position.
			d := access.Decision{Verdict: access.Deny, Rule: "gatehouse/parse", Code: "42601", Reason: err.Error()}
			var pe *sqlinspect.ParseError
			if errors.As(err, &pe) {
				d.Position = pe.Cursor
			}
			return d
		}
	}
	if len(stmts) == 0 {
		stmts = append(stmts, policy.Statement{Kind: emptyKind(a), Text: a.Statement})
	}
	// The input is only read while the loop below evaluates (CEL keeps no
	// reference to it once Eval returns), so it is pooled.
	in := inputPool.Get().(*policy.Input)
	policy.FillInput(in, a, now)
	// Every statement the action carries (and those it wraps: EXPLAIN,
	// PREPARE, EXECUTE of a prepared one) is evaluated; the worst verdict wins.
	var worst policy.Decision
	worst.Verdict = policy.NoPolicy
	var mask policy.MaskPlan
	for i := range stmts {
		in.Statement = stmts[i]
		d := set.Evaluate(in)
		if i == 0 || severity(d.Verdict) > severity(worst.Verdict) {
			worst = d
		}
		if !d.Mask.Empty() {
			mask = d.Mask // plans are per session, identical for every statement
		}
	}
	*in = policy.Input{} // hold no session data in the pool
	inputPool.Put(in)
	var recordText string
	if carriesMasked(mask, raws, unknown) {
		recordText = redactedText(a.Statement)
	}
	if worst.Verdict == policy.Review && onlyPrepare(raws) {
		// PREPARE runs nothing: the statement is reviewed when EXECUTE
		// runs it (EXECUTE is decided as the prepared statement).
		worst.Verdict = policy.Allow
	}
	out := c.toAccess(worst)
	out.RecordText = recordText
	if out.Allowed() && a.Kind == access.ActionFunctionCall && !mask.Empty() {
		// A fast-path call's result carries no column metadata to mask by.
		return access.Decision{Verdict: access.Deny, Policy: worst.Policy, Rule: "gatehouse/masking", RecordText: recordText,
			Reason: "fast-path function calls cannot be masked, and masking applies to this session; call the function with SELECT instead"}
	}
	if out.Allowed() || out.Verdict == access.Hold {
		// A held statement gets its mask plan now: what masking would
		// refuse is refused before anyone is asked to approve it.
		c.maskDecision(&out, mask, raws)
	}
	if (out.Allowed() || out.Verdict == access.Hold) && len(mask.Columns) > 0 && cat != nil {
		if d, refused := userFunctions(ctx, cat, raws); refused {
			d.Policy, d.RecordText = out.Policy, recordText
			return d
		}
	}
	if (out.Allowed() || out.Verdict == access.Hold) && len(unknown) > 0 && len(mask.Columns) > 0 {
		// What it runs was not prepared through this session's gateway (or
		// not as far as the gateway knows): its masking checks cannot be
		// made. Fail closed.
		return access.Decision{Verdict: access.Deny, Policy: out.Policy, Rule: "gatehouse/masking", RecordText: recordText,
			Reason: fmt.Sprintf("gatehouse does not know what prepared statement %q runs, so it cannot check it against masking; PREPARE it again through gatehouse", unknown[0])}
	}
	return out
}

// onlyPrepare reports whether every top-level statement is a PREPARE.
func onlyPrepare(raws []*sqlinspect.Statement) bool {
	if len(raws) == 0 {
		return false
	}
	for _, st := range raws {
		if st.Kind != "prepare" && !isWrappedByPrepare(raws, st) {
			return false
		}
	}
	return true
}

// isWrappedByPrepare reports whether st is the statement some PREPARE in
// raws wraps (raws lists wrapped statements after their wrapper).
func isWrappedByPrepare(raws []*sqlinspect.Statement, st *sqlinspect.Statement) bool {
	for _, p := range raws {
		if p.Kind == "prepare" && p.Wraps == st {
			return true
		}
	}
	return false
}

func emptyKind(a *access.Action) string {
	if a.Kind == access.ActionStatement {
		return "empty"
	}
	return string(a.Kind)
}

func severity(v policy.Verdict) int {
	switch v {
	case policy.Deny:
		return 3
	case policy.Review:
		return 2
	case policy.Allow:
		return 1
	}
	return 0
}

// toAccess turns a policy decision into the engine's vocabulary. A review
// holds the action when approvals are enabled, and refuses it, saying so,
// when they are not.
func (c *Checkpoint) toAccess(d policy.Decision) access.Decision {
	switch d.Verdict {
	case policy.NoPolicy, policy.Allow:
		return access.Decision{Verdict: access.Allow, Policy: d.Policy, Rule: d.Rule}
	case policy.Review:
		if c.approvals == nil {
			return access.Decision{Verdict: access.Deny, Policy: d.Policy, Rule: d.Rule,
				Reason: fmt.Sprintf("policy %q rule %q %s; approvals are not enabled on this gateway, so the statement was refused",
					d.Policy, d.Rule, holdReason(d.Approvers, d.Message))}
		}
		return access.Decision{Verdict: access.Hold, Policy: d.Policy, Rule: d.Rule,
			Reason: fmt.Sprintf("policy %q rule %q %s", d.Policy, d.Rule, holdReason(d.Approvers, d.Message)),
			Review: &access.ReviewRule{Approvers: d.Approvers, MinApprovals: max(d.MinApprovals, 1),
				Timeout: d.Timeout, Remember: d.Remember, Message: d.Message}}
	}
	return access.Decision{Verdict: access.Deny, Policy: d.Policy, Rule: d.Rule,
		Reason: fmt.Sprintf("denied by policy %q rule %q: %s", d.Policy, d.Rule, d.Message)}
}

// statements returns the policy view of the statements in a.Statement,
// including wrapped ones and MERGE actions, seen through views when the
// session has a catalog, and follows SQL-level PREPARE/EXECUTE within the
// session so EXECUTE is decided — by the rules and by the masking checks —
// as the statement it runs (its raw facts are returned with the others).
// unknown lists the EXECUTEd names the gateway knows no statement for.
func (c *Checkpoint) statements(ctx context.Context, a *access.Action, cat engine.Catalog) (out []policy.Statement, raws []*sqlinspect.Statement, unknown []string, err error) {
	return c.appendStatements(ctx, a, cat, nil, nil)
}

// appendStatements is statements appending to out and raws (which the
// caller may back with its own arrays).
func (c *Checkpoint) appendStatements(ctx context.Context, a *access.Action, cat engine.Catalog, out []policy.Statement, raws []*sqlinspect.Statement) ([]policy.Statement, []*sqlinspect.Statement, []string, error) {
	var unknown []string
	facts, err := c.inspect(a.Statement)
	if err != nil {
		return nil, nil, nil, err
	}
	views, err := lookupViews(ctx, cat, facts)
	if err != nil {
		return nil, nil, nil, err
	}
	for i := range facts.Statements {
		st := expandViews(&facts.Statements[i], views)
		out = appendPolicy(out, st)
		raws = append(raws, st)
		for w := st.Wraps; w != nil; w = w.Wraps {
			out = appendPolicy(out, w)
			raws = append(raws, w)
		}
		switch st.Kind {
		case "prepare":
			c.prepared.prepare(a, st.Name, st.Wraps)
		case "deallocate":
			c.prepared.deallocate(a, st.Name)
		}
		// EXECUTE may be wrapped: EXPLAIN ANALYZE EXECUTE p, CREATE TABLE
		// … AS EXECUTE p.
		for w := st; w != nil; w = w.Wraps {
			if w.Kind != "execute" || a.Session == nil {
				continue
			}
			if p, r, ok := c.prepared.lookup(a.Session.ID, w.Name); ok {
				out = append(out, p...)
				raws = append(raws, r...)
			} else {
				unknown = append(unknown, w.Name)
			}
		}
	}
	return out, raws, unknown, nil
}

// appendPolicy appends the policy view of st and of its MERGE actions: a
// MERGE that deletes is decided as a DELETE too, so rules on UPDATE/DELETE
// (kind, has_where, tables_written) apply to it.
func appendPolicy(out []policy.Statement, st *sqlinspect.Statement) []policy.Statement {
	out = append(out, PolicyStatement(st))
	for i := range st.Actions {
		ps := PolicyStatement(&st.Actions[i])
		ps.Text = st.Text
		out = append(out, ps)
	}
	return out
}

// PolicyStatement maps inspected statement facts to the policy's input
// (functions by their last name part, so a schema prefix cannot evade a rule).
//
// It runs for every statement, so its lists share one backing array and
// the names it builds ("schema.table", "public.table", "table.column") one
// string: at most two allocations whatever the statement's size. Each list
// is capped at its length, so an append to one never writes another.
func PolicyStatement(st *sqlinspect.Statement) policy.Statement {
	ps := policy.Statement{Kind: st.Kind, ObjectKind: st.ObjectKind, HasWhere: st.HasWhere,
		Writes: st.Writes, Analyze: st.Analyze, Text: st.Text}
	nt, nc, nf := len(st.Tables), len(st.Columns), len(st.Functions)
	nw, size := 0, 0
	for _, t := range st.Tables {
		if t.Write {
			nw++
		}
		if t.Schema != "" {
			size += len(t.Schema) + 1 + len(t.Name)
		} else if pre := policy.SchemaPrefix(t.Name); pre != "" {
			size += len(pre) + len(t.Name)
		}
	}
	for _, col := range st.Columns {
		if col.Table != "" {
			size += len(col.Table) + 1 + len(columnPart(col))
		}
	}
	if nt+nc+nf == 0 {
		return ps
	}
	lists := make([]string, 2*nt+nw+nc+nf)
	var b strings.Builder
	b.Grow(size)
	// join writes a+sep+z to b and returns it as a string sharing b's bytes
	// (a Builder never changes bytes it has written).
	join := func(a, sep, z string) string {
		start := b.Len()
		b.WriteString(a)
		b.WriteString(sep)
		b.WriteString(z)
		return b.String()[start:]
	}
	take := func(n int) []string {
		if n == 0 {
			return nil
		}
		l := lists[:n:n]
		lists = lists[n:]
		return l
	}
	ps.Tables, ps.TablesQualified, ps.TablesWritten = take(nt), take(nt), take(nw)
	ps.Columns, ps.Functions = take(nc), take(nf)
	w := 0
	for i, t := range st.Tables {
		name := t.Name
		if t.Schema != "" {
			name = join(t.Schema, ".", t.Name)
		}
		ps.Tables[i] = name
		if pre := policy.SchemaPrefix(name); pre == "" {
			ps.TablesQualified[i] = name
		} else {
			ps.TablesQualified[i] = join(pre, "", name)
		}
		if t.Write {
			ps.TablesWritten[w] = name
			w++
		}
	}
	for i, col := range st.Columns {
		name := columnPart(col)
		if col.Table != "" {
			name = join(col.Table, ".", name)
		}
		ps.Columns[i] = name
	}
	for i, f := range st.Functions {
		if j := strings.LastIndexByte(f, '.'); j >= 0 {
			f = f[j+1:]
		}
		ps.Functions[i] = strings.ToLower(f)
	}
	return ps
}

// columnPart is a column reference's name in the policy view ("*" for a
// star).
func columnPart(col sqlinspect.Column) string {
	if col.Star {
		return "*"
	}
	return col.Name
}

// userFunctions refuses a statement that calls a function defined in the
// database while column masking applies: the function can read a masked
// column and return it in a result field with no source column (table OID
// 0), which neither column rules nor the derived-value checks can see. An
// unreadable catalog refuses too (fail closed).
func userFunctions(ctx context.Context, cat engine.Catalog, raws []*sqlinspect.Statement) (access.Decision, bool) {
	var names []string
	for _, st := range raws {
		for _, f := range st.Functions {
			if !slices.Contains(names, f) {
				names = append(names, f)
			}
		}
	}
	if len(names) == 0 {
		return access.Decision{}, false
	}
	user, err := cat.UserFunctions(ctx, names)
	if err != nil {
		return access.Decision{Verdict: access.Deny, Rule: "gatehouse/catalog",
			Reason: "gatehouse could not read the target's catalog to check the functions this statement calls against masking: " + err.Error()}, true
	}
	if len(user) == 0 {
		return access.Decision{}, false
	}
	return access.Decision{Verdict: access.Deny, Rule: "gatehouse/masking",
		Reason: fmt.Sprintf("function %s is defined in the database, not built in; it could return masked columns unmasked (its result carries no source column), and column masking applies to this session. Select the columns directly (they will be masked), or ask for a policy without column masking", user[0])}, true
}
