package export

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
)

// Problem is a verification failure: the first bad position of one node's
// chain (or a bad checkpoint, or an event outside every chain).
type Problem struct {
	Node    string `json:"node,omitempty"`
	NodeSeq int64  `json:"node_seq,omitempty"` // the first bad node_seq
	Seq     int64  `json:"seq,omitempty"`      // the store's seq of the line where it showed, when an event
	Line    int    `json:"line"`               // line of the export where it showed (1-based)
	Message string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Node != "" {
		fmt.Fprintf(&b, "node %s node_seq %d: ", p.Node, p.NodeSeq)
	}
	b.WriteString(p.Message)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d", p.Line)
		if p.Seq > 0 {
			fmt.Fprintf(&b, ", seq %d", p.Seq)
		}
		b.WriteString(")")
	}
	return b.String()
}

// NodeReport summarises one node's chain.
type NodeReport struct {
	Node        string `json:"node"`
	First       int64  `json:"first"`  // first node_seq in the export
	Last        int64  `json:"last"`   // last node_seq in the export
	Events      int    `json:"events"` // events of this node in the export
	Checkpoints int    `json:"checkpoints"`
	// Pruned is the last node_seq removed by retention, vouched for by a
	// valid prune marker; the chain starts after it. 0 = never pruned.
	Pruned int64 `json:"pruned,omitempty"`
	// Signed is the highest node_seq vouched for by a valid checkpoint that
	// matched the chain; 0 = none.
	Signed int64 `json:"signed"`
	// UnsignedTail counts the events after Signed: their content is
	// consistent but nothing signed vouches that they are all there.
	UnsignedTail int64 `json:"unsigned_tail"`
	// Broken: a problem was found; later events of the same segment are
	// not checked (a chain break marker starts a new, checked segment).
	Broken bool `json:"broken"`
	// Breaks are the chain-break markers: an operator started the gateway
	// although its startup check found the stored chain changed, and the
	// chain continues in a new segment from there.
	Breaks []Break `json:"breaks,omitempty"`
}

// Break is a chain-break marker (an audit.TypeChainBreak event) as found in
// the export: where the new segment starts and what the gateway recorded
// about the old one.
type Break struct {
	NodeSeq int64 `json:"node_seq"` // the marker's node_seq; the new segment starts here
	Line    int   `json:"line"`
	// Recorded is the marker's detail: the startup check's findings.
	Recorded audit.ChainBreak `json:"recorded"`
}

// Report is the result of Verify.
type Report struct {
	Partial     bool         `json:"partial"` // the export starts mid-chain (since)
	Events      int          `json:"events"`
	Checkpoints int          `json:"checkpoints"`
	Prunes      int          `json:"prune_markers,omitempty"`
	Unchained   int          `json:"unchained"` // events written before chaining (schema v1)
	Nodes       []NodeReport `json:"nodes"`
	Problems    []Problem    `json:"problems"`
}

// OK reports whether verification found no problem.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// anchor is a hash the chain must have at a node_seq: a signed checkpoint,
// or an unsigned head from the export header.
type anchor struct {
	hash   chain.Digest
	signed bool
	line   int
}

type nodeState struct {
	rep     NodeReport
	hash    chain.Digest       // hash of rep.Last
	anchors map[int64]*anchor  // by node_seq
	prune   *chain.PruneMarker // the valid marker with the highest node_seq
	// segBroken: the current segment has a problem; its later events are
	// skipped until a chain-break marker starts a new segment.
	segBroken bool
}

type verifier struct {
	keys    []ed25519.PublicKey
	rep     Report
	nodes   map[string]*nodeState
	hasher  chain.Hasher
	line    int
	header  bool
	chained bool // a chained event has been seen
	events  bool // an event line has been seen
	end     *End // the end line, once seen
	// starts are the nodes whose chain start (node_seq 1, linked to the
	// genesis hash) is in the export; with valid prune markers they are the
	// recorded chain starts that unchained events must precede.
	starts     []string
	validPrune int
}

// maxLine bounds one line: an event carries at most a statement of
// postgres.max_message_size (256 MiB by default) plus a little.
const maxLine = 1 << 30

