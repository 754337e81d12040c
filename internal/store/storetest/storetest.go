// Package storetest is the conformance suite every store.Store backend must
// pass. Backends call Run from their own tests with a function that opens a
// fresh, empty store.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Run runs the suite. open must return a new, empty store for each call; the
// suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ConnectionNotFound", testConnectionNotFound},
		{"ConnectionRoundTrip", testConnectionRoundTrip},
		{"ConnectionReplace", testConnectionReplace},
		{"ConnectionListDelete", testConnectionListDelete},
		{"EventSeq", testEventSeq},
		{"EventRoundTrip", testEventRoundTrip},
		{"EventFilters", testEventFilters},
		{"EventLimit", testEventLimit},
		{"EventCount", testEventCount},
		{"EventConcurrentAppend", testEventConcurrentAppend},
		{"EventFailedAppend", testEventFailedAppend},
		{"Reviews", testReviews},
		{"Grants", testGrants},
		{"ChainFields", testChainFields},
		{"ChainFilters", testChainFilters},
		{"Checkpoints", testCheckpoints},
		{"Ping", func(t *testing.T, s store.Store) {
			if err := s.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func testConnectionNotFound(t *testing.T, s store.Store) {
	if _, err := s.GetConnection(ctx(t), "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConnection(ctx(t), "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete missing: err = %v, want ErrNotFound", err)
	}
	list, err := s.ListConnections(ctx(t))
	if err != nil || len(list) != 0 {
		t.Errorf("List empty = %v, %v", list, err)
	}
	if err := s.PutConnection(ctx(t), store.Connection{Type: "postgres"}); err == nil {
		t.Error("Put with empty name accepted")
	}
}

// allBytes is a secret containing every byte value, NUL included.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func sampleConnection(name string) store.Connection {
	return store.Connection{
		Name:      name,
		Type:      "postgres",
		Address:   "127.0.0.1:5432",
		Database:  "app",
		Username:  "svc_" + name,
		Secret:    allBytes(),
		TLSMode:   "verify-full",
		TLSCA:     "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		Access:    []string{"group:data-agents", "sub:agent-1", "client:ci", "*"},
		Source:    "api",
		CreatedAt: time.Date(2024, 3, 1, 10, 0, 0, 123456789, time.FixedZone("X", 3600)),
		UpdatedAt: time.Date(2024, 3, 2, 11, 0, 0, 987654000, time.UTC),
	}
}

// normalised is what a store gives back for c: times in UTC truncated to
// microseconds, empty lists and secrets as nil.
func normalised(c store.Connection) store.Connection {
	c.CreatedAt = c.CreatedAt.UTC().Truncate(time.Microsecond)
	c.UpdatedAt = c.UpdatedAt.UTC().Truncate(time.Microsecond)
	if len(c.Access) == 0 {
		c.Access = nil
	}
	if len(c.Secret) == 0 {
		c.Secret = nil
	}
	return c
}

func checkConnection(t *testing.T, got, want store.Connection) {
	t.Helper()
	want = normalised(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("connection mismatch\n got  %+v\n want %+v", got, want)
	}
	if got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
		t.Errorf("times not in UTC: %v %v", got.CreatedAt.Location(), got.UpdatedAt.Location())
	}
}

func testConnectionRoundTrip(t *testing.T, s store.Store) {
	c := sampleConnection("orders")
	if err := s.PutConnection(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetConnection(ctx(t), "orders")
	if err != nil {
		t.Fatal(err)
	}
	checkConnection(t, got, c)

	// No secret, no access list, zero times (filled with now).
	bare := store.Connection{Name: "bare", Type: "postgres", Address: "localhost:1"}
	before := time.Now().Add(-time.Second)
	if err := s.PutConnection(ctx(t), bare); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetConnection(ctx(t), "bare")
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret != nil || got.Access != nil {
		t.Errorf("bare: secret %v access %v, want nil", got.Secret, got.Access)
	}
	if got.CreatedAt.Before(before) || got.UpdatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("bare: zero times not set to now: %v %v", got.CreatedAt, got.UpdatedAt)
	}
}

