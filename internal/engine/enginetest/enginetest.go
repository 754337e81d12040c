// Package enginetest has test doubles for the engine seam: an Opener that
// accepts one token for one upstream, and a Checkpoint that records every
// action and can deny chosen statements. Engine tests use them with real
// upstream servers and real clients; the full gateway is tested end to end
// elsewhere.
package enginetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// Opener accepts Token for Target and opens sessions to Upstream.
type Opener struct {
	Token      string
	Target     string
	Upstream   engine.Upstream
	Checkpoint engine.Checkpoint

	mu     sync.Mutex
	Closed []error // Close errors, one per ended session
	Params []map[string]string
}

// Open implements engine.Opener.
func (o *Opener) Open(ctx context.Context, req engine.OpenRequest) (*engine.Opened, error) {
	if req.Token != o.Token {
		return nil, engine.Errorf(engine.CodeBadToken, "token rejected: signature does not verify")
	}
	if req.Target != o.Target {
		return nil, engine.Errorf(engine.CodeUnknownTarget, "connection %q does not exist", req.Target)
	}
	o.mu.Lock()
	o.Params = append(o.Params, req.Params)
	o.mu.Unlock()
	p := &access.Principal{Subject: "test-agent", Issuer: "test"}
	s := &access.Session{ID: fmt.Sprintf("s-%d", time.Now().UnixNano()), Principal: p,
		Target: access.Target{Name: req.Target, Type: req.Protocol}, ClientAddr: addr(req.ClientAddr), TLS: req.TLS}
	return &engine.Opened{Session: s, Upstream: o.Upstream, Checkpoint: o.Checkpoint, Close: func(err error) {
		o.mu.Lock()
		o.Closed = append(o.Closed, err)
		o.mu.Unlock()
	}}, nil
}

func addr(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Record is one recorded action.
type Record struct {
	Action   access.Action
	Decision access.Decision
	Outcome  *access.Outcome // nil for Check-time records (denials)
}

// Checkpoint allows everything except statements for which Deny returns a
// non-empty reason, and keeps every check and outcome.
type Checkpoint struct {
	Deny func(stmt string) string
	// Parse refuses text the SQL inspector cannot parse as the real
	// checkpoint does (rule gatehouse/parse, SQLSTATE 42601, position).
	Parse bool
	// Review holds the statements it returns true for; OnHold then gives
	// the human's decision (nil = approve), after the notice was sent.
	Review func(stmt string) bool
	OnHold func(ctx context.Context, a *access.Action, params []string) access.Decision
	// Mask is the mask plan of every allowed statement; nil = none.
	Mask *access.MaskPlan
	// CommitErr, when set, fails every Commit (the audit is unwritable).
	CommitErr error

	mu      sync.Mutex
	Commits int // Commit calls
	Emits   int // Emit calls (each after its outcome's Settle, which records it)
	Checked []access.Action
	Records []Record
}

// Check implements engine.Checkpoint.
func (c *Checkpoint) Check(ctx context.Context, a *access.Action) (access.Decision, error) {
	c.mu.Lock()
	c.Checked = append(c.Checked, *a)
	c.mu.Unlock()
	if c.Parse && a.Kind == access.ActionStatement {
		if _, err := sqlinspect.Inspect(a.Statement); err != nil {
			d := access.Decision{Verdict: access.Deny, Reason: err.Error(), Rule: "gatehouse/parse", Code: "42601"}
			var pe *sqlinspect.ParseError
			if errors.As(err, &pe) {
				d.Position = pe.Cursor
			}
			c.mu.Lock()
			c.Records = append(c.Records, Record{Action: *a, Decision: d})
			c.mu.Unlock()
			return d, nil
		}
	}
	if c.Deny != nil {
		if r := c.Deny(a.Statement); r != "" {
			d := access.Decision{Verdict: access.Deny, Reason: r, Policy: "test", Rule: "deny"}
			c.mu.Lock()
			c.Records = append(c.Records, Record{Action: *a, Decision: d})
			c.mu.Unlock()
			return d, nil
		}
	}
	if c.Review != nil && c.Review(a.Statement) {
		return access.Decision{Verdict: access.Hold, Policy: "test", Rule: "review",
			Review: &access.ReviewRule{Message: "test review"}}, nil
	}
	return access.Decision{Verdict: access.Allow, Mask: c.Mask}, nil
}

// Hold implements engine.Checkpoint: it notifies, then asks OnHold.
func (c *Checkpoint) Hold(ctx context.Context, a *access.Action, d access.Decision, hc access.HoldContext, notify func(string)) access.Decision {
	notify("gatehouse: statement held for approval, review rv_test")
	if c.OnHold == nil {
		return access.Decision{Verdict: access.Allow, ReviewID: "rv_test"}
	}
	out := c.OnHold(ctx, a, hc.Params)
	if !out.Allowed() {
		c.mu.Lock()
		c.Records = append(c.Records, Record{Action: *a, Decision: out})
		c.mu.Unlock()
	}
	return out
}

// Commit implements engine.Checkpoint: it counts commits and fails with
// CommitErr when set.
func (c *Checkpoint) Commit(a *access.Action, d *access.Decision) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Commits++
	d.AuditID = uint64(c.Commits)
	return c.CommitErr
}

// Record implements engine.Checkpoint.
func (c *Checkpoint) Record(a *access.Action, d access.Decision, o access.Outcome) {
	c.Settle(a, d, &o)
	c.Emit(a, d, o)
}

// Settle implements engine.Checkpoint. The fake keeps the record here, not
// at Emit: an engine settles before its client sees the reply, so a test
// finds the record as soon as its client has the answer.
func (c *Checkpoint) Settle(a *access.Action, d access.Decision, o *access.Outcome) {
	oc := *o
	c.mu.Lock()
	c.Records = append(c.Records, Record{Action: *a, Decision: d, Outcome: &oc})
	c.mu.Unlock()
}

// Emit implements engine.Checkpoint; it counts emits, so a test can check
// that every settled outcome is emitted once.
func (c *Checkpoint) Emit(a *access.Action, d access.Decision, o access.Outcome) {
	c.mu.Lock()
	c.Emits++
	c.mu.Unlock()
}

// Emitted is the number of Emit calls so far.
func (c *Checkpoint) Emitted() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Emits
}

// Snapshot returns copies of what was checked and recorded so far.
func (c *Checkpoint) Snapshot() ([]access.Action, []Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]access.Action(nil), c.Checked...), append([]Record(nil), c.Records...)
}