// Verify reads an export from r and checks it against keys (a checkpoint
// must verify with one of them). Problems with the evidence are in the
// report; an error means the input is not an export at all (or unreadable),
// naming the line.
func Verify(r io.Reader, keys []ed25519.PublicKey) (*Report, error) {
	if len(keys) == 0 {
		return nil, errors.New("verify: no public key given")
	}
	v := &verifier{keys: keys, nodes: map[string]*nodeState{}}
	br := bufio.NewReaderSize(r, 1<<16)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: collect it whole.
			buf := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				buf = append(buf, line...)
				if len(buf) > maxLine {
					return nil, fmt.Errorf("line %d: longer than %d bytes", v.line+1, maxLine)
				}
			}
			line = buf
		}
		if len(line) > 0 {
			v.line++
			if perr := v.parse(bytes.TrimSpace(line)); perr != nil {
				return nil, fmt.Errorf("line %d: %w", v.line, perr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the export: %w", err)
		}
	}
	if v.line == 0 {
		return nil, errors.New("the export is empty")
	}
	v.finish()
	if v.header && v.end == nil {
		v.problem(Problem{Message: "the export has no end record: it is incomplete (a transfer cut off?)"})
	}
	return &v.rep, nil
}

func (v *verifier) problem(p Problem) {
	if p.Line == 0 {
		p.Line = v.line
	}
	v.rep.Problems = append(v.rep.Problems, p)
}

func (v *verifier) node(name string) *nodeState {
	st := v.nodes[name]
	if st == nil {
		st = &nodeState{rep: NodeReport{Node: name}, anchors: map[int64]*anchor{}}
		v.nodes[name] = st
	}
	return st
}

func (v *verifier) parse(line []byte) error {
	if len(line) == 0 {
		return nil // blank lines are allowed
	}
	if v.end != nil {
		return errors.New("data after the end record")
	}
	var kind struct {
		Record string `json:"record"`
	}
	if err := json.Unmarshal(line, &kind); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	switch kind.Record {
	case RecordHeader:
		if v.line != 1 {
			return errors.New("a header may only be the first line")
		}
		var h Header
		if err := json.Unmarshal(line, &h); err != nil {
			return fmt.Errorf("invalid header: %w", err)
		}
		if h.Format != Format || h.Version != Version {
			return fmt.Errorf("not a %s version %d (format %q version %d)", Format, Version, h.Format, h.Version)
		}
		v.header = true
		v.rep.Partial = h.Since != nil
		for _, hd := range h.Heads {
			if hd.Node == "" || hd.NodeSeq <= 0 || len(hd.Hash) != chain.HashSize {
				return errors.New("invalid head in header")
			}
			st := v.node(hd.Node)
			if _, ok := st.anchors[hd.NodeSeq]; !ok {
				st.anchors[hd.NodeSeq] = &anchor{hash: hd.Hash, line: v.line}
			}
		}
	case RecordCheckpoint:
		if v.events {
			return errors.New("checkpoint after events: an export lists all checkpoints before the events")
		}
		var c CheckpointLine
		if err := json.Unmarshal(line, &c); err != nil {
			return fmt.Errorf("invalid checkpoint: %w", err)
		}
		v.checkpoint(&c.Checkpoint)
	case RecordPrune:
		if v.events {
			return errors.New("prune marker after events: an export lists prune markers before the events")
		}
		var m PruneLine
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("invalid prune marker: %w", err)
		}
		v.pruneMarker(&m.PruneMarker)
	case RecordEvent:
		var e EventLine
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("invalid event: %w", err)
		}
		v.events = true
		v.event(&e.Event)
	case RecordEnd:
		var e End
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("invalid end record: %w", err)
		}
		v.end = &e
		if e.Events != v.rep.Events || e.Checkpoints != v.rep.Checkpoints || e.Prunes != v.rep.Prunes {
			v.problem(Problem{Message: fmt.Sprintf("the end record counts %d events, %d checkpoints and %d prune markers, the export holds %d, %d and %d: lines were removed or added",
				e.Events, e.Checkpoints, e.Prunes, v.rep.Events, v.rep.Checkpoints, v.rep.Prunes)})
		}
	default:
		return fmt.Errorf("unknown record kind %q (want header, prune, checkpoint, event or end)", kind.Record)
	}
	return nil
}