func testConnectionReplace(t *testing.T, s store.Store) {
	c := sampleConnection("orders")
	if err := s.PutConnection(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	c2 := store.Connection{
		Name: "orders", Type: "postgres", Address: "db2:5433", Database: "app2", Username: "u2",
		Secret: []byte{0, 1, 2}, TLSMode: "disable", Access: []string{"sub:only-me"}, Source: "config",
		CreatedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), // ignored on replace
		UpdatedAt: time.Date(2024, 4, 1, 0, 0, 0, 5000, time.UTC),
	}
	if err := s.PutConnection(ctx(t), c2); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetConnection(ctx(t), "orders")
	if err != nil {
		t.Fatal(err)
	}
	want := c2
	want.CreatedAt = c.CreatedAt
	checkConnection(t, got, want)

	// Replacing with no secret clears it.
	c2.Secret = nil
	if err := s.PutConnection(ctx(t), c2); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetConnection(ctx(t), "orders"); got.Secret != nil {
		t.Errorf("secret not cleared: %x", got.Secret)
	}
	if list, _ := s.ListConnections(ctx(t)); len(list) != 1 {
		t.Errorf("replace created a second row: %d rows", len(list))
	}
}

func testConnectionListDelete(t *testing.T, s store.Store) {
	for _, n := range []string{"c", "a", "b"} {
		if err := s.PutConnection(ctx(t), sampleConnection(n)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListConnections(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
		checkConnection(t, c, sampleConnection(c.Name))
	}
	if fmt.Sprint(names) != "[a b c]" {
		t.Errorf("List order = %v, want [a b c]", names)
	}
	if err := s.DeleteConnection(ctx(t), "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConnection(ctx(t), "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get deleted: err = %v", err)
	}
	if err := s.DeleteConnection(ctx(t), "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete twice: err = %v", err)
	}
	if list, _ := s.ListConnections(ctx(t)); len(list) != 2 {
		t.Errorf("after delete: %d connections, want 2", len(list))
	}
}

func ev(typ, subject, conn, decision, session string, at time.Time) audit.Event {
	return audit.Event{Time: at, Type: typ, Subject: subject, Connection: conn, Decision: decision, SessionID: session,
		Issuer: "https://issuer.test", Statement: "SELECT 1"}
}

var t0 = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

func appendAll(t *testing.T, s store.Store, events []audit.Event) []audit.Event {
	t.Helper()
	if err := s.AppendEvents(ctx(t), events); err != nil {
		t.Fatal(err)
	}
	return events
}

func seqs(events []audit.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Seq
	}
	return out
}

func testEventSeq(t *testing.T, s store.Store) {
	if err := s.AppendEvents(ctx(t), nil); err != nil {
		t.Fatalf("empty append: %v", err)
	}
	b1 := appendAll(t, s, []audit.Event{ev("statement", "a", "c", "allow", "s1", t0), ev("statement", "a", "c", "deny", "s1", t0), ev("statement", "a", "c", "allow", "s1", t0)})
	if fmt.Sprint(seqs(b1)) != "[1 2 3]" {
		t.Errorf("first batch seqs = %v, want [1 2 3]", seqs(b1))
	}
	b2 := appendAll(t, s, []audit.Event{ev("session.closed", "a", "c", "", "s1", t0)})
	if b2[0].Seq != 4 {
		t.Errorf("second batch seq = %d, want 4", b2[0].Seq)
	}
	got, err := s.ListEvents(ctx(t), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs(got)) != "[1 2 3 4]" {
		t.Errorf("listed seqs = %v", seqs(got))
	}
}

func testEventRoundTrip(t *testing.T, s store.Store) {
	loc := time.FixedZone("UTC-7", -7*3600)
	in := []audit.Event{
		{Time: time.Date(2024, 2, 29, 23, 59, 59, 999999999, loc), Type: "statement", SessionID: "sess-ü",
			Issuer: "https://iss", Subject: "agent:1", Connection: "orders", Decision: "deny",
			Reason: "denied by rule no-ddl: use a migration", Statement: "DROP TABLE x; -- 'quoted' \"ident\" \x01 ✓",
			Detail: json.RawMessage(`{"z": 1,  "a": [true, null], "s": "x\u00e9"}`)},
		{Time: time.Date(1999, 12, 31, 0, 0, 0, 1000, time.UTC), Type: "admin"},
		{Type: "session.opened"}, // zero time: store sets now
	}
	before := time.Now().Add(-time.Second)
	appendAll(t, s, in)
	if in[0].Time.Location() != time.UTC || !in[0].Time.Equal(time.Date(2024, 3, 1, 6, 59, 59, 999999000, time.UTC)) {
		t.Errorf("written-back time = %v, want UTC truncated to µs", in[0].Time)
	}
	if in[2].Time.Before(before) || in[2].Time.After(time.Now().Add(time.Second)) {
		t.Errorf("zero time not set to now: %v", in[2].Time)
	}
	got, err := s.ListEvents(ctx(t), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d events, want %d", len(got), len(in))
	}
	for i := range in {
		if !reflect.DeepEqual(got[i], in[i]) {
			t.Errorf("event %d mismatch\n got  %+v\n want %+v", i, got[i], in[i])
		}
		if got[i].Time.Location() != time.UTC {
			t.Errorf("event %d time location %v", i, got[i].Time.Location())
		}
	}
	if !bytes.Equal(got[0].Detail, in[0].Detail) {
		t.Errorf("detail not byte-exact: %s", got[0].Detail)
	}
	if got[1].Detail != nil {
		t.Errorf("absent detail read back as %q, want nil", got[1].Detail)
	}
}

