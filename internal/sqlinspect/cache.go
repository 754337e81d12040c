package sqlinspect

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// The cache has two levels.
//
// The first keys facts by the exact query text: clients and ORMs repeat
// their statements byte for byte, and a hit is one map lookup.
//
// The second keys them by the text's shape: the text with its numeric and
// string constants replaced by placeholders (normalize.go), so a statement
// repeated with new values (pgbench -M simple, drivers that inline
// parameters) costs a lexical pass instead of a libpg_query parse. A shape
// is served only when the checks in shape.go prove its facts independent of
// its literals; otherwise it is marked exact-only and its texts take the
// first level. A shape is learnt (which costs a second parse, see
// shape.go) the second time it is seen, so one-off statements pay no more
// than before. Statement.Text is always cut from the text being inspected.
// Parse errors are cached by exact text only.

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
	// Hits counts texts answered from the cache, NormalizedHits those of
	// them found by shape; Misses counts texts parsed.
	Hits, NormalizedHits, Misses uint64
	// Entries counts the exact texts held, Shapes the shapes; Bytes is
	// the estimated memory of both.
	Entries, Shapes int
	Bytes           int64
}

// Stats returns the counters of the facts cache (for metrics).
func Stats() CacheStats { return defaultCache.stats() }

// cache is the two-level facts cache.
type cache struct {
	exact    *lru[exactEntry]
	shapes   *lru[*shape]
	hits     atomic.Uint64
	normHits atomic.Uint64
	misses   atomic.Uint64
	keys     sync.Pool // *normBuf, reused by lookups
}

type exactEntry struct {
	facts *Facts
	err   error
}

// normBuf holds a normalized key and literal spans between uses.
type normBuf struct {
	key   []byte
	spans []litSpan
}

func newCache(maxEntries int, maxBytes int64) *cache {
	return &cache{
		exact:  newLRU[exactEntry](maxEntries, maxBytes),
		shapes: newLRU[*shape](maxEntries, maxBytes),
		keys:   sync.Pool{New: func() any { return new(normBuf) }},
	}
}

func (c *cache) inspect(sql string) (*Facts, error) {
	if e, ok := c.exact.get(sql); ok {
		c.hits.Add(1)
		return e.facts, e.err
	}
	nb := c.keys.Get().(*normBuf)
	defer c.keys.Put(nb)
	var normalized bool
	var known *shape
	nb.key, nb.spans, normalized = normalize(sql, nb.key[:0], nb.spans[:0])
	if normalized {
		if sh, ok := c.shapes.getBytes(nb.key); ok {
			if sh.facts != nil {
				c.hits.Add(1)
				c.normHits.Add(1)
				return sh.factsFor(sql, nb.spans), nil
			}
			known = sh
		}
	}
	c.misses.Add(1)

	// Parse outside the locks: two callers may parse the same new text at
	// once, which costs a parse but never blocks a shard for 200 µs.
	tree, err := parse(sql)
	var f *Facts
	if err == nil {
		var bounds [][2]int
		f, bounds = treeFacts(sql, tree)
		switch {
		case !normalized || known != nil && known.exactOnly:
		case known == nil:
			// A shape is learnt the second time it is seen: learning costs
			// a second parse, which one-off statements should not pay.
			c.shapes.put(string(nb.key), &shape{}, shapeSize(len(nb.key), nil))
		default:
			sh := learnShape(sql, nb.spans, tree, f, bounds)
			c.shapes.put(string(nb.key), sh, shapeSize(len(nb.key), sh))
		}
	}
	c.exact.put(sql, exactEntry{facts: f, err: err}, entrySize(sql, f, err))
	return f, err
}

func (c *cache) stats() CacheStats {
	st := CacheStats{Hits: c.hits.Load(), NormalizedHits: c.normHits.Load(), Misses: c.misses.Load()}
	var eb, sb int64
	st.Entries, eb = c.exact.size()
	st.Shapes, sb = c.shapes.size()
	st.Bytes = eb + sb
	return st
}

// lru is a sharded LRU map bounded by entries and bytes.
type lru[V any] struct {
	seed   maphash.Seed
	shards [cacheShards]shard[V]
}

type shard[V any] struct {
	mu         sync.Mutex
	m          map[string]*entry[V]
	head       entry[V] // sentinel of the recency list; head.next is the newest
	n          int
	bytes      int64
	maxEntries int
	maxBytes   int64
}

type entry[V any] struct {
	key        string
	val        V
	size       int64
	prev, next *entry[V]
}

func newLRU[V any](maxEntries int, maxBytes int64) *lru[V] {
	l := &lru[V]{seed: maphash.MakeSeed()}
	for i := range l.shards {
		s := &l.shards[i]
		s.m = map[string]*entry[V]{}
		s.head.next, s.head.prev = &s.head, &s.head
		s.maxEntries = max(1, maxEntries/cacheShards)
		s.maxBytes = max(1, maxBytes/cacheShards)
	}
	return l
}

func (l *lru[V]) get(key string) (V, bool) {
	return l.shards[maphash.String(l.seed, key)%cacheShards].get(key)
}

// getBytes looks key up without converting it to a string first (the
// compiler does not allocate for m[string(b)]).
func (l *lru[V]) getBytes(key []byte) (V, bool) {
	s := &l.shards[maphash.Bytes(l.seed, key)%cacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[string(key)]; ok {
		s.unlink(e)
		s.pushFront(e)
		return e.val, true
	}
	var zero V
	return zero, false
}

func (s *shard[V]) get(key string) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		s.unlink(e)
		s.pushFront(e)
		return e.val, true
	}
	var zero V
	return zero, false
}

func (l *lru[V]) put(key string, val V, size int64) {
	s := &l.shards[maphash.String(l.seed, key)%cacheShards]
	if size > s.maxBytes {
		return
	}
	e := &entry[V]{key: key, val: val, size: size}
	s.mu.Lock()
	if old, ok := s.m[key]; ok {
		s.remove(old)
	}
	s.m[key] = e
	s.pushFront(e)
	s.n++
	s.bytes += e.size
	for s.n > s.maxEntries || s.bytes > s.maxBytes {
		s.remove(s.head.prev)
	}
	s.mu.Unlock()
}

func (l *lru[V]) size() (n int, bytes int64) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.n
		bytes += s.bytes
		s.mu.Unlock()
	}
	return n, bytes
}

func (s *shard[V]) unlink(e *entry[V]) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (s *shard[V]) pushFront(e *entry[V]) {
	e.prev, e.next = &s.head, s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func (s *shard[V]) remove(e *entry[V]) {
	s.unlink(e)
	delete(s.m, e.key)
	s.n--
	s.bytes -= e.size
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

// shapeSize estimates the memory a shape entry holds.
func shapeSize(keyLen int, sh *shape) int64 {
	n := int64(keyLen) + 128
	if sh != nil && sh.facts != nil {
		n += entrySize("", sh.facts, nil) + int64(16*len(sh.bounds))
	}
	return n
}
