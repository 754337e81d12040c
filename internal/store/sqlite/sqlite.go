// Package sqlite is gatehouse's embedded store: a single SQLite file
// (modernc.org/sqlite, pure Go, no cgo) in WAL mode.
//
// Writes go through one connection, so writers queue in Go instead of
// failing with SQLITE_BUSY; transactions start IMMEDIATE so a second process
// on the same file waits on busy_timeout rather than failing at COMMIT.
// Reads use a separate small pool of read-only connections, which WAL lets
// run beside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlcommon"
	"github.com/gatehouse/gatehouse/internal/store/migrations"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// FileName is the database file inside the data directory.
const FileName = "gatehouse.db"

// Store is the SQLite implementation of store.Store.
type Store struct {
	w       *sql.DB   // the single writer connection
	r       *sql.DB   // read-only pool
	insert1 *sql.Stmt // prepared one-row event insert, bound to w
	insertN *sql.Stmt // prepared insertRows-row event insert, bound to w
}

// insertRows is how many events one multi-row INSERT carries: it amortises
// the per-statement cost (about a third of the time of a one-row insert)
// while staying far below SQLite's bound-parameter limit.
const insertRows = 32

// insertSQL is the multi-row event insert. OR ROLLBACK: a constraint
// failure (a duplicate node_seq) rolls back the whole batch, which
// AppendEvents does on any error anyway, and it spares SQLite the statement
// journal an ABORT insert keeps to undo just the failing statement: without
// it every multi-row insert copied each page it touched into a spilled temp
// file first (≈1 pwrite per event in the gateway at -c 1).
func insertSQL(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT OR ROLLBACK INTO audit_events (" + sqlcommon.EventColumns + ") VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?" + strings.Repeat(",?", sqlcommon.EventColumnCount-1) + ")")
	}
	return b.String()
}

var _ store.Store = (*Store)(nil)

// OpenDir opens (creating if needed) dataDir/gatehouse.db. dataDir is
// created with mode 0700: the database holds encrypted secrets and the
// audit trail.
func OpenDir(ctx context.Context, dataDir string) (*Store, error) {
	if dataDir == "" {
		return nil, errors.New("sqlite store: empty data directory")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite store: create data directory: %w", err)
	}
	return Open(ctx, filepath.Join(dataDir, FileName))
}

// Open opens (creating if needed) the database file at path and applies
// pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite store: invalid database path %q", path)
	}
	// synchronous(FULL): a committed audit batch survives power loss, not
	// just a process crash; batching keeps that to one fsync per batch.
	common := url.Values{"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"}}
	// The writer gets a 32 MiB page cache: an audit batch dirties pages in
	// seven b-trees, and a small cache spills them to the WAL mid-batch.
	// temp_store(MEMORY) keeps what statement journal remains in memory
	// instead of a temp file written page by page.
	wq := url.Values{"_txlock": {"immediate"}, "_pragma": append([]string{"cache_size(-32768)", "temp_store(MEMORY)"}, common["_pragma"]...)}
	rq := url.Values{"_pragma": append([]string{"query_only(1)"}, common["_pragma"]...)}

	// Create the file 0600 before SQLite touches it: SQLite gives the -wal
	// and -shm files the database file's mode, and they hold the same data.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	f.Close()

	// Create the schema through the writer before readers open the file (a
	// query_only connection cannot switch it to WAL).
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, path, wq); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	r.SetMaxOpenConns(4)
	s := &Store{w: w, r: r}
	if s.insert1, err = w.PrepareContext(ctx, insertSQL(1)); err == nil {
		s.insertN, err = w.PrepareContext(ctx, insertSQL(insertRows))
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// migrate runs goose on its own short-lived connection: goose holds a
// connection while it works and must not compete with the single writer.
func migrate(ctx context.Context, path string, q url.Values) error {
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	defer db.Close()
	if err := migrations.Up(ctx, db, migrations.SQLite); err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	return nil
}

// Ping checks both connection pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.insert1, s.insertN} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, s.r.Close(), s.w.Close())
	return errors.Join(errs...)
}

