// Package adminapitest holds test doubles for the admin API and its CLI: an
// in-memory store.Store with the semantics store.Store documents. Tests use
// it so they do not depend on a store backend; the backends have their own
// conformance suite.
package adminapitest

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Store is an in-memory store.Store.
type Store struct {
	mu      sync.Mutex
	conns   map[string]store.Connection
	events  []audit.Event
	seq     int64
	reviews map[string]approval.Review
	grants  map[string]approval.Grant
	cps     []audit.Checkpoint
	markers []audit.PruneMarker
}

var _ store.Store = (*Store)(nil)

// NewStore returns an empty Store.
func NewStore() *Store { return &Store{conns: map[string]store.Connection{}} }

// AppendEvents assigns consecutive Seq values and keeps the events.
func (s *Store) AppendEvents(ctx context.Context, events []audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range events {
		s.seq++
		events[i].Seq = s.seq
		s.events = append(s.events, events[i])
	}
	return nil
}

// CountEvents returns how many events match f, ignoring f.Limit.
func (s *Store) CountEvents(ctx context.Context, f audit.Filter) (int64, error) {
	f.Limit = math.MaxInt
	evs, err := s.ListEvents(ctx, f)
	return int64(len(evs)), err
}

// ListEvents returns the most recent f.Limit matching events in ascending
// Seq order, as store.Store specifies.
func (s *Store) ListEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []audit.Event
	// Like the real stores: the most recent matches, or with AfterSeq or
	// Ascending the oldest ones (forward paging).
	asc := f.AfterSeq > 0 || f.Ascending
	for k := 0; k < len(s.events) && len(out) < limit; k++ {
		i := len(s.events) - 1 - k
		if asc {
			i = k
		}
		e := s.events[i]
		if e.Seq <= f.AfterSeq || f.BeforeSeq > 0 && e.Seq >= f.BeforeSeq ||
			f.Node != "" && e.Node != f.Node ||
			f.Principal != "" && e.Subject != f.Principal ||
			f.Connection != "" && e.Connection != f.Connection ||
			f.Decision != "" && e.Decision != f.Decision ||
			f.Type != "" && e.Type != f.Type ||
			f.SessionID != "" && e.SessionID != f.SessionID ||
			!f.Since.IsZero() && e.Time.Before(f.Since) ||
			!f.Before.IsZero() && !e.Time.Before(f.Before) ||
			f.NodeSeqTo > 0 && (e.NodeSeq <= 0 || e.NodeSeq > f.NodeSeqTo) {
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// ChainHead returns node's last chained event.
func (s *Store) ChainHead(ctx context.Context, node string) (audit.Head, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := audit.Head{Node: node}
	for _, e := range s.events {
		if e.Node == node && e.NodeSeq > h.NodeSeq {
			h.NodeSeq, h.Hash = e.NodeSeq, e.Hash
		}
	}
	return h, nil
}

// AppendCheckpoint keeps c, ignoring a duplicate (node, node_seq).
func (s *Store) AppendCheckpoint(ctx context.Context, c *audit.Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.cps {
		if o.Node == c.Node && o.NodeSeq == c.NodeSeq {
			return nil
		}
	}
	c.ID = int64(len(s.cps) + 1)
	s.cps = append(s.cps, *c)
	return nil
}

// ListCheckpoints returns checkpoints after f.AfterID in ID order.
func (s *Store) ListCheckpoints(ctx context.Context, f audit.CheckpointFilter) ([]audit.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []audit.Checkpoint
	if f.Newest {
		for _, c := range s.cps {
			if (f.Node == "" || c.Node == f.Node) && (len(out) == 0 || c.NodeSeq > out[0].NodeSeq) {
				out = append(out[:0], c)
			}
		}
		return out, nil
	}
	for _, c := range s.cps {
		if c.ID > f.AfterID && (f.Node == "" || c.Node == f.Node) && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

// Events returns a copy of every stored event.
func (s *Store) Events() []audit.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]audit.Event(nil), s.events...)
}

// PutConnection inserts or replaces a connection.
func (s *Store) PutConnection(ctx context.Context, c store.Connection) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Access = append([]string(nil), c.Access...)
	c.Secret = append([]byte(nil), c.Secret...)
	s.conns[c.Name] = c
	return nil
}

