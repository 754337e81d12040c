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

// Reviews and grants are JSON documents beside the columns lists filter on
// (docs tables: id, status, connection, subject, created_at, updated_at, body).

func (s *Store) putDoc(ctx context.Context, table, id, status, connection, subject string, created time.Time, body []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO `+table+` (id, status, connection, subject, created_at, updated_at, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, body = excluded.body`,
		id, status, connection, subject, sqlcommon.Micro(created).UnixMicro(), time.Now().UnixMicro(), string(body))
	if err != nil {
		return fmt.Errorf("postgres store: put %s: %w", table, err)
	}
	return nil
}

func (s *Store) getDoc(ctx context.Context, table, id string) ([]byte, error) {
	var body string
	err := s.pool.QueryRow(ctx, `SELECT body::text FROM `+table+` WHERE id = $1`, id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s %q: %w", table, id, approval.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: get %s: %w", table, err)
	}
	return []byte(body), nil
}

func (s *Store) listDocs(ctx context.Context, table string, q string, args []any) ([][]byte, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list %s: %w", table, err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("postgres store: list %s: %w", table, err)
		}
		out = append(out, []byte(body))
	}
	return out, rows.Err()
}

// PutReview inserts r or replaces the review of the same id.
func (s *Store) PutReview(ctx context.Context, r approval.Review) error {
	body, err := sqlcommon.EncodeReview(r)
	if err != nil {
		return fmt.Errorf("postgres store: put review: %w", err)
	}
	return s.putDoc(ctx, "reviews", r.ID, string(r.Status), r.Connection, r.Requester.Subject, r.CreatedAt, body)
}

// GetReview returns review id or an error wrapping approval.ErrNotFound.
func (s *Store) GetReview(ctx context.Context, id string) (approval.Review, error) {
	b, err := s.getDoc(ctx, "reviews", id)
	if err != nil {
		return approval.Review{}, err
	}
	return sqlcommon.DecodeReview(b)
}

// ListReviews returns reviews matching f, most recent first.
func (s *Store) ListReviews(ctx context.Context, f approval.Filter) ([]approval.Review, error) {
	q, args := sqlcommon.ReviewQuery(f, func(i int) string { return "$" + strconv.Itoa(i) })
	docs, err := s.listDocs(ctx, "reviews", q, args)
	if err != nil {
		return nil, err
	}
	return sqlcommon.DecodeAll(docs, sqlcommon.DecodeReview)
}

// PutGrant inserts g or replaces the grant of the same id.
func (s *Store) PutGrant(ctx context.Context, g approval.Grant) error {
	body, err := sqlcommon.EncodeGrant(g)
	if err != nil {
		return fmt.Errorf("postgres store: put grant: %w", err)
	}
	return s.putDoc(ctx, "grants", g.ID, string(g.Status), g.Connection, g.Requester.Subject, g.CreatedAt, body)
}

// GetGrant returns grant id or an error wrapping approval.ErrNotFound.
func (s *Store) GetGrant(ctx context.Context, id string) (approval.Grant, error) {
	b, err := s.getDoc(ctx, "grants", id)
	if err != nil {
		return approval.Grant{}, err
	}
	return sqlcommon.DecodeGrant(b)
}

// ListGrants returns grants matching f, most recent first.
func (s *Store) ListGrants(ctx context.Context, f approval.GrantFilter) ([]approval.Grant, error) {
	q, args := sqlcommon.GrantQuery(f, func(i int) string { return "$" + strconv.Itoa(i) })
	docs, err := s.listDocs(ctx, "grants", q, args)
	if err != nil {
		return nil, err
	}
	return sqlcommon.DecodeAll(docs, sqlcommon.DecodeGrant)
}
