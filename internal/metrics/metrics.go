// Package metrics holds gatehouse's Prometheus collectors in one registry,
// so the data path records with plain method calls and /metrics serves them.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the gateway's collectors.
type Metrics struct {
	Registry         *prometheus.Registry
	SessionsActive   *prometheus.GaugeVec     // by protocol
	Sessions         *prometheus.CounterVec   // by protocol, result (opened|refused)
	Statements       *prometheus.CounterVec   // by protocol, decision
	StatementSeconds *prometheus.HistogramVec // by protocol: upstream time of allowed statements
	CheckSeconds     prometheus.Histogram     // time spent deciding (checkpoint)
	HandshakeSeconds *prometheus.HistogramVec // by protocol: token verify + access + upstream connect
	AuditWritten     prometheus.CounterFunc
	AuditFailures    prometheus.CounterFunc
	AuditQueue       prometheus.GaugeFunc
	// AuditRefused counts statements refused because their audit record
	// could not be made durable (audit.durability journal).
	AuditRefused prometheus.Counter
}

// DurableStats exposes the decision journal's state without importing it.
type DurableStats interface {
	DurableErr() error // nil = statements can be made durable
	Pending() int64    // journaled decisions not yet stored
}

// RegisterDurable adds the gauges of the decision journal: whether
// statements run (1) or are refused for want of audit (0), and how many
// journaled decisions wait for the store.
func (m *Metrics) RegisterDurable(d DurableStats) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_audit_durable",
			Help: "1 when statement decisions can be made durable; 0 while statements are refused because the audit journal or store fails (alert on 0)."},
			func() float64 {
				if d.DurableErr() != nil {
					return 0
				}
				return 1
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_audit_journal_pending",
			Help: "Journaled statement decisions whose statement events are not stored yet."},
			func() float64 { return float64(d.Pending()) }))
}

// AuditStats exposes the audit log's counters without importing it.
type AuditStats interface {
	Written() int64
	Failures() int64
	QueueDepth() int
}

// New builds the collectors. audit may be nil.
func New(audit AuditStats) *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		SessionsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gatehouse_sessions_active",
			Help: "Client sessions currently open."}, []string{"protocol"}),
		Sessions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_sessions_total",
			Help: "Client sessions by result (opened or refused)."}, []string{"protocol", "result"}),
		Statements: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_statements_total",
			Help: "Statements decided, by decision."}, []string{"protocol", "decision"}),
		StatementSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gatehouse_statement_duration_seconds",
			Help: "Time from forwarding an allowed statement to its completion.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)},
			[]string{"protocol"}),
		CheckSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gatehouse_check_duration_seconds",
			Help: "Time spent deciding a statement.", Buckets: prometheus.ExponentialBuckets(0.000001, 4, 10)}),
		HandshakeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gatehouse_session_open_duration_seconds",
			Help: "Time to verify the token, resolve the connection and check access.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)},
			[]string{"protocol"}),
	}
	m.AuditRefused = prometheus.NewCounter(prometheus.CounterOpts{Name: "gatehouse_audit_refused_statements_total",
		Help: "Statements refused (not run) because their audit record could not be written; alert when this grows."})
	r.MustRegister(m.AuditRefused)
	r.MustRegister(m.SessionsActive, m.Sessions, m.Statements, m.StatementSeconds, m.CheckSeconds, m.HandshakeSeconds)
	if audit != nil {
		m.AuditWritten = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_audit_events_written_total",
			Help: "Audit events durably stored."}, func() float64 { return float64(audit.Written()) })
		m.AuditFailures = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_audit_write_failures_total",
			Help: "Failed (and retried) audit store writes; alert when this grows."}, func() float64 { return float64(audit.Failures()) })
		m.AuditQueue = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_audit_queue_depth",
			Help: "Audit events waiting to be written."}, func() float64 { return float64(audit.QueueDepth()) })
		r.MustRegister(m.AuditWritten, m.AuditFailures, m.AuditQueue)
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
