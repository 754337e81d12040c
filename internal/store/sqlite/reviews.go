package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlcommon"
)

// PutReview inserts r or replaces the review of the same id.
func (s *Store) PutReview(ctx context.Context, r approval.Review) error {
	body, err := sqlcommon.EncodeReview(r)
	if err != nil {
		return fmt.Errorf("sqlite store: put review: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO reviews (id, status, connection, subject, created_at, updated_at, body)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, body = excluded.body`,
		r.ID, string(r.Status), r.Connection, r.Requester.Subject, micros(r.CreatedAt), micros(time.Now()), string(body))
	if err != nil {
		return fmt.Errorf("sqlite store: put review: %w", err)
	}
	return nil
}

// GetReview returns review id or approval.ErrNotFound.
func (s *Store) GetReview(ctx context.Context, id string) (approval.Review, error) {
	var body string
	err := s.r.QueryRowContext(ctx, `SELECT body FROM reviews WHERE id = ?`, id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return approval.Review{}, fmt.Errorf("review %q: %w", id, approval.ErrNotFound)
	}
	if err != nil {
		return approval.Review{}, fmt.Errorf("sqlite store: get review: %w", err)
	}
	return sqlcommon.DecodeReview([]byte(body))
}

// ListReviews returns reviews matching f, most recent first.
func (s *Store) ListReviews(ctx context.Context, f approval.Filter) ([]approval.Review, error) {
	q, args := sqlcommon.ReviewQuery(f, func(int) string { return "?" })
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list reviews: %w", err)
	}
	defer rows.Close()
	var out []approval.Review
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("sqlite store: list reviews: %w", err)
		}
		r, err := sqlcommon.DecodeReview([]byte(body))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
