// Package audit defines gatehouse's typed audit events and the Log that
// appends them to durable storage in batches, off the data path.
//
// This is the basic form (issue 2): typed events stored in the store and read
// back through the API. The hash chain, signed checkpoints and recordings of
// the tamper-evident audit issue are added here, behind the same Append call:
// every event already carries a store-assigned, gap-free sequence number.
package audit

import (
	"encoding/json"
	"time"
)

// Event types.
const (
	TypeSessionOpened  = "session.opened"
	TypeSessionRefused = "session.refused" // handshake failed: bad token, no access, unknown connection
	TypeSessionClosed  = "session.closed"
	TypeStatement      = "statement"
	TypeAdmin          = "admin" // admin API change (connection created/deleted…)
)

// Event is one audit record. Common, filterable fields are top-level; the
// rest lives in Detail. No token, password or unmasked value may appear here.
type Event struct {
	Seq        int64           `json:"seq"` // assigned by the store on append; 0 before
	Time       time.Time       `json:"time"`
	Type       string          `json:"type"`
	SessionID  string          `json:"session_id,omitempty"`
	Issuer     string          `json:"issuer,omitempty"`
	Subject    string          `json:"subject,omitempty"`
	Connection string          `json:"connection,omitempty"`
	Decision   string          `json:"decision,omitempty"` // allow | deny | hold (statements, refused sessions)
	Reason     string          `json:"reason,omitempty"`
	Statement  string          `json:"statement,omitempty"`
	Detail     json.RawMessage `json:"detail,omitempty"` // type-specific JSON object

	// DetailValue, when Detail is nil, is marshalled into Detail by the Log's
	// writer goroutine, keeping JSON encoding off the data path.
	DetailValue any `json:"-"`
}

// Filter selects events for reading. Zero fields do not filter.
type Filter struct {
	Principal  string    // subject
	Connection string    // connection name
	Decision   string    // allow | deny | hold
	Type       string    // event type
	SessionID  string    // session id
	Since      time.Time // events at or after
	AfterSeq   int64     // events with seq > AfterSeq; then Limit takes the oldest N, so followers page forward
	Limit      int       // at most N (0 = 100): the most recent N, or the oldest N after AfterSeq; always ascending seq order
}
