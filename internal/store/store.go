// Package store persists gatehouse's state: connections (with encrypted
// upstream secrets) and audit events. Two backends share one schema and one
// conformance test suite: embedded SQLite (default, pure Go) and PostgreSQL.
package store

import (
	"context"
	"errors"
	"time"

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

// Store is the persistence seam.
type Store interface {
	// AppendEvents appends events atomically in one transaction, assigning
	// consecutive Seq values in order (written back into the slice).
	AppendEvents(ctx context.Context, events []audit.Event) error
	// ListEvents returns events matching f in ascending Seq order.
	ListEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error)

	PutConnection(ctx context.Context, c Connection) error // insert or replace by name
	GetConnection(ctx context.Context, name string) (Connection, error)
	ListConnections(ctx context.Context) ([]Connection, error)
	DeleteConnection(ctx context.Context, name string) error // ErrNotFound if absent

	Ping(ctx context.Context) error
	Close() error
}
