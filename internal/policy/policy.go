// Package policy decides what a caller may do through gatehouse. Policies
// are written in YAML (under `policies:` in gatehouse.yaml or in a separate
// policies file); each names the connections and principals it applies to
// and a list of rules whose conditions are CEL expressions over the
// statement, the principal, the connection, the session and the action.
//
// Conditions are compiled once by Parse; Set.Evaluate is pure (no I/O, no
// clock — the caller puts the time in the Input), allocation-light and safe
// for concurrent use, so it runs on every statement. Reloadable swaps a new
// Set in atomically so a reloaded policies file applies to live sessions
// from their next statement. docs/policy.md describes the model for users.
package policy

import (
	"fmt"
	"time"

	"cel.dev/cel-go/cel"
)

// Verdict is the outcome class of a Decision. The zero value is Deny so a
// forgotten Decision fails closed.
type Verdict int

const (
	Deny     Verdict = iota // refuse the action
	Allow                   // forward the action
	Review                  // hold the action for a human's approval
	NoPolicy                // no policy applies; the connection's access list decides
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Review:
		return "review"
	case NoPolicy:
		return "no_policy"
	}
	return "deny"
}

// severity orders verdicts for combining policies: deny wins over review
// wins over allow.
func (v Verdict) severity() int {
	switch v {
	case Deny:
		return 3
	case Review:
		return 2
	case Allow:
		return 1
	}
	return 0
}

// Decision is what the policies say about one Input.
type Decision struct {
	Verdict Verdict
	Policy  string // policy that decided; "" for NoPolicy
	Rule    string // "policy/rule-N", the rule's own name, or "policy/default"
	// Message is one sentence for the client: the rule's message, or a
	// generated one naming the condition that matched.
	Message string
	// Approvers are the principal selectors that may approve a Review
	// (shared with the compiled Set: do not modify); nil = the gateway's
	// default approvers.
	Approvers []string
	// Timeout is how long a Review may wait; 0 = the gateway's default.
	Timeout time.Duration
	// MinApprovals is how many distinct approvers a Review needs (0 = 1).
	MinApprovals int
	// Remember lets the same principal repeat the approved statement on the
	// same connection without a new review for this long; 0 = never.
	Remember time.Duration
	// Mask is the merged masking plan of every policy that applied
	// (whatever their verdicts); the zero MaskPlan masks nothing.
	Mask MaskPlan
	// Errors lists conditions that failed to evaluate, as "rule: error"
	// (deny/review conditions that fail count as matching, allow
	// conditions as not matching). Worth auditing: they are policy bugs.
	Errors []string
}

// Applied reports whether any policy applied to the input.
func (d Decision) Applied() bool { return d.Verdict != NoPolicy }

// Set is a compiled, immutable list of policies. The zero Set and a nil
// *Set hold no policies.
type Set struct {
	policies []*compiledPolicy
}

// Len is the number of policies in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.policies)
}

// ReadsRelations reports whether any decision of the set may depend on the
// tables and columns behind the views a statement names: a rule condition
// reads the statement's tables or columns, or a policy masks (masking
// follows view columns to the base columns they carry). When it is false
// (e.g. a policy that allows everything and masks nothing) the checkpoint
// need not ask the target's catalog about views at all: the decision is the
// same, and a catalog that cannot be read (a lock, a view definition the
// grammar cannot re-read) cannot refuse a statement no policy looks into.
func (s *Set) ReadsRelations() bool {
	if s == nil {
		return false
	}
	for _, p := range s.policies {
		if p.hasMask {
			return true
		}
		for i := range p.rules {
			if p.rules[i].readsRelations {
				return true
			}
		}
	}
	return false
}

// Names lists the policy names in evaluation order.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.policies))
	for i, p := range s.policies {
		out[i] = p.name
	}
	return out
}

type compiledPolicy struct {
	file        string // for CheckConnections errors
	key         string // "policies[N]"
	connLines   []int  // line of each connection name
	name        string
	connections []string // "*" matches all
	principals  []string // access.Principal selectors
	rules       []compiledRule
	deflt       Verdict // Allow or Deny
	mask        MaskPlan
	hasMask     bool
}

type compiledRule struct {
	name    string // full rule name as reported
	verdict Verdict
	expr    string // condition source, for generated messages
	prg     cel.Program
	// readsRelations: the condition reads the tables or columns of the
	// statement, which seeing through views can change.
	readsRelations bool
	message        string
	approvers      []string
	timeout        time.Duration
	minApprovals   int
	remember       time.Duration
}

