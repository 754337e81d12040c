package checkpoint

import (
	"regexp"
	"sync"
	"sync/atomic"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/policy"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// redactedValue replaces a recorded value that may be one of a masked
// column (a bound parameter of a statement that writes or compares one).
const redactedValue = "[REDACTED]"

// withheldText is recorded for a statement that may carry values of masked
// columns and whose literals could not be found (the lexer refused it).
const withheldText = "-- statement text withheld: it may carry values of masked columns, and gatehouse could not find its literals"

// carriesMasked reports whether a statement's literals or parameters may be
// values of masked columns: it names a masked column where a value can go
// or be compared (an INSERT target column, a SET target, WHERE, JOIN, an
// expression in the select list…; a masked column merely selected is not
// such a place), writes a table with masked columns without naming its
// target columns (INSERT without a column list, COPY FROM, MERGE), or runs
// a prepared statement the gateway does not know (fail closed: what cannot
// be attributed is treated as masked).
func carriesMasked(plan policy.MaskPlan, raws []*sqlinspect.Statement, unknown []string) bool {
	if len(plan.Columns) == 0 {
		return false
	}
	if len(unknown) > 0 {
		return true
	}
	for _, st := range raws {
		for _, t := range st.Tables {
			if !t.Write || !tableHasMaskRule(plan, t.Schema, t.Name) {
				continue
			}
			switch st.Kind {
			case "update", "delete", "truncate":
				// SET targets are listed as columns; DELETE and TRUNCATE
				// write no values.
			case "insert", "copy_from":
				if !namesTargets(st, t.Name) {
					return true
				}
			default:
				return true
			}
		}
		for _, c := range st.Columns {
			if (c.Clause == "select" || c.Clause == "returning") && (c.Bare || c.Star) {
				continue // passed through, carries no value of the statement's
			}
			if columnMasked(plan, st, c) {
				return true
			}
		}
	}
	return false
}

// namesTargets reports whether an INSERT or COPY FROM lists the columns of
// table it writes.
func namesTargets(st *sqlinspect.Statement, table string) bool {
	for _, c := range st.Columns {
		if c.Clause == "insert" && (c.Table == "" || c.Table == table) {
			return true
		}
	}
	return false
}

// redactedText is sql as the audit records it when it may carry values of
// masked columns: its literals replaced (sqlinspect.RedactLiterals).
func redactedText(sql string) string {
	out, err := sqlinspect.RedactLiterals(sql)
	if err != nil {
		return withheldText
	}
	return out
}

// recordText is the text the audit records for a under d, and whether the
// action's values are redacted: d's own RecordText, else what the decision
// Check made for a said (decisions made afterwards — a review's outcome, a
// refusal — are built without it).
func (c *Checkpoint) recordText(a *access.Action, d access.Decision) (string, bool) {
	if d.RecordText != "" {
		return d.RecordText, true
	}
	if t, ok := c.redact.get(a); ok {
		return t, true
	}
	return a.Statement, false
}

// redactionsPerSession bounds what is remembered per session; past it
// every statement of the session is recorded redacted (fail closed).
const redactionsPerSession = 4096

// redactions remembers, per session, the recorded text of actions whose
// values the audit must redact.
type redactions struct {
	mu sync.Mutex
	m  map[string]*sessionRedactions
	// sessions counts the entries of m, so the common case — no session
	// has anything to redact — takes no lock.
	sessions atomic.Int64
}

type sessionRedactions struct {
	text map[*access.Action]string
	all  bool // the bound was reached: redact everything
}

// note remembers (text != "") or forgets the recorded text of a.
func (r *redactions) note(a *access.Action, text string) {
	if a.Session == nil || (text == "" && r.sessions.Load() == 0) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.m[a.Session.ID]
	if text == "" {
		if s != nil {
			delete(s.text, a)
		}
		return
	}
	if r.m == nil {
		r.m = map[string]*sessionRedactions{}
	}
	if s == nil {
		s = &sessionRedactions{text: map[*access.Action]string{}}
		r.m[a.Session.ID] = s
		r.sessions.Add(1)
	}
	if len(s.text) >= redactionsPerSession {
		s.all = true
		return
	}
	s.text[a] = text
}

func (r *redactions) get(a *access.Action) (string, bool) {
	if a.Session == nil || r.sessions.Load() == 0 {
		return "", false
	}
	r.mu.Lock()
	s := r.m[a.Session.ID]
	var t string
	var ok, all bool
	if s != nil {
		t, ok = s.text[a]
		all = s.all
	}
	r.mu.Unlock()
	if !ok && all {
		return redactedText(a.Statement), true
	}
	return t, ok
}

// done forgets a once its outcome is recorded, unless it may run again
// (an extended-protocol statement is executed once per Execute).
func (r *redactions) done(a *access.Action) {
	if a.Protocol == "extended" || a.Session == nil || r.sessions.Load() == 0 {
		return
	}
	r.mu.Lock()
	if s := r.m[a.Session.ID]; s != nil {
		delete(s.text, a)
	}
	r.mu.Unlock()
}

func (r *redactions) endSession(id string) {
	if r.sessions.Load() == 0 {
		return
	}
	r.mu.Lock()
	if _, ok := r.m[id]; ok {
		delete(r.m, id)
		r.sessions.Add(-1)
	}
	r.mu.Unlock()
}

// quotedValue matches what PostgreSQL quotes in its messages: "…" and the
// values of a key, (…)=(…).
var quotedValue = regexp.MustCompile(`"[^"]*"|\)=\([^)]*\)`)

// redactQuoted replaces quoted values in an error or notice of a statement
// whose values are redacted.
func redactQuoted(msg string) string {
	return quotedValue.ReplaceAllStringFunc(msg, func(m string) string {
		if m[0] == '"' {
			return `"?"`
		}
		return ")=(?)"
	})
}
