package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// Seeing through views. The wire metadata of a query on a view names the
// view's columns, and a statement names the view, not its tables; both are
// traced here through the view definitions (pg_get_viewdef, analysed with
// the same grammar as statements) down to base-table columns. Results are
// cached in the per-connection catalog (catalog.go) with its TTLs and DDL
// invalidation.

// relInfo is one relation of the target. oid, schema, name and kind never
// change; the other fields are guarded by the catalog's mutex.
type relInfo struct {
	oid          uint32
	schema, name string
	kind         byte     // pg_class.relkind: r, p, v, m, f
	cols         []string // attribute names by attnum-1 ("" = dropped); nil until loaded
	colsAt       time.Time
	view         *engine.View
	viewErr      error
	viewAt       time.Time  // when view/viewErr were traced
	bases        []*relInfo // the base tables behind a view, through nested views
}

func (r *relInfo) isView() bool { return r.kind == 'v' || r.kind == 'm' }

// nameEntry is the answer to one relation name lookup.
type nameEntry struct {
	rels   []*relInfo
	loaded time.Time
}

// maxViewDepth bounds view nesting (PostgreSQL forbids cycles; this is a
// guard against a catalog that changes under us).
const maxViewDepth = 32

// maxCachedNames bounds the relation-name cache.
const maxCachedNames = 20000

var _ engine.Catalog = (*catalog)(nil)

// Views implements engine.Catalog. Sessions asking about the same names at
// the same time share one lookup; each waits at most as long as its ctx.
func (c *catalog) Views(ctx context.Context, names []engine.Relation) (map[engine.Relation][]engine.View, error) {
	c.mu.Lock()
	none := c.noViews(names)
	c.mu.Unlock()
	if none {
		return nil, nil // the common case, without allocating
	}
	var key strings.Builder
	key.WriteString("v:")
	for _, n := range names {
		key.WriteString(n.Schema + "\x00" + n.Name + "\x00")
	}
	out, err := c.flight(ctx, key.String(), func(ctx context.Context) (any, error) { return c.views(ctx, names) })
	if err != nil {
		return nil, err
	}
	return out.(map[engine.Relation][]engine.View), nil
}

// views is Views without the shortcut and the sharing.
func (c *catalog) views(ctx context.Context, names []engine.Relation) (map[engine.Relation][]engine.View, error) {
	found, err := c.lookupNames(ctx, names)
	if err != nil {
		return nil, err
	}
	var out map[engine.Relation][]engine.View
	for _, n := range names {
		for _, r := range found[n] {
			if !r.isView() {
				continue
			}
			v, _, err := c.viewOf(ctx, r, 0)
			if err != nil {
				return nil, fmt.Errorf("view %s.%s: %w", r.schema, r.name, err)
			}
			if out == nil {
				out = map[engine.Relation][]engine.View{}
			}
			out[n] = append(out[n], *v)
		}
	}
	return out, nil
}

// fresh reports whether a name lookup answered at e.loaded still holds: a
// miss (no such relation) only for catalogMissTTL.
func (e nameEntry) fresh(now time.Time) bool {
	if len(e.rels) == 0 {
		return now.Sub(e.loaded) <= catalogMissTTL
	}
	return now.Sub(e.loaded) <= catalogTTL
}

// noViews reports whether every name is cached, fresh, and no view. c.mu
// is held.
func (c *catalog) noViews(names []engine.Relation) bool {
	now := time.Now()
	for _, n := range names {
		e, ok := c.byName[n]
		if !ok || !e.fresh(now) {
			return false
		}
		for _, r := range e.rels {
			if r.isView() {
				return false
			}
		}
	}
	return true
}

