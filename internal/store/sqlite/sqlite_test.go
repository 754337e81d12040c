package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := OpenDir(t.Context(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestTamper changes a stored chain with SQL in every way the suite knows;
// verification must name the first bad node_seq.
func TestTamper(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) (store.Store, storetest.Exec) {
		dir := t.TempDir()
		s, err := OpenDir(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		return s, func(t *testing.T, q string) {
			t.Helper()
			if _, err := s.w.ExecContext(context.Background(), storetest.Dialect("sqlite", q)); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	})
}

func TestOpenDirCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	s, err := OpenDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AppendEvents(t.Context(), make([]audit.Event, 1)); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, FileName)
	for p, want := range map[string]os.FileMode{dir: 0o700, db: 0o600, db + "-wal": 0o600, db + "-shm": 0o600} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	var mode string
	if err := s.r.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	// Reads go to a read-only pool.
	if _, err := s.r.ExecContext(t.Context(), "DELETE FROM connections"); err == nil {
		t.Error("reader connection accepted a write")
	}
}

func TestReopenKeepsDataAndSeq(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutConnection(t.Context(), store.Connection{Name: "orders", Type: "postgres", Secret: []byte{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(t.Context(), make([]audit.Event, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenDir(t.Context(), dir) // migrations are idempotent
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, err := s.GetConnection(t.Context(), "orders"); err != nil || len(c.Secret) != 2 {
		t.Fatalf("after reopen: %+v, %v", c, err)
	}
	ev := []audit.Event{{Type: "admin"}}
	if err := s.AppendEvents(t.Context(), ev); err != nil || ev[0].Seq != 4 {
		t.Fatalf("after reopen: seq %d, %v; want 4", ev[0].Seq, err)
	}
}

// TestTwoProcessesShareFile opens the same file twice (as two gateway
// processes would): IMMEDIATE transactions and busy_timeout keep seqs
// gap-free across both handles.
func TestTwoHandlesShareFile(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	done := make(chan error, 2)
	for _, s := range []*Store{a, b} {
		go func() {
			for i := 0; i < 20; i++ {
				if err := s.AppendEvents(context.Background(), make([]audit.Event, 10)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.ListEvents(t.Context(), audit.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 400 || got[0].Seq != 1 || got[399].Seq != 400 {
		t.Fatalf("got %d events", len(got))
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := OpenDir(t.Context(), ""); err == nil {
		t.Error("empty dir accepted")
	}
	if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "x?mode=ro")); err == nil {
		t.Error("path with query accepted")
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, []byte("x"), 0o600)
	if _, err := OpenDir(t.Context(), f); err == nil {
		t.Error("data dir that is a file accepted")
	}
}

// BenchmarkAppendEvents measures the gateway's audit write path: batches of
// 256 statement events in one transaction each.
func BenchmarkAppendEvents(b *testing.B) {
	s, err := OpenDir(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const batch = 256
	events := make([]audit.Event, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range events {
			events[j] = audit.Event{Time: time.Now(), Type: audit.TypeStatement, SessionID: fmt.Sprintf("s%d", j%16),
				Issuer: "https://issuer.example", Subject: "agent-7", Connection: "orders", Decision: "allow",
				Statement: "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
				Detail:    []byte(`{"rows":1,"duration_us":412,"command":"SELECT 1"}`)}
		}
		if err := s.AppendEvents(context.Background(), events); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkLogAppend measures events/s through an audit.Log into SQLite:
// Append (the data path's cost) plus the writer goroutine's batching,
// encoding, chain hashing, checkpoint signing and commits, until Close has
// stored everything. "unchained" is the Log without the hash chain.
func BenchmarkLogAppend(b *testing.B) {
	key, err := chain.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	for _, chained := range []bool{false, true} {
		name := "unchained"
		if chained {
			name = "chained"
		}
		b.Run(name, func(b *testing.B) {
			s, err := OpenDir(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var l *audit.Log
			if chained {
				l, err = audit.Open(context.Background(), s, audit.Options{Node: "bench", SigningKey: key})
				if err != nil {
					b.Fatal(err)
				}
			} else {
				l = audit.NewLog(s, 0, nil)
			}
			detail := map[string]any{"rows": 1, "duration_us": 412, "command": "SELECT 1"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l.Append(audit.Event{Type: audit.TypeStatement, SessionID: "s1", Issuer: "https://issuer.example",
					Subject: "agent-7", Connection: "orders", Decision: "allow",
					Statement: "SELECT abalance FROM pgbench_accounts WHERE aid = $1", DetailValue: detail})
			}
			if err := l.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
