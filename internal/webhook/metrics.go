package webhook

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes the Notifier's counters to Prometheus with a constant
// label webhook=<name> (never the URL). Collectors of several notifiers can
// share a registry as long as their names differ.
func (n *Notifier) Collector() prometheus.Collector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, nil, prometheus.Labels{"webhook": n.name})
	}
	return &collector{n: n, descs: [5]*prometheus.Desc{
		desc("gatehouse_webhook_events_sent_total", "Events delivered to a webhook (2xx)."),
		desc("gatehouse_webhook_events_failed_total", "Events given up on after retries or a non-retryable answer."),
		desc("gatehouse_webhook_events_dropped_total", "Events dropped unsent: queue full, or the webhook closed."),
		desc("gatehouse_webhook_retries_total", "Delivery attempts that were retries."),
		desc("gatehouse_webhook_queue_depth", "Events waiting to be delivered."),
	}}
}

type collector struct {
	n     *Notifier
	descs [5]*prometheus.Desc // sent, failed, dropped, retried, queue
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	for i, v := range [4]int64{n.Sent(), n.Failed(), n.Dropped(), n.Retried()} {
		ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.CounterValue, float64(v))
	}
	ch <- prometheus.MustNewConstMetric(c.descs[4], prometheus.GaugeValue, float64(n.QueueDepth()))
}
