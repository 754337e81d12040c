package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit/chain"
)

// PruneMarker is a signed record of a retention prune (see
// chain.PruneMarker).
type PruneMarker = chain.PruneMarker

// PruneStore is what Prune needs of the store.
type PruneStore interface {
	ListEvents(ctx context.Context, f Filter) ([]Event, error)
	ListCheckpoints(ctx context.Context, f CheckpointFilter) ([]Checkpoint, error)
	ChainHead(ctx context.Context, node string) (Head, error)
	// PruneEvents stores m (assigning m.ID) and, in the same transaction,
	// deletes m.Node's events and checkpoints with node_seq <= m.NodeSeq
	// (the marker vouches for that hash now; later checkpoints, which cover
	// the remaining events, stay). It returns how many events it deleted.
	PruneEvents(ctx context.Context, m *PruneMarker) (int64, error)
	// ListPruneMarkers returns node's markers ("" = every node) in
	// ascending ID order.
	ListPruneMarkers(ctx context.Context, node string) ([]PruneMarker, error)
}

// PruneResult says what a prune did.
type PruneResult struct {
	Marker  *PruneMarker // nil when nothing was pruned
	Deleted int64        // events deleted
}

// ErrNothingSigned is returned by Prune when the node has no checkpoint
// yet: pruning then would sign a marker over events nothing vouches for.
var ErrNothingSigned = errors.New("no signed checkpoint yet: nothing is pruned before the chain is signed")

// Prune deletes node's events older than before, up to a prune point it
// signs with key in a prune marker, so the remaining chain still verifies:
// the marker vouches for the first remaining event's prev_hash.
//
// The prune point is the newest event before `before` that is also at or
// before the node's newest checkpoint (so the marker never vouches for
// events nothing had signed, which would let a rewrite of the unsigned
// tail be laundered by the marker) and before the chain head (so the node
// always keeps an event to resume its chain from). The event at the point
// must match its hash and the next event must link to it; otherwise
// nothing is pruned and the error says where the chain is inconsistent.
func Prune(ctx context.Context, st PruneStore, key ed25519.PrivateKey, node string, before time.Time) (PruneResult, error) {
	if key == nil {
		return PruneResult{}, errors.New("audit prune: no signing key (audit.signing_key): a prune needs a signed marker")
	}
	cps, err := st.ListCheckpoints(ctx, CheckpointFilter{Node: node, Newest: true})
	if err != nil {
		return PruneResult{}, fmt.Errorf("audit prune: %w", err)
	}
	if len(cps) == 0 {
		return PruneResult{}, fmt.Errorf("audit prune of node %q: %w", node, ErrNothingSigned)
	}
	head, err := st.ChainHead(ctx, node)
	if err != nil {
		return PruneResult{}, fmt.Errorf("audit prune: %w", err)
	}
	limit := min(cps[0].NodeSeq, head.NodeSeq-1)
	if limit <= 0 {
		return PruneResult{}, nil
	}
	evs, err := st.ListEvents(ctx, Filter{Node: node, Before: before, NodeSeqTo: limit, Limit: 1})
	if err != nil {
		return PruneResult{}, fmt.Errorf("audit prune: %w", err)
	}
	if len(evs) == 0 {
		return PruneResult{}, nil // nothing old enough (or already pruned)
	}
	at := evs[0]
	next, err := st.ListEvents(ctx, Filter{Node: node, AfterSeq: at.Seq, Ascending: true, Limit: 1})
	if err != nil {
		return PruneResult{}, fmt.Errorf("audit prune: %w", err)
	}
	switch {
	case !bytes.Equal(chain.Hash(at.ChainFields()), at.Hash):
		return PruneResult{}, fmt.Errorf("audit prune of node %q: the event at node_seq %d does not match its hash; nothing pruned (run gatehouse audit verify)", node, at.NodeSeq)
	case len(next) == 0 || next[0].NodeSeq != at.NodeSeq+1 || !bytes.Equal(next[0].PrevHash, at.Hash):
		return PruneResult{}, fmt.Errorf("audit prune of node %q: node_seq %d is not followed by an event linking to it; nothing pruned (run gatehouse audit verify)", node, at.NodeSeq)
	}
	m := chain.SignPrune(key, node, at.NodeSeq, at.Hash, time.Now())
	n, err := st.PruneEvents(ctx, &m)
	if err != nil {
		return PruneResult{}, fmt.Errorf("audit prune: %w", err)
	}
	return PruneResult{Marker: &m, Deleted: n}, nil
}
