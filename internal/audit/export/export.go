// Package export is gatehouse's audit export format — JSON lines of events
// and signed checkpoints — and its offline verifier, which needs nothing but
// the gateway's public key: it recomputes every event hash, follows every
// prev_hash link and node_seq, checks every checkpoint signature and reports
// the first bad position of each node's chain. docs/audit.md describes the
// format and what verification can and cannot detect.
package export

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
)

// Format identifies an export in its header line.
const (
	Format  = "gatehouse-audit-export"
	Version = 1
)

// Record kinds: the "record" member of every line.
const (
	RecordHeader     = "header"
	RecordCheckpoint = "checkpoint"
	RecordPrune      = "prune"
	RecordEvent      = "event"
	RecordEnd        = "end"
)

// Header is the first line of an export.
type Header struct {
	Record  string     `json:"record"` // "header"
	Format  string     `json:"format"`
	Version int        `json:"version"`
	Created time.Time  `json:"created"`
	Since   *time.Time `json:"since,omitempty"` // set for a partial export: chains may start mid-way
	Node    string     `json:"node,omitempty"`  // only this node's chain
	// Heads are the chain heads the running gateway had durably stored
	// when the export began (unsigned: the server's word). The export must
	// contain them, so a store truncated behind the gateway's back shows
	// even without a later checkpoint.
	Heads []audit.Head `json:"heads,omitempty"`
}

// EventLine is an event line: the event's JSON members plus "record".
type EventLine struct {
	Record string `json:"record"` // "event"
	audit.Event
}

// CheckpointLine is a checkpoint line.
type CheckpointLine struct {
	Record string `json:"record"` // "checkpoint"
	audit.Checkpoint
}

// PruneLine is a prune marker line: events of Node up to NodeSeq were
// pruned by retention, and the signed marker vouches for the hash the
// first remaining event links to.
type PruneLine struct {
	Record string `json:"record"` // "prune"
	audit.PruneMarker
}

// End is the last line of an export. It guards against a transfer cut off
// at a line boundary (not against an editor, who can fix the counts).
type End struct {
	Record      string `json:"record"` // "end"
	Events      int    `json:"events"`
	Checkpoints int    `json:"checkpoints"`
	Prunes      int    `json:"prune_markers,omitempty"`
}

// Source is what an export reads (a store.Store).
type Source interface {
	ListEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error)
	ListCheckpoints(ctx context.Context, f audit.CheckpointFilter) ([]audit.Checkpoint, error)
}

// PruneSource is a Source that may hold prune markers (every store does);
// Write includes them.
type PruneSource interface {
	ListPruneMarkers(ctx context.Context, node string) ([]audit.PruneMarker, error)
}

// Options select what to export.
type Options struct {
	Since time.Time    // zero = everything
	Node  string       // "" = every node
	Heads []audit.Head // the running gateway's stored heads (Header.Heads)
	Now   time.Time    // header time; zero = now
}

// pageSize is how many rows one store read returns.
const pageSize = 1000

// Write streams an export of src to w: a header, then prune markers, then
// checkpoints, then events in store order, then an end line.
//
// Checkpoints come first so a verifier can check a stream of any length in
// memory proportional to the checkpoints only. They are read before the
// events: a checkpoint is stored after the events it signs are committed,
// so every exported checkpoint's events are in the export too — a signed
// node_seq missing from the export is a deletion, not a race.
//
// With Since, each node's chain is exported from its first event at or
// after Since onwards, contiguously (event times are not strictly
// monotonic, so filtering every event by time would leave holes), together
// with the checkpoints that sign any of those events.
func Write(ctx context.Context, w io.Writer, src Source, o Options) error {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	enc := json.NewEncoder(w)
	// Keep the bytes of raw JSON details exactly as stored: they are hashed.
	enc.SetEscapeHTML(false)
	h := Header{Record: RecordHeader, Format: Format, Version: Version, Created: o.Now.UTC(), Node: o.Node}
	for _, hd := range o.Heads {
		if hd.NodeSeq > 0 && (o.Node == "" || hd.Node == o.Node) { // an empty chain has no head to check
			h.Heads = append(h.Heads, hd)
		}
	}
	var from int64 // first exported global seq; 0 = from the start
	if !o.Since.IsZero() {
		since := o.Since.UTC()
		h.Since = &since
		first, err := src.ListEvents(ctx, audit.Filter{Since: o.Since, Node: o.Node, Ascending: true, Limit: 1})
		if err != nil {
			return err
		}
		from = -1 // no events in range
		if len(first) > 0 {
			from = first[0].Seq
		}
	}
	if err := enc.Encode(h); err != nil {
		return err
	}
	end := End{Record: RecordEnd}
	if ps, ok := src.(PruneSource); ok {
		// Before the checkpoints and events: the verifier needs a node's
		// marker before its first remaining event.
		ms, err := ps.ListPruneMarkers(ctx, o.Node)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := enc.Encode(PruneLine{Record: RecordPrune, PruneMarker: m}); err != nil {
				return err
			}
			end.Prunes++
		}
	}
	n, err := writeCheckpoints(ctx, enc, src, o.Node, from)
	if err != nil {
		return err
	}
	end.Checkpoints = n
	after := max(from-1, 0)
	for from >= 0 {
		evs, err := src.ListEvents(ctx, audit.Filter{Node: o.Node, AfterSeq: after, Ascending: true, Limit: pageSize})
		if err != nil {
			return err
		}
		for i := range evs {
			e := &evs[i]
			e.Detail = exactDetail(e.Detail)
			if err := enc.Encode(EventLine{Record: RecordEvent, Event: *e}); err != nil {
				return err
			}
			after = e.Seq
			end.Events++
		}
		if len(evs) < pageSize {
			break
		}
	}
	return enc.Encode(end)
}

// writeCheckpoints writes the checkpoints of node (all nodes when ""). For
// a partial export starting at global seq from, a node's checkpoints are
// kept when they sign a node_seq after the node's last event before from.
func writeCheckpoints(ctx context.Context, enc *json.Encoder, src Source, node string, from int64) (int, error) {
	before := map[string]int64{} // node → last node_seq before the range
	var after int64
	n := 0
	for {
		cps, err := src.ListCheckpoints(ctx, audit.CheckpointFilter{Node: node, AfterID: after, Limit: pageSize})
		if err != nil {
			return n, err
		}
		for _, c := range cps {
			after = c.ID
			if from != 0 {
				p, ok := before[c.Node]
				if !ok {
					f := audit.Filter{Node: c.Node, Limit: 1}
					if from > 0 {
						f.BeforeSeq = from
					}
					last, err := src.ListEvents(ctx, f)
					if err != nil {
						return n, err
					}
					if len(last) > 0 {
						p = last[0].NodeSeq
					}
					before[c.Node] = p
				}
				if c.NodeSeq <= p {
					continue
				}
			}
			if err := enc.Encode(CheckpointLine{Record: RecordCheckpoint, Checkpoint: c}); err != nil {
				return n, err
			}
			n++
		}
		if len(cps) < pageSize {
			return n, nil
		}
	}
}

// exactDetail returns what to write for stored detail bytes so a reader gets
// the same bytes back: compact valid JSON is embedded as is (an encoder
// would only compact it, a no-op); anything else — only a tampered store
// holds it, the Log stores compact JSON — is written as a JSON string, so
// the verifier sees different bytes and reports that event.
func exactDetail(d json.RawMessage) json.RawMessage {
	if len(d) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, d) == nil && bytes.Equal(buf.Bytes(), d) {
		return d
	}
	s, _ := json.Marshal(string(d))
	return s
}
