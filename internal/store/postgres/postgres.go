// Package postgres is gatehouse's production store on PostgreSQL (pgx/v5
// pgxpool), for several gateway nodes sharing one database. It has the same
// logical schema as the SQLite store and passes the same conformance suite.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlcommon"
	"github.com/gatehouse/gatehouse/internal/store/migrations"
)

// auditLockID is the transaction-level advisory lock that serialises
// AppendEvents across all gateway nodes ("gatehaud" in ASCII, to stay clear
// of goose's migration lock and of other applications' lock ids).
const auditLockID int64 = 0x6761746568617564

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or keyword
// string) and applies pending migrations. Errors never include the
// password.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err) // pgx redacts the password
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool) // goose needs database/sql; closing db leaves the pool open
	err = migrations.Up(ctx, db, migrations.Postgres)
	db.Close()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Ping checks the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres store: %w", err)
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

var eventColumns = []string{"seq", "time", "type", "session_id", "issuer", "subject", "connection",
	"decision", "reason", "statement", "detail", "node", "node_seq", "prev_hash", "hash"}

// AppendEvents inserts events in one transaction with COPY.
//
// Seq assignment: the transaction first takes pg_advisory_xact_lock, then
// reads max(seq) in a new statement (so its READ COMMITTED snapshot sees
// every batch committed before the lock was granted) and numbers the batch
// max+1, max+2, …. Batches from all nodes are thus serialised, seqs are
// gap-free (a rollback consumes nothing, unlike a sequence) and follow
// commit order, which the audit hash chain relies on. The lock is held only
// for the COPY and COMMIT of one batch, so the cost is one short critical
// section per batch, not per event.
//
// Time is normalised to UTC microseconds (now if zero); Seq and the
// normalised Time are written back into events only after COMMIT succeeds.
func (s *Store) AppendEvents(ctx context.Context, events []audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	now := time.Now()
	times := make([]time.Time, len(events))
	rows := make([][]any, len(events))
	for i := range events {
		e := &events[i]
		t := e.Time
		if t.IsZero() {
			t = now
		}
		times[i] = sqlcommon.Micro(t)
		var detail any
		if len(e.Detail) > 0 {
			detail = string(e.Detail)
		}
		rows[i] = []any{int64(0), times[i], e.Type, e.SessionID, e.Issuer, e.Subject, e.Connection,
			e.Decision, e.Reason, e.Statement, detail, e.Node, e.NodeSeq, nilIfEmpty(e.PrevHash), nilIfEmpty(e.Hash)}
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres store: append events: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLockID); err != nil {
		return fmt.Errorf("postgres store: append events: lock: %w", err)
	}
	var last int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) FROM audit_events`).Scan(&last); err != nil {
		return fmt.Errorf("postgres store: append events: %w", err)
	}
	for i := range rows {
		rows[i][0] = last + int64(i) + 1
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, eventColumns, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("postgres store: append events: %w", err)
	}
	if n != int64(len(rows)) {
		return fmt.Errorf("postgres store: append events: copied %d of %d rows", n, len(rows))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres store: append events: commit: %w", err)
	}
	for i := range events {
		events[i].Seq = last + int64(i) + 1
		events[i].Time = times[i]
	}
	return nil
}

// ListEvents returns the most recent Limit events matching f (the oldest
// Limit after f.AfterSeq, for forward paging), in ascending
// seq order.
func (s *Store) ListEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	q, args := sqlcommon.EventQuery(f, func(n int) string { return fmt.Sprintf("$%d", n) }, func(t time.Time) any { return t })
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list events: %w", err)
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var e audit.Event
		var detail, prev, hash []byte
		if err := rows.Scan(&e.Seq, &e.Time, &e.Type, &e.SessionID, &e.Issuer, &e.Subject, &e.Connection,
			&e.Decision, &e.Reason, &e.Statement, &detail, &e.Node, &e.NodeSeq, &prev, &hash); err != nil {
			return nil, fmt.Errorf("postgres store: list events: %w", err)
		}
		e.Time = e.Time.UTC()
		e.Detail = sqlcommon.NilIfEmpty(detail)
		e.PrevHash, e.Hash = sqlcommon.NilIfEmpty(prev), sqlcommon.NilIfEmpty(hash)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list events: %w", err)
	}
	return sqlcommon.Ascending(f, out), nil
}

// nilIfEmpty passes a hash to COPY as a plain []byte, or NULL.
func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

// ChainHead returns node's last chained event.
func (s *Store) ChainHead(ctx context.Context, node string) (audit.Head, error) {
	h := audit.Head{Node: node}
	var hash []byte
	err := s.pool.QueryRow(ctx, fmt.Sprintf(sqlcommon.ChainHeadQuery, "$1"), node).Scan(&h.NodeSeq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("postgres store: chain head: %w", err)
	}
	h.Hash = hash
	return h, nil
}

// AppendCheckpoint stores c, ignoring a duplicate (node, node_seq).
func (s *Store) AppendCheckpoint(ctx context.Context, c *audit.Checkpoint) error {
	c.Time = sqlcommon.Micro(c.Time)
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO audit_checkpoints (node, node_seq, hash, time, key_id, signature)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node, node_seq) DO NOTHING RETURNING id`,
		c.Node, c.NodeSeq, []byte(c.Hash), c.Time, c.KeyID, c.Signature).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres store: append checkpoint: %w", err)
	}
	c.ID = id
	return nil
}

