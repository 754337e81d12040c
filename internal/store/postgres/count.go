package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlcommon"
)

// CountEvents returns how many events match f, ignoring f.Limit.
func (s *Store) CountEvents(ctx context.Context, f audit.Filter) (int64, error) {
	q, args := sqlcommon.CountQuery(f, func(n int) string { return fmt.Sprintf("$%d", n) }, func(t time.Time) any { return t })
	var n int64
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres store: count events: %w", err)
	}
	return n, nil
}