// GetConnection returns a connection or store.ErrNotFound.
func (s *Store) GetConnection(ctx context.Context, name string) (store.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[name]
	if !ok {
		return store.Connection{}, store.ErrNotFound
	}
	return c, nil
}

// ListConnections returns all connections sorted by name.
func (s *Store) ListConnections(ctx context.Context) ([]store.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Connection, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteConnection removes a connection or returns store.ErrNotFound.
func (s *Store) DeleteConnection(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[name]; !ok {
		return store.ErrNotFound
	}
	delete(s.conns, name)
	return nil
}

// Ping always succeeds.
func (s *Store) Ping(ctx context.Context) error { return nil }

// Close does nothing.
func (s *Store) Close() error { return nil }

// PutReview keeps r, replacing the review of the same id.
func (s *Store) PutReview(ctx context.Context, r approval.Review) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reviews == nil {
		s.reviews = map[string]approval.Review{}
	}
	s.reviews[r.ID] = r
	return nil
}

// GetReview returns review id or an error wrapping approval.ErrNotFound.
func (s *Store) GetReview(ctx context.Context, id string) (approval.Review, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reviews[id]
	if !ok {
		return r, fmt.Errorf("review %q: %w", id, approval.ErrNotFound)
	}
	return r, nil
}

// ListReviews returns matching reviews, most recent first.
func (s *Store) ListReviews(ctx context.Context, f approval.Filter) ([]approval.Review, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []approval.Review
	for _, r := range s.reviews {
		if f.Status != "" && r.Status != f.Status || f.Connection != "" && r.Connection != f.Connection ||
			f.Subject != "" && r.Requester.Subject != f.Subject {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	return out[:min(limit, len(out))], nil
}

// PutGrant keeps g, replacing the grant of the same id.
func (s *Store) PutGrant(ctx context.Context, g approval.Grant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grants == nil {
		s.grants = map[string]approval.Grant{}
	}
	s.grants[g.ID] = g
	return nil
}

// GetGrant returns grant id or an error wrapping approval.ErrNotFound.
func (s *Store) GetGrant(ctx context.Context, id string) (approval.Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.grants[id]
	if !ok {
		return g, fmt.Errorf("grant %q: %w", id, approval.ErrNotFound)
	}
	return g, nil
}

// ListGrants returns matching grants, most recent first.
func (s *Store) ListGrants(ctx context.Context, f approval.GrantFilter) ([]approval.Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []approval.Grant
	for _, g := range s.grants {
		if f.Status != "" && g.Status != f.Status || f.Connection != "" && g.Connection != f.Connection ||
			f.Subject != "" && g.Requester.Subject != f.Subject {
			continue
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	return out[:min(limit, len(out))], nil
}

// PruneEvents keeps m and deletes what it covers, as store.Store specifies.
func (s *Store) PruneEvents(ctx context.Context, m *audit.PruneMarker) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.markers {
		if o.Node == m.Node && o.NodeSeq == m.NodeSeq {
			return 0, fmt.Errorf("prune marker for %s node_seq %d exists", m.Node, m.NodeSeq)
		}
	}
	m.ID = int64(len(s.markers) + 1)
	s.markers = append(s.markers, *m)
	var n int64
	keep := s.events[:0]
	for _, e := range s.events {
		if e.Node == m.Node && e.NodeSeq > 0 && e.NodeSeq <= m.NodeSeq {
			n++
			continue
		}
		keep = append(keep, e)
	}
	s.events = keep
	cps := s.cps[:0]
	for _, c := range s.cps {
		if c.Node != m.Node || c.NodeSeq > m.NodeSeq {
			cps = append(cps, c)
		}
	}
	s.cps = cps
	return n, nil
}

// ListPruneMarkers returns node's markers ("" = all) in ID order.
func (s *Store) ListPruneMarkers(ctx context.Context, node string) ([]audit.PruneMarker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []audit.PruneMarker
	for _, m := range s.markers {
		if node == "" || m.Node == node {
			out = append(out, m)
		}
	}
	return out, nil
}