func testEventFilters(t *testing.T, s store.Store) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	appendAll(t, s, []audit.Event{
		ev("session.opened", "alice", "orders", "", "s1", at(0)),  // 1
		ev("statement", "alice", "orders", "allow", "s1", at(1)),  // 2
		ev("statement", "alice", "orders", "deny", "s1", at(2)),   // 3
		ev("session.opened", "bob", "billing", "", "s2", at(3)),   // 4
		ev("statement", "bob", "billing", "hold", "s2", at(4)),    // 5
		ev("statement", "bob", "orders", "deny", "s3", at(5)),     // 6
		ev("session.refused", "eve", "orders", "deny", "", at(6)), // 7
		ev("session.closed", "alice", "orders", "", "s1", at(7)),  // 8
		ev("statement", "alice", "billing", "allow", "s4", at(8)), // 9
		ev("admin", "root", "", "", "", at(9)),                    // 10
	})
	cases := []struct {
		name string
		f    audit.Filter
		want string
	}{
		{"all", audit.Filter{}, "[1 2 3 4 5 6 7 8 9 10]"},
		{"principal", audit.Filter{Principal: "alice"}, "[1 2 3 8 9]"},
		{"connection", audit.Filter{Connection: "billing"}, "[4 5 9]"},
		{"decision", audit.Filter{Decision: "deny"}, "[3 6 7]"},
		{"type", audit.Filter{Type: "statement"}, "[2 3 5 6 9]"},
		{"session", audit.Filter{SessionID: "s1"}, "[1 2 3 8]"},
		{"since inclusive", audit.Filter{Since: at(7)}, "[8 9 10]"},
		{"since sub-µs after", audit.Filter{Since: at(7).Add(1)}, "[9 10]"},
		{"since other zone", audit.Filter{Since: at(7).In(time.FixedZone("Y", 5*3600))}, "[8 9 10]"},
		{"after seq", audit.Filter{AfterSeq: 7}, "[8 9 10]"},
		{"combined", audit.Filter{Principal: "alice", Connection: "orders", Type: "statement", Decision: "allow"}, "[2]"},
		{"combined since after", audit.Filter{Connection: "orders", Since: at(1), AfterSeq: 2}, "[3 6 7 8]"},
		{"limit most recent", audit.Filter{Principal: "alice", Limit: 2}, "[8 9]"},
		{"limit after seq pages forward", audit.Filter{AfterSeq: 3, Limit: 3}, "[4 5 6]"},
		{"no match", audit.Filter{Principal: "nobody"}, "[]"},
		{"after last", audit.Filter{AfterSeq: 10}, "[]"},
	}
	for _, c := range cases {
		got, err := s.ListEvents(ctx(t), c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if g := fmt.Sprint(seqs(got)); g != c.want {
			t.Errorf("%s: seqs = %s, want %s", c.name, g, c.want)
		}
	}
}

