package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlcommon"
)

// CountEvents returns how many events match f, ignoring f.Limit.
func (s *Store) CountEvents(ctx context.Context, f audit.Filter) (int64, error) {
	q, args := sqlcommon.CountQuery(f, func(int) string { return "?" }, func(t time.Time) any { return t.UnixMicro() })
	var n int64
	if err := s.r.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite store: count events: %w", err)
	}
	return n, nil
}
