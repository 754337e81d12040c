package sqlite

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
		return 0, errors.New("sqlite store: prune: marker without node or node_seq")
	}
	m.Time = sqlcommon.Micro(m.Time)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite store: prune: %w", err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `INSERT INTO audit_prune_markers (node, node_seq, hash, time, key_id, signature)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		m.Node, m.NodeSeq, []byte(m.Hash), micros(m.Time), m.KeyID, m.Signature).Scan(&m.ID); err != nil {
		return 0, fmt.Errorf("sqlite store: prune: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE node = ? AND node_seq > 0 AND node_seq <= ?`, m.Node, m.NodeSeq)
	if err != nil {
		return 0, fmt.Errorf("sqlite store: prune: %w", err)
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE node = ? AND node_seq <= ?`, m.Node, m.NodeSeq); err != nil {
		return 0, fmt.Errorf("sqlite store: prune: %w", err)
	}
	if err := tx.Commit(); err != nil {
		m.ID = 0
		return 0, fmt.Errorf("sqlite store: prune: commit: %w", err)
	}
	return n, nil
}

// ListPruneMarkers returns node's prune markers ("" = all) in ID order.
func (s *Store) ListPruneMarkers(ctx context.Context, node string) ([]audit.PruneMarker, error) {
	q := "SELECT " + sqlcommon.PruneMarkerColumns + " FROM audit_prune_markers"
	var args []any
	if node != "" {
		q += " WHERE node = ?"
		args = append(args, node)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY id", args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list prune markers: %w", err)
	}
	defer rows.Close()
	var out []audit.PruneMarker
	for rows.Next() {
		var m audit.PruneMarker
		var t int64
		var hash []byte
		if err := rows.Scan(&m.ID, &m.Node, &m.NodeSeq, &hash, &t, &m.KeyID, &m.Signature); err != nil {
			return nil, fmt.Errorf("sqlite store: list prune markers: %w", err)
		}
		m.Hash, m.Time = hash, fromMicros(t)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list prune markers: %w", err)
	}
	return out, nil
}