func (v *verifier) checkpoint(c *audit.Checkpoint) {
	v.rep.Checkpoints++
	if c.Node == "" || c.NodeSeq <= 0 || len(c.Hash) != chain.HashSize {
		v.problem(Problem{Node: c.Node, NodeSeq: c.NodeSeq, Message: "malformed checkpoint"})
		return
	}
	st := v.node(c.Node)
	if _, err := c.Verify(v.keys...); err != nil {
		ids := make([]string, len(v.keys))
		for i, k := range v.keys {
			ids[i] = chain.KeyID(k)
		}
		v.problem(Problem{Node: c.Node, NodeSeq: c.NodeSeq, Message: fmt.Sprintf(
			"checkpoint signature does not verify (checkpoint key id %q, given key ids %s): forged or altered checkpoint, or the wrong public key",
			c.KeyID, strings.Join(ids, ", "))})
		return
	}
	st.rep.Checkpoints++
	if a, ok := st.anchors[c.NodeSeq]; ok && a.signed {
		if !bytes.Equal(a.hash, c.Hash) {
			v.problem(Problem{Node: c.Node, NodeSeq: c.NodeSeq, Message: "two validly signed checkpoints disagree on the hash: the chain forked (two gateways with one audit.node?) or the key leaked"})
		}
		return
	}
	st.anchors[c.NodeSeq] = &anchor{hash: c.Hash, signed: true, line: v.line}
}

// pruneMarker checks a marker's signature. A valid one lets its node's
// chain start right after it, linking to its hash; it is also a signed
// anchor at its node_seq, for an export that still holds that event.
func (v *verifier) pruneMarker(m *chain.PruneMarker) {
	v.rep.Prunes++
	if _, err := m.Verify(v.keys...); err != nil {
		v.problem(Problem{Node: m.Node, NodeSeq: m.NodeSeq, Message: fmt.Sprintf(
			"prune marker does not verify (%v): a forged, unsigned or altered marker cannot vouch for the events it claims were pruned", err)})
		return
	}
	st := v.node(m.Node)
	if a, ok := st.anchors[m.NodeSeq]; ok && a.signed && !bytes.Equal(a.hash, m.Hash) {
		v.problem(Problem{Node: m.Node, NodeSeq: m.NodeSeq, Message: "a validly signed prune marker and checkpoint disagree on the hash: the chain forked or the key leaked"})
		return
	}
	st.anchors[m.NodeSeq] = &anchor{hash: m.Hash, signed: true, line: v.line}
	v.validPrune++
	if st.prune == nil || m.NodeSeq > st.prune.NodeSeq {
		mc := *m
		st.prune = &mc
	}
}

