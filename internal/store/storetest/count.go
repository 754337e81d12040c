package storetest

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/store"
)

// testEventCount checks CountEvents against the same filters ListEvents
// takes, with Limit ignored.
func testEventCount(t *testing.T, s store.Store) {
	appendAll(t, s, []audit.Event{
		ev(audit.TypeSessionOpened, "bob", "orders", "allow", "s1", t0),
		ev(audit.TypeStatement, "bob", "orders", "allow", "s1", t0.Add(time.Second)),
		ev(audit.TypeStatement, "bob", "orders", "deny", "s1", t0.Add(2*time.Second)),
		ev(audit.TypeStatement, "ann", "billing", "allow", "s2", t0.Add(3*time.Second)),
	})
	for _, tc := range []struct {
		f    audit.Filter
		want int64
	}{
		{audit.Filter{}, 4},
		{audit.Filter{Limit: 1}, 4},
		{audit.Filter{SessionID: "s1", Type: audit.TypeStatement}, 2},
		{audit.Filter{SessionID: "s1", Decision: "deny"}, 1},
		{audit.Filter{Principal: "ann"}, 1},
		{audit.Filter{Connection: "orders", Since: t0.Add(time.Second)}, 2},
		{audit.Filter{AfterSeq: 3}, 1},
		{audit.Filter{SessionID: "nope"}, 0},
	} {
		n, err := s.CountEvents(ctx(t), tc.f)
		if err != nil || n != tc.want {
			t.Errorf("CountEvents(%+v) = %d, %v; want %d", tc.f, n, err, tc.want)
		}
	}
}
