package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/checkpoint"
)

// buildApprovals starts the review service: reviews left pending by an
// earlier run are marked failed (their clients' connections died with it),
// and review rules hold statements from now on.
func (g *Gateway) buildApprovals(ctx context.Context) error {
	approvers := g.cfg.Approvals.Approvers
	if len(approvers) == 0 {
		approvers = g.cfg.Admins
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
	g.cp.WithApprovals(&checkpoint.Approvals{Service: g.approvals, HowTo: g.reviewHowTo})
	return nil
}

// onReviewEvent records every review change in the audit log.
func (g *Gateway) onReviewEvent(e approval.Event) {
	g.audit.Append(checkpoint.ReviewEvent(e))
	g.log.Info("review "+string(e.Review.Status), "review", e.Review.ID, "event", e.Type,
		"connection", e.Review.Connection, "subject", e.Review.Requester.Subject, "actor", e.Actor)
}

// reviewHowTo tells a waiting client how an approver decides.
func (g *Gateway) reviewHowTo(id string) string {
	base := g.cfg.BaseURL(g.apiTLS)
	return fmt.Sprintf("An approver runs: gatehouse reviews approve %s --api %s (or POST %s/api/v1/reviews/%s/approve)", id, base, base, id)
}
