package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/adminapi/adminapitest"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
)

func events(t *testing.T, st *adminapitest.Store) []audit.Event {
	t.Helper()
	evs, err := st.ListEvents(context.Background(), audit.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func checkpoints(t *testing.T, st *adminapitest.Store) []audit.Checkpoint {
	t.Helper()
	cps, err := st.ListCheckpoints(context.Background(), audit.CheckpointFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return cps
}

func appendN(l *audit.Log, n int) {
	for i := range n {
		l.Append(audit.Event{Type: audit.TypeStatement, Subject: "agent", Statement: "SELECT 1", DetailValue: map[string]int{"i": i}})
	}
}

// TestLogChains checks what the Log writes: consecutive node_seqs, each
// prev_hash the previous hash, each hash the chain hash of the stored
// content, a checkpoint at shutdown signing the head; and that a new Log
// resumes the chain where the store ends.
func TestLogChains(t *testing.T) {
	st := adminapitest.NewStore()
	key, _ := chain.GenerateKey()
	ctx := context.Background()
	for run := range 2 {
		l, err := audit.Open(ctx, st, audit.Options{Node: "gw-1", SigningKey: key})
		if err != nil {
			t.Fatal(err)
		}
		appendN(l, 10)
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if h := l.Head(); h.NodeSeq != int64(10*(run+1)) || h.Node != "gw-1" {
			t.Errorf("run %d: head %+v", run, h)
		}
		if l.Checkpoints() != 1 {
			t.Errorf("run %d: %d checkpoints", run, l.Checkpoints())
		}
	}
	evs := events(t, st)
	if len(evs) != 20 {
		t.Fatalf("%d events", len(evs))
	}
	prev := chain.Genesis
	for i, e := range evs {
		if e.Node != "gw-1" || e.NodeSeq != int64(i+1) || !bytes.Equal(e.PrevHash, prev) {
			t.Fatalf("event %d: node %q node_seq %d prev %s", i, e.Node, e.NodeSeq, e.PrevHash)
		}
		if !bytes.Equal(chain.Hash(e.ChainFields()), e.Hash) {
			t.Fatalf("event %d: hash does not match its content", i)
		}
		if e.Time.Location() != time.UTC || e.Time.Nanosecond()%1000 != 0 {
			t.Errorf("event %d: time %v not UTC microseconds", i, e.Time)
		}
		prev = e.Hash
	}
	cps := checkpoints(t, st)
	if len(cps) != 2 || cps[0].NodeSeq != 10 || cps[1].NodeSeq != 20 || !bytes.Equal(cps[1].Hash, evs[19].Hash) {
		t.Fatalf("checkpoints %+v", cps)
	}
	if _, err := cps[1].Verify(key.Public().(ed25519.PublicKey)); err != nil {
		t.Error(err)
	}
}

func TestLogCheckpointEveryAndInterval(t *testing.T) {
	st := adminapitest.NewStore()
	key, _ := chain.GenerateKey()
	l, err := audit.Open(context.Background(), st, audit.Options{Node: "gw-1", SigningKey: key, CheckpointEvery: 3, CheckpointInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	appendN(l, 1)
	// The interval signs the one event without reaching CheckpointEvery.
	waitFor(t, func() bool { return l.Checkpoints() == 1 })
	if cps := checkpoints(t, st); cps[0].NodeSeq != 1 {
		t.Errorf("interval checkpoint at %d", cps[0].NodeSeq)
	}
	n := l.Checkpoints()
	time.Sleep(100 * time.Millisecond) // several intervals without new events
	if l.Checkpoints() != n {
		t.Error("checkpoint without new events")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// lostCommit stores the first batch but reports an error, as a connection
// dropped after COMMIT would.
type lostCommit struct {
	*adminapitest.Store
	lost bool
}

func (s *lostCommit) AppendEvents(ctx context.Context, evs []audit.Event) error {
	if err := s.Store.AppendEvents(ctx, evs); err != nil {
		return err
	}
	if !s.lost {
		s.lost = true
		return errors.New("connection reset after commit")
	}
	return nil
}

func TestLogLostCommitNotRepeated(t *testing.T) {
	st := &lostCommit{Store: adminapitest.NewStore()}
	l, err := audit.Open(context.Background(), st, audit.Options{Node: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	appendN(l, 3)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if evs := events(t, st.Store); len(evs) != 3 || l.Written() != 3 || l.Healthy() != nil {
		t.Fatalf("%d events stored, %d written, %v", len(evs), l.Written(), l.Healthy())
	}
}

func TestLogNormalises(t *testing.T) {
	st := adminapitest.NewStore()
	l, err := audit.Open(context.Background(), st, audit.Options{Node: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	l.Append(audit.Event{Type: "admin", Statement: "SELECT '\xff'", Detail: []byte(`{ "a" : [1, 2] }`)})
	l.Append(audit.Event{Type: "admin", Detail: []byte(`not json`)})
	l.Close(context.Background())
	evs := events(t, st)
	if string(evs[0].Detail) != `{"a":[1,2]}` || evs[0].Statement != "SELECT '\uFFFD'" {
		t.Errorf("event 0: detail %s statement %q", evs[0].Detail, evs[0].Statement)
	}
	if string(evs[1].Detail) != `{"invalid_detail":"not json"}` {
		t.Errorf("event 1: detail %s", evs[1].Detail)
	}
}

func TestNewLogUnchained(t *testing.T) {
	st := adminapitest.NewStore()
	l := audit.NewLog(st, 0, nil)
	appendN(l, 2)
	l.Close(context.Background())
	for _, e := range events(t, st) {
		if e.Node != "" || e.NodeSeq != 0 || e.Hash != nil {
			t.Errorf("unchained log wrote chain fields: %+v", e)
		}
	}
	if _, err := audit.Open(context.Background(), st, audit.Options{}); err == nil {
		t.Error("Open without a node name")
	}
}

// discard is a ChainStore that stores nothing, so a benchmark through it
// measures the Log itself: Append, batching, detail encoding and, when
// chained, hashing and checkpoint signing.
type discard struct{}

func (discard) AppendEvents(context.Context, []audit.Event) error { return nil }
func (discard) ChainHead(_ context.Context, node string) (audit.Head, error) {
	return audit.Head{Node: node}, nil
}
func (discard) AppendCheckpoint(context.Context, *audit.Checkpoint) error { return nil }

// BenchmarkLogWriter compares the unchained and the chained Log into a sink
// that costs nothing: the difference is the chain's cost per event in the
// writer goroutine (the data path's Append is a channel send either way).
func BenchmarkLogWriter(b *testing.B) {
	key, _ := chain.GenerateKey()
	for _, chained := range []bool{false, true} {
		name := "unchained"
		if chained {
			name = "chained"
		}
		b.Run(name, func(b *testing.B) {
			var l *audit.Log
			if chained {
				l, _ = audit.Open(context.Background(), discard{}, audit.Options{Node: "bench", SigningKey: key})
			} else {
				l = audit.NewLog(discard{}, 0, nil)
			}
			detail := map[string]any{"rows": 1, "duration_us": 412, "command": "SELECT 1"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l.Append(audit.Event{Type: audit.TypeStatement, SessionID: "s1", Issuer: "https://issuer.example",
					Subject: "agent-7", Connection: "orders", Decision: "allow",
					Statement: "SELECT abalance FROM pgbench_accounts WHERE aid = $1", DetailValue: detail})
			}
			l.Close(context.Background())
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// failOnce refuses the first batch without storing it.
type failOnce struct {
	*adminapitest.Store
	failed bool
}

func (s *failOnce) AppendEvents(ctx context.Context, evs []audit.Event) error {
	if !s.failed {
		s.failed = true
		return errors.New("store unavailable")
	}
	return s.Store.AppendEvents(ctx, evs)
}

// TestLogOnStored: the hook sees each event once, only after the store
// accepted it (not for the failed attempt), with its chain fields and seq.
func TestLogOnStored(t *testing.T) {
	st := &failOnce{Store: adminapitest.NewStore()}
	var got []audit.Event
	l, err := audit.Open(context.Background(), st, audit.Options{Node: "gw-1", OnStored: func(evs []audit.Event) {
		if n := len(events(t, st.Store)); n < int(evs[len(evs)-1].Seq) {
			t.Errorf("OnStored before the store has the batch: %d stored, batch ends at seq %d", n, evs[len(evs)-1].Seq)
		}
		got = append(got, evs...)
	}})
	if err != nil {
		t.Fatal(err)
	}
	appendN(l, 5)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored := events(t, st.Store)
	if len(got) != 5 || len(stored) != 5 {
		t.Fatalf("hook saw %d events, store has %d; want 5 and 5", len(got), len(stored))
	}
	for i := range got {
		if got[i].Seq != stored[i].Seq || got[i].NodeSeq != int64(i+1) || !bytes.Equal(got[i].Hash, stored[i].Hash) {
			t.Fatalf("hook event %d = seq %d node_seq %d; store has seq %d", i, got[i].Seq, got[i].NodeSeq, stored[i].Seq)
		}
	}
}
