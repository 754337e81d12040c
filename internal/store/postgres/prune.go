package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlcommon"
)

// PruneEvents stores the prune marker m and deletes what it covers in one
// transaction: a crash leaves either both or neither, never events missing
// without the marker that vouches for the rest.
func (s *Store) PruneEvents(ctx context.Context, m *audit.PruneMarker) (int64, error) {
	if m.Node == "" || m.NodeSeq <= 0 {
		return 0, errors.New("postgres store: prune: marker without node or node_seq")
	}
	m.Time = sqlcommon.Micro(m.Time)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres store: prune: %w", err)
	}
	defer tx.Rollback(ctx)
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO audit_prune_markers (node, node_seq, hash, time, key_id, signature)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		m.Node, m.NodeSeq, []byte(m.Hash), m.Time, m.KeyID, m.Signature).Scan(&id); err != nil {
		return 0, fmt.Errorf("postgres store: prune: %w", err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE node = $1 AND node_seq > 0 AND node_seq <= $2`, m.Node, m.NodeSeq)
	if err != nil {
		return 0, fmt.Errorf("postgres store: prune: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM audit_checkpoints WHERE node = $1 AND node_seq <= $2`, m.Node, m.NodeSeq); err != nil {
		return 0, fmt.Errorf("postgres store: prune: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres store: prune: commit: %w", err)
	}
	m.ID = id
	return tag.RowsAffected(), nil
}

// ListPruneMarkers returns node's prune markers ("" = all) in ID order.
func (s *Store) ListPruneMarkers(ctx context.Context, node string) ([]audit.PruneMarker, error) {
	q := "SELECT " + sqlcommon.PruneMarkerColumns + " FROM audit_prune_markers"
	var args []any
	if node != "" {
		q += " WHERE node = $1"
		args = append(args, node)
	}
	rows, err := s.pool.Query(ctx, q+" ORDER BY id", args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list prune markers: %w", err)
	}
	defer rows.Close()
	var out []audit.PruneMarker
	for rows.Next() {
		var m audit.PruneMarker
		var hash []byte
		if err := rows.Scan(&m.ID, &m.Node, &m.NodeSeq, &hash, &m.Time, &m.KeyID, &m.Signature); err != nil {
			return nil, fmt.Errorf("postgres store: list prune markers: %w", err)
		}
		m.Hash, m.Time = hash, m.Time.UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list prune markers: %w", err)
	}
	return out, nil
}