func (v *verifier) event(e *audit.Event) {
	v.rep.Events++
	if e.Node == "" && e.NodeSeq == 0 && len(e.Hash) == 0 {
		v.rep.Unchained++
		if v.chained {
			v.problem(Problem{Seq: e.Seq, Message: "an event outside every chain appears after chained events: it was inserted (the gateway chains every event)"})
		}
		return
	}
	v.chained = true
	if e.Node == "" || e.NodeSeq <= 0 {
		v.problem(Problem{Node: e.Node, NodeSeq: e.NodeSeq, Seq: e.Seq, Message: "event with malformed chain fields"})
		return
	}
	st := v.node(e.Node)
	r := &st.rep
	r.Events++
	isBreak := e.Type == audit.TypeChainBreak && bytes.Equal(e.PrevHash, chain.Genesis) && e.NodeSeq > 1 &&
		(r.Events == 1 || e.NodeSeq > r.Last)
	if isBreak {
		v.chainBreak(st, e)
	} else if st.segBroken {
		return
	}
	fail := func(seq int64, msg string) {
		r.Broken, st.segBroken = true, true
		v.problem(Problem{Node: e.Node, NodeSeq: seq, Seq: e.Seq, Message: msg})
	}
	if r.Events == 1 && !isBreak {
		r.First = e.NodeSeq
		pm := st.prune
		switch {
		case pm != nil && e.NodeSeq == pm.NodeSeq+1:
			r.Pruned = pm.NodeSeq
			if !bytes.Equal(e.PrevHash, pm.Hash) {
				fail(e.NodeSeq, fmt.Sprintf("the first event after the prune marker at node_seq %d does not link to the marker's hash: the marker does not match the chain", pm.NodeSeq))
				return
			}
		case pm != nil && e.NodeSeq > pm.NodeSeq+1 && !v.rep.Partial:
			fail(pm.NodeSeq+1, fmt.Sprintf("the chain was pruned up to node_seq %d but starts at %d: events %d to %d were deleted beyond the prune marker",
				pm.NodeSeq, e.NodeSeq, pm.NodeSeq+1, e.NodeSeq-1))
			return
		case e.NodeSeq == 1:
			if !bytes.Equal(e.PrevHash, chain.Genesis) {
				fail(1, "the chain's first event does not link to the genesis hash")
				return
			}
			v.starts = append(v.starts, e.Node)
		case !v.rep.Partial:
			fail(1, fmt.Sprintf("the chain starts at node_seq %d: events 1 to %d are missing (deleted)", e.NodeSeq, e.NodeSeq-1))
			return
		}
		st.hash = e.PrevHash // a partial export trusts its first link; checkpoints vouch for it
		r.Last = e.NodeSeq - 1
	}
	want := r.Last + 1
	switch {
	case e.NodeSeq > want:
		fail(want, fmt.Sprintf("node_seq %d is missing here (found %d next): deleted or moved", want, e.NodeSeq))
		return
	case e.NodeSeq < want:
		fail(e.NodeSeq, fmt.Sprintf("node_seq %d appears again after %d: inserted, duplicated or reordered", e.NodeSeq, r.Last))
		return
	}
	if got := v.hasher.Sum(e.ChainFields()); !bytes.Equal(got, e.Hash) {
		fail(e.NodeSeq, "the event's content does not match its hash: edited")
		return
	}
	if !bytes.Equal(e.PrevHash, st.hash) {
		// This event was hashed over its predecessor's original hash, so
		// the predecessor is what changed (and was rehashed to hide it).
		fail(e.NodeSeq-1, fmt.Sprintf("node_seq %d links to a different hash than node_seq %d has: node_seq %d was changed and rehashed (or replaced)",
			e.NodeSeq, e.NodeSeq-1, e.NodeSeq-1))
		return
	}
	r.Last, st.hash = e.NodeSeq, e.Hash
	if a, ok := st.anchors[e.NodeSeq]; ok {
		if !bytes.Equal(a.hash, e.Hash) {
			if a.signed {
				fail(max(r.Signed+1, r.First), fmt.Sprintf("the signed checkpoint at node_seq %d does not match the chain: an event in node_seq %d to %d was changed and everything after it rehashed",
					e.NodeSeq, max(r.Signed+1, r.First), e.NodeSeq))
			} else {
				fail(e.NodeSeq, "the running gateway stored a different event at this node_seq: the store was rewritten")
			}
			return
		}
		if a.signed {
			r.Signed = e.NodeSeq
		}
		delete(st.anchors, e.NodeSeq)
	}
}

