package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit/chain"
)

// TypeChainBreak is the event that opens a new segment of a node's chain
// after an operator accepted a failed startup check (see Options.AcceptBreak).
// Its prev_hash is chain.Genesis and its Detail is a ChainBreak; the
// checkpoint signed right after it vouches for it.
const TypeChainBreak = "audit.chain_break"

// ChainReader is what the startup check reads of the store. Every store
// implements it; a ChainStore without it (a test double) is not checked.
type ChainReader interface {
	ListEvents(ctx context.Context, f Filter) ([]Event, error)
	ListCheckpoints(ctx context.Context, f CheckpointFilter) ([]Checkpoint, error)
}

// ChainBreak is what the startup check found wrong with a node's stored
// chain. As an error it says how to proceed; as the Detail of a
// TypeChainBreak event it records the break in the chain itself.
type ChainBreak struct {
	Node string `json:"node"`
	// FirstBad is the lowest node_seq at which the stored chain differs
	// from what this node wrote and signed.
	FirstBad int64 `json:"first_bad_node_seq"`
	// LastVerified/LastVerifiedHash: the chain checked out up to here.
	LastVerified     int64        `json:"last_verified_node_seq"`
	LastVerifiedHash chain.Digest `json:"last_verified_hash,omitempty"`
	StoreHead        Head         `json:"store_head"`         // what the store held
	Signed           int64        `json:"signed_node_seq"`    // the newest node_seq this node is known to have signed
	Findings         []string     `json:"findings"`           // what was found, lowest node_seq first
	Accepted         time.Time    `json:"accepted,omitempty"` // when the operator accepted it (the marker only)
}

// AcceptBreakFlag is the serve flag that accepts a failed startup check.
const AcceptBreakFlag = "--audit-accept-break"

func (b *ChainBreak) Error() string {
	return fmt.Sprintf("audit: the stored chain of node %q fails its startup check at node_seq %d: %s. "+
		"The store was changed while the gateway was down (or restored from an older backup); signing its head now would vouch for it. "+
		"Run `gatehouse audit verify` against an export of the store to see what changed. To start anyway, restart with `gatehouse serve %s`: "+
		"a new chain segment then begins with a signed %s event that records this break (docs/audit.md)",
		b.Node, b.FirstBad, strings.Join(b.Findings, "; "), AcceptBreakFlag, TypeChainBreak)
}

// finding is one problem the startup check found.
type finding struct {
	seq int64
	msg string
}

// chainState is the local state file: per node, the newest checkpoint this
// data_dir's gateway signed. It lives apart from the store, so deleting
// checkpoints or the newest events from the store while the gateway is
// down shows at the next start.
type chainState struct {
	Nodes map[string]stateEntry `json:"nodes"`
}

type stateEntry struct {
	NodeSeq int64        `json:"node_seq"`
	Hash    chain.Digest `json:"hash"`
	KeyID   string       `json:"key_id"`
	Time    time.Time    `json:"time"`
}

// readState reads the state file; a missing file is an empty state (first
// start, or a data_dir from before the file existed).
func readState(path string) (chainState, error) {
	s := chainState{Nodes: map[string]stateEntry{}}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s is damaged (%v): restore it or, after checking the chain with `gatehouse audit verify`, remove it", path, err)
	}
	if s.Nodes == nil {
		s.Nodes = map[string]stateEntry{}
	}
	return s, nil
}

