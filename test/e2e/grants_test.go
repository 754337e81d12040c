package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/approval"
)

// TestGrants: a principal outside a connection's access list asks for a
// time-bound grant; an admin approves it; the principal connects and works;
// revocation and expiry take effect on the live session at its next
// statement; the history stays listable.
func TestGrants(t *testing.T) {
	e := startEnv(t, envOpts{access: `["group:writers"]`})
	ctx := context.Background()
	agentTok := e.token("agent-9", "agents")
	agent, admin := e.client(agentTok), e.client(e.token("root", "platform-admins"))

	if _, err := pgx.Connect(ctx, e.dsn("orders", agentTok)); sqlstate(err) != "28000" {
		t.Fatalf("before the grant: %v", err)
	}
	g, err := agent.RequestGrant(ctx, adminapi.GrantRequest{Connection: "orders", Group: "writers", Duration: "1h", Reason: "incident 42"})
	if err != nil || g.Status != approval.GrantPending {
		t.Fatalf("request: %+v %v", g, err)
	}
	if _, err := agent.RequestGrant(ctx, adminapi.GrantRequest{Connection: "orders", Group: "writers", Duration: "1h"}); apiStatus(err) != 400 {
		t.Fatalf("request without reason: %v", err)
	}
	if _, err := agent.GrantAction(ctx, g.ID, "approve", ""); apiStatus(err) != 403 {
		t.Fatalf("self-approval: %v", err)
	}
	// Still pending: no access.
	if _, err := pgx.Connect(ctx, e.dsn("orders", agentTok)); sqlstate(err) != "28000" {
		t.Fatalf("pending grant gave access: %v", err)
	}
	if out := e.runCLI(e.token("root", "platform-admins"), "grants", "approve", g.ID); !strings.Contains(out, "active") {
		t.Fatalf("cli approve: %s", out)
	}
	c, err := pgx.Connect(ctx, e.dsn("orders", agentTok))
	if err != nil {
		t.Fatalf("with an active grant: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	// pgx caches this as a prepared statement: later runs are Bind/Execute
	// of the statement parsed now, with no new Parse.
	cached := func() error {
		var v int
		return c.QueryRow(ctx, "select $1::int", 7).Scan(&v)
	}
	if err := cached(); err != nil {
		t.Fatal(err)
	}
	// Revocation applies at the next statement of the live session, a
	// re-execution of a prepared statement included.
	if _, err := admin.GrantAction(ctx, g.ID, "revoke", "incident closed"); err != nil {
		t.Fatal(err)
	}
	if err := cached(); sqlstate(err) != "42501" {
		t.Fatalf("prepared statement after revocation: %v", err)
	}
	if _, err := c.Exec(ctx, "select 1"); sqlstate(err) != "42501" {
		t.Fatalf("after revocation: %v", err)
	}
	// Expiry too: a short grant, approved, then outlived.
	g2, err := agent.RequestGrant(ctx, adminapi.GrantRequest{Connection: "orders", Group: "writers", Duration: "2s", Reason: "quick look"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.GrantAction(ctx, g2.ID, "approve", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatalf("with the second grant: %v", err)
	}
	if err := cached(); err != nil {
		t.Fatalf("prepared statement with the second grant: %v", err)
	}
	time.Sleep(2100 * time.Millisecond)
	if err := cached(); sqlstate(err) != "42501" {
		t.Fatalf("prepared statement after expiry: %v", err)
	}
	if _, err := c.Exec(ctx, "select 1"); sqlstate(err) != "42501" {
		t.Fatalf("after expiry: %v", err)
	}
	// History: both grants, with their final states, and audit events.
	gs, err := admin.ListGrants(ctx, approval.GrantFilter{Subject: "agent-9"})
	if err != nil || len(gs) != 2 || gs[0].Status != approval.GrantExpired || gs[1].Status != approval.GrantRevoked {
		t.Fatalf("history: %+v %v", gs, err)
	}
	evs := e.events(t, "principal=agent-9&limit=100")
	kinds := map[string]int{}
	for _, ev := range evs {
		kinds[ev.Type]++
	}
	if kinds[approval.EventGrantRequested] != 2 || kinds[approval.EventGrantApproved] != 2 || kinds[approval.EventGrantRevoked] != 1 {
		t.Fatalf("grant audit events: %v", kinds)
	}
}
