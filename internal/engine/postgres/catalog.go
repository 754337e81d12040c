package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/engine"
)

// The per-connection catalog: it resolves RowDescription fields (table OID,
// attnum) to schema.table.column and traces views (views.go), over the
// gateway's own connections to the target, caching the answers.
//
// It is shared by every session of the connection, so one slow lookup must
// not stall the others: the mutex guards only the caches and is never held
// across I/O; concurrent lookups of the same thing share one query
// (flight); queries run on a small pool of connections whose lock_timeout
// and statement_timeout make a lookup blocked by a client's lock (LOCK
// TABLE, DDL in an open transaction) fail fast, and the caller fails closed
// for what it could not resolve. Callers wait with their session's context.

const (
	// catalogTTL is how long an answer is trusted: a column renamed or a
	// view redefined outside the gateway is seen again after it. DDL seen
	// on any session of the connection clears the cache at once.
	catalogTTL = 30 * time.Second
	// catalogMissTTL is how long "no such relation" is trusted: a relation
	// created meanwhile (committed by a client, or outside the gateway) is
	// looked up again after it, so it is not nulled or misjudged for the
	// whole catalogTTL.
	catalogMissTTL = time.Second
	// catalogLockTimeout and catalogStatementTimeout bound each catalog
	// query (they are set on the catalog's own connections): a lookup
	// that would wait on a client's lock fails after the lock timeout.
	catalogLockTimeout      = 2 * time.Second
	catalogStatementTimeout = 5 * time.Second
	// catalogQueryTimeout bounds one catalog query on the gateway's side,
	// waiting for a connection included (a network that went dead).
	catalogQueryTimeout = 10 * time.Second
	// maxCatalogConns bounds the catalog's connections to one target.
	maxCatalogConns = 4
)

// catalog is one connection's catalog cache (see above).
type catalog struct {
	sem chan struct{} // a slot per open-or-opening catalog connection

	mu     sync.Mutex
	up     engine.Upstream // the connection's current definition
	upGen  uint64          // counts definition changes; older connections are closed
	idle   []*catConn
	names  map[uint64]colName
	tables map[uint32]tableEntry
	rels   map[uint32]*relInfo
	byName map[engine.Relation]nameEntry
	funcs  map[string]funcEntry // by function name as the grammar gives it
	flying map[string]*flight

	warnedSuperuser atomic.Bool
	// gen counts invalidations: masking plans cached on prepared
	// statements are built for one generation (see planCache), and an
	// answer read before an invalidation is not stored after it.
	gen atomic.Uint64
}

// tableEntry records when a table OID was looked up and whether the
// catalog found it (misses expire after catalogMissTTL).
type tableEntry struct {
	at    time.Time
	found bool
}

// catConn is a pooled catalog connection, made for definition upGen.
type catConn struct {
	pc    *pgconn.PgConn
	upGen uint64
}

func newCatalog(up engine.Upstream) *catalog {
	c := &catalog{up: up, sem: make(chan struct{}, maxCatalogConns), flying: map[string]*flight{}}
	c.reset()
	return c
}

// catalogFor returns the catalog of the named connection, following its
// current definition: when the address, database, credentials or TLS
// settings changed (a connection replaced through the admin API, a config
// reload), the catalog drops its connections and its answers and
// reconnects with the new definition.
func (e *Engine) catalogFor(name string, up engine.Upstream) *catalog {
	e.catMu.Lock()
	if e.catalogs == nil {
		e.catalogs = map[string]*catalog{}
	}
	c := e.catalogs[name]
	if c == nil {
		c = newCatalog(up)
		e.catalogs[name] = c
	}
	e.catMu.Unlock()
	c.follow(up)
	return c
}

// follow makes up the catalog's definition, if it differs.
func (c *catalog) follow(up engine.Upstream) {
	c.mu.Lock()
	if sameUpstream(c.up, up) {
		c.mu.Unlock()
		return
	}
	c.up = up
	c.upGen++
	stale := c.idle
	c.idle = nil
	c.reset() // another address or database may hold other relations
	c.gen.Add(1)
	c.mu.Unlock()
	for _, cc := range stale {
		closeConn(cc.pc)
	}
}

// sameUpstream reports whether a and b reach the same target the same way.
// TLS configs are built per session, so they are compared by content.
func sameUpstream(a, b engine.Upstream) bool {
	if a.Address != b.Address || a.Database != b.Database || a.Username != b.Username ||
		a.Password != b.Password || a.TLSMode != b.TLSMode || (a.TLS == nil) != (b.TLS == nil) {
		return false
	}
	return a.TLS == nil || sameTLS(a.TLS, b.TLS)
}

