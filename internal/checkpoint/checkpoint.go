// Package checkpoint is the one place where a request is decided and
// recorded: every engine asks Check before forwarding an action and reports
// its outcome with Record. Policy evaluation, approval holds and the
// tamper-evident audit plug in here, so engines never change when they do.
//
// Today (foundation) the decision is the connection's access list, read
// fresh per action so a revoked access applies at the next statement.
package checkpoint

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/policy"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// AccessList returns the selectors currently allowed on a connection and
// whether the connection still exists.
type AccessList func(connection string) ([]string, bool)

// Checkpoint decides and records actions.
type Checkpoint struct {
	audit    *audit.Log
	access   AccessList
	metrics  *metrics.Metrics
	policies *policy.Reloadable // nil = no statement policies
	inspect  Inspector
	// accessVersion changes when any access list does (nil = never).
	accessVersion func() uint64
	prepared      preparedStatements
	// approvals holds review-rule actions for a human; nil = review rules
	// refuse.
	approvals *Approvals
	// Per-label metric children, resolved once: WithLabelValues hashes
	// its labels on every call, which the per-statement path can skip.
	children sync.Map // protocol+"/"+decision → *children
	// durable journals decisions before they run; nil = audit.durability
	// off.
	durable *durability
	// redact remembers which actions' text and parameters the audit must
	// record redacted (Decision.RecordText), for events recorded with a
	// decision made after the checkpoint's.
	redact redactions
	// masks caches the engine form of the masking plan (mask.go).
	masks maskCache
}

type children struct {
	statements prometheus.Counter
	duration   prometheus.Observer
}

func (c *Checkpoint) child(protocol string, v access.Verdict) *children {
	key := protocol + "/" + v.String()
	if ch, ok := c.children.Load(key); ok {
		return ch.(*children)
	}
	ch := &children{statements: c.metrics.Statements.WithLabelValues(protocol, v.String()),
		duration: c.metrics.StatementSeconds.WithLabelValues(protocol)}
	c.children.Store(key, ch)
	return ch
}

var (
	_ engine.Checkpoint  = (*Checkpoint)(nil)
	_ engine.Revalidator = (*Checkpoint)(nil)
)

// New returns a checkpoint. m may be nil.
func New(log *audit.Log, acl AccessList, m *metrics.Metrics) *Checkpoint {
	return &Checkpoint{audit: log, access: acl, metrics: m, inspect: sqlinspect.Inspect}
}

// WithPolicies makes the checkpoint decide statements by the policies held
// in r (which may be reloaded at any time), using inspect for statement facts
// (nil = sqlinspect.Inspect).
func (c *Checkpoint) WithPolicies(r *policy.Reloadable, inspect Inspector) *Checkpoint {
	c.policies = r
	if inspect != nil {
		c.inspect = inspect
	}
	return c
}

// Check decides a.
func (c *Checkpoint) Check(ctx context.Context, a *access.Action) (access.Decision, error) {
	return c.check(ctx, a, nil)
}

// check is Check with the session's catalog (nil = none).
func (c *Checkpoint) check(ctx context.Context, a *access.Action, cat engine.Catalog) (access.Decision, error) {
	start := time.Now()
	basis := c.basis(a)
	d := c.decide(ctx, a, cat)
	d.Basis = basis
	if c.metrics != nil {
		c.metrics.CheckSeconds.Observe(time.Since(start).Seconds())
		if !d.Allowed() {
			c.child(a.Session.Target.Type, d.Verdict).statements.Inc()
		}
	}
	c.redact.note(a, d.RecordText)
	if d.Verdict == access.Deny {
		c.prepared.settle(a, false) // a denied PREPARE/DEALLOCATE never runs
		// Denials are recorded now; allowed actions are recorded with their
		// outcome by Record, held ones by Hold and the review's events.
		c.audit.Append(c.statementEvent(a, d, nil))
		c.redact.done(a)
	}
	return d, nil
}

// basis is the state a decision about a is made in. It is read before
// deciding: a change while deciding leaves the decision on the older basis,
// so it is made again at its next use rather than trusted.
func (c *Checkpoint) basis(a *access.Action) access.Basis {
	var b access.Basis
	if c.policies != nil {
		b.Policies = c.policies.Load()
	}
	if c.accessVersion != nil {
		b.Access = c.accessVersion()
	}
	if c.approvals != nil && c.approvals.Grants != nil && a.Session != nil {
		b.Grants, b.Until = c.approvals.Grants.Snapshot(a.Session.Principal, a.Session.Target.Name)
	}
	return b
}

// Current reports whether d, made earlier by Check, still stands: the
// policies, access lists and grants it was made under are still in force
// and no grant the principal held has expired since.
func (c *Checkpoint) Current(d *access.Decision) bool {
	b := d.Basis
	if c.policies != nil && b.Policies != any(c.policies.Load()) {
		return false
	}
	if c.accessVersion != nil && b.Access != c.accessVersion() {
		return false
	}
	if c.approvals != nil && c.approvals.Grants != nil {
		idx, _ := c.approvals.Grants.Snapshot(nil, "")
		if b.Grants != idx {
			return false
		}
	}
	return b.Until.IsZero() || time.Now().Before(b.Until)
}