// writeState replaces the state file atomically: a complete temporary file,
// fsynced, renamed over the old one, then the directory fsynced, so a crash
// leaves the old or the new state, never a torn one.
func writeState(path string, s chainState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".audit-chain-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(append(b, '\n'))
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// anchorPoint is a hash the chain must have at a node_seq.
type anchorPoint struct {
	seq  int64
	hash chain.Digest
	what string
}

// checkStart verifies node's stored chain from its newest signed checkpoint
// (or the local state, whichever is older) to the head: every event's hash
// recomputed, every link and node_seq followed, the checkpoint's signature
// checked with pub, and the head not behind what this node signed. It
// returns nil when the chain is what this node left.
func checkStart(ctx context.Context, st ChainReader, node string, pub ed25519.PublicKey, state *stateEntry, head Head) (*ChainBreak, error) {
	var fs []finding
	var anchors []anchorPoint
	cps, err := st.ListCheckpoints(ctx, CheckpointFilter{Node: node, Newest: true})
	if err != nil {
		return nil, err
	}
	var cpSeq, signedSeq int64 // the newest valid checkpoint; or prune marker
	if len(cps) > 0 {
		c := cps[0]
		switch {
		case c.KeyID != chain.KeyID(pub):
			// Signed by another key (rotated): the startup check cannot
			// check its signature; offline verification with both keys
			// does. When the state file says this node last signed with
			// that key, the checkpoint is this node's own from before the
			// rotation: it counts as signed (a restart after rotating the
			// key is not "checkpoints were deleted") and anchors the scan
			// like any other, so a hash that disagrees with the stored
			// chain or with the state file is still a break.
			if state != nil && state.KeyID == c.KeyID {
				cpSeq = c.NodeSeq
				signedSeq = cpSeq
				anchors = append(anchors, anchorPoint{c.NodeSeq, c.Hash, "the newest checkpoint (this node's previous key)"})
			}
		case func() bool { _, err := c.Verify(pub); return err != nil }():
			fs = append(fs, finding{c.NodeSeq, fmt.Sprintf("the newest checkpoint (node_seq %d) does not verify with this node's key: forged or altered", c.NodeSeq)})
		default:
			cpSeq = c.NodeSeq
			signedSeq = cpSeq
			anchors = append(anchors, anchorPoint{c.NodeSeq, c.Hash, "the signed checkpoint"})
		}
	}
	// Retention deletes the checkpoints its newest prune marker replaces:
	// the marker is then the signed anchor.
	if m, err := newestPrune(ctx, st, node); err != nil {
		return nil, err
	} else if m != nil && m.KeyID == chain.KeyID(pub) {
		if _, err := m.Verify(pub); err != nil {
			fs = append(fs, finding{m.NodeSeq, fmt.Sprintf("the newest prune marker (node_seq %d) does not verify with this node's key: forged or altered", m.NodeSeq)})
		} else if m.NodeSeq >= cpSeq {
			anchors = append(anchors, anchorPoint{m.NodeSeq, m.Hash, "the signed prune marker"})
			signedSeq = m.NodeSeq
		}
	}
	if state != nil {
		anchors = append(anchors, anchorPoint{state.NodeSeq, state.Hash, "the local state file's signed head"})
		if signedSeq < state.NodeSeq {
			fs = append(fs, finding{state.NodeSeq, fmt.Sprintf("this node signed node_seq %d (local state file) but the store's newest valid checkpoint or prune marker is node_seq %d: checkpoints were deleted",
				state.NodeSeq, signedSeq)})
		}
	}
	slices.SortFunc(anchors, func(a, b anchorPoint) int { return int(a.seq - b.seq) })
	for i := 1; i < len(anchors); i++ {
		if a, b := anchors[i-1], anchors[i]; a.seq == b.seq && !bytes.Equal(a.hash, b.hash) {
			fs = append(fs, finding{a.seq, fmt.Sprintf("%s and %s disagree on the hash at node_seq %d: the chain was rewritten", a.what, b.what, a.seq)})
		}
	}
	brk := &ChainBreak{Node: node, StoreHead: head, Signed: max(signedSeq, stateSeq(state))}

	// Find where to start: the event at the lowest anchor.
	var prevSeq int64
	prevHash := chain.Genesis
	var cursor int64
	lenient := false
	if len(anchors) > 0 {
		a := anchors[0]
		prevSeq, prevHash = a.seq, a.hash
		evs, err := st.ListEvents(ctx, Filter{Node: node, NodeSeqTo: a.seq, Limit: 1})
		if err != nil {
			return nil, err
		}
		switch {
		case len(evs) > 0 && evs[0].NodeSeq == a.seq:
			e := evs[0]
			cursor = e.Seq
			if !bytes.Equal(chain.Hash(e.ChainFields()), e.Hash) {
				fs = append(fs, finding{a.seq, fmt.Sprintf("the event at node_seq %d does not match its hash: edited", a.seq)})
				prevSeq = -1
			} else if !bytes.Equal(e.Hash, a.hash) {
				fs = append(fs, finding{a.seq, fmt.Sprintf("the event at node_seq %d differs from %s: the chain was rewritten", a.seq, a.what)})
				prevSeq = -1
			}
		default:
			if len(evs) > 0 {
				cursor = evs[0].Seq
			}
			ok, err := prunedThrough(ctx, st, node, a.seq)
			switch {
			case err != nil:
				return nil, err
			case ok:
			case a.seq > head.NodeSeq:
				// Truncated below the oldest anchor: check what is left
				// from its start, trusting its first link; the
				// truncation shows against the anchors below.
				cursor, prevSeq, prevHash, lenient = 0, 0, chain.Genesis, true
			default:
				fs = append(fs, finding{a.seq, fmt.Sprintf("the event at node_seq %d, which %s covers, is missing: deleted", a.seq, a.what)})
				prevSeq = -1
			}
		}
	}
	brk.LastVerified, brk.LastVerifiedHash = max(prevSeq, 0), prevHash
	if prevSeq >= 0 {
		last, lastHash, f, err := scanChain(ctx, st, node, cursor, prevSeq, prevHash, anchors, lenient)
		if err != nil {
			return nil, err
		}
		brk.LastVerified, brk.LastVerifiedHash = last, lastHash
		if f != nil {
			fs = append(fs, *f)
		} else if n := len(anchors); n > 0 && anchors[n-1].seq > last {
			a := anchors[n-1]
			fs = append(fs, finding{last + 1, fmt.Sprintf("events node_seq %d to %d are missing but %s covers node_seq %d: the chain was truncated", last+1, a.seq, a.what, a.seq)})
		}
	}
	if len(fs) == 0 {
		return nil, nil
	}
	slices.SortStableFunc(fs, func(a, b finding) int { return int(a.seq - b.seq) })
	brk.FirstBad = fs[0].seq
	for _, f := range fs {
		brk.Findings = append(brk.Findings, f.msg)
	}
	return brk, nil
}

func stateSeq(s *stateEntry) int64 {
	if s == nil {
		return 0
	}
	return s.NodeSeq
}

// newestPrune returns node's prune marker with the highest node_seq, nil
// when none (or the store keeps none).
func newestPrune(ctx context.Context, st ChainReader, node string) (*PruneMarker, error) {
	ps, ok := st.(interface {
		ListPruneMarkers(ctx context.Context, node string) ([]PruneMarker, error)
	})
	if !ok {
		return nil, nil
	}
	ms, err := ps.ListPruneMarkers(ctx, node)
	if err != nil {
		return nil, err
	}
	var newest *PruneMarker
	for i := range ms {
		if newest == nil || ms[i].NodeSeq > newest.NodeSeq {
			newest = &ms[i]
		}
	}
	return newest, nil
}

// prunedThrough reports whether a prune marker of node covers seq (its
// event was removed by retention, not deleted behind the gateway's back).
func prunedThrough(ctx context.Context, st ChainReader, node string, seq int64) (bool, error) {
	ps, ok := st.(interface {
		ListPruneMarkers(ctx context.Context, node string) ([]PruneMarker, error)
	})
	if !ok {
		return false, nil
	}
	ms, err := ps.ListPruneMarkers(ctx, node)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.NodeSeq >= seq {
			return true, nil
		}
	}
	return false, nil
}