func (p *compiledPolicy) applies(in *Input) bool {
	return p.appliesToConnection(in.Connection.Name) && in.Principal.matches(p.principals)
}

func (p *compiledPolicy) appliesToConnection(name string) bool {
	for _, c := range p.connections {
		if c == "*" || c == name {
			return true
		}
	}
	return false
}

// Step is one entry of an explanation: what one policy or rule did.
type Step struct {
	Policy  string
	Rule    string // "" for the policy-level step
	Outcome string // "not applicable", "matched", "not matched", "error: …", "default deny", …
}

// Evaluate decides one input. See docs/policy.md for the combining rules.
func (s *Set) Evaluate(in *Input) Decision {
	return s.evaluate(in, nil)
}

// Explain decides like Evaluate and also returns the path taken, for
// `gatehouse policy explain` and tests.
func (s *Set) Explain(in *Input) (Decision, []Step) {
	var steps []Step
	d := s.evaluate(in, &steps)
	return d, steps
}

func (s *Set) evaluate(in *Input, trace *[]Step) Decision {
	if in == nil {
		return Decision{Verdict: Deny, Message: "nothing to decide (no input)"}
	}
	if s == nil || len(s.policies) == 0 {
		return Decision{Verdict: NoPolicy}
	}
	// tables_qualified is derived only when the caller did not supply it;
	// work on a copy so the caller's Input is never written.
	if in.Statement.TablesQualified == nil && in.Statement.Tables != nil {
		cp := *in
		cp.Statement.TablesQualified = QualifyTables(in.Statement.Tables)
		in = &cp
	}
	best := Decision{Verdict: NoPolicy}
	var plans []*MaskPlan
	var errs []string
	for _, p := range s.policies {
		if !p.applies(in) {
			if trace != nil {
				*trace = append(*trace, Step{Policy: p.name, Outcome: "not applicable"})
			}
			continue
		}
		d := p.decide(in, trace, &errs)
		if p.hasMask {
			plans = append(plans, &p.mask)
		}
		// Strictly greater: among equals the first policy in file order
		// is the one reported.
		if d.Verdict.severity() > best.Verdict.severity() {
			best = d
		}
	}
	best.Errors = errs
	switch len(plans) {
	case 0:
	case 1:
		best.Mask = *plans[0]
	default:
		best.Mask = mergePlans(plans)
	}
	return best
}

// decide runs one applying policy: its first matching rule, else its default.
func (p *compiledPolicy) decide(in *Input, trace *[]Step, errs *[]string) Decision {
	for i := range p.rules {
		r := &p.rules[i]
		matched, err := evalBool(r.prg, in)
		if err != nil {
			*errs = append(*errs, r.name+": "+err.Error())
			// Fail closed: a broken deny/review condition holds or
			// refuses; a broken allow condition allows nothing.
			matched = r.verdict != Allow
		}
		if trace != nil {
			out := "not matched"
			switch {
			case err != nil && matched:
				out = "error (counts as matched): " + err.Error()
			case err != nil:
				out = "error (counts as not matched): " + err.Error()
			case matched:
				out = "matched: " + r.verdict.String()
			}
			*trace = append(*trace, Step{Policy: p.name, Rule: r.name, Outcome: out})
		}
		if !matched {
			continue
		}
		d := Decision{Verdict: r.verdict, Policy: p.name, Rule: r.name, Message: r.message}
		if r.verdict == Review {
			d.Approvers, d.Timeout, d.MinApprovals, d.Remember = r.approvers, r.timeout, r.minApprovals, r.remember
		}
		if err != nil {
			d.Message = fmt.Sprintf("the condition of rule %s could not be evaluated (%v), so it counts as matching (fail closed)", r.name, err)
		} else if d.Message == "" {
			d.Message = r.defaultMessage()
		}
		return d
	}
	d := Decision{Verdict: p.deflt, Policy: p.name, Rule: p.name + "/default"}
	if p.deflt == Deny {
		d.Message = fmt.Sprintf("no rule of policy %q allows this (its default is deny)", p.name)
	}
	if trace != nil {
		*trace = append(*trace, Step{Policy: p.name, Rule: d.Rule, Outcome: "default " + p.deflt.String()})
	}
	return d
}

// defaultMessage names the condition that matched; callers put it after
// their own "denied by policy … rule …" prefix, so it does not repeat it.
func (r *compiledRule) defaultMessage() string {
	if r.verdict == Allow {
		return ""
	}
	return "the condition `" + r.expr + "` matched"
}
