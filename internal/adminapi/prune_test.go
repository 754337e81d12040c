package adminapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/audit"
)

// TestPruneAudit: the route is admin-only, 404 without a prune hook,
// requires a cutoff, reads ages with days, and reports what was pruned.
func TestPruneAudit(t *testing.T) {
	ctx := context.Background()
	noHook := newEnv(t)
	if _, err := noHook.client(noHook.adminToken()).PruneAudit(ctx, "90d"); !isStatus(err, 404) {
		t.Fatalf("without a hook: %v, want 404", err)
	}

	var got time.Time
	e := newEnv(t, func(o *adminapi.Options) {
		o.PruneAudit = func(_ context.Context, before time.Time) (audit.PruneResult, error) {
			got = before
			if before.Before(time.Now().Add(-365 * 24 * time.Hour)) {
				return audit.PruneResult{}, nil
			}
			return audit.PruneResult{Marker: &audit.PruneMarker{Node: "gw", NodeSeq: 7}, Deleted: 7}, nil
		}
	})
	if _, err := e.client(e.userToken()).PruneAudit(ctx, "90d"); !isStatus(err, 403) {
		t.Fatalf("non-admin: %v, want 403", err)
	}
	for _, bad := range []string{"", "ninety days", "-5d", "0"} {
		if _, err := e.client(e.adminToken()).PruneAudit(ctx, bad); !isStatus(err, 400) {
			t.Errorf("before=%q: %v, want 400", bad, err)
		}
	}
	res, err := e.client(e.adminToken()).PruneAudit(ctx, "90d")
	if err != nil || !res.Pruned || res.Deleted != 7 || res.Marker.NodeSeq != 7 {
		t.Fatalf("prune 90d: %+v %v", res, err)
	}
	if d := time.Since(got) - 90*24*time.Hour; d < 0 || d > time.Minute {
		t.Fatalf("90d became a cutoff %s ago", time.Since(got))
	}
	res, err = e.client(e.adminToken()).PruneAudit(ctx, "2000-01-01T00:00:00Z")
	if err != nil || res.Pruned || res.Reason == "" || !got.Equal(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("prune before 2000: %+v %v (cutoff %s)", res, err, got)
	}
}

func isStatus(err error, status int) bool {
	var ae *adminapi.APIError
	return errors.As(err, &ae) && ae.Status == status
}