// ListCheckpoints returns checkpoints after f.AfterID in ID order.
func (s *Store) ListCheckpoints(ctx context.Context, f audit.CheckpointFilter) ([]audit.Checkpoint, error) {
	q, args := sqlcommon.CheckpointQuery(f, func(n int) string { return fmt.Sprintf("$%d", n) })
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list checkpoints: %w", err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		var hash []byte
		if err := rows.Scan(&c.ID, &c.Node, &c.NodeSeq, &hash, &c.Time, &c.KeyID, &c.Signature); err != nil {
			return nil, fmt.Errorf("postgres store: list checkpoints: %w", err)
		}
		c.Hash, c.Time = hash, c.Time.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list checkpoints: %w", err)
	}
	return out, nil
}

const connColumns = "name, type, address, database, username, secret, tls_mode, tls_ca, access, source, created_at, updated_at"

// PutConnection inserts c or replaces the connection of the same name. On
// replace the original CreatedAt is kept. Zero CreatedAt/UpdatedAt mean now.
func (s *Store) PutConnection(ctx context.Context, c store.Connection) error {
	if c.Name == "" {
		return errors.New("postgres store: connection name is empty")
	}
	access, err := sqlcommon.EncodeAccess(c.Access)
	if err != nil {
		return fmt.Errorf("postgres store: put connection: %w", err)
	}
	now := time.Now()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = now
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO connections (`+connColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (name) DO UPDATE SET type = excluded.type, address = excluded.address,
			database = excluded.database, username = excluded.username, secret = excluded.secret,
			tls_mode = excluded.tls_mode, tls_ca = excluded.tls_ca, access = excluded.access,
			source = excluded.source, updated_at = excluded.updated_at`,
		c.Name, c.Type, c.Address, c.Database, c.Username, sqlcommon.NilIfEmpty(c.Secret), c.TLSMode, c.TLSCA,
		access, c.Source, sqlcommon.Micro(c.CreatedAt), sqlcommon.Micro(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("postgres store: put connection: %w", err)
	}
	return nil
}

func scanConnection(row pgx.Row) (store.Connection, error) {
	var c store.Connection
	var access string
	if err := row.Scan(&c.Name, &c.Type, &c.Address, &c.Database, &c.Username, &c.Secret, &c.TLSMode, &c.TLSCA,
		&access, &c.Source, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return c, err
	}
	var err error
	if c.Access, err = sqlcommon.DecodeAccess(access); err != nil {
		return c, fmt.Errorf("connection %q: %w", c.Name, err)
	}
	c.Secret = sqlcommon.NilIfEmpty(c.Secret)
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, nil
}

// GetConnection returns the named connection or store.ErrNotFound.
func (s *Store) GetConnection(ctx context.Context, name string) (store.Connection, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx, `SELECT `+connColumns+` FROM connections WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Connection{}, fmt.Errorf("connection %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Connection{}, fmt.Errorf("postgres store: get connection: %w", err)
	}
	return c, nil
}

// ListConnections returns all connections ordered by name.
func (s *Store) ListConnections(ctx context.Context) ([]store.Connection, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+connColumns+` FROM connections ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list connections: %w", err)
	}
	defer rows.Close()
	var out []store.Connection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres store: list connections: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list connections: %w", err)
	}
	return out, nil
}

// DeleteConnection removes the named connection, or returns
// store.ErrNotFound.
func (s *Store) DeleteConnection(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM connections WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("postgres store: delete connection: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("connection %q: %w", name, store.ErrNotFound)
	}
	return nil
}