// lookupNames finds the relations named (any schema when Schema is ""),
// querying the target for names not cached. c.mu must not be held.
func (c *catalog) lookupNames(ctx context.Context, names []engine.Relation) (map[engine.Relation][]*relInfo, error) {
	out := make(map[engine.Relation][]*relInfo, len(names))
	var missing []engine.Relation
	now := time.Now()
	c.mu.Lock()
	for _, n := range names {
		if e, ok := c.byName[n]; ok && e.fresh(now) {
			out[n] = e.rels
		} else if !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	gen := c.gen.Load()
	plain := make([]string, len(missing))
	for i, n := range missing {
		plain[i] = n.Name
	}
	list, params := inList(plain)
	rows, err := c.query(ctx, "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_catalog.pg_class c "+
		"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "+
		"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname IN ("+list+")", params...)
	if err != nil {
		return nil, err
	}
	now = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	// An answer read before an invalidation is used but not kept.
	keep := c.gen.Load() == gen
	if keep && len(c.byName)+len(missing) > maxCachedNames {
		// Statements may name relations that do not exist, each a cached
		// negative answer: bound the memory they can take.
		c.byName = map[engine.Relation]nameEntry{}
	}
	for _, n := range missing {
		e := nameEntry{loaded: now}
		for _, r := range rows {
			if string(r[2]) != n.Name || (n.Schema != "" && string(r[1]) != n.Schema) {
				continue
			}
			oid, _ := strconv.ParseUint(string(r[0]), 10, 32)
			e.rels = append(e.rels, c.rel(uint32(oid), string(r[1]), string(r[2]), r[3][0]))
		}
		if keep {
			c.byName[n] = e
		}
		out[n] = e.rels
	}
	return out, nil
}

// rel returns the cached relation for oid, replacing a stale one. c.mu is
// held.
func (c *catalog) rel(oid uint32, schema, name string, kind byte) *relInfo {
	if r, ok := c.rels[oid]; ok && r.schema == schema && r.name == name && r.kind == kind {
		return r
	}
	r := &relInfo{oid: oid, schema: schema, name: name, kind: kind}
	c.rels[oid] = r
	return r
}

// columns returns the relation's attribute names by attnum-1.
func (c *catalog) columns(ctx context.Context, r *relInfo) ([]string, error) {
	c.mu.Lock()
	cols, at := r.cols, r.colsAt
	c.mu.Unlock()
	if cols != nil && time.Since(at) <= catalogTTL {
		return cols, nil
	}
	rows, err := c.query(ctx, "SELECT a.attnum, CASE WHEN a.attisdropped THEN '' ELSE a.attname END FROM pg_catalog.pg_attribute a "+
		"WHERE a.attrelid = $1 AND a.attnum > 0 ORDER BY a.attnum", []byte(strconv.FormatUint(uint64(r.oid), 10)))
	if err != nil {
		return nil, err
	}
	cols = make([]string, 0, len(rows))
	for _, row := range rows {
		n, _ := strconv.Atoi(string(row[0]))
		for len(cols) < n-1 {
			cols = append(cols, "")
		}
		cols = append(cols, string(row[1]))
	}
	c.mu.Lock()
	r.cols, r.colsAt = cols, time.Now()
	c.mu.Unlock()
	return cols, nil
}

// viewOf traces a view (or materialized view) to base-table columns and
// the base tables behind it. The answer is kept for the catalog TTL: a view
// redefined outside the gateway is seen again after it.
func (c *catalog) viewOf(ctx context.Context, r *relInfo, depth int) (*engine.View, []*relInfo, error) {
	c.mu.Lock()
	if (r.view != nil || r.viewErr != nil) && time.Since(r.viewAt) <= catalogTTL {
		v, bases, err := r.view, r.bases, r.viewErr
		c.mu.Unlock()
		return v, bases, err
	}
	c.mu.Unlock()
	v, bases, err := c.traceView(ctx, r, depth)
	var te *transientError
	if errors.As(err, &te) {
		return nil, nil, err // the next statement asks again
	}
	c.mu.Lock()
	r.view, r.viewErr, r.viewAt, r.bases = v, err, time.Now(), bases
	c.mu.Unlock()
	return v, bases, err
}

func (c *catalog) traceView(ctx context.Context, r *relInfo, depth int) (*engine.View, []*relInfo, error) {
	if depth > maxViewDepth {
		return nil, nil, errors.New("views nested too deeply")
	}
	rows, err := c.query(ctx, "SELECT pg_catalog.pg_get_viewdef($1::pg_catalog.oid)", []byte(strconv.FormatUint(uint64(r.oid), 10)))
	if err != nil {
		return nil, nil, err
	}
	if len(rows) != 1 || rows[0][0] == nil {
		return nil, nil, errors.New("no definition")
	}
	def, err := sqlinspect.AnalyzeView(string(rows[0][0]))
	if err != nil {
		return nil, nil, err
	}
	names, err := c.columns(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	v := &engine.View{Schema: r.schema, Name: r.name, Functions: slices.Clone(def.Functions)}
	// The relations the definition reads, and what is behind them.
	behind := map[engine.Relation]bool{}
	var bases []*relInfo // base tables (not views), for untraceable refs
	var tableNames []engine.Relation
	for _, t := range def.Tables {
		tableNames = append(tableNames, engine.Relation{Schema: t.Schema, Name: t.Name})
	}
	found, err := c.lookupNames(ctx, tableNames)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range tableNames {
		for _, br := range found[n] {
			add := func(rel engine.Relation) {
				if !behind[rel] {
					behind[rel] = true
					v.Behind = append(v.Behind, rel)
				}
			}
			add(engine.Relation{Schema: br.schema, Name: br.name})
			if !br.isView() {
				bases = append(bases, br)
				continue
			}
			bv, bbases, err := c.viewOf(ctx, br, depth+1)
			if err != nil {
				return nil, nil, err
			}
			for _, b := range bv.Behind {
				add(b)
			}
			for _, f := range bv.Functions {
				if !slices.Contains(v.Functions, f) {
					v.Functions = append(v.Functions, f)
				}
			}
			bases = append(bases, bbases...)
		}
	}
	// every is each column of every base table: what an untraceable
	// reference may carry.
	var every []engine.ColumnRef
	everyDone := false
	allColumns := func() ([]engine.ColumnRef, error) {
		if !everyDone {
			for _, b := range bases {
				cols, err := c.columns(ctx, b)
				if err != nil {
					return nil, err
				}
				for _, col := range cols {
					if col != "" {
						every = appendRef(every, engine.ColumnRef{Schema: b.schema, Table: b.name, Column: col})
					}
				}
			}
			everyDone = true
		}
		return every, nil
	}
	// trace resolves one column reference of the definition.
	trace := func(ref sqlinspect.Column) (src *engine.ColumnRef, from []engine.ColumnRef, err error) {
		if ref.Table == "" {
			all, err := allColumns()
			return nil, all, err
		}
		rels := found[engine.Relation{Schema: ref.Schema, Name: ref.Table}]
		if len(rels) == 0 {
			all, err := allColumns()
			return nil, all, err
		}
		for _, br := range rels {
			if br.isView() {
				bv, _, err := c.viewOf(ctx, br, depth+1)
				if err != nil {
					return nil, nil, err
				}
				for _, vc := range bv.Columns {
					if ref.Star || vc.Name == ref.Name {
						from = appendRefs(from, vc.From...)
						if !ref.Star && len(rels) == 1 {
							src = vc.Source
						}
					}
				}
				continue
			}
			if !ref.Star {
				col := engine.ColumnRef{Schema: br.schema, Table: br.name, Column: ref.Name}
				from = appendRef(from, col)
				if len(rels) == 1 {
					src = &col
				}
				continue
			}
			cols, err := c.columns(ctx, br)
			if err != nil {
				return nil, nil, err
			}
			for _, col := range cols {
				if col != "" {
					from = appendRef(from, engine.ColumnRef{Schema: br.schema, Table: br.name, Column: col})
				}
			}
		}
		return src, from, nil
	}
	if def.Opaque || len(def.Columns) != len(names) {
		// Outputs cannot be told apart: each may carry any column read.
		var from []engine.ColumnRef
		for _, ref := range def.Refs {
			_, f, err := trace(ref)
			if err != nil {
				return nil, nil, err
			}
			from = appendRefs(from, f...)
		}
		for _, n := range names {
			v.Columns = append(v.Columns, engine.ViewColumn{Name: n, From: from})
		}
		return v, bases, nil
	}
	for i, dc := range def.Columns {
		vc := engine.ViewColumn{Name: names[i]}
		for _, ref := range dc.From {
			src, f, err := trace(ref)
			if err != nil {
				return nil, nil, err
			}
			vc.From = appendRefs(vc.From, f...)
			if dc.Source != nil {
				vc.Source = src
			}
		}
		v.Columns = append(v.Columns, vc)
	}
	return v, bases, nil
}

func appendRef(list []engine.ColumnRef, r engine.ColumnRef) []engine.ColumnRef {
	for _, x := range list {
		if x == r {
			return list
		}
	}
	return append(list, r)
}

func appendRefs(list []engine.ColumnRef, rs ...engine.ColumnRef) []engine.ColumnRef {
	for _, r := range rs {
		list = appendRef(list, r)
	}
	return list
}
