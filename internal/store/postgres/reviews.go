package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlcommon"
)

// PutReview inserts r or replaces the review of the same id.
func (s *Store) PutReview(ctx context.Context, r approval.Review) error {
	body, err := sqlcommon.EncodeReview(r)
	if err != nil {
		return fmt.Errorf("postgres store: put review: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO reviews (id, status, connection, subject, created_at, updated_at, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, body = excluded.body`,
		r.ID, string(r.Status), r.Connection, r.Requester.Subject, sqlcommon.Micro(r.CreatedAt).UnixMicro(),
		time.Now().UnixMicro(), string(body))
	if err != nil {
		return fmt.Errorf("postgres store: put review: %w", err)
	}
	return nil
}

// GetReview returns review id or approval.ErrNotFound.
func (s *Store) GetReview(ctx context.Context, id string) (approval.Review, error) {
	var body []byte
	err := s.pool.QueryRow(ctx, `SELECT body::text FROM reviews WHERE id = $1`, id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return approval.Review{}, fmt.Errorf("review %q: %w", id, approval.ErrNotFound)
	}
	if err != nil {
		return approval.Review{}, fmt.Errorf("postgres store: get review: %w", err)
	}
	return sqlcommon.DecodeReview(body)
}

// ListReviews returns reviews matching f, most recent first.
func (s *Store) ListReviews(ctx context.Context, f approval.Filter) ([]approval.Review, error) {
	q, args := sqlcommon.ReviewQuery(f, func(i int) string { return "$" + strconv.Itoa(i) })
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list reviews: %w", err)
	}
	defer rows.Close()
	var out []approval.Review
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("postgres store: list reviews: %w", err)
		}
		r, err := sqlcommon.DecodeReview(body)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
