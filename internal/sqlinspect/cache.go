package sqlinspect

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// The cache keys facts by the exact query text. Exact text is the only key
// proven safe without a differential test against libpg_query: two texts
// that differ in any byte may differ in meaning (a comment that is not one,
// a quoted identifier's case), so no normalization is attempted. Clients
// and ORMs repeat their statements byte for byte, which is what makes the
// cache pay.

// Default limits: enough for every distinct statement of a busy application
// while bounding memory for a client that sends endless distinct texts.
const (
	defaultMaxEntries = 20000
	defaultMaxBytes   = 64 << 20
	cacheShards       = 16 // spreads lock contention across cores
)

var defaultCache = newCache(defaultMaxEntries, defaultMaxBytes)

// CacheStats counts cache use since start.
type CacheStats struct {
	Hits, Misses uint64
	Entries      int
	Bytes        int64
}

// Stats returns the counters of the facts cache (for metrics).
func Stats() CacheStats { return defaultCache.stats() }

// cache is a sharded LRU of parse results bounded by entries and bytes.
type cache struct {
	seed   maphash.Seed
	shards [cacheShards]shard
	hits   atomic.Uint64
	misses atomic.Uint64
}

type shard struct {
	mu         sync.Mutex
	m          map[string]*entry
	head       entry // sentinel of the recency list; head.next is the newest
	n          int
	bytes      int64
	maxEntries int
	maxBytes   int64
}

type entry struct {
	key        string
	facts      *Facts
	err        error
	size       int64
	prev, next *entry
}

func newCache(maxEntries int, maxBytes int64) *cache {
	c := &cache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = map[string]*entry{}
		s.head.next, s.head.prev = &s.head, &s.head
		s.maxEntries = max(1, maxEntries/cacheShards)
		s.maxBytes = max(1, maxBytes/cacheShards)
	}
	return c
}

func (c *cache) inspect(sql string) (*Facts, error) {
	s := &c.shards[maphash.String(c.seed, sql)%cacheShards]
	s.mu.Lock()
	if e, ok := s.m[sql]; ok {
		s.unlink(e)
		s.pushFront(e)
		s.mu.Unlock()
		c.hits.Add(1)
		return e.facts, e.err
	}
	s.mu.Unlock()
	c.misses.Add(1)

	// Parse outside the lock: two callers may parse the same new text at
	// once, which costs a parse but never blocks a shard for 200 µs.
	f, err := inspect(sql)
	e := &entry{key: sql, facts: f, err: err, size: entrySize(sql, f, err)}
	if e.size > s.maxBytes {
		return f, err
	}
	s.mu.Lock()
	if old, ok := s.m[sql]; ok {
		s.remove(old)
	}
	s.m[sql] = e
	s.pushFront(e)
	s.n++
	s.bytes += e.size
	for s.n > s.maxEntries || s.bytes > s.maxBytes {
		s.remove(s.head.prev)
	}
	s.mu.Unlock()
	return f, err
}

func (s *shard) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = &s.head, s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func (s *shard) remove(e *entry) {
	s.unlink(e)
	delete(s.m, e.key)
	s.n--
	s.bytes -= e.size
}

func (c *cache) stats() CacheStats {
	st := CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Entries += s.n
		st.Bytes += s.bytes
		s.mu.Unlock()
	}
	return st
}

// entrySize estimates the memory an entry holds: the key and the strings of
// the facts, plus fixed overheads per structure.
func entrySize(sql string, f *Facts, err error) int64 {
	n := int64(len(sql)) + 128
	if err != nil {
		return n + int64(len(err.Error())) + 64
	}
	var st func(s *Statement) int64
	st = func(s *Statement) int64 {
		n := int64(200 + len(s.Text) + len(s.Kind) + len(s.ObjectKind) + len(s.Name))
		for _, t := range s.Tables {
			n += int64(48 + len(t.Schema) + len(t.Name))
		}
		for _, c := range s.Columns {
			n += int64(80 + len(c.Schema) + len(c.Table) + len(c.Name))
		}
		for _, fn := range s.Functions {
			n += int64(16 + len(fn))
		}
		if s.Wraps != nil {
			n += st(s.Wraps)
		}
		return n
	}
	for i := range f.Statements {
		n += st(&f.Statements[i])
	}
	return n
}
