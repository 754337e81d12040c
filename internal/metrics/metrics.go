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
