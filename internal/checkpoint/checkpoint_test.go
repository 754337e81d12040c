package checkpoint

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/metrics"
)

// memSink keeps appended events in memory.
type memSink struct {
	mu     sync.Mutex
	events []audit.Event
}

func (m *memSink) AppendEvents(ctx context.Context, ev []audit.Event) error {
	m.mu.Lock()
	m.events = append(m.events, ev...)
	m.mu.Unlock()
	return nil
}

func TestCheckFollowsLiveAccessList(t *testing.T) {
	sink := &memSink{}
	log := audit.NewLog(sink, 16, nil)
	acl := map[string][]string{"orders": {"group:analysts"}}
	var mu sync.Mutex
	cp := New(log, func(n string) ([]string, bool) { mu.Lock(); defer mu.Unlock(); s, ok := acl[n]; return s, ok }, metrics.New(nil))
	sess := &access.Session{ID: "s1", Principal: &access.Principal{Subject: "bob", Groups: []string{"analysts"}},
		Target: access.Target{Name: "orders", Type: "postgres"}}
	a := &access.Action{Session: sess, Kind: access.ActionStatement, Statement: "select 1"}
	d, err := cp.Check(context.Background(), a)
	if err != nil || !d.Allowed() {
		t.Fatalf("allowed principal: %+v %v", d, err)
	}
	cp.Record(a, d, access.Outcome{Duration: 2 * time.Millisecond, Rows: 1, Command: "SELECT 1"})
	mu.Lock()
	acl["orders"] = []string{"group:admins"}
	mu.Unlock()
	if d, _ := cp.Check(context.Background(), a); d.Allowed() || d.Reason == "" {
		t.Fatalf("revoked access still allowed: %+v", d)
	}
	mu.Lock()
	delete(acl, "orders")
	mu.Unlock()
	if d, _ := cp.Check(context.Background(), a); d.Allowed() {
		t.Fatalf("deleted connection still allowed: %+v", d)
	}
	log.Close(context.Background())
	if len(sink.events) != 3 {
		t.Fatalf("events: %d", len(sink.events))
	}
	var det map[string]any
	json.Unmarshal(sink.events[0].Detail, &det)
	if sink.events[0].Decision != "allow" || det["rows"] != float64(1) || det["command"] != "SELECT 1" {
		t.Errorf("allowed event: %+v %s", sink.events[0], sink.events[0].Detail)
	}
	if sink.events[1].Decision != "deny" || sink.events[1].Statement != "select 1" || sink.events[1].Subject != "bob" {
		t.Errorf("denied event: %+v", sink.events[1])
	}
}

func BenchmarkCheckAndRecord(b *testing.B) {
	log := audit.NewLog(&memSink{}, 1<<16, nil)
	defer log.Close(context.Background())
	cp := New(log, func(string) ([]string, bool) { return []string{"group:analysts"}, true }, metrics.New(nil))
	sess := &access.Session{ID: "s1", Principal: &access.Principal{Subject: "bob", Groups: []string{"analysts"}},
		Target: access.Target{Name: "orders", Type: "postgres"}}
	a := &access.Action{Session: sess, Kind: access.ActionStatement, Statement: "select 1"}
	b.ReportAllocs()
	for b.Loop() {
		d, _ := cp.Check(context.Background(), a)
		cp.Record(a, d, access.Outcome{Rows: 1})
	}
}
