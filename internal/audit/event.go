// Package audit defines gatehouse's typed audit events and the Log that
// appends them to durable storage in batches, off the data path.
//
// Every event is also a link of its gateway node's hash chain (package
// chain): the Log's writer goroutine numbers the node's events 1, 2, 3…,
// links each to the previous one's hash and signs the head in periodic
// checkpoints, so the data path still pays only for a channel send.
// docs/audit.md describes the design and how to verify a chain.
package audit

import (
	"encoding/json"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit/chain"
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
	Detail     json.RawMessage `json:"detail,omitempty"` // type-specific JSON object, stored compact

	// Chain fields, assigned by the Log's writer (zero for events stored
	// before chaining or appended to a store directly).
	Node     string       `json:"node,omitempty"`      // the gateway node whose chain this event is in
	NodeSeq  int64        `json:"node_seq,omitempty"`  // 1, 2, 3… per node, gap-free
	PrevHash chain.Digest `json:"prev_hash,omitempty"` // Hash of node_seq-1; chain.Genesis for node_seq 1
	Hash     chain.Digest `json:"hash,omitempty"`      // SHA-256 of chain.AppendEncoding(ChainFields())

	// DetailValue, when Detail is nil, is marshalled into Detail by the Log's
	// writer goroutine, keeping JSON encoding off the data path.
	DetailValue any `json:"-"`

	// JournalID is the id of the statement's decision in the node's
	// decision journal (0 = not journaled). Once the event is stored, the
	// Log hands it to Options.Stored so the journal can forget it.
	JournalID uint64 `json:"-"`
}

// Filter selects events for reading. Zero fields do not filter.
type Filter struct {
	Principal  string    // subject
	Connection string    // connection name
	Decision   string    // allow | deny | hold
	Type       string    // event type
	SessionID  string    // session id
	Node       string    // chain node
	Since      time.Time // events at or after
	AfterSeq   int64     // events with seq > AfterSeq; then Limit takes the oldest N, so followers page forward
	BeforeSeq  int64     // events with seq < BeforeSeq (0 = no bound)
	Before     time.Time // events before (retention)
	NodeSeqTo  int64     // events with node_seq <= NodeSeqTo (0 = no bound)
	Ascending  bool      // take the oldest N (as with AfterSeq) even when AfterSeq is 0
	Limit      int       // at most N (0 = 100): the most recent N, or the oldest N after AfterSeq; always ascending seq order
}

// ChainFields returns what e's chain hash covers.
func (e *Event) ChainFields() *chain.Fields {
	return &chain.Fields{Node: e.Node, NodeSeq: e.NodeSeq, PrevHash: e.PrevHash, Time: e.Time, Type: e.Type,
		SessionID: e.SessionID, Issuer: e.Issuer, Subject: e.Subject, Connection: e.Connection,
		Decision: e.Decision, Reason: e.Reason, Statement: e.Statement, Detail: e.Detail}
}

// Checkpoint is a signed chain head (see chain.Checkpoint).
type Checkpoint = chain.Checkpoint

// CheckpointFilter selects checkpoints for reading, in ascending ID order.
type CheckpointFilter struct {
	Node    string // "" = all nodes
	AfterID int64  // checkpoints with ID > AfterID
	Newest  bool   // only the one with the highest node_seq (per the Node filter)
	Limit   int    // at most N (0 = 100)
}

// Head is the last event of a node's chain; zero when the chain is empty.
type Head struct {
	Node    string       `json:"node"`
	NodeSeq int64        `json:"node_seq"`
	Hash    chain.Digest `json:"hash"`
}