func testEventLimit(t *testing.T, s store.Store) {
	batch := make([]audit.Event, 150)
	for i := range batch {
		batch[i] = ev("statement", "a", "c", "allow", "s", t0.Add(time.Duration(i)*time.Second))
	}
	appendAll(t, s, batch)
	for _, c := range []struct {
		limit      int
		n          int
		first, end int64
	}{{0, 100, 51, 150}, {-5, 100, 51, 150}, {1, 1, 150, 150}, {120, 120, 31, 150}, {1000, 150, 1, 150}} {
		got, err := s.ListEvents(ctx(t), audit.Filter{Limit: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != c.n || got[0].Seq != c.first || got[len(got)-1].Seq != c.end {
			t.Errorf("Limit %d: %d events [%d..%d], want %d [%d..%d]", c.limit, len(got), got[0].Seq, got[len(got)-1].Seq, c.n, c.first, c.end)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq != got[i-1].Seq+1 {
				t.Fatalf("Limit %d: not ascending/contiguous at %d: %d after %d", c.limit, i, got[i].Seq, got[i-1].Seq)
			}
		}
	}
}

// testEventConcurrentAppend appends from several goroutines at once: every
// batch must get a consecutive run of seqs and all seqs together must be
// exactly 1..N.
func testEventConcurrentAppend(t *testing.T, s store.Store) {
	const workers, batches, size = 6, 15, 12
	var wg sync.WaitGroup
	results := make([][][]int64, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				batch := make([]audit.Event, size)
				for i := range batch {
					batch[i] = ev("statement", fmt.Sprintf("w%d", w), "c", "allow", fmt.Sprintf("w%d-b%d", w, b), t0)
				}
				if err := s.AppendEvents(context.Background(), batch); err != nil {
					t.Error(err)
					return
				}
				results[w] = append(results[w], seqs(batch))
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[int64]bool{}
	for _, rs := range results {
		for _, r := range rs {
			for i, q := range r {
				if i > 0 && q != r[i-1]+1 {
					t.Fatalf("batch seqs not consecutive: %v", r)
				}
				if seen[q] {
					t.Fatalf("seq %d assigned twice", q)
				}
				seen[q] = true
			}
		}
	}
	const total = workers * batches * size
	for q := int64(1); q <= total; q++ {
		if !seen[q] {
			t.Fatalf("seq %d missing (gap)", q)
		}
	}
	// The stored events agree with what was written back.
	got, err := s.ListEvents(ctx(t), audit.Filter{Limit: total})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != total {
		t.Fatalf("listed %d events, want %d", len(got), total)
	}
	for _, rs := range results {
		for _, r := range rs {
			sess := got[r[0]-1].SessionID
			for _, q := range r {
				if got[q-1].Seq != q || got[q-1].SessionID != sess {
					t.Fatalf("stored seq %d belongs to session %q, batch began with %q", q, got[q-1].SessionID, sess)
				}
			}
		}
	}
}

// testEventFailedAppend checks that a failed append writes nothing back,
// stores nothing and consumes no seqs.
func testEventFailedAppend(t *testing.T, s store.Store) {
	appendAll(t, s, []audit.Event{ev("statement", "a", "c", "allow", "s", t0)})
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	failed := []audit.Event{ev("statement", "a", "c", "allow", "s", t0), ev("statement", "a", "c", "allow", "s", t0)}
	if err := s.AppendEvents(cctx, failed); err == nil {
		t.Fatal("append with a cancelled context succeeded")
	}
	for _, e := range failed {
		if e.Seq != 0 {
			t.Errorf("failed append wrote back seq %d", e.Seq)
		}
	}
	next := appendAll(t, s, []audit.Event{ev("statement", "a", "c", "deny", "s", t0)})
	if next[0].Seq != 2 {
		t.Errorf("seq after a failed append = %d, want 2 (no gap)", next[0].Seq)
	}
	got, err := s.ListEvents(ctx(t), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs(got)) != "[1 2]" {
		t.Errorf("stored seqs = %v, want [1 2]", seqs(got))
	}
}

func digest(b byte) chain.Digest { return bytes.Repeat([]byte{b}, chain.HashSize) }

// testChainFields checks the chain fields round-trip, ChainHead finds each
// node's last event, and a second event with a taken (node, node_seq) is
// refused as a whole batch.
func testChainFields(t *testing.T, s store.Store) {
	h, err := s.ChainHead(ctx(t), "gw-a")
	if err != nil || h.NodeSeq != 0 || h.Hash != nil || h.Node != "gw-a" {
		t.Fatalf("empty chain head = %+v, %v", h, err)
	}
	in := []audit.Event{
		{Time: t0, Type: "statement", Node: "gw-a", NodeSeq: 1, PrevHash: chain.Genesis, Hash: digest(1)},
		{Time: t0, Type: "statement", Node: "gw-b", NodeSeq: 1, PrevHash: chain.Genesis, Hash: digest(2)},
		{Time: t0, Type: "statement", Node: "gw-a", NodeSeq: 2, PrevHash: digest(1), Hash: digest(3)},
		{Time: t0, Type: "admin"}, // unchained
	}
	appendAll(t, s, in)
	got, err := s.ListEvents(ctx(t), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("chain fields mismatch\n got  %+v\n want %+v", got, in)
	}
	if got[3].Hash != nil || got[3].PrevHash != nil || got[3].Node != "" || got[3].NodeSeq != 0 {
		t.Errorf("unchained event read back with chain fields: %+v", got[3])
	}
	for node, want := range map[string]audit.Head{
		"gw-a": {Node: "gw-a", NodeSeq: 2, Hash: digest(3)},
		"gw-b": {Node: "gw-b", NodeSeq: 1, Hash: digest(2)},
	} {
		h, err := s.ChainHead(ctx(t), node)
		if err != nil || !reflect.DeepEqual(h, want) {
			t.Errorf("ChainHead(%s) = %+v, %v; want %+v", node, h, err, want)
		}
	}
	dup := []audit.Event{
		{Time: t0, Type: "statement", Node: "gw-a", NodeSeq: 3, Hash: digest(4)},
		{Time: t0, Type: "statement", Node: "gw-b", NodeSeq: 1, Hash: digest(5)},
	}
	if err := s.AppendEvents(ctx(t), dup); err == nil {
		t.Fatal("second event with a taken (node, node_seq) accepted")
	}
	if h, _ := s.ChainHead(ctx(t), "gw-a"); h.NodeSeq != 2 {
		t.Errorf("refused batch partly stored: head %+v", h)
	}
	// Unchained events never collide.
	appendAll(t, s, []audit.Event{{Type: "admin"}, {Type: "admin"}})
}

func testChainFilters(t *testing.T, s store.Store) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	var in []audit.Event
	for i := range 8 {
		node := []string{"gw-a", "gw-b"}[i%2]
		in = append(in, audit.Event{Time: at(i), Type: "statement", Node: node, NodeSeq: int64(i/2 + 1), Hash: digest(byte(i))})
	}
	appendAll(t, s, in)
	cases := []struct {
		name string
		f    audit.Filter
		want string
	}{
		{"node", audit.Filter{Node: "gw-b"}, "[2 4 6 8]"},
		{"before", audit.Filter{BeforeSeq: 4}, "[1 2 3]"},
		{"node before most recent", audit.Filter{Node: "gw-a", BeforeSeq: 6, Limit: 1}, "[5]"},
		{"ascending oldest", audit.Filter{Ascending: true, Limit: 2}, "[1 2]"},
		{"ascending since", audit.Filter{Ascending: true, Since: at(3), Limit: 1}, "[4]"},
		{"ascending node since", audit.Filter{Ascending: true, Node: "gw-a", Since: at(3), Limit: 1}, "[5]"},
	}
	for _, c := range cases {
		got, err := s.ListEvents(ctx(t), c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if g := fmt.Sprint(seqs(got)); g != c.want {
			t.Errorf("%s: seqs = %s, want %s", c.name, g, c.want)
		}
	}
}

func testCheckpoints(t *testing.T, s store.Store) {
	list := func(f audit.CheckpointFilter) []audit.Checkpoint {
		t.Helper()
		cs, err := s.ListCheckpoints(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	if cs := list(audit.CheckpointFilter{}); len(cs) != 0 {
		t.Fatalf("empty store lists %d checkpoints", len(cs))
	}
	loc := time.FixedZone("X", 3600)
	var want []audit.Checkpoint
	for i, node := range []string{"gw-a", "gw-b", "gw-a"} {
		c := audit.Checkpoint{Node: node, NodeSeq: int64(10 * (i + 1)), Hash: digest(byte(i)),
			Time: time.Date(2024, 6, 1, 12, 0, i, 123456789, loc), KeyID: "0123456789abcdef", Signature: bytes.Repeat([]byte{byte(i)}, 64)}
		if err := s.AppendCheckpoint(ctx(t), &c); err != nil {
			t.Fatal(err)
		}
		if c.ID <= 0 || (len(want) > 0 && c.ID <= want[len(want)-1].ID) {
			t.Fatalf("checkpoint id %d not ascending", c.ID)
		}
		if !c.Time.Equal(time.Date(2024, 6, 1, 11, 0, i, 123456000, time.UTC)) || c.Time.Location() != time.UTC {
			t.Errorf("written-back time %v", c.Time)
		}
		want = append(want, c)
	}
	dup := want[0]
	dup.ID, dup.Signature = 0, bytes.Repeat([]byte{9}, 64)
	if err := s.AppendCheckpoint(ctx(t), &dup); err != nil || dup.ID != 0 {
		t.Errorf("duplicate checkpoint: id %d, %v; want ignored", dup.ID, err)
	}
	if got := list(audit.CheckpointFilter{}); !reflect.DeepEqual(got, want) {
		t.Errorf("checkpoints\n got  %+v\n want %+v", got, want)
	}
	if got := list(audit.CheckpointFilter{Node: "gw-a"}); len(got) != 2 || got[1].NodeSeq != 30 {
		t.Errorf("node filter: %+v", got)
	}
	if got := list(audit.CheckpointFilter{AfterID: want[0].ID, Limit: 1}); len(got) != 1 || got[0].ID != want[1].ID {
		t.Errorf("paging: %+v", got)
	}
}