// WithAccessVersion lets decisions notice access-list changes: version
// must change whenever an access list does.
func (c *Checkpoint) WithAccessVersion(version func() uint64) *Checkpoint {
	c.accessVersion = version
	return c
}

// Decide is Check without side effects (no audit record, no metrics): what
// the checkpoint would decide for a. `gatehouse policy test|explain` use it
// offline, so their answers are the gateway's.
// Offline there is no catalog: views are not seen through.
func (c *Checkpoint) Decide(a *access.Action) access.Decision {
	return c.decide(context.Background(), a, nil)
}

func (c *Checkpoint) decide(ctx context.Context, a *access.Action, cat engine.Catalog) access.Decision {
	a = c.withGrants(a)
	s := a.Session
	sel, ok := c.access(s.Target.Name)
	if !ok {
		return access.Decision{Verdict: access.Deny,
			Reason: "connection " + s.Target.Name + " no longer exists; reconnect to a current connection"}
	}
	if !s.Principal.MatchesAny(sel) {
		return access.Decision{Verdict: access.Deny,
			Reason: "access to connection " + s.Target.Name + " was revoked for " + s.Principal.Subject + "; ask a gatehouse admin"}
	}
	if c.policies == nil {
		return access.Decision{Verdict: access.Allow}
	}
	return c.decidePolicy(ctx, a, cat)
}

// Record logs the outcome of an allowed action: Settle, then Emit.
func (c *Checkpoint) Record(a *access.Action, d access.Decision, o access.Outcome) {
	c.Settle(a, d, &o)
	c.Emit(a, d, o)
}

// Settle applies an outcome to the session state the session's next
// statements are decided against (the names an SQL PREPARE or DEALLOCATE
// left on the server). An engine settles an outcome before its client can
// see it, and may Emit it later: after relaying the reply, so counting it
// and building its audit event are not in the client's round trip.
func (c *Checkpoint) Settle(a *access.Action, d access.Decision, o *access.Outcome) {
	c.prepared.settle(a, d.Allowed() && o.Error == "")
}

// Emit counts a settled outcome in the metrics and appends its statement
// event to the audit log. Each outcome is emitted once, after its Settle.
func (c *Checkpoint) Emit(a *access.Action, d access.Decision, o access.Outcome) {
	if c.metrics != nil {
		ch := c.child(a.Session.Target.Type, d.Verdict)
		ch.statements.Inc()
		ch.duration.Observe(o.Duration.Seconds())
	}
	c.audit.Append(c.statementEvent(a, d, &o))
	c.redact.done(a)
}

// statementDetail is the Detail of a statement event.
type statementDetail struct {
	Kind       access.ActionKind `json:"kind"`
	Protocol   string            `json:"protocol,omitempty"`
	Prepared   string            `json:"prepared,omitempty"`
	DurationMS float64           `json:"duration_ms,omitempty"`
	Rows       *int64            `json:"rows,omitempty"`
	Command    string            `json:"command,omitempty"`
	Error      string            `json:"error,omitempty"`
	Policy     string            `json:"policy,omitempty"`
	Rule       string            `json:"rule,omitempty"`
	ReviewID   string            `json:"review_id,omitempty"`
	Approvers  []string          `json:"approvers,omitempty"`
	// The session recording (see recording.go); every value masked.
	Columns         []access.Column `json:"columns,omitempty"`
	Params          []string        `json:"params,omitempty"`
	Sample          [][]*string     `json:"sample,omitempty"`
	SampleTruncated bool            `json:"sample_truncated,omitempty"`
	Notices         []string        `json:"notices,omitempty"`
	// DecisionID is the journaled decision's id (audit.durability
	// journal): the same in the journal and here.
	DecisionID uint64 `json:"decision_id,omitempty,string"`
	// Outcome is set when the outcome is not known (a recovered decision).
	Outcome string `json:"outcome,omitempty"`
}

func (c *Checkpoint) statementEvent(a *access.Action, d access.Decision, o *access.Outcome) audit.Event {
	text, redact := c.recordText(a, d)
	s := a.Session
	det := &statementDetail{Kind: a.Kind, Protocol: a.Protocol, Prepared: a.Prepared, Policy: d.Policy, Rule: d.Rule,
		ReviewID: d.ReviewID, Approvers: d.Approvers, DecisionID: d.AuditID}
	if o != nil {
		det.DurationMS = float64(o.Duration.Microseconds()) / 1000
		if o.Rows >= 0 {
			rows := o.Rows
			det.Rows = &rows
		}
		det.Command, det.Error = o.Command, o.Error
		recordOutcome(det, o, redact)
	}
	e := audit.Event{
		Type:        audit.TypeStatement,
		SessionID:   s.ID,
		Connection:  s.Target.Name,
		Decision:    d.Verdict.String(),
		Reason:      d.Reason,
		Statement:   text,
		DetailValue: det,
		JournalID:   d.AuditID,
	}
	if s.Principal != nil {
		e.Issuer, e.Subject = s.Principal.Issuer, s.Principal.Subject
	}
	return e
}
