package checkpoint

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/journal"
)

// durability makes decisions durable before statements run (docs/audit.md,
// "Durable before it runs").
type durability struct {
	journal    *journal.Journal
	maxPending int64
	log        *slog.Logger
	refused    atomic.Int64
	lastLog    atomic.Int64 // Unix nanoseconds of the last refusal logged
}

// DefaultMaxPending is the default bound on journaled decisions whose
// statement events are not stored yet.
const DefaultMaxPending = 100000

// WithJournal makes Commit journal each decision to run before the engine
// forwards it, and refuse statements (fail closed) when the journal cannot
// be written, the audit store keeps failing, or more than maxPending
// decisions (0 = DefaultMaxPending) wait for the store. Without it Commit
// does nothing: audit.durability off.
func (c *Checkpoint) WithJournal(j *journal.Journal, maxPending int64, logger *slog.Logger) *Checkpoint {
	if maxPending <= 0 {
		maxPending = DefaultMaxPending
	}
	if logger == nil {
		logger = slog.Default()
	}
	c.durable = &durability{journal: j, maxPending: maxPending, log: logger}
	return c
}

// Why a statement is refused; the client sees the message, the operator's
// log and /readyz the cause.
var (
	errJournal = errors.New("gatehouse could not write the audit record of this statement, so the statement was not run (fail closed): the audit journal could not be written; try again later, and ask the operator to check the gateway's data_dir")
	errStore   = errors.New("gatehouse could not write the audit record of this statement, so the statement was not run (fail closed): the audit store is not accepting writes; try again later, and ask the operator to check the audit store")
	errBacklog = errors.New("gatehouse could not write the audit record of this statement, so the statement was not run (fail closed): too many audit records are waiting for the audit store; try again later, and ask the operator to check the audit store")
)

// Commit implements engine.Checkpoint: it journals the decision to run a
// (one write, shared with concurrent sessions) and sets d.AuditID.
func (c *Checkpoint) Commit(a *access.Action, d *access.Decision) error {
	du := c.durable
	if du == nil {
		return nil
	}
	if cause, msg := c.durableCheck(); cause != nil {
		return c.refuse(a, d, cause, msg)
	}
	s := a.Session
	text, _ := c.recordText(a, *d)
	e := journal.Entry{Time: time.Now().UnixNano(), SessionID: s.ID, Connection: s.Target.Name,
		Decision: d.Verdict.String(), Reason: d.Reason, Statement: text, Kind: string(a.Kind),
		Protocol: a.Protocol, Prepared: a.Prepared, Policy: d.Policy, Rule: d.Rule, ReviewID: d.ReviewID,
		Approvers: d.Approvers}
	if s.Principal != nil {
		e.Issuer, e.Subject = s.Principal.Issuer, s.Principal.Subject
	}
	id, err := du.journal.Append(&e)
	if err != nil {
		return c.refuse(a, d, err, errJournal)
	}
	d.AuditID = id
	return nil
}

// DurableErr says why statements would be refused now (nil = they run):
// the journal's last write failed, the audit store's last write failed, or
// too many decisions wait for the store. Nil when durability is off.
func (c *Checkpoint) DurableErr() error {
	cause, _ := c.durableCheck()
	return cause
}

// durableCheck is DurableErr with the message for the client. Three atomic
// loads when all is well.
func (c *Checkpoint) durableCheck() (cause, msg error) {
	du := c.durable
	if du == nil {
		return nil, nil
	}
	if err := du.journal.Err(); err != nil {
		return fmt.Errorf("audit journal: %w", err), errJournal
	}
	if err := c.audit.Healthy(); err != nil {
		return fmt.Errorf("audit store: %w", err), errStore
	}
	if n := du.journal.Pending(); n > du.maxPending {
		return fmt.Errorf("audit store: %d statement decisions are waiting to be stored (limit %d)", n, du.maxPending), errBacklog
	}
	return nil, nil
}

// Refused counts statements refused because their audit record could not
// be written.
func (c *Checkpoint) Refused() int64 {
	if c.durable == nil {
		return 0
	}
	return c.durable.refused.Load()
}

// Pending is the number of journaled decisions not yet stored (0 when
// durability is off).
func (c *Checkpoint) Pending() int64 {
	if c.durable == nil {
		return 0
	}
	return c.durable.journal.Pending()
}

// refuse records the refusal as a denial (queued: it is stored once the
// store works again), counts it, logs the cause at most every few seconds,
// and returns the client's error.
func (c *Checkpoint) refuse(a *access.Action, d *access.Decision, cause, msg error) error {
	du := c.durable
	du.refused.Add(1)
	if c.metrics != nil && c.metrics.AuditRefused != nil {
		c.metrics.AuditRefused.Inc()
	}
	now := time.Now().UnixNano()
	if last := du.lastLog.Load(); now-last > int64(5*time.Second) && du.lastLog.CompareAndSwap(last, now) {
		// The cause names files or the store's error, never statement
		// text or credentials.
		du.log.Error("audit unavailable: refusing statements (fail closed)", "cause", cause.Error(),
			"refused_total", du.refused.Load(), "pending", du.journal.Pending())
	}
	denied := access.Decision{Verdict: access.Deny, Rule: "gatehouse/audit", Reason: msg.Error(),
		Code: "58000", Policy: d.Policy}
	c.audit.Append(c.statementEvent(a, denied, nil))
	return msg
}

// RecoveredOutcome is the outcome of a statement whose decision was
// journaled but whose statement event was never stored.
const RecoveredOutcome = "unknown: gateway stopped before the outcome was recorded"

// RecoveredEvent is the statement event stored at startup for a journaled
// decision of an earlier run: the decision as journaled, outcome unknown,
// with the same decision id.
func RecoveredEvent(e *journal.Entry) audit.Event {
	det := &statementDetail{Kind: access.ActionKind(e.Kind), Protocol: e.Protocol, Prepared: e.Prepared,
		Policy: e.Policy, Rule: e.Rule, ReviewID: e.ReviewID, Approvers: e.Approvers,
		DecisionID: e.ID, Outcome: RecoveredOutcome}
	return audit.Event{
		Time:        time.Unix(0, e.Time),
		Type:        audit.TypeStatement,
		SessionID:   e.SessionID,
		Issuer:      e.Issuer,
		Subject:     e.Subject,
		Connection:  e.Connection,
		Decision:    e.Decision,
		Reason:      e.Reason,
		Statement:   e.Statement,
		DetailValue: det,
		JournalID:   e.ID,
	}
}
