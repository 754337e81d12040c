// Package access is gatehouse's shared vocabulary: who is calling (Principal),
// what they reach (Target), what they ask to do (Action) and what gatehouse
// decided (Decision). It is data only and imports nothing but the standard
// library, so every other package can depend on it without cycles.
package access

import (
	"errors"
	"strings"
	"time"
)

// ErrClientGone is the context cause an engine gives when the client
// disconnected while its action waited (an approval hold), as opposed to
// cancelling it.
var ErrClientGone = errors.New("client disconnected")

// Principal is a verified machine or human identity, built from an OIDC token.
type Principal struct {
	Issuer   string         `json:"issuer"`
	Subject  string         `json:"subject"`
	Groups   []string       `json:"groups,omitempty"`
	ClientID string         `json:"client_id,omitempty"`
	Act      []Actor        `json:"act,omitempty"` // RFC 8693 delegation chain, outermost (current actor) first
	Claims   map[string]any `json:"-"`             // all token claims; never logged or audited wholesale
	Expiry   time.Time      `json:"expires_at"`    // token expiry; zero means none was given
}

// Actor is one link of an RFC 8693 `act` delegation chain.
type Actor struct {
	Issuer   string `json:"issuer,omitempty"`
	Subject  string `json:"subject,omitempty"`
	ClientID string `json:"client_id,omitempty"`
}

// Matches reports whether the principal is named by a selector:
// "group:NAME", "sub:SUBJECT", "client:CLIENT_ID" or "*".
// An unknown selector form matches nothing (fail closed).
func (p *Principal) Matches(selector string) bool {
	if p == nil {
		return false
	}
	if selector == "*" {
		return true
	}
	kind, val, ok := strings.Cut(selector, ":")
	if !ok || val == "" {
		return false
	}
	switch kind {
	case "group":
		for _, g := range p.Groups {
			if g == val {
				return true
			}
		}
	case "sub":
		return p.Subject == val
	case "client":
		return p.ClientID != "" && p.ClientID == val
	}
	return false
}

// MatchesAny reports whether any selector names the principal.
func (p *Principal) MatchesAny(selectors []string) bool {
	for _, s := range selectors {
		if p.Matches(s) {
			return true
		}
	}
	return false
}

// ValidSelector reports whether s is a selector form Matches understands.
func ValidSelector(s string) bool {
	if s == "*" {
		return true
	}
	kind, val, ok := strings.Cut(s, ":")
	if !ok || val == "" {
		return false
	}
	switch kind {
	case "group", "sub", "client":
		return true
	}
	return false
}

// Target is a named upstream system (a "connection" in the config).
type Target struct {
	Name string `json:"name"` // connection name, e.g. "orders"
	Type string `json:"type"` // protocol family, e.g. "postgres"
}

// Session describes one client connection through the gateway.
type Session struct {
	ID              string     `json:"id"`
	Principal       *Principal `json:"principal"`
	Target          Target     `json:"target"`
	ClientAddr      string     `json:"client_addr"`
	ClientUser      string     `json:"client_user,omitempty"` // the user name the client claimed; informational only
	ApplicationName string     `json:"application_name,omitempty"`
	TLS             bool       `json:"tls"`
	StartedAt       time.Time  `json:"started_at"`
}

// ActionKind says what sort of request an Action is.
type ActionKind string

const (
	ActionStatement    ActionKind = "statement"     // one SQL statement (simple query or Parse)
	ActionFunctionCall ActionKind = "function_call" // PostgreSQL FunctionCall message (fast-path)
	// ActionStartupParameter is a session setting the client sends at
	// connect time (PostgreSQL startup parameters such as options=-c role=x,
	// which act like SET); Statement is "name=value".
	ActionStartupParameter ActionKind = "startup_parameter"
)

// Action is one request a client asks the gateway to forward.
type Action struct {
	Session   *Session   `json:"-"`
	Kind      ActionKind `json:"kind"`
	Statement string     `json:"statement,omitempty"` // exact text as the client sent it
	Prepared  string     `json:"prepared,omitempty"`  // prepared statement name for Parse; "" = unnamed
	Protocol  string     `json:"protocol,omitempty"`  // "simple", "extended", "fastpath"
}

// Verdict is the outcome class of a decision.
type Verdict int

const (
	Deny Verdict = iota // the zero value denies: fail closed
	Allow
	Hold
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Hold:
		return "hold"
	}
	return "deny"
}

