package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/audit/export"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
)

// chainEnv is a data_dir with a SQLite store, a signing key and the chain
// state file, as the gateway keeps them.
type chainEnv struct {
	t     *testing.T
	dir   string
	key   ed25519.PrivateKey
	st    *sqlite.Store
	state string
}

func newChainEnv(t *testing.T) *chainEnv {
	key, err := chain.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e := &chainEnv{t: t, dir: t.TempDir(), key: key}
	e.state = filepath.Join(e.dir, "audit-chain-state.json")
	e.reopenStore()
	return e
}

func (e *chainEnv) reopenStore() {
	if e.st != nil {
		e.st.Close()
	}
	st, err := sqlite.OpenDir(context.Background(), e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.t.Cleanup(func() { st.Close() })
}

func (e *chainEnv) open(accept bool) (*audit.Log, error) {
	return audit.Open(context.Background(), e.st, audit.Options{Node: "gw-1", SigningKey: e.key, StateFile: e.state,
		AcceptBreak: accept, CheckpointEvery: 1 << 30, CheckpointInterval: time.Hour})
}

// run opens the Log, appends n events and closes it cleanly (a checkpoint
// at shutdown).
func (e *chainEnv) run(n int) {
	l, err := e.open(false)
	if err != nil {
		e.t.Fatal(err)
	}
	appendN(l, n)
	if err := l.Close(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// exec tampers with the store file directly, as someone with access to it
// would while the gateway is down.
func (e *chainEnv) exec(q string, args ...any) {
	e.st.Close()
	e.st = nil
	db, err := sql.Open("sqlite", filepath.Join(e.dir, sqlite.FileName))
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := db.Exec(q, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		e.t.Fatalf("tampering changed nothing: %s", q)
	}
	db.Close()
	e.reopenStore()
}

// wantBreak opens the Log and wants it refused at node_seq seq.
func (e *chainEnv) wantBreak(seq int64, msg string) *audit.ChainBreak {
	e.t.Helper()
	l, err := e.open(false)
	if err == nil {
		l.Close(context.Background())
		e.t.Fatalf("Open accepted a tampered chain (want a break at node_seq %d)", seq)
	}
	var brk *audit.ChainBreak
	if !errors.As(err, &brk) {
		e.t.Fatalf("Open: %v (want a *ChainBreak)", err)
	}
	if brk.Node != "gw-1" || brk.FirstBad != seq || !strings.Contains(err.Error(), msg) ||
		!strings.Contains(err.Error(), "gatehouse audit verify") || !strings.Contains(err.Error(), "--audit-accept-break") ||
		!strings.Contains(err.Error(), fmt.Sprintf("at node_seq %d", seq)) {
		e.t.Fatalf("break at %d, want %d with %q:\n%v", brk.FirstBad, seq, msg, err)
	}
	return brk
}

func (e *chainEnv) verify() *export.Report {
	var buf bytes.Buffer
	if err := export.Write(context.Background(), &buf, e.st, export.Options{}); err != nil {
		e.t.Fatal(err)
	}
	rep, err := export.Verify(&buf, []ed25519.PublicKey{e.key.Public().(ed25519.PublicKey)})
	if err != nil {
		e.t.Fatal(err)
	}
	return rep
}

func TestStartCheckCleanRestarts(t *testing.T) {
	e := newChainEnv(t)
	e.run(5)
	e.run(5) // clean shutdown, then restart
	// A crash: events stored, no checkpoint at shutdown, the Log abandoned.
	l, err := e.open(false)
	if err != nil {
		t.Fatal(err)
	}
	appendN(l, 4)
	waitFor(t, func() bool { return l.Written() == 4 })
	e.run(1) // resumes the unsigned tail of the crashed run
	if rep := e.verify(); !rep.OK() || rep.Nodes[0].Last != 15 || rep.Nodes[0].UnsignedTail != 0 {
		t.Fatalf("%+v", rep)
	}
}

// TestStartCheckEditedSignedEvent: the startup check covers the chain from
// the newest checkpoint on (what the next checkpoint would vouch for);
// events already signed are the verifier's: an edit there does not stop
// the gateway, `gatehouse audit verify` names it.
func TestStartCheckEditedSignedEvent(t *testing.T) {
	e := newChainEnv(t)
	e.run(5)
	e.run(5)
	e.exec(`UPDATE audit_events SET statement = 'select 2' WHERE node_seq = 7`)
	e.run(1)
	rep := e.verify()
	if rep.OK() || rep.Problems[0].NodeSeq != 7 {
		t.Fatalf("%+v", rep)
	}
}

func TestStartCheckEditedEventCheckpointDeleted(t *testing.T) {
	e := newChainEnv(t)
	e.run(5)
	e.run(5)
	e.exec(`UPDATE audit_events SET statement = 'select 2' WHERE node_seq = 7`)
	e.exec(`DELETE FROM audit_checkpoints WHERE node_seq = 10`)
	e.wantBreak(7, "node_seq 7 does not match its hash: edited")
}

func TestStartCheckEditedUnsignedTail(t *testing.T) {
	e := newChainEnv(t)
	e.run(5)
	l, err := e.open(false)
	if err != nil {
		t.Fatal(err)
	}
	appendN(l, 4) // crash: 6-9 unsigned
	waitFor(t, func() bool { return l.Written() == 4 })
	e.exec(`UPDATE audit_events SET subject = 'someone-else' WHERE node_seq = 8`)
	e.wantBreak(8, "edited")
}

func TestStartCheckDeletedNewestEvents(t *testing.T) {
	e := newChainEnv(t)
	e.run(5)
	e.run(5)
	// The newest events and their checkpoint go: without the state file
	// this chain would look like a clean one ending at node_seq 7.
	e.exec(`DELETE FROM audit_events WHERE node_seq > 7`)
	e.exec(`DELETE FROM audit_checkpoints WHERE node_seq = 10`)
	e.wantBreak(8, "truncated")
}

func TestStartCheckDeletedCheckpoint(t *testing.T) {
	e := newChainEnv(t)
	e.run(5)
	e.run(5)
	e.exec(`DELETE FROM audit_checkpoints WHERE node_seq = 10`)
	e.wantBreak(10, "checkpoints were deleted")
}

func TestStartCheckAppendedEvent(t *testing.T) {
	e := newChainEnv(t)
	e.run(3)
	// A forged event appended after the signed head, linked and hashed
	// correctly: only the signature is out of reach.
	var last audit.Event
	if got, err := e.st.ListEvents(context.Background(), audit.Filter{Node: "gw-1", Limit: 1}); err != nil || len(got) != 1 {
		t.Fatal(err)
	} else {
		last = got[0]
	}
	f := audit.Event{Node: "gw-1", NodeSeq: 4, PrevHash: last.Hash, Time: last.Time, Type: audit.TypeStatement, Statement: "forged"}
	f.Hash = chain.Hash(f.ChainFields())
	if err := e.st.AppendEvents(context.Background(), []audit.Event{f}); err != nil {
		t.Fatal(err)
	}
	// Appending is not tampering with what was signed: the next
	// checkpoint signs it. The startup check vouches for the signed part
	// and the links after it; docs/audit.md says so.
	if l, err := e.open(false); err != nil {
		t.Fatalf("an appended, well-linked event: %v", err)
	} else {
		l.Close(context.Background())
	}
}

func TestStartCheckForgedCheckpoint(t *testing.T) {
	e := newChainEnv(t)
	e.run(5)
	e.exec(`UPDATE audit_checkpoints SET signature = zeroblob(64) WHERE node_seq = 5`)
	e.wantBreak(5, "does not verify with this node's key")
}

func TestStartCheckAcceptBreak(t *testing.T) {
	e := newChainEnv(t)
	e.run(5)
	e.run(5)
	e.exec(`DELETE FROM audit_events WHERE node_seq > 8`)
	e.exec(`UPDATE audit_events SET statement = 'select 2' WHERE node_seq = 7`)
	e.exec(`DELETE FROM audit_checkpoints WHERE node_seq = 10`)
	e.wantBreak(7, "edited")

	l, err := e.open(true)
	if err != nil {
		t.Fatalf("accepted: %v", err)
	}
	appendN(l, 2)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The marker opens a segment at node_seq 11 (after everything signed).
	got, err := e.st.ListEvents(context.Background(), audit.Filter{Node: "gw-1", Type: audit.TypeChainBreak})
	if err != nil || len(got) != 1 {
		t.Fatalf("markers: %v %v", got, err)
	}
	m := got[0]
	var brk audit.ChainBreak
	if err := json.Unmarshal(m.Detail, &brk); err != nil {
		t.Fatal(err)
	}
	if m.NodeSeq != 11 || !bytes.Equal(m.PrevHash, chain.Genesis) || brk.FirstBad != 7 || brk.LastVerified != 6 || brk.Signed != 10 || len(brk.Findings) == 0 {
		t.Fatalf("marker %+v detail %s", m, m.Detail)
	}
	// The marker is signed, and the next start is clean.
	e.run(1)

	rep := e.verify()
	if rep.OK() {
		t.Fatalf("the tampered segment verifies: %+v", rep)
	}
	n := rep.Nodes[0]
	if len(n.Breaks) != 1 || n.Breaks[0].NodeSeq != 11 || n.Last != 14 || n.Signed != 14 {
		t.Fatalf("%+v", n)
	}
	if p := rep.Problems[0]; p.NodeSeq != 7 || !strings.Contains(p.Message, "edited") {
		t.Fatalf("%+v", rep.Problems)
	}
}

// TestStartCheckAfterPrune: retention deletes the checkpoints its marker
// replaces, including the one the state file names; the start is clean.
func TestStartCheckAfterPrune(t *testing.T) {
	e := newChainEnv(t)
	e.run(5)
	e.run(5)
	l, err := e.open(false)
	if err != nil {
		t.Fatal(err)
	}
	appendN(l, 2) // crash: 11-12 unsigned, so the prune can reach 10
	waitFor(t, func() bool { return l.Written() == 2 })
	res, err := audit.Prune(context.Background(), e.st, e.key, "gw-1", time.Now().Add(time.Hour))
	if err != nil || res.Marker == nil || res.Marker.NodeSeq != 10 {
		t.Fatalf("prune: %+v %v", res, err)
	}
	if cps, _ := e.st.ListCheckpoints(context.Background(), audit.CheckpointFilter{Node: "gw-1"}); len(cps) != 0 {
		t.Fatalf("checkpoints left: %v", cps)
	}
	e.run(1)
	if rep := e.verify(); !rep.OK() || rep.Nodes[0].Pruned != 10 || rep.Nodes[0].Last != 13 {
		t.Fatalf("%+v", rep)
	}
	// Deleting the events after the marker is still caught.
	e.exec(`DELETE FROM audit_events WHERE node_seq > 11`)
	e.exec(`DELETE FROM audit_checkpoints WHERE node_seq = 13`)
	e.wantBreak(12, "truncated")
}

// TestStartCheckKeyRotation: a restart with a new signing key is a clean
// start (the newest checkpoint carries the old key, which the state file
// names), and the old-key checkpoint still anchors the check.
func TestStartCheckKeyRotation(t *testing.T) {
	rotate := func(e *chainEnv) {
		key, err := chain.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		e.key = key
	}
	e := newChainEnv(t)
	e.run(5)
	rotate(e)
	e.run(5) // refused with "checkpoints were deleted" before the fix
	rotate(e)
	e.run(1)

	// After a rotation, tampering with what the old key signed is still
	// found: the state file and the old-key checkpoints anchor the scan.
	e = newChainEnv(t)
	e.run(5)
	e.run(5)
	rotate(e)
	e.exec(`UPDATE audit_events SET statement = 'select 2' WHERE node_seq = 8`)
	e.exec(`DELETE FROM audit_checkpoints WHERE node_seq = 10`)
	e.exec(`DELETE FROM audit_events WHERE node_seq > 9`)
	e.wantBreak(8, "edited")
}
