package postgres

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/pgtest"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
)

// shared is one PostgreSQL server for the whole test binary; each test
// gets a fresh database on it.
var shared *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Shared(m, &shared, pgtest.Options{})) }

// freshDB creates an empty database on the shared server and returns its DSN.
func freshDB(t testing.TB) string {
	t.Helper()
	pgtest.Need(t, shared)
	return shared.DSN(shared.CreateDB(t))
}

func openFresh(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), freshDB(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
}

// TestTamper changes a stored chain with SQL in every way the suite knows;
// verification must name the first bad node_seq.
func TestTamper(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) (store.Store, storetest.Exec) {
		s := openFresh(t)
		return s, func(t *testing.T, q string) {
			t.Helper()
			if _, err := s.pool.Exec(context.Background(), storetest.Dialect("postgres", q)); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	})
}

// TestTwoNodes appends through two stores (two gateway nodes, two pools) on
// one database at once: the advisory lock keeps seqs gap-free and each
// batch consecutive.
func TestTwoNodes(t *testing.T) {
	dsn := freshDB(t)
	var nodes []*Store
	for range 2 {
		s, err := Open(t.Context(), dsn) // second Open finds the schema migrated
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		nodes = append(nodes, s)
	}
	var mu sync.Mutex
	var batches [][]int64
	var wg sync.WaitGroup
	for i, s := range nodes {
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range 10 {
					ev := make([]audit.Event, 7)
					for j := range ev {
						ev[j] = audit.Event{Type: "statement", SessionID: fmt.Sprintf("n%d-g%d-b%d", i, g, b)}
					}
					if err := s.AppendEvents(context.Background(), ev); err != nil {
						t.Error(err)
						return
					}
					q := make([]int64, len(ev))
					for j := range ev {
						q[j] = ev[j].Seq
					}
					mu.Lock()
					batches = append(batches, q)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	got, err := nodes[0].ListEvents(t.Context(), audit.Filter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*3*10*7 {
		t.Fatalf("%d events stored", len(got))
	}
	for i, e := range got {
		if e.Seq != int64(i+1) {
			t.Fatalf("gap: position %d has seq %d", i, e.Seq)
		}
	}
	for _, q := range batches {
		for j := 1; j < len(q); j++ {
			if q[j] != q[j-1]+1 || got[q[j]-1].SessionID != got[q[0]-1].SessionID {
				t.Fatalf("batch %v not consecutive", q)
			}
		}
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	pgtest.Need(t, shared)
	dsn := strings.Replace(shared.DSN("postgres"), shared.Password, "wrong-pw-xyzzy", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := Open(ctx, dsn)
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if strings.Contains(err.Error(), "xyzzy") {
		t.Errorf("error reveals the password: %v", err)
	}
	_, err = Open(ctx, "postgres://u:secret-xyzzy@127.0.0.1:notaport/db")
	if err == nil || strings.Contains(err.Error(), "xyzzy") {
		t.Errorf("bad DSN: %v", err)
	}
}

// BenchmarkAppendEvents mirrors the SQLite benchmark: batches of 256.
func BenchmarkAppendEvents(b *testing.B) {
	s := openFresh(b)
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