func micros(t time.Time) int64 { return sqlcommon.Micro(t).UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// AppendEvents inserts events in one IMMEDIATE transaction. Seq values are
// max(seq)+1, +2, … read inside that transaction: the write lock makes them
// gap-free and in append order even with several processes on one file.
// Time is normalised to UTC microseconds (now if zero); Seq and the
// normalised Time are written back into events only after COMMIT succeeds.
func (s *Store) AppendEvents(ctx context.Context, events []audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite store: append events: %w", err)
	}
	defer tx.Rollback()
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_events`).Scan(&last); err != nil {
		return fmt.Errorf("sqlite store: append events: %w", err)
	}
	now := time.Now()
	times := make([]int64, len(events))
	for i := range events {
		t := events[i].Time
		if t.IsZero() {
			t = now
		}
		times[i] = micros(t)
	}
	// The statements were prepared on the writer connection, which is the
	// transaction's connection, so these reuse them without re-preparing.
	stmt1, stmtN := tx.StmtContext(ctx, s.insert1), tx.StmtContext(ctx, s.insertN)
	args := make([]any, 0, sqlcommon.EventColumnCount*insertRows)
	for i := 0; i < len(events); {
		stmt, n := stmtN, insertRows
		if len(events)-i < insertRows {
			stmt, n = stmt1, 1
		}
		args = args[:0]
		for j := i; j < i+n; j++ {
			e := &events[j]
			args = append(args, last+int64(j)+1, times[j], e.Type, e.SessionID, e.Issuer, e.Subject,
				e.Connection, e.Decision, e.Reason, e.Statement, nullText(e.Detail), e.Node, e.NodeSeq,
				nullBlob(e.PrevHash), nullBlob(e.Hash))
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("sqlite store: append events: %w", err)
		}
		i += n
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite store: append events: commit: %w", err)
	}
	for i := range events {
		events[i].Seq = last + int64(i) + 1
		events[i].Time = fromMicros(times[i])
	}
	return nil
}

// nullText stores JSON detail as TEXT (readable with the sqlite3 shell), or
// NULL when there is none.
func nullText(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// nullBlob stores a hash as a BLOB, or NULL when there is none.
func nullBlob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// ListEvents returns the most recent Limit events matching f (the oldest
// Limit after f.AfterSeq, for forward paging), in ascending
// seq order.
func (s *Store) ListEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	q, args := sqlcommon.EventQuery(f, func(int) string { return "?" }, func(t time.Time) any { return t.UnixMicro() })
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list events: %w", err)
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var e audit.Event
		var t int64
		var detail, prev, hash []byte
		if err := rows.Scan(&e.Seq, &t, &e.Type, &e.SessionID, &e.Issuer, &e.Subject, &e.Connection,
			&e.Decision, &e.Reason, &e.Statement, &detail, &e.Node, &e.NodeSeq, &prev, &hash); err != nil {
			return nil, fmt.Errorf("sqlite store: list events: %w", err)
		}
		e.Time = fromMicros(t)
		e.Detail = sqlcommon.NilIfEmpty(detail)
		e.PrevHash, e.Hash = sqlcommon.NilIfEmpty(prev), sqlcommon.NilIfEmpty(hash)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list events: %w", err)
	}
	return sqlcommon.Ascending(f, out), nil
}

// ChainHead returns node's last chained event.
func (s *Store) ChainHead(ctx context.Context, node string) (audit.Head, error) {
	h := audit.Head{Node: node}
	var hash []byte
	err := s.r.QueryRowContext(ctx, fmt.Sprintf(sqlcommon.ChainHeadQuery, "?"), node).Scan(&h.NodeSeq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("sqlite store: chain head: %w", err)
	}
	h.Hash = hash
	return h, nil
}

// AppendCheckpoint stores c, ignoring a duplicate (node, node_seq).
func (s *Store) AppendCheckpoint(ctx context.Context, c *audit.Checkpoint) error {
	c.Time = sqlcommon.Micro(c.Time)
	var id int64
	err := s.w.QueryRowContext(ctx, `INSERT INTO audit_checkpoints (node, node_seq, hash, time, key_id, signature)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node, node_seq) DO NOTHING RETURNING id`,
		c.Node, c.NodeSeq, []byte(c.Hash), micros(c.Time), c.KeyID, c.Signature).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite store: append checkpoint: %w", err)
	}
	c.ID = id
	return nil
}

// ListCheckpoints returns checkpoints after f.AfterID in ID order.
func (s *Store) ListCheckpoints(ctx context.Context, f audit.CheckpointFilter) ([]audit.Checkpoint, error) {
	q, args := sqlcommon.CheckpointQuery(f, func(int) string { return "?" })
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list checkpoints: %w", err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		var t int64
		var hash []byte
		if err := rows.Scan(&c.ID, &c.Node, &c.NodeSeq, &hash, &t, &c.KeyID, &c.Signature); err != nil {
			return nil, fmt.Errorf("sqlite store: list checkpoints: %w", err)
		}
		c.Hash, c.Time = hash, fromMicros(t)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list checkpoints: %w", err)
	}
	return out, nil
}