func sameTLS(a, b *tls.Config) bool {
	return a.ServerName == b.ServerName && a.InsecureSkipVerify == b.InsecureSkipVerify &&
		a.MinVersion == b.MinVersion && a.RootCAs.Equal(b.RootCAs)
}

// reset empties the caches. c.mu is held.
func (c *catalog) reset() {
	c.names, c.tables = map[uint64]colName{}, map[uint32]tableEntry{}
	c.rels, c.byName = map[uint32]*relInfo{}, map[engine.Relation]nameEntry{}
	c.funcs = map[string]funcEntry{}
}

// invalidate drops every cached answer (DDL was seen on a session).
func (c *catalog) invalidate() {
	c.mu.Lock()
	c.reset()
	c.gen.Add(1)
	c.mu.Unlock()
}

// resolve names every field with a source table; a field whose table the
// catalog cannot see (created in the client's open transaction, dropped)
// gets the zero colName. An error means the catalog could not be read.
func (c *catalog) resolve(ctx context.Context, fs []field) ([]colName, error) {
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		missing := c.missingTables(fs)
		if len(missing) == 0 || attempt == 3 {
			// (After a few attempts lost to concurrent invalidations, the
			// fields still unknown stay unknown: callers fail closed.)
			out := make([]colName, len(fs))
			for i, f := range fs {
				if f.tableOID != 0 {
					out[i] = c.names[uint64(f.tableOID)<<16|uint64(uint16(f.attnum))]
				}
			}
			c.mu.Unlock()
			return out, nil
		}
		c.mu.Unlock()
		_, err := c.flight(ctx, "t:"+strings.Join(missing, ","), func(ctx context.Context) (any, error) {
			return nil, c.load(ctx, missing)
		})
		if err != nil {
			return nil, err
		}
	}
}

// missingTables lists the tables of fs not cached or expired, as decimal
// OIDs in order of appearance. c.mu is held.
func (c *catalog) missingTables(fs []field) []string {
	var missing []string
	now := time.Now()
	seen := map[uint32]bool{}
	for _, f := range fs {
		if f.tableOID == 0 || seen[f.tableOID] {
			continue
		}
		seen[f.tableOID] = true
		t, ok := c.tables[f.tableOID]
		if !ok || t.found && now.Sub(t.at) > catalogTTL || !t.found && now.Sub(t.at) > catalogMissTTL {
			missing = append(missing, strconv.FormatUint(uint64(f.tableOID), 10))
		}
	}
	return missing
}

