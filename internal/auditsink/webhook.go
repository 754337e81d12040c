package auditsink

import (
	"context"
	"strconv"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/webhook"
)

// webhookSink posts events through a webhook.Notifier (which batches,
// signs, retries with backoff and drops when its queue is full).
type webhookSink struct {
	n *webhook.Notifier
}

// NewWebhook returns a sink delivering each event to n. Configure n with
// batch.max_events > 1 to send many events per POST.
func NewWebhook(n *webhook.Notifier) Sink { return &webhookSink{n: n} }

func (s *webhookSink) Name() string { return "webhook:" + s.n.Name() }

func (s *webhookSink) Send(events []audit.Event) {
	for i := range events {
		e := &events[i]
		// The event's own sequence number makes the id stable, so a
		// receiver can tell a redelivery from a new event.
		id := "seq-" + strconv.FormatInt(e.Seq, 10)
		if e.NodeSeq > 0 {
			// A chained event's place in its node's chain names it
			// across stores and re-exports.
			id = e.Node + "-" + strconv.FormatInt(e.NodeSeq, 10)
		}
		s.n.Send(webhook.Event{Type: "audit." + e.Type, ID: id, Time: e.Time, Data: e})
	}
}

func (s *webhookSink) Written() int64                  { return s.n.Sent() }
func (s *webhookSink) Dropped() int64                  { return s.n.Dropped() + s.n.Failed() }
func (s *webhookSink) Close(ctx context.Context) error { return s.n.Close(ctx) }
