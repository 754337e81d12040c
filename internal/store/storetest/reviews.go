package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/store"
)

func sampleReview(id string, created time.Time, st approval.Status, conn, subject string) approval.Review {
	return approval.Review{
		ID: id, Status: st, CreatedAt: created, ExpiresAt: created.Add(5 * time.Minute),
		Requester:  approval.Requester{Issuer: "https://idp", Subject: subject, Groups: []string{"agents"}, Act: []access.Actor{{Subject: "alice"}}},
		Connection: conn, SessionID: "s1", Statement: "DELETE FROM t WHERE id = $1", Params: []string{"42"},
		Approvers: []string{"group:dba"}, MinApprovals: 2, Remember: 10 * time.Minute, Binding: "abc",
		Votes: []approval.Vote{{Issuer: "https://idp", Subject: "bob", Approve: true, Time: created.Add(time.Second)}},
	}
}

func testReviews(t *testing.T, s store.Store) {
	if _, err := s.GetReview(ctx(t), "missing"); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("GetReview(missing) = %v, want ErrNotFound", err)
	}
	base := time.Date(2026, 11, 28, 10, 0, 0, 123456000, time.UTC)
	a := sampleReview("rv_a", base, approval.Pending, "orders", "agent-1")
	b := sampleReview("rv_b", base.Add(time.Minute), approval.Pending, "billing", "agent-2")
	for _, r := range []approval.Review{a, b} {
		if err := s.PutReview(ctx(t), r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetReview(ctx(t), "rv_a")
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("GetReview = %+v, %v; want %+v", got, err, a)
	}
	// Replace: status moves, the document follows.
	a.Status, a.Outcome, a.DecidedAt = approval.Denied, "denied by bob: no", base.Add(2*time.Minute)
	if err := s.PutReview(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetReview(ctx(t), "rv_a"); !reflect.DeepEqual(got, a) {
		t.Fatalf("after replace GetReview = %+v, want %+v", got, a)
	}
	all, err := s.ListReviews(ctx(t), approval.Filter{})
	if err != nil || len(all) != 2 || all[0].ID != "rv_b" || all[1].ID != "rv_a" {
		t.Fatalf("ListReviews = %v, %v; want rv_b, rv_a", ids(all), err)
	}
	for _, tc := range []struct {
		f    approval.Filter
		want []string
	}{
		{approval.Filter{Status: approval.Pending}, []string{"rv_b"}},
		{approval.Filter{Status: approval.Denied}, []string{"rv_a"}},
		{approval.Filter{Connection: "orders"}, []string{"rv_a"}},
		{approval.Filter{Subject: "agent-2"}, []string{"rv_b"}},
		{approval.Filter{Limit: 1}, []string{"rv_b"}},
		{approval.Filter{Status: approval.Expired}, nil},
	} {
		got, err := s.ListReviews(ctx(t), tc.f)
		if err != nil || !reflect.DeepEqual(ids(got), tc.want) {
			t.Errorf("ListReviews(%+v) = %v, %v; want %v", tc.f, ids(got), err, tc.want)
		}
	}
	if err := s.PutReview(ctx(t), approval.Review{}); err == nil {
		t.Error("PutReview without id succeeded")
	}
}

func ids(rs []approval.Review) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testGrants(t *testing.T, s store.Store) {
	if _, err := s.GetGrant(ctx(t), "missing"); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("GetGrant(missing) = %v, want ErrNotFound", err)
	}
	base := time.Date(2026, 11, 28, 10, 0, 0, 123456000, time.UTC)
	a := approval.Grant{ID: "gr_a", Status: approval.GrantPending, Connection: "orders", Group: "writers",
		Duration: 30 * time.Minute, Reason: "incident 7", Approvers: []string{"group:dba"}, CreatedAt: base,
		Requester: approval.Requester{Issuer: "https://idp", Subject: "agent-1"}}
	b := a
	b.ID, b.CreatedAt, b.Requester.Subject = "gr_b", base.Add(time.Minute), "agent-2"
	for _, g := range []approval.Grant{a, b} {
		if err := s.PutGrant(ctx(t), g); err != nil {
			t.Fatal(err)
		}
	}
	a.Status, a.DecidedAt, a.ExpiresAt = approval.GrantActive, base.Add(time.Second), base.Add(30*time.Minute+time.Second)
	a.Votes = []approval.Vote{{Issuer: "https://idp", Subject: "dana", Approve: true, Time: base.Add(time.Second)}}
	if err := s.PutGrant(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetGrant(ctx(t), "gr_a"); err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("GetGrant = %+v, %v; want %+v", got, err, a)
	}
	for _, tc := range []struct {
		f    approval.GrantFilter
		want []string
	}{
		{approval.GrantFilter{}, []string{"gr_b", "gr_a"}},
		{approval.GrantFilter{Status: approval.GrantActive}, []string{"gr_a"}},
		{approval.GrantFilter{Subject: "agent-2"}, []string{"gr_b"}},
		{approval.GrantFilter{Connection: "billing"}, nil},
		{approval.GrantFilter{Limit: 1}, []string{"gr_b"}},
	} {
		got, err := s.ListGrants(ctx(t), tc.f)
		var ids []string
		for _, g := range got {
			ids = append(ids, g.ID)
		}
		if err != nil || !reflect.DeepEqual(ids, tc.want) {
			t.Errorf("ListGrants(%+v) = %v, %v; want %v", tc.f, ids, err, tc.want)
		}
	}
}
