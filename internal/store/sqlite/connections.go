package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlcommon"
)

const connColumns = "name, type, address, database, username, secret, tls_mode, tls_ca, access, source, created_at, updated_at"

// PutConnection inserts c or replaces the connection of the same name. On
// replace the original CreatedAt is kept. Zero CreatedAt/UpdatedAt mean now.
func (s *Store) PutConnection(ctx context.Context, c store.Connection) error {
	if c.Name == "" {
		return errors.New("sqlite store: connection name is empty")
	}
	access, err := sqlcommon.EncodeAccess(c.Access)
	if err != nil {
		return fmt.Errorf("sqlite store: put connection: %w", err)
	}
	now := time.Now()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = now
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO connections (`+connColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET type = excluded.type, address = excluded.address,
			database = excluded.database, username = excluded.username, secret = excluded.secret,
			tls_mode = excluded.tls_mode, tls_ca = excluded.tls_ca, access = excluded.access,
			source = excluded.source, updated_at = excluded.updated_at`,
		c.Name, c.Type, c.Address, c.Database, c.Username, sqlcommon.NilIfEmpty(c.Secret), c.TLSMode, c.TLSCA,
		access, c.Source, micros(c.CreatedAt), micros(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite store: put connection: %w", err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanConnection(row scanner) (store.Connection, error) {
	var c store.Connection
	var access string
	var created, updated int64
	if err := row.Scan(&c.Name, &c.Type, &c.Address, &c.Database, &c.Username, &c.Secret, &c.TLSMode, &c.TLSCA,
		&access, &c.Source, &created, &updated); err != nil {
		return c, err
	}
	var err error
	if c.Access, err = sqlcommon.DecodeAccess(access); err != nil {
		return c, fmt.Errorf("connection %q: %w", c.Name, err)
	}
	c.Secret = sqlcommon.NilIfEmpty(c.Secret)
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return c, nil
}

// GetConnection returns the named connection or store.ErrNotFound.
func (s *Store) GetConnection(ctx context.Context, name string) (store.Connection, error) {
	c, err := scanConnection(s.r.QueryRowContext(ctx, `SELECT `+connColumns+` FROM connections WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Connection{}, fmt.Errorf("connection %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Connection{}, fmt.Errorf("sqlite store: get connection: %w", err)
	}
	return c, nil
}

// ListConnections returns all connections ordered by name.
func (s *Store) ListConnections(ctx context.Context) ([]store.Connection, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+connColumns+` FROM connections ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list connections: %w", err)
	}
	defer rows.Close()
	var out []store.Connection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: list connections: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list connections: %w", err)
	}
	return out, nil
}

// DeleteConnection removes the named connection, or returns
// store.ErrNotFound.
func (s *Store) DeleteConnection(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM connections WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("sqlite store: delete connection: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite store: delete connection: %w", err)
	} else if n == 0 {
		return fmt.Errorf("connection %q: %w", name, store.ErrNotFound)
	}
	return nil
}