// Decision is what the checkpoint decided about an Action. It is a value:
// engines carry it out in their protocol's own terms.
type Decision struct {
	Verdict  Verdict `json:"verdict"`
	Reason   string  `json:"reason,omitempty"`    // one sentence a human or an agent can act on
	Policy   string  `json:"policy,omitempty"`    // policy that decided, if any
	Rule     string  `json:"rule,omitempty"`      // rule within the policy, if any
	ReviewID string  `json:"review_id,omitempty"` // set for holds
	// Code overrides the protocol's "denied" error code (SQLSTATE for
	// PostgreSQL), e.g. 42601 for a statement that does not parse, so the
	// client sees the error the server would have given.
	Code string `json:"code,omitempty"`
	// Position is the 1-based character position the error refers to in the
	// statement text; 0 = none.
	Position int       `json:"position,omitempty"`
	Mask     *MaskPlan `json:"mask,omitempty"` // nil = nothing to mask
	// Review says who must approve a held action (Verdict Hold); nil otherwise.
	Review *ReviewRule `json:"review,omitempty"`
	// Approvers lists who approved a held action that was then allowed.
	Approvers []string `json:"approvers,omitempty"`
	// AuditID identifies this execution's journaled decision (set by the
	// checkpoint's Commit; 0 = none). The statement event stored with the
	// outcome carries it, which is how recovery knows it was stored.
	AuditID uint64 `json:"-"`
	// Basis is the state the decision was made in; see Basis.
	Basis Basis `json:"-"`
	// RecordText, when set, is the text the audit records for the
	// statement instead of its own: it may carry values of masked columns
	// (it writes or compares them, or what it runs is unknown), so its
	// literals are replaced, and its bound parameters are recorded redacted.
	RecordText string `json:"-"`
}

// Basis is what a decision was made under. An engine that runs a statement
// again without the client sending its text (an Execute of a statement
// prepared earlier) asks the checkpoint whether the decision still stands
// (engine.Revalidator): policies reloaded, access lists or grants changed
// or a grant the principal held expired since, and the statement is decided
// afresh, so no change waits for the client to prepare again.
type Basis struct {
	Policies any       // the policy set in force (compared by identity)
	Grants   any       // the index of active grants in force (by identity)
	Access   uint64    // version of the connections' access lists
	Until    time.Time // the earliest expiry of a grant the principal held; zero = none
}

// HoldContext is what an engine knows about a held action beyond the
// action itself, for the approvers.
type HoldContext struct {
	Params  []string // bound parameters as text (the checkpoint masks them)
	History []string // the session's earlier statements, oldest first
}

// ReviewRule is what a policy's review rule asks of the approvers of one
// held action.
type ReviewRule struct {
	Approvers    []string      `json:"approvers,omitempty"` // principal selectors; empty = the gateway's admins
	MinApprovals int           `json:"min_approvals"`       // distinct approvers needed (at least 1)
	Timeout      time.Duration `json:"timeout"`             // 0 = the gateway's default
	Remember     time.Duration `json:"remember,omitempty"`  // after approval, repeats skip review this long
	Message      string        `json:"message,omitempty"`   // the rule's reason, shown to approvers
}

// Allowed reports whether the action may be forwarded.
func (d Decision) Allowed() bool { return d.Verdict == Allow }

// MaskPlan says which parts of a response to mask; nil means the response
// is relayed untouched. It mirrors the policy's plan so engines need not
// import the policy package. Decisions may share one MaskPlan (the
// checkpoint builds it once per policy set): read it, never modify it.
type MaskPlan struct {
	Columns    []ColumnMask `json:"columns,omitempty"`
	Entities   []string     `json:"entities,omitempty"`   // entity kinds to detect in text values
	Derived    string       `json:"derived,omitempty"`    // "mask" or "deny": fields computed from masked columns
	Predicates string       `json:"predicates,omitempty"` // "deny" or "allow": masked columns in WHERE/JOIN/ORDER/GROUP
	// ReadsMasked is set when the statement reads a masked column, so its
	// computed result fields (no source table) may carry masked data.
	ReadsMasked bool `json:"reads_masked,omitempty"`
	// MethodFor returns the method for a result column identified by the
	// catalog (schema, table, column); nil or ok=false = not masked.
	MethodFor func(schema, table, column string) (method string, ok bool) `json:"-"`
}

// ColumnMask masks the columns a pattern names ("schema.table.column",
// "table.column" or "column"; globs allowed).
type ColumnMask struct {
	Column string `json:"column"`
	Method string `json:"method"`
}

// Outcome is what happened upstream to an allowed action.
type Outcome struct {
	Duration time.Duration `json:"duration"`
	Rows     int64         `json:"rows"`              // rows affected/returned per CommandComplete; -1 unknown
	Command  string        `json:"command,omitempty"` // CommandComplete tag, e.g. "SELECT 3"
	Error    string        `json:"error,omitempty"`   // upstream error (SQLSTATE: message), if any

	// The session recording (config audit.recording), when on. Every value
	// here comes from the bytes the client was sent (after masking) or sent
	// itself; the checkpoint passes the values through the entity
	// detectors again before they reach the audit store.
	Columns []Column `json:"columns,omitempty"` // result columns (RowDescription)
	// Params are the bound parameters as text (extended protocol), not yet
	// masked: the checkpoint masks them before recording.
	Params []string `json:"params,omitempty"`
	// Sample holds the first result rows as the client received them,
	// bounded by the recording limits; a nil cell is SQL NULL.
	Sample [][]*string `json:"sample,omitempty"`
	// SampleTruncated is set when rows or bytes were left out of Sample
	// or Params because a limit was reached.
	SampleTruncated bool     `json:"sample_truncated,omitempty"`
	Notices         []string `json:"notices,omitempty"` // upstream notices and warnings (SEVERITY SQLSTATE: message)
}

// Column is one result column of a recorded statement.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"` // PostgreSQL type name, or "oid:N" for a type gatehouse does not know
}
