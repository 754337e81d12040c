package checkpoint

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/journal"
)

// failingSink fails every write while fail is set.
type failingSink struct {
	mu     sync.Mutex
	fail   bool
	events []audit.Event
}

func (s *failingSink) AppendEvents(_ context.Context, evs []audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("store down")
	}
	s.events = append(s.events, evs...)
	return nil
}

func durableFixture(t testing.TB, sink audit.Sink) (*Checkpoint, *journal.Journal, *audit.Log) {
	j, _, err := journal.Open(journal.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	log := audit.NewLog(sink, 1<<16, nil)
	cp := New(log, func(string) ([]string, bool) { return []string{"group:agents"}, true }, nil).WithJournal(j, 0, nil)
	return cp, j, log
}

var durableAction = &access.Action{Session: &access.Session{ID: "s1",
	Principal: &access.Principal{Issuer: "i", Subject: "bot", Groups: []string{"agents"}},
	Target:    access.Target{Name: "orders", Type: "postgres"}},
	Kind: access.ActionStatement, Protocol: "extended", Statement: "SELECT abalance FROM pgbench_accounts WHERE aid = $1"}

// TestCommitRefusesWhenStoreFails: a failing store refuses statements with
// the audit message and records the refusal once the store works.
func TestCommitRefusesWhenStoreFails(t *testing.T) {
	sink := &failingSink{fail: true}
	cp, _, log := durableFixture(t, sink)
	d := access.Decision{Verdict: access.Allow}
	if err := cp.Commit(durableAction, &d); err != nil || d.AuditID == 0 {
		t.Fatalf("first commit: %v, id %d", err, d.AuditID)
	}
	cp.Record(durableAction, d, access.Outcome{Rows: 1})
	for log.Healthy() == nil {
		// wait for the writer to meet the failing store
	}
	d2 := access.Decision{Verdict: access.Allow}
	err := cp.Commit(durableAction, &d2)
	if err == nil || !strings.Contains(err.Error(), "was not run") || cp.Refused() != 1 || cp.DurableErr() == nil {
		t.Fatalf("commit with the store down: %v (refused %d)", err, cp.Refused())
	}
	sink.mu.Lock()
	sink.fail = false
	sink.mu.Unlock()
	if err := log.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range sink.events {
		got = append(got, e.Decision)
	}
	if strings.Join(got, ",") != "allow,deny" || !strings.Contains(string(sink.events[0].Detail), `"decision_id":"`) {
		t.Fatalf("events %v %s", got, sink.events[0].Detail)
	}
}

// BenchmarkCommit is the per-execution cost of making a decision durable
// (audit.durability journal) on the data path.
func BenchmarkCommit(b *testing.B) {
	cp, j, log := durableFixture(b, &failingSink{})
	defer log.Close(context.Background())
	var ids []uint64
	b.ReportAllocs()
	for b.Loop() {
		d := access.Decision{Verdict: access.Allow}
		if err := cp.Commit(durableAction, &d); err != nil {
			b.Fatal(err)
		}
		if ids = append(ids, d.AuditID); len(ids) == 64 {
			j.Ack(ids)
			ids = ids[:0]
		}
	}
}
