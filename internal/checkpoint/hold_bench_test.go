package checkpoint

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/adminapi/adminapitest"
	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/policy"
)

const benchPolicies = `
policies:
  - name: agents
    connections: [orders]
    principals: ["group:agents"]
    rules:
      - deny: statement.kind in ["drop", "truncate"]
      - review: statement.writes
        approvers: ["group:dba"]
      - allow: statement.kind == "select"
    default: deny
`

// BenchmarkCheckNotHeld measures deciding a statement that is not held, with the
// policy only and with approvals wired (an active grant for someone else in
// the index), in the same run: the approvals feature must cost the
// statements it does not hold nothing measurable.
func BenchmarkCheckNotHeld(b *testing.B) {
	set, err := policy.ParseBytes("bench.yaml", []byte(benchPolicies))
	if err != nil {
		b.Fatal(err)
	}
	sess := &access.Session{ID: "s1", Principal: &access.Principal{Issuer: "i", Subject: "bot", Groups: []string{"agents"}},
		Target: access.Target{Name: "orders", Type: "postgres"}}
	a := &access.Action{Session: sess, Kind: access.ActionStatement, Statement: "SELECT abalance FROM pgbench_accounts WHERE aid = $1"}
	run := func(b *testing.B, withApprovals bool) {
		log := audit.NewLog(&memSink{}, 1<<16, nil)
		defer log.Close(context.Background())
		cp := New(log, func(string) ([]string, bool) { return []string{"group:agents"}, true }, nil).
			WithPolicies(policy.NewReloadable(set), nil)
		if withApprovals {
			st := adminapitest.NewStore()
			svc := approval.New(approval.Config{Store: st})
			grants := approval.NewGrants(st, []string{"group:dba"}, nil)
			ctx := context.Background()
			other := &access.Principal{Issuer: "i", Subject: "someone-else"}
			g, _ := grants.Request(ctx, other, "orders", "writers", time.Hour, "bench")
			if _, err := grants.Vote(ctx, g.ID, &access.Principal{Issuer: "i", Subject: "dba", Groups: []string{"dba"}}, true, ""); err != nil {
				b.Fatal(err)
			}
			cp.WithApprovals(&Approvals{Service: svc, Grants: grants})
		}
		cp.Decide(a) // first parse compiles the grammar: not what is measured
		b.ReportAllocs()
		for b.Loop() {
			if d := cp.Decide(a); !d.Allowed() {
				b.Fatalf("not allowed: %+v", d)
			}
		}
	}
	b.Run("policy-only", func(b *testing.B) { run(b, false) })
	b.Run("approvals", func(b *testing.B) { run(b, true) })
}