// finish reports anchors beyond each chain's end (truncation) and builds the
// per-node summary.
func (v *verifier) finish() {
	names := make([]string, 0, len(v.nodes))
	for n := range v.nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st := v.nodes[n]
		r := &st.rep
		if !r.Broken && r.Events == 0 && st.prune != nil && !v.rep.Partial {
			// The gateway never prunes a chain's newest event.
			r.Broken = true
			v.problem(Problem{Node: n, NodeSeq: st.prune.NodeSeq + 1, Message: fmt.Sprintf(
				"the chain was pruned up to node_seq %d but no later event remains: the events after the prune marker were deleted", st.prune.NodeSeq)})
		}
		if !st.segBroken {
			var beyond []int64
			for seq := range st.anchors {
				if seq > r.Last {
					beyond = append(beyond, seq)
				}
			}
			sort.Slice(beyond, func(i, j int) bool { return beyond[i] < beyond[j] })
			if len(beyond) > 0 {
				a := st.anchors[beyond[len(beyond)-1]]
				what := "a signed checkpoint covers"
				if !a.signed {
					what = "the running gateway stored"
				}
				first := r.Last + 1
				if r.Events == 0 && v.rep.Partial {
					first = beyond[0] // a partial export cannot tell where this node's range began
				}
				r.Broken, st.segBroken = true, true
				v.problem(Problem{Node: n, NodeSeq: first, Line: a.line, Message: fmt.Sprintf(
					"events node_seq %d to %d are missing but %s node_seq %d: the chain was truncated",
					first, beyond[len(beyond)-1], what, beyond[len(beyond)-1])})
			}
			r.UnsignedTail = r.Last - max(r.Signed, r.First-1)
		}
		for _, b := range r.Breaks {
			if r.Signed < b.NodeSeq {
				r.Broken = true
				v.problem(Problem{Node: n, NodeSeq: b.NodeSeq, Line: b.Line, Message: "the chain-break marker is not covered by a signed checkpoint: the gateway signs one right after writing it, so this marker is forged"})
			}
		}
		if r.Events > 0 && r.Checkpoints == 0 && st.prune == nil && !v.rep.Partial {
			r.Broken = true
			v.problem(Problem{Node: n, NodeSeq: r.First, Message: "no validly signed checkpoint covers this chain: nothing vouches for its events (a chain made up in the store verifies just as well)"})
		}
		v.rep.Nodes = append(v.rep.Nodes, *r)
	}
	signed := v.validPrune
	for _, st := range v.nodes {
		signed += st.rep.Checkpoints
	}
	if signed == 0 {
		v.problem(Problem{Message: "the export holds no validly signed checkpoint: it proves nothing (checkpoints are signed every audit.checkpoint_every events or audit.checkpoint_interval, and at shutdown; is audit.signing_key set?)"})
	}
	if v.rep.Unchained > 0 {
		started := v.validPrune > 0
		for _, n := range v.starts {
			started = started || v.nodes[n].rep.Signed > 0
		}
		if !started {
			v.problem(Problem{Message: fmt.Sprintf("%d events outside every chain are not followed by a signed chain start (a node's node_seq 1 or a prune marker): events from before chaining cannot be told from forged ones here", v.rep.Unchained)})
		}
	}
}

// chainBreak handles a chain-break marker: the current segment of st ends
// before it (anchors it left unreached are a truncation of that segment),
// and a new one starts at the marker, linked to the genesis hash.
func (v *verifier) chainBreak(st *nodeState, e *audit.Event) {
	r := &st.rep
	b := Break{NodeSeq: e.NodeSeq, Line: v.line}
	if err := json.Unmarshal(e.Detail, &b.Recorded); err != nil {
		b.Recorded.Findings = []string{"(the marker's detail is unreadable: " + err.Error() + ")"}
	}
	r.Breaks = append(r.Breaks, b)
	if r.Events == 1 {
		r.First = e.NodeSeq
		pm := st.prune
		switch {
		case pm != nil && pm.NodeSeq >= e.NodeSeq-1:
			r.Pruned = pm.NodeSeq
		case !v.rep.Partial:
			from := int64(1)
			if pm != nil {
				from = pm.NodeSeq + 1
			}
			r.Broken = true
			v.problem(Problem{Node: e.Node, NodeSeq: from, Seq: e.Seq, Message: fmt.Sprintf("the chain starts with a chain-break marker at node_seq %d: events %d to %d before it are missing (deleted)", e.NodeSeq, from, e.NodeSeq-1)})
		}
	} else if !st.segBroken {
		var beyond int64
		for seq := range st.anchors {
			if seq > r.Last && seq < e.NodeSeq {
				beyond = max(beyond, seq)
			}
		}
		if beyond > 0 {
			r.Broken = true
			v.problem(Problem{Node: e.Node, NodeSeq: r.Last + 1, Line: st.anchors[beyond].line, Message: fmt.Sprintf(
				"events node_seq %d to %d are missing before the chain break but a checkpoint covers node_seq %d: the chain was truncated", r.Last+1, beyond, beyond)})
		}
	}
	for seq := range st.anchors {
		if seq < e.NodeSeq {
			delete(st.anchors, seq)
		}
	}
	st.segBroken = false
	r.Last, st.hash = e.NodeSeq-1, chain.Genesis
}