// scanChain follows node's events after the store seq cursor, starting after
// (prevSeq, prevHash), and returns the last good position and the first
// problem. A chain-break marker (prev_hash genesis) opens a new segment.
// Prune markers are not followed: the startup check starts at a checkpoint,
// and retention never prunes past the newest one.
//
// With lenient, the first event found is trusted to start the range (its
// prev_hash and node_seq taken as given).
func scanChain(ctx context.Context, st ChainReader, node string, cursor, prevSeq int64, prevHash chain.Digest, anchors []anchorPoint, lenient bool) (int64, chain.Digest, *finding, error) {
	var h chain.Hasher
	f := Filter{Node: node, AfterSeq: cursor, Ascending: true, Limit: 1000}
	pruned := prevSeq > 0 // a pruned chain may resume right after the anchor
	for {
		evs, err := st.ListEvents(ctx, f)
		if err != nil {
			return 0, nil, nil, err
		}
		for i := range evs {
			e := &evs[i]
			if e.NodeSeq <= 0 {
				continue // not on this chain (the Node filter should prevent it)
			}
			if e.NodeSeq <= prevSeq && pruned {
				continue // at or before the anchor
			}
			pruned = false
			if lenient {
				prevSeq, prevHash, lenient = e.NodeSeq-1, e.PrevHash, false
			}
			switch {
			case e.NodeSeq > prevSeq+1:
				return prevSeq, prevHash, &finding{prevSeq + 1, fmt.Sprintf("node_seq %d is missing (found %d next): deleted", prevSeq+1, e.NodeSeq)}, nil
			case e.NodeSeq <= prevSeq:
				return prevSeq, prevHash, &finding{e.NodeSeq, fmt.Sprintf("node_seq %d appears again after %d: inserted or duplicated", e.NodeSeq, prevSeq)}, nil
			case !bytes.Equal(h.Sum(e.ChainFields()), e.Hash):
				return prevSeq, prevHash, &finding{e.NodeSeq, fmt.Sprintf("the event at node_seq %d does not match its hash: edited", e.NodeSeq)}, nil
			case e.Type == TypeChainBreak && bytes.Equal(e.PrevHash, chain.Genesis):
				// A new segment an operator accepted earlier.
			case !bytes.Equal(e.PrevHash, prevHash):
				return prevSeq, prevHash, &finding{prevSeq, fmt.Sprintf("node_seq %d links to a different hash than node_seq %d has: node_seq %d was changed and rehashed", e.NodeSeq, prevSeq, prevSeq)}, nil
			}
			for _, a := range anchors {
				if a.seq == e.NodeSeq && !bytes.Equal(a.hash, e.Hash) {
					return prevSeq, prevHash, &finding{e.NodeSeq, fmt.Sprintf("the event at node_seq %d differs from %s: the chain was rewritten", e.NodeSeq, a.what)}, nil
				}
			}
			prevSeq, prevHash = e.NodeSeq, e.Hash
			f.AfterSeq = e.Seq
		}
		if len(evs) < f.Limit {
			return prevSeq, prevHash, nil, nil
		}
		f.AfterSeq = evs[len(evs)-1].Seq
	}
}
