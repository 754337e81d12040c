package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/masking"
)

// Approvals is what the checkpoint needs to hold actions for review.
type Approvals struct {
	Service *approval.Service
	// HowTo tells a waiting client how an approver acts on review id
	// (a CLI command and the API URL).
	HowTo func(id string) string
	// Grants adds the groups of active time-bound grants to a principal,
	// per connection, at every statement; nil = none.
	Grants *approval.Grants
}

// withGrants returns a with the session's principal holding the groups its
// active grants give on this connection (a copy; the session is shared).
func (c *Checkpoint) withGrants(a *access.Action) *access.Action {
	if c.approvals == nil || c.approvals.Grants == nil || a.Session == nil {
		return a
	}
	extra := c.approvals.Grants.Groups(a.Session.Principal, a.Session.Target.Name)
	if len(extra) == 0 {
		return a
	}
	p := *a.Session.Principal
	p.Groups = append(append([]string(nil), p.Groups...), extra...)
	s := *a.Session
	s.Principal = &p
	cp := *a
	cp.Session = &s
	return &cp
}

// WithApprovals makes review rules hold statements for approval instead of
// refusing them.
func (c *Checkpoint) WithApprovals(a *Approvals) *Checkpoint {
	c.approvals = a
	return c
}

// Hold waits for the human decision on an action Check held (Verdict Hold).
// notify is called once, before waiting, with a message for the client:
// the review id and how to approve. It returns the final decision: Allow
// with the review id and approvers, or Deny with the reason. Ending ctx
// (client cancel or disconnect) withdraws the review.
func (c *Checkpoint) Hold(ctx context.Context, a *access.Action, d access.Decision, hc access.HoldContext, notify func(msg string)) access.Decision {
	return c.hold(ctx, a, d, hc, notify, nil)
}

func (c *Checkpoint) hold(ctx context.Context, a *access.Action, d access.Decision, hc access.HoldContext, notify func(msg string), cat engine.Catalog) access.Decision {
	if c.approvals == nil || d.Verdict != access.Hold || d.Review == nil {
		out := access.Decision{Verdict: access.Deny, Policy: d.Policy, Rule: d.Rule,
			Reason: "this statement needs approval, and approvals are not enabled on this gateway, so it was not run"}
		c.audit.Append(c.statementEvent(a, out, nil))
		return out
	}
	kinds := maskEntityKinds(d.Mask)
	text, redact := c.recordText(a, d)
	shown := make([]string, len(hc.Params))
	for i, p := range hc.Params {
		if redact {
			// Approvers see what the audit keeps: values bound for masked
			// columns stay hidden.
			shown[i] = redactedValue
			continue
		}
		shown[i], _ = masking.MaskEntities(p, kinds)
	}
	req := approval.Request{Session: a.Session, Protocol: a.Protocol, Statement: text,
		Params: shown, Facts: c.factsJSON(ctx, a, cat), History: hc.History, Decision: d}
	t, err := c.approvals.Service.Open(ctx, req)
	if err != nil {
		out := access.Decision{Verdict: access.Deny, Policy: d.Policy, Rule: d.Rule,
			Reason: "this statement needs approval, but gatehouse could not record the review, so it was not run (fail closed); try again or ask the operator to check the gateway's store"}
		c.audit.Append(c.statementEvent(a, out, &access.Outcome{Rows: -1, Error: err.Error()}))
		return out
	}
	if !t.Remembered && notify != nil {
		how := ""
		if c.approvals.HowTo != nil {
			how = " " + c.approvals.HowTo(t.Review.ID)
		}
		notify(fmt.Sprintf("gatehouse: statement held for approval, review %s (policy %q rule %q: %s); waiting up to %s.%s",
			t.Review.ID, d.Policy, d.Rule, d.Review.Message, t.Review.ExpiresAt.Sub(t.Review.CreatedAt).Round(time.Second), how))
	}
	r := t.Wait(ctx)
	if r.Status == approval.Approved {
		out := d
		out.Verdict, out.ReviewID, out.Reason = access.Allow, r.ID, ""
		for _, v := range r.Votes {
			if v.Approve {
				out.Approvers = append(out.Approvers, v.Subject)
			}
		}
		return out
	}
	out := access.Decision{Verdict: access.Deny, Policy: d.Policy, Rule: d.Rule, ReviewID: r.ID,
		Reason: fmt.Sprintf("statement not run: review %s (policy %q rule %q) %s: %s", r.ID, d.Policy, d.Rule, r.Status, r.Outcome)}
	if r.Status == approval.Withdrawn && !errors.Is(context.Cause(ctx), access.ErrClientGone) {
		// A client's cancel gets the error PostgreSQL gives a cancelled
		// statement, so drivers treat it as the cancel they asked for.
		out.Code = "57014"
	}
	c.audit.Append(c.statementEvent(a, out, &access.Outcome{Rows: -1, Error: "not run: review " + string(r.Status)}))
	return out
}

// ReviewEvent turns a review change into an audit event.
func ReviewEvent(e approval.Event) audit.Event {
	r := e.Review
	decision := map[approval.Status]string{approval.Approved: "allow", approval.Pending: "hold"}[r.Status]
	if decision == "" {
		decision = "deny"
	}
	return audit.Event{
		Type: e.Type, SessionID: r.SessionID, Issuer: r.Requester.Issuer, Subject: r.Requester.Subject,
		Connection: r.Connection, Decision: decision, Reason: r.Outcome, Statement: r.Statement,
		DetailValue: map[string]any{"review_id": r.ID, "actor": e.Actor, "status": r.Status, "votes": r.Votes,
			"policy": r.Policy, "rule": r.Rule, "params": r.Params, "binding": r.Binding, "approvers": r.Approvers,
			"min_approvals": r.MinApprovals, "act": r.Requester.Act},
	}
}

func maskEntityKinds(m *access.MaskPlan) []masking.Entity {
	if m != nil && len(m.Entities) > 0 {
		var out []masking.Entity
		for _, s := range m.Entities {
			if e, err := masking.ParseEntity(s); err == nil {
				out = append(out, e)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	// Without a plan, approvers still see no card numbers or secrets.
	return masking.AllEntities()
}

// factsJSON is the statement facts as the policy saw them, for approvers.
func (c *Checkpoint) factsJSON(ctx context.Context, a *access.Action, cat engine.Catalog) json.RawMessage {
	if a.Kind != access.ActionStatement {
		return nil
	}
	stmts, _, _, err := c.statements(ctx, a, cat)
	if err != nil {
		return nil
	}
	b, err := json.Marshal(stmts)
	if err != nil {
		return nil
	}
	return b
}

// holdReason is the client-facing text of a review rule's requirement.
func holdReason(approvers []string, message string) string {
	who := "an approver"
	if len(approvers) > 0 {
		who = strings.Join(approvers, ", ")
	}
	return fmt.Sprintf("needs approval by %s: %s", who, message)
}