// load reads the columns of the tables oids (decimal OIDs) into the cache,
// tracing views to what their columns carry.
func (c *catalog) load(ctx context.Context, oids []string) error {
	gen := c.gen.Load()
	// The OIDs are integers we formatted ourselves: no injection possible.
	rows, err := c.query(ctx, "SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname, c.relkind FROM pg_catalog.pg_attribute a "+
		"JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "+
		"WHERE a.attnum > 0 AND a.attrelid IN ("+strings.Join(oids, ",")+")")
	if err != nil {
		return err
	}
	now := time.Now()
	names := map[uint64]colName{}
	found := map[uint32]bool{}
	views := map[uint32]*relInfo{}
	c.mu.Lock()
	for _, r := range rows {
		oid, _ := strconv.ParseUint(string(r[0]), 10, 32)
		att, _ := strconv.ParseInt(string(r[3]), 10, 16)
		found[uint32(oid)] = true
		names[oid<<16|uint64(uint16(att))] = colName{schema: string(r[1]), table: string(r[2]), column: string(r[4])}
		if k := r[5][0]; k == 'v' || k == 'm' {
			views[uint32(oid)] = c.rel(uint32(oid), string(r[1]), string(r[2]), k)
		}
	}
	c.mu.Unlock()
	// A view's columns are named by what they carry.
	for oid, r := range views {
		v, _, err := c.viewOf(ctx, r, 0)
		var te *transientError
		if errors.As(err, &te) {
			return err // asked again next time rather than kept untraced
		}
		for i := 1; i <= maxAttnum(names, oid); i++ {
			key := uint64(oid)<<16 | uint64(uint16(i))
			own := names[key]
			switch {
			case err != nil || i > len(v.Columns):
				own.untraced = true
			case v.Columns[i-1].Source != nil:
				src := v.Columns[i-1].Source
				via := own
				own = colName{schema: src.Schema, table: src.Table, column: src.Column, via: &via}
			default:
				own.computed, own.from = true, v.Columns[i-1].From
			}
			names[key] = own
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return nil // invalidated meanwhile: the answer may be stale; resolve asks again
	}
	for k, v := range names {
		c.names[k] = v
	}
	for _, o := range oids {
		v, _ := strconv.ParseUint(o, 10, 32)
		c.tables[uint32(v)] = tableEntry{at: now, found: found[uint32(v)]}
	}
	return nil
}

// maxAttnum is the highest attribute number loaded for a relation.
func maxAttnum(names map[uint64]colName, oid uint32) int {
	n := 0
	for n < 1<<15-1 {
		if _, ok := names[uint64(oid)<<16|uint64(uint16(n+1))]; !ok {
			break
		}
		n++
	}
	return n
}

// flight is one lookup that concurrent callers share.
type flight struct {
	done chan struct{}
	val  any
	err  error
}

// flight runs fn once for every caller asking for key at the same time.
// fn runs detached from any one caller (each of its queries is bounded),
// so a caller that leaves (client gone, session ended) stops waiting
// without failing the others.
func (c *catalog) flight(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	c.mu.Lock()
	f := c.flying[key]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.flying[key] = f
		go func() {
			f.val, f.err = fn(context.WithoutCancel(ctx))
			c.mu.Lock()
			delete(c.flying, key)
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		return nil, &transientError{fmt.Errorf("catalog lookup abandoned: %w", context.Cause(ctx))}
	}
}

// transientError is a catalog query or connection failure (as opposed to
// a view that cannot be traced): never cached.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// query runs one catalog query with text parameters on a pooled
// connection. c.mu must not be held.
func (c *catalog) query(ctx context.Context, sql string, params ...[]byte) ([][][]byte, error) {
	// Bounds the wait for a connection and a dead network; the server
	// bounds the query itself (lock_timeout, statement_timeout).
	qctx, cancel := context.WithTimeout(ctx, catalogQueryTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		cc, reused, err := c.acquire(qctx)
		if err != nil {
			return nil, &transientError{err}
		}
		res := cc.pc.ExecParams(qctx, sql, params, nil, nil, nil).Read()
		broken := cc.pc.IsClosed()
		c.release(cc, broken)
		if res.Err == nil {
			return res.Rows, nil
		}
		if broken && reused && attempt == 0 && qctx.Err() == nil {
			// An idle connection the server had ended (restart,
			// pg_terminate_backend, idle timeout): once more on a new one.
			continue
		}
		var pe *pgconn.PgError
		if errors.As(res.Err, &pe) && pe.Code == "55P03" {
			return nil, &transientError{fmt.Errorf("catalog query waited over the %v lock timeout for a lock a session holds: %w", catalogLockTimeout, res.Err)}
		}
		return nil, &transientError{fmt.Errorf("catalog query: %w", res.Err)}
	}
}

// acquire takes an idle catalog connection of the current definition or
// opens one, waiting for a free slot at most as long as ctx allows.
func (c *catalog) acquire(ctx context.Context) (cc *catConn, reused bool, err error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, false, fmt.Errorf("waiting for a catalog connection: %w", context.Cause(ctx))
	}
	c.mu.Lock()
	var stale []*catConn
	for len(c.idle) > 0 && cc == nil {
		x := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if x.upGen == c.upGen && !x.pc.IsClosed() {
			cc = x
		} else {
			stale = append(stale, x)
		}
	}
	up, upGen := c.up, c.upGen
	c.mu.Unlock()
	for _, x := range stale {
		closeConn(x.pc)
	}
	if cc != nil {
		return cc, true, nil
	}
	// search_path holds only pg_catalog, so pg_get_viewdef
	// schema-qualifies every other relation.
	pc, err := connectUpstream(ctx, up, map[string]string{
		"application_name":  "gatehouse-catalog",
		"search_path":       "pg_catalog",
		"lock_timeout":      strconv.FormatInt(catalogLockTimeout.Milliseconds(), 10),
		"statement_timeout": strconv.FormatInt(catalogStatementTimeout.Milliseconds(), 10),
	})
	if err != nil {
		<-c.sem
		return nil, false, fmt.Errorf("catalog connection: %w", err)
	}
	return &catConn{pc: pc, upGen: upGen}, false, nil
}

// release returns cc to the pool, or closes it when it is broken or was
// made for a definition no longer current.
func (c *catalog) release(cc *catConn, broken bool) {
	c.mu.Lock()
	keep := !broken && cc.upGen == c.upGen
	if keep {
		c.idle = append(c.idle, cc)
	}
	c.mu.Unlock()
	if !keep {
		closeConn(cc.pc)
	}
	<-c.sem
}

func closeConn(pc *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	pc.Close(ctx)
	cancel()
}

// inList renders values as the placeholder list of an IN (…) clause
// ("$1,$2,…") with the matching text parameters.
func inList(values []string) (list string, params [][]byte) {
	ph := make([]string, len(values))
	params = make([][]byte, len(values))
	for i, v := range values {
		ph[i] = "$" + strconv.Itoa(i+1)
		params[i] = []byte(v)
	}
	return strings.Join(ph, ","), params
}
