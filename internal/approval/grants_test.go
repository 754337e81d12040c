package approval_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/approval"
)

func TestGrantLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var got []string
	g := approval.NewGrants(openStore(t, dir), []string{"group:dba"}, func(e approval.GrantEvent) { got = append(got, e.Type) })
	if _, err := g.Request(ctx, agent, "orders", "writers", 200*time.Hour, "x"); !errors.Is(err, approval.ErrBadRequest) {
		t.Fatalf("too long: %v", err)
	}
	gr, err := g.Request(ctx, agent, "orders", "writers", time.Hour, "incident 7")
	if err != nil {
		t.Fatal(err)
	}
	if groups := g.Groups(agent, "orders"); groups != nil {
		t.Fatalf("pending grant in force: %v", groups)
	}
	if _, err := g.Vote(ctx, gr.ID, agent, true, ""); !errors.Is(err, approval.ErrSelfApproval) {
		t.Fatalf("self: %v", err)
	}
	if _, err := g.Vote(ctx, gr.ID, eve, true, ""); !errors.Is(err, approval.ErrNotApprover) {
		t.Fatalf("non-approver: %v", err)
	}
	if gr, err = g.Vote(ctx, gr.ID, dana, true, ""); err != nil || gr.Status != approval.GrantActive {
		t.Fatalf("approve: %+v %v", gr, err)
	}
	if groups := g.Groups(agent, "orders"); len(groups) != 1 || groups[0] != "writers" {
		t.Fatalf("active grant: %v", groups)
	}
	if groups := g.Groups(agent, "billing"); groups != nil {
		t.Fatalf("grant leaked to another connection: %v", groups)
	}
	if groups := g.Groups(otherIssuerAgent, "orders"); groups != nil {
		t.Fatalf("grant leaked to a same-named subject of another issuer: %v", groups)
	}
	// A restart keeps active grants.
	g2 := approval.NewGrants(openStore(t, dir), []string{"group:dba"}, nil)
	if err := g2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if groups := g2.Groups(agent, "orders"); len(groups) != 1 {
		t.Fatalf("after restart: %v", groups)
	}
	if _, err := g2.Revoke(ctx, gr.ID, eve, []string{"group:admins"}, ""); !errors.Is(err, approval.ErrNotApprover) {
		t.Fatalf("revoke by a stranger: %v", err)
	}
	if _, err := g2.Revoke(ctx, gr.ID, agent, nil, "done"); err != nil {
		t.Fatalf("revoke own: %v", err)
	}
	if groups := g2.Groups(agent, "orders"); groups != nil {
		t.Fatalf("revoked grant in force: %v", groups)
	}
	if _, err := g2.Revoke(ctx, gr.ID, dana, nil, ""); !errors.Is(err, approval.ErrFinal) {
		t.Fatalf("revoke twice: %v", err)
	}
	want := []string{approval.EventGrantRequested, approval.EventGrantApproved}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("events: %v", got)
	}
}
