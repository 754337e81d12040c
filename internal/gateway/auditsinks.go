package gateway

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gatehouse/gatehouse/internal/auditsink"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/webhook"
)

// buildAuditSinks opens the sinks of audit.sinks. They are fed by the audit
// Log's OnStored hook, so they see only what the store already holds.
func (g *Gateway) buildAuditSinks() (*auditsink.Fanout, error) {
	log := g.log.With("component", "auditsink")
	var sinks []auditsink.Sink
	fail := func(err error) (*auditsink.Fanout, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		auditsink.NewFanout(sinks...).Close(ctx)
		return nil, err
	}
	for i, sc := range g.cfg.Audit.Sinks {
		key := fmt.Sprintf("audit.sinks[%d]", i)
		switch sc.Type {
		case config.AuditSinkFile:
			s, err := auditsink.NewFile(auditsink.FileConfig{Path: sc.Path, MaxSize: int64(sc.MaxSize), MaxFiles: sc.MaxFiles, Queue: sc.QueueSize}, log)
			if err != nil {
				return fail(fmt.Errorf("%s: %w", key, err))
			}
			sinks = append(sinks, s)
		case config.AuditSinkStdout:
			sinks = append(sinks, auditsink.NewStdout(os.Stdout, sc.QueueSize, log))
		case config.AuditSinkWebhook:
			if sc.Webhook == nil {
				return fail(fmt.Errorf("%s: no webhook settings", key))
			}
			n, err := webhook.New(*sc.Webhook, webhook.Options{Logger: log})
			if err != nil {
				return fail(fmt.Errorf("%s: %w", key, err))
			}
			sinks = append(sinks, auditsink.NewWebhook(n))
		default:
			return fail(fmt.Errorf("%s: unknown type %q", key, sc.Type))
		}
	}
	names := map[string]bool{}
	for _, s := range sinks {
		if names[s.Name()] {
			// The name labels the sink's metrics: two sinks with one name
			// would make the registry refuse the collector.
			return fail(fmt.Errorf("audit.sinks: two sinks are named %q (give webhooks distinct names and files distinct base names)", s.Name()))
		}
		names[s.Name()] = true
	}
	return auditsink.NewFanout(sinks...), nil
}

// closeAuditSinks flushes the sinks after the audit Log has written its
// last batch.
func (g *Gateway) closeAuditSinks() error {
	if g.sinks == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.sinks.Close(ctx); err != nil {
		// The store has every event; a sink's backlog is not worth failing
		// the shutdown for.
		g.log.Warn("audit sink events still queued at shutdown (the store has them)", "err", err)
	}
	return nil
}
