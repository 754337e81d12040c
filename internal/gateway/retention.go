package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/audit"
)

// retentionEvery is how often the gateway prunes when audit.retention is
// set (and once at startup). Pruning deletes at most the events that aged
// out since the last run, so an hour keeps each run small.
const retentionEvery = time.Hour

// startRetention prunes this node's audit chain at startup and then every
// retentionEvery, behind a signed prune marker (audit.Prune). Only this
// node's chain: another node's events are pruned by that node, with its key.
func (g *Gateway) startRetention() error {
	keep := time.Duration(g.cfg.Audit.Retention)
	if keep <= 0 {
		return nil
	}
	pruned := prometheus.NewCounter(prometheus.CounterOpts{Name: "gatehouse_audit_pruned_events_total",
		Help: "Audit events deleted by retention (behind signed prune markers)."})
	if err := g.metrics.Registry.Register(pruned); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	g.stopRetention = func() { cancel(); <-done }
	go func() {
		defer close(done)
		t := time.NewTicker(retentionEvery)
		defer t.Stop()
		for {
			res, err := g.PruneAudit(ctx, time.Now().Add(-keep))
			switch {
			case errors.Is(err, audit.ErrNothingSigned):
				g.log.Info("audit retention: nothing pruned yet", "reason", err)
			case err != nil && ctx.Err() == nil:
				g.log.Error("audit retention: prune failed; retrying at the next run", "err", err)
			case res.Marker != nil:
				pruned.Add(float64(res.Deleted))
				g.log.Info("audit retention: pruned", "node", res.Marker.Node, "through_node_seq", res.Marker.NodeSeq, "events", res.Deleted)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// PruneAudit prunes this node's audit events older than before (see
// audit.Prune) and records the prune in the audit log.
func (g *Gateway) PruneAudit(ctx context.Context, before time.Time) (audit.PruneResult, error) {
	g.pruneMu.Lock()
	res, err := audit.Prune(ctx, g.store, g.auditKey, g.auditNode, before)
	g.pruneMu.Unlock()
	if err == nil && res.Marker != nil {
		g.audit.Append(audit.Event{Type: audit.TypeAdmin, Decision: "allow",
			Reason:      fmt.Sprintf("audit pruned through node_seq %d (%d events older than %s)", res.Marker.NodeSeq, res.Deleted, before.UTC().Format(time.RFC3339)),
			DetailValue: map[string]any{"prune_marker": res.Marker}})
	}
	return res, err
}

// pruneAuditFunc is the admin API's prune hook: nil without a signing key.
func (g *Gateway) pruneAuditFunc() func(context.Context, time.Time) (audit.PruneResult, error) {
	if g.auditKey == nil {
		return nil
	}
	return g.PruneAudit
}
