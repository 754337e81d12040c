package storetest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/audit/export"
	"github.com/gatehouse/gatehouse/internal/store"
)

// farFuture is a cutoff after every event.
var farFuture = time.Now().Add(24 * time.Hour)

// pruneAt10 prunes WriteChain's chain up to node_seq 10: the cutoff is the
// time of node_seq 11 (written in a later batch than 10, so later).
func pruneAt10(t *testing.T, st store.Store, key ed25519.PrivateKey) audit.PruneResult {
	t.Helper()
	ctx := context.Background()
	evs, err := st.ListEvents(ctx, audit.Filter{Node: ChainNode, Ascending: true, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	res, err := audit.Prune(ctx, st, key, ChainNode, evs[10].Time)
	if err != nil {
		t.Fatal(err)
	}
	if res.Marker == nil || res.Marker.NodeSeq != 10 || res.Deleted != 10 || res.Marker.ID == 0 {
		t.Fatalf("prune at node_seq 11's time: %+v (marker %+v)", res, res.Marker)
	}
	return res
}

// testPrune checks retention on a store: what Prune keeps and deletes, that
// the remaining chain verifies (export included), and that verification
// catches tampering around the prune marker.
func testPrune(t *testing.T, open func(t *testing.T) (store.Store, Exec), key ed25519.PrivateKey) {
	pub := key.Public().(ed25519.PublicKey)
	ctx := context.Background()

	t.Run("behaviour", func(t *testing.T) {
		st, _ := open(t)
		t.Cleanup(func() { st.Close() })
		// Nothing signed yet: nothing pruned.
		l, err := audit.Open(ctx, st, audit.Options{Node: ChainNode})
		if err != nil {
			t.Fatal(err)
		}
		l.Append(audit.Event{Type: audit.TypeAdmin, Reason: "unsigned"})
		l.Append(audit.Event{Type: audit.TypeAdmin, Reason: "unsigned"})
		l.Close(ctx)
		if _, err := audit.Prune(ctx, st, key, ChainNode, farFuture); !errors.Is(err, audit.ErrNothingSigned) {
			t.Fatalf("prune of an unsigned chain: %v, want ErrNothingSigned", err)
		}
		if _, err := audit.Prune(ctx, st, nil, ChainNode, farFuture); err == nil {
			t.Fatal("prune without a key succeeded")
		}

		st2, _ := open(t)
		t.Cleanup(func() { st2.Close() })
		head := WriteChain(t, st2, key)
		pruneAt10(t, st2, key)
		evs, _ := st2.ListEvents(ctx, audit.Filter{Limit: 100})
		cps, _ := st2.ListCheckpoints(ctx, audit.CheckpointFilter{Limit: 100})
		ms, _ := st2.ListPruneMarkers(ctx, "")
		if len(evs) != 13 || evs[0].NodeSeq != 11 || len(cps) != 2 || cps[0].NodeSeq != 15 || len(ms) != 1 {
			t.Fatalf("after prune: %d events from node_seq %d, checkpoints %v, %d markers", len(evs), evs[0].NodeSeq, cps, len(ms))
		}
		if _, err := ms[0].Verify(pub); err != nil || ms[0].NodeSeq != 10 || ms[0].Node != ChainNode {
			t.Fatalf("stored marker %+v: %v", ms[0], err)
		}
		if h, _ := st2.ChainHead(ctx, ChainNode); h.NodeSeq != head.NodeSeq {
			t.Fatalf("chain head after prune %+v, want %+v", h, head)
		}
		rep := VerifyStore(t, st2, pub, export.Options{Heads: []audit.Head{head}})
		checkReport(t, rep, 0, 0, "", 23, 20)
		if r := rep.Nodes[0]; r.Pruned != 10 || r.First != 11 || rep.Prunes != 1 {
			t.Fatalf("report %+v", rep.Nodes[0])
		}
		// Again at the same cutoff: nothing more.
		if res, err := audit.Prune(ctx, st2, key, ChainNode, evs[0].Time); err != nil || res.Marker != nil {
			t.Fatalf("second prune: %+v %v", res, err)
		}
		// Everything old: pruned up to the newest checkpoint (20), never the
		// unsigned tail or the head; the Log resumes after it.
		res, err := audit.Prune(ctx, st2, key, ChainNode, farFuture)
		if err != nil || res.Marker == nil || res.Marker.NodeSeq != 20 || res.Deleted != 10 {
			t.Fatalf("prune to the newest checkpoint: %+v %v", res, err)
		}
		l, err = audit.Open(ctx, st2, audit.Options{Node: ChainNode, SigningKey: key})
		if err != nil {
			t.Fatal(err)
		}
		l.Append(audit.Event{Type: audit.TypeAdmin, Reason: "after prune"})
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		rep = VerifyStore(t, st2, pub, export.Options{Heads: []audit.Head{l.Head()}})
		checkReport(t, rep, 0, 0, "", 24, 24)
		if r := rep.Nodes[0]; r.Pruned != 20 || r.First != 21 || rep.Prunes != 2 {
			t.Fatalf("report %+v", rep.Nodes[0])
		}
	})

	cases := []struct {
		name    string
		tamper  func(t *testing.T, st store.Store, exec Exec, m *audit.PruneMarker)
		nodeSeq int64
		msg     string
	}{
		{name: "delete after marker", nodeSeq: 11, msg: "beyond the prune marker", tamper: func(t *testing.T, _ store.Store, exec Exec, _ *audit.PruneMarker) {
			exec(t, `DELETE FROM audit_events WHERE node_seq = 11`)
		}},
		{name: "delete range after marker", nodeSeq: 11, msg: "beyond the prune marker", tamper: func(t *testing.T, _ store.Store, exec Exec, _ *audit.PruneMarker) {
			exec(t, `DELETE FROM audit_events WHERE node_seq <= 13`)
		}},
		{name: "delete marker", nodeSeq: 1, msg: "missing", tamper: func(t *testing.T, _ store.Store, exec Exec, _ *audit.PruneMarker) {
			exec(t, `DELETE FROM audit_prune_markers`)
		}},
		{name: "unsigned marker", nodeSeq: 10, msg: "prune marker does not verify", tamper: func(t *testing.T, _ store.Store, exec Exec, _ *audit.PruneMarker) {
			exec(t, `UPDATE audit_prune_markers SET signature = `+hexLit(nil))
		}},
		{name: "checkpoint signature on marker", nodeSeq: 10, msg: "prune marker does not verify", tamper: func(t *testing.T, _ store.Store, exec Exec, _ *audit.PruneMarker) {
			exec(t, `UPDATE audit_prune_markers SET signature = (SELECT signature FROM audit_checkpoints WHERE node_seq = 15)`)
		}},
		{name: "forged marker further on", nodeSeq: 12, msg: "prune marker does not verify", tamper: func(t *testing.T, _ store.Store, exec Exec, _ *audit.PruneMarker) {
			// Cover up deleting 11 and 12 by moving the marker.
			exec(t, `DELETE FROM audit_events WHERE node_seq <= 12`)
			exec(t, `UPDATE audit_prune_markers SET node_seq = 12, hash = (SELECT prev_hash FROM audit_events WHERE node_seq = 13)`)
		}},
		{name: "marker does not match next event", nodeSeq: 11, msg: "does not link to the marker's hash", tamper: func(t *testing.T, st store.Store, exec Exec, m *audit.PruneMarker) {
			// Validly signed (the key leaked into a test) but over a hash
			// the chain does not continue from.
			wrong := chain.Hash(&chain.Fields{Node: ChainNode, NodeSeq: 10, PrevHash: chain.Genesis})
			f := chain.SignPrune(key, m.Node, m.NodeSeq, wrong, m.Time)
			exec(t, fmt.Sprintf(`UPDATE audit_prune_markers SET hash = %s, signature = %s`, hexLit(f.Hash), hexLit(f.Signature)))
		}},
		{name: "everything after marker deleted", nodeSeq: 11, msg: "", tamper: func(t *testing.T, _ store.Store, exec Exec, _ *audit.PruneMarker) {
			exec(t, `DELETE FROM audit_events`)
			exec(t, `DELETE FROM audit_checkpoints`)
		}},
		{name: "edit after marker", nodeSeq: 11, msg: "edited", tamper: func(t *testing.T, _ store.Store, exec Exec, _ *audit.PruneMarker) {
			exec(t, `UPDATE audit_events SET statement = 'SELECT 0' WHERE node_seq = 11`)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, exec := open(t)
			t.Cleanup(func() { st.Close() })
			WriteChain(t, st, key)
			res := pruneAt10(t, st, key)
			tc.tamper(t, st, exec, res.Marker)
			rep := VerifyStore(t, st, pub, export.Options{})
			checkReport(t, rep, tc.nodeSeq, 0, tc.msg, 0, 0)
		})
	}
}
