package checkpoint

import (
	"context"
	"strconv"
	"testing"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/policy"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// benchPolicySimple decides and records pgbench -S -M simple's statement,
// with a new literal each time, with the policies of file loaded ("" = none).
func benchPolicySimple(b *testing.B, file string) {
	log := audit.NewLog(&memSink{}, 1<<16, nil)
	defer log.Close(context.Background())
	cp := New(log, func(string) ([]string, bool) { return []string{"group:analysts"}, true }, metrics.New(nil))
	if file != "" {
		set, err := policy.ParseFile(file)
		if err != nil {
			b.Fatal(err)
		}
		cp.WithPolicies(policy.NewReloadable(set), nil)
	}
	sqlinspect.Warm()
	sess := &access.Session{ID: "s1", Principal: &access.Principal{Subject: "bob", Groups: []string{"analysts"}},
		Target: access.Target{Name: "bench", Type: "postgres"}}
	qs := make([]string, 4096)
	for i := range qs {
		qs[i] = "SELECT abalance FROM pgbench_accounts WHERE aid = " + strconv.Itoa(1+i*37) + ";"
	}
	a := &access.Action{Session: sess, Kind: access.ActionStatement, Statement: qs[0], Protocol: "simple"}
	if d, _ := cp.Check(context.Background(), a); !d.Allowed() {
		b.Fatalf("denied: %+v", d)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := &access.Action{Session: sess, Kind: access.ActionStatement, Statement: qs[i%len(qs)], Protocol: "simple"}
		d, _ := cp.Check(context.Background(), a)
		cp.Record(a, d, access.Outcome{Rows: 1})
		i++
	}
}

// BenchmarkCheckSimpleNoPolicies is the baseline of BenchmarkCheckSimplePolicies.
func BenchmarkCheckSimpleNoPolicies(b *testing.B) { benchPolicySimple(b, "") }

// BenchmarkCheckSimplePolicies decides pgbench's simple-query statement with
// bench/policies-realistic.yaml: facts come from the shape cache.
func BenchmarkCheckSimplePolicies(b *testing.B) {
	benchPolicySimple(b, "../../bench/policies-realistic.yaml")
}

// BenchmarkDecideSimplePolicies is BenchmarkCheckSimplePolicies without the
// audit record and metrics: the policy decision path alone, whose
// allocations it reports.
func BenchmarkDecideSimplePolicies(b *testing.B) {
	set, err := policy.ParseFile("../../bench/policies-realistic.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cp := New(nil, func(string) ([]string, bool) { return []string{"group:analysts"}, true }, nil).
		WithPolicies(policy.NewReloadable(set), nil)
	sqlinspect.Warm()
	sess := &access.Session{ID: "s1", Principal: &access.Principal{Subject: "bob", Groups: []string{"analysts"}},
		Target: access.Target{Name: "bench", Type: "postgres"}}
	as := make([]access.Action, 4096)
	for i := range as {
		as[i] = access.Action{Session: sess, Kind: access.ActionStatement, Protocol: "simple",
			Statement: "SELECT abalance FROM pgbench_accounts WHERE aid = " + strconv.Itoa(1+i*37) + ";"}
	}
	if d := cp.Decide(&as[0]); !d.Allowed() {
		b.Fatalf("denied: %+v", d)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		cp.Decide(&as[i%len(as)])
		i++
	}
}
