package sqlinspect

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
)

func TestCacheHitsAndEviction(t *testing.T) {
	c := newCache(cacheShards*2, 1<<20) // two entries per shard
	f1, err := c.inspect("SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := c.inspect("SELECT 1")
	if f1 != f2 {
		t.Error("second lookup did not come from the cache")
	}
	if st := c.stats(); st.Hits != 1 || st.Misses != 1 || st.Entries != 1 {
		t.Errorf("stats %+v, want 1 hit, 1 miss, 1 entry", st)
	}
	// Errors are cached too: a client repeating a bad statement costs no parse.
	_, e1 := c.inspect("SELEC 1")
	_, e2 := c.inspect("SELEC 1")
	if e1 == nil || e1 != e2 {
		t.Errorf("parse errors not cached: %v %v", e1, e2)
	}
	for i := range 500 {
		if _, err := c.inspect(fmt.Sprintf("SELECT %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.stats(); st.Entries > cacheShards*2 {
		t.Errorf("%d entries, bound is %d", st.Entries, cacheShards*2)
	}
}

func TestCacheByteBound(t *testing.T) {
	c := newCache(1<<20, cacheShards*4096)
	big := "SELECT '" + string(make([]byte, 0)) + fmt.Sprintf("%01000d", 0) + "'"
	for i := range 200 {
		if _, err := c.inspect(fmt.Sprintf("%s, %d", big, i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.stats(); st.Bytes > cacheShards*4096 {
		t.Errorf("%d bytes cached, bound is %d", st.Bytes, cacheShards*4096)
	}
	// An entry larger than a shard is returned but not kept.
	huge := fmt.Sprintf("SELECT '%08000d'", 0)
	if _, err := c.inspect(huge); err != nil {
		t.Fatal(err)
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := newCache(64, 1<<20)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				q := fmt.Sprintf("SELECT a FROM t WHERE id = %d", (i*7+g)%100)
				f, err := c.inspect(q)
				if err != nil || len(f.Statements) != 1 || f.Statements[0].Text != q {
					t.Errorf("%q: %v %v", q, f, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := c.stats(); st.Hits+st.Misses != 1600 || st.Entries > 64 {
		t.Errorf("stats %+v", st)
	}
}

const benchQuery = "SELECT c.id, c.name, c.card_number FROM public.customers c JOIN orders o ON o.customer_id = c.id WHERE c.email = $1 AND o.total > $2 ORDER BY o.created_at DESC LIMIT 10"

// BenchmarkInspectCold measures a parse and walk (no cache).
func BenchmarkInspectCold(b *testing.B) {
	Warm()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inspect(benchQuery); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInspectPgbenchCold parses pgbench -S's statement.
func BenchmarkInspectPgbenchCold(b *testing.B) {
	Warm()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inspect("SELECT abalance FROM pgbench_accounts WHERE aid = $1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInspectCached measures a cache hit (target ≤ 2 µs).
func BenchmarkInspectCached(b *testing.B) {
	if _, err := Inspect(benchQuery); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Inspect(benchQuery); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInspectCachedParallel measures cache hits from all cores.
func BenchmarkInspectCachedParallel(b *testing.B) {
	qs := make([]string, 64)
	for i := range qs {
		qs[i] = fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d", i)
		if _, err := Inspect(qs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := Inspect(qs[i%len(qs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkInspectNormalizedHit measures pgbench -S -M simple's case: the
// same statement with a new literal every time, answered by shape (target
// ≤ 2 µs).
func BenchmarkInspectNormalizedHit(b *testing.B) {
	const prefix = "SELECT abalance FROM pgbench_accounts WHERE aid = "
	for _, q := range []string{prefix + "1;", prefix + "2;"} { // learnt on second sight
		if f, err := Inspect(q); err != nil || len(f.Statements) != 1 {
			b.Fatal(f, err)
		}
	}
	qs := make([]string, 4096)
	for i := range qs {
		qs[i] = prefix + strconv.Itoa(1000000+i) + ";"
	}
	before := Stats()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := Inspect(qs[i%len(qs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if st := Stats(); st.Misses != before.Misses {
		b.Fatalf("%d parses: the shape did not serve", st.Misses-before.Misses)
	}
}
