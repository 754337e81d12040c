package policy

import (
	"testing"
	"time"
)

// BenchmarkEvaluate decides a SELECT with the example agents policy (five
// rules, the allow rule last) plus one policy that does not apply: the
// common case on the data path. The budget is 5 µs per statement.
func BenchmarkEvaluate(b *testing.B) {
	s := mustParse(b, agentsPolicy+`
  - name: billing
    connections: [billing]
    principals: ["*"]
    rules:
      - deny: statement.writes
`)
	in := agentInput("select")
	in.Statement.Tables = []string{"orders", "customers"}
	in.Statement.TablesQualified = QualifyTables(in.Statement.Tables)
	in.Statement.Functions = []string{"count"}
	in.Session.Time = time.Now()
	if d := s.Evaluate(in); d.Verdict != Allow {
		b.Fatalf("got %+v", d)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.Evaluate(in)
	}
}

// BenchmarkEvaluateParallel is BenchmarkEvaluate from all cores at once
// through a Reloadable, as sessions use it.
func BenchmarkEvaluateParallel(b *testing.B) {
	r := NewReloadable(mustParse(b, agentsPolicy))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		in := agentInput("select")
		in.Statement.TablesQualified = QualifyTables(in.Statement.Tables)
		for pb.Next() {
			r.Evaluate(in)
		}
	})
}

// BenchmarkParse compiles the example policy (load and reload cost).
func BenchmarkParse(b *testing.B) {
	data := []byte(agentsPolicy)
	for b.Loop() {
		if _, err := ParseBytes("b.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
