// Package auditsink ships stored audit events to places besides the store:
// JSON-lines files with size rotation, stdout (for a log collector), and
// webhooks. The store stays the source of truth: sinks see events only after
// the store has them, and a sink never blocks the data path or the audit
// writer — each has a bounded queue, and when it is full events are dropped
// and counted (they can always be exported again from the store).
package auditsink

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/audit"
)

// Sink receives batches of stored events. Send must not block.
type Sink interface {
	Name() string
	Send(events []audit.Event)
	Written() int64 // events delivered
	Dropped() int64 // events dropped because the sink fell behind or failed
	Close(ctx context.Context) error
}

// Fanout sends every batch to each sink.
type Fanout struct {
	sinks []Sink
}

// NewFanout returns a fanout over sinks (none is fine: Send does nothing).
func NewFanout(sinks ...Sink) *Fanout { return &Fanout{sinks: sinks} }

// Len is the number of sinks.
func (f *Fanout) Len() int { return len(f.sinks) }

// Send hands events to every sink. The slice is copied once: the caller
// (the audit writer) reuses its batch buffer.
func (f *Fanout) Send(events []audit.Event) {
	if len(f.sinks) == 0 || len(events) == 0 {
		return
	}
	cp := append([]audit.Event(nil), events...)
	for _, s := range f.sinks {
		s.Send(cp)
	}
}

// Close closes every sink, waiting for queued events until ctx ends.
func (f *Fanout) Close(ctx context.Context) error {
	var errs []error
	for _, s := range f.sinks {
		errs = append(errs, s.Close(ctx))
	}
	return errors.Join(errs...)
}

// Collector exposes per-sink written and dropped counters.
func (f *Fanout) Collector() prometheus.Collector { return &collector{f: f} }

var (
	writtenDesc = prometheus.NewDesc("gatehouse_audit_sink_written_total",
		"Audit events delivered to a sink.", []string{"sink"}, nil)
	droppedDesc = prometheus.NewDesc("gatehouse_audit_sink_dropped_total",
		"Audit events a sink dropped because it fell behind or failed (the store still has them).", []string{"sink"}, nil)
)

type collector struct{ f *Fanout }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- writtenDesc
	ch <- droppedDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.f.sinks {
		ch <- prometheus.MustNewConstMetric(writtenDesc, prometheus.CounterValue, float64(s.Written()), s.Name())
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(s.Dropped()), s.Name())
	}
}

// counters are the shared written/dropped counts of a sink.
type counters struct {
	written atomic.Int64
	dropped atomic.Int64
}

func (c *counters) Written() int64 { return c.written.Load() }
func (c *counters) Dropped() int64 { return c.dropped.Load() }
