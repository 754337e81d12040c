// Package store persists gatehouse's state: connections (with encrypted
// upstream secrets), audit events with their chain fields, and signed audit
// checkpoints. Two backends share one schema and one
// conformance test suite: embedded SQLite (default, pure Go) and PostgreSQL.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/audit"
)

// ErrNotFound is returned when a named record does not exist.
var ErrNotFound = errors.New("not found")

// Connection is a stored upstream target. Secret is ciphertext produced by
// the credential package; the store never sees plaintext secrets.
type Connection struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"` // "postgres"
	Address   string    `json:"address"`
	Database  string    `json:"database"`
	Username  string    `json:"username"`
	Secret    []byte    `json:"-"`      // encrypted password (credential.Box); nil = none
	TLSMode   string    `json:"tls"`    // disable | require | verify-full
	TLSCA     string    `json:"tls_ca"` // PEM or file: reference for verify-full; "" = system roots
	Access    []string  `json:"access"` // principal selectors allowed to connect
	Source    string    `json:"source"` // "config" or "api"
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Store is the persistence seam. Implementations: package sqlite and package
// postgres; package storeopen picks one from configuration; package
// storetest is the conformance suite both pass.
//
// Times are stored in UTC with microsecond precision and read back exactly
// so; a zero time given to a write means "now".
type Store interface {
	// AppendEvents appends events atomically in one transaction, assigning
	// consecutive Seq values in order (written back into the slice).
	// Seqs are gap-free and follow commit order across all writers (also
	// across gateway nodes on PostgreSQL). Each Time is normalised (UTC,
	// microseconds, zero = now) and written back too, so the slice equals
	// what ListEvents will return. On error nothing is stored or written back.
	AppendEvents(ctx context.Context, events []audit.Event) error
	// ListEvents returns events matching f in ascending Seq order: the most
	// recent f.Limit (default 100) matching events.
	ListEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error)
	// CountEvents returns how many events match f (f.Limit is ignored).
	CountEvents(ctx context.Context, f audit.Filter) (int64, error)

	// ChainHead returns the node's event with the highest NodeSeq (zero
	// Head when none). AppendEvents refuses a second event with the same
	// non-zero (Node, NodeSeq): one chain has one writer.
	ChainHead(ctx context.Context, node string) (audit.Head, error)
	// AppendCheckpoint stores c and sets c.ID (ascending, not necessarily
	// gap-free); a second checkpoint for the same (Node, NodeSeq) is
	// ignored and leaves c.ID 0. Time is normalised like event times.
	AppendCheckpoint(ctx context.Context, c *audit.Checkpoint) error
	// ListCheckpoints returns checkpoints matching f in ascending ID order.
	ListCheckpoints(ctx context.Context, f audit.CheckpointFilter) ([]audit.Checkpoint, error)
	// PruneEvents stores a signed prune marker (setting m.ID) and, in the
	// same transaction, deletes m.Node's events with node_seq <= m.NodeSeq
	// and its checkpoints with node_seq <= m.NodeSeq (the marker now vouches
	// for that hash; later checkpoints, which cover the remaining events,
	// stay); it returns the number of events deleted. A second marker for one (Node, NodeSeq) fails.
	// audit.Prune chooses the point and signs the marker.
	PruneEvents(ctx context.Context, m *audit.PruneMarker) (int64, error)
	// ListPruneMarkers returns node's markers ("" = every node) in
	// ascending ID order.
	ListPruneMarkers(ctx context.Context, node string) ([]audit.PruneMarker, error)

	// PutConnection inserts c or replaces the connection of the same name,
	// keeping the stored CreatedAt on replace. An empty Secret or Access is
	// stored as none and read back as nil.
	PutConnection(ctx context.Context, c Connection) error
	GetConnection(ctx context.Context, name string) (Connection, error) // ErrNotFound if absent
	ListConnections(ctx context.Context) ([]Connection, error)
	DeleteConnection(ctx context.Context, name string) error // ErrNotFound if absent

	// Reviews of held statements (approval.Store): put inserts or
	// replaces by id; get returns an error wrapping approval.ErrNotFound
	// when absent; list returns the most recent first.
	PutReview(ctx context.Context, r approval.Review) error
	GetReview(ctx context.Context, id string) (approval.Review, error)
	ListReviews(ctx context.Context, f approval.Filter) ([]approval.Review, error)
	// Time-bound access grants (approval.GrantStore), alike.
	PutGrant(ctx context.Context, g approval.Grant) error
	GetGrant(ctx context.Context, id string) (approval.Grant, error)
	ListGrants(ctx context.Context, f approval.GrantFilter) ([]approval.Grant, error)

	Ping(ctx context.Context) error
	Close() error
}

// A Store is what a chained audit.Log writes to, and what audit.Prune
// prunes.
var (
	_ audit.ChainStore = Store(nil)
	_ audit.PruneStore = Store(nil)
)
