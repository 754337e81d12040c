package gateway

import (
	"context"

	"fmt"
	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/audit"
	"time"

	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/checkpoint"
	"github.com/gatehouse/gatehouse/internal/masking"
	"github.com/gatehouse/gatehouse/internal/webhook"
)

// buildApprovals starts the review service: reviews left pending by an
// earlier run are marked failed (their clients' connections died with it),
// and review rules hold statements from now on.
func (g *Gateway) buildApprovals(ctx context.Context) error {
	approvers := g.cfg.Approvals.Approvers
	if len(approvers) == 0 {
		approvers = g.cfg.Admins
	}
	for _, wc := range g.cfg.Approvals.Webhooks {
		n, err := webhook.New(wc, webhook.Options{Logger: g.log.With("component", "webhook")})
		if err != nil {
			return fmt.Errorf("approvals.webhooks: %w", err)
		}
		if err := g.metrics.Registry.Register(n.Collector()); err != nil {
			return fmt.Errorf("approvals.webhooks: metrics: %w", err)
		}
		g.reviewHooks = append(g.reviewHooks, n)
	}
	g.approvals = approval.New(approval.Config{
		Store:            g.store,
		DefaultTimeout:   time.Duration(g.cfg.Approvals.Timeout),
		DefaultApprovers: approvers,
		OnEvent:          g.onReviewEvent,
		Logger:           g.log.With("component", "approvals"),
	})
	if err := g.approvals.Recover(ctx); err != nil {
		return err
	}
	g.grants = approval.NewGrants(g.store, approvers, g.onGrantEvent)
	if err := g.grants.Load(ctx); err != nil {
		return err
	}
	g.cp.WithApprovals(&checkpoint.Approvals{Service: g.approvals, HowTo: g.reviewHowTo, Grants: g.grants})
	return nil
}

// onReviewEvent records every review change in the audit log and tells the
// webhooks (which queue: a failing receiver never delays a decision).
func (g *Gateway) onReviewEvent(e approval.Event) {
	g.audit.Append(checkpoint.ReviewEvent(e))
	g.log.Info("review "+string(e.Review.Status), "review", e.Review.ID, "event", e.Type,
		"connection", e.Review.Connection, "subject", e.Review.Requester.Subject, "actor", e.Actor)
	if len(g.reviewHooks) == 0 {
		return
	}
	ev := reviewWebhookEvent(e, g.reviewHowTo(e.Review.ID))
	for _, n := range g.reviewHooks {
		n.Send(ev)
	}
}

// reviewWebhookEvent is the notification of a review change. The statement
// leaves the gateway with entities (card numbers, emails, secrets…) masked,
// as the parameters already are.
func reviewWebhookEvent(e approval.Event, howTo string) webhook.Event {
	r := e.Review
	r.Statement, _ = masking.MaskEntities(r.Statement, masking.AllEntities())
	r.History, r.Facts = nil, nil // facts quote the statement
	summary := fmt.Sprintf("%s asks to run a statement on %s (review %s, %s)", r.Requester.Subject, r.Connection, r.ID, r.Status)
	if e.Type != approval.EventCreated {
		summary = fmt.Sprintf("review %s of %s on %s is %s: %s", r.ID, r.Requester.Subject, r.Connection, r.Status, r.Outcome)
	}
	fields := []webhook.Field{{Title: "Statement", Value: r.Statement}, {Title: "Rule", Value: r.Policy + " / " + r.Rule + ": " + r.Reason}}
	if r.Status == approval.Pending {
		fields = append(fields, webhook.Field{Title: "Approve", Value: howTo})
	}
	return webhook.Event{Type: e.Type, Time: time.Now(), Summary: summary, Fields: fields, Data: r}
}

// reviewHowTo tells a waiting client how an approver decides.
func (g *Gateway) reviewHowTo(id string) string {
	base := g.cfg.BaseURL(g.apiTLS)
	if bound := g.Addr("api"); bound != "" && g.cfg.PublicURL == "" {
		// The address actually bound (listen.api may say port 0).
		c := *g.cfg
		c.Listen.API = bound
		base = c.BaseURL(g.apiTLS)
	}
	return fmt.Sprintf("An approver runs: gatehouse reviews approve %s --api %s (or POST %s/api/v1/reviews/%s/approve)", id, base, base, id)
}

// grantAllows reports whether an active grant makes p a member of a group
// the connection's access list names.
func (g *Gateway) grantAllows(p *access.Principal, connection string, selectors []string) bool {
	extra := g.grants.Groups(p, connection)
	if len(extra) == 0 {
		return false
	}
	q := *p
	q.Groups = extra
	return q.MatchesAny(selectors)
}

// onGrantEvent records grant changes in the audit log and tells the webhooks.
func (g *Gateway) onGrantEvent(e approval.GrantEvent) {
	gr := e.Grant
	decision := map[approval.GrantStatus]string{approval.GrantActive: "allow", approval.GrantPending: "hold"}[gr.Status]
	if decision == "" {
		decision = "deny"
	}
	g.audit.Append(audit.Event{Type: e.Type, Issuer: gr.Requester.Issuer, Subject: gr.Requester.Subject,
		Connection: gr.Connection, Decision: decision, Reason: gr.Outcome,
		DetailValue: map[string]any{"grant_id": gr.ID, "group": gr.Group, "duration": gr.Duration.String(),
			"reason": gr.Reason, "actor": e.Actor, "status": gr.Status, "expires_at": gr.ExpiresAt, "votes": gr.Votes}})
	g.log.Info("grant "+string(gr.Status), "grant", gr.ID, "event", e.Type, "connection", gr.Connection,
		"group", gr.Group, "subject", gr.Requester.Subject, "actor", e.Actor)
	summary := fmt.Sprintf("%s asks for group %s on %s for %s: %s (grant %s)", gr.Requester.Subject, gr.Group, gr.Connection, gr.Duration, gr.Reason, gr.ID)
	if e.Type != approval.EventGrantRequested {
		summary = fmt.Sprintf("grant %s (%s, group %s on %s) is %s: %s", gr.ID, gr.Requester.Subject, gr.Group, gr.Connection, gr.Status, gr.Outcome)
	}
	for _, n := range g.reviewHooks {
		n.Send(webhook.Event{Type: e.Type, Time: time.Now(), Summary: summary, Data: gr})
	}
}
