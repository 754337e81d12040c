package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/audit/export"
	"github.com/gatehouse/gatehouse/internal/store"
)

// ChainNode is the node name WriteChain uses.
const ChainNode = "gw-test"

// WriteChain writes a chain through a real audit.Log: four groups of five
// events, each signed by a checkpoint (node_seq 5, 10, 15, 20), then three
// events written by a Log without a key (an unsigned tail, node_seq 21-23).
// It returns the head the Log reported.
func WriteChain(t testing.TB, st store.Store, key ed25519.PrivateKey) audit.Head {
	t.Helper()
	ctx := context.Background()
	l, err := audit.Open(ctx, st, audit.Options{Node: ChainNode, SigningKey: key, CheckpointEvery: 5, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for g := range 4 {
		for i := range 5 {
			n++
			l.Append(audit.Event{Type: audit.TypeStatement, SessionID: fmt.Sprintf("s%d", g), Subject: "agent-7",
				Connection: "orders", Decision: "allow", Statement: fmt.Sprintf("SELECT %d", n),
				DetailValue: map[string]any{"rows": i, "note": "<tag> & \"quotes\" ✓"}})
		}
		waitWritten(t, l, int64(5*(g+1)))
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l, err = audit.Open(ctx, st, audit.Options{Node: ChainNode})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		l.Append(audit.Event{Type: audit.TypeAdmin, Subject: "root", Reason: fmt.Sprintf("tail %d", i)})
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	h := l.Head()
	if h.NodeSeq != 23 {
		t.Fatalf("chain head %+v, want node_seq 23", h)
	}
	return h
}

func waitWritten(t testing.TB, l *audit.Log, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.Written() < n {
		if time.Now().After(deadline) {
			t.Fatalf("audit log wrote %d of %d events: %v", l.Written(), n, l.Healthy())
		}
		time.Sleep(time.Millisecond)
	}
}

// VerifyStore exports st and verifies the export with pub.
func VerifyStore(t testing.TB, st store.Store, pub ed25519.PublicKey, o export.Options) *export.Report {
	t.Helper()
	var buf bytes.Buffer
	if err := export.Write(context.Background(), &buf, st, o); err != nil {
		t.Fatal(err)
	}
	rep, err := export.Verify(&buf, []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, buf.String())
	}
	return rep
}

// Exec runs one SQL statement on a store's database, as an attacker with
// database access would.
type Exec func(t *testing.T, sql string)

// RunTamper writes a chain into a fresh store, changes the stored rows with
// SQL in every way an attacker might, and checks that verification fails
// naming the first bad node_seq. open returns a fresh store and a way to
// run SQL on its database; the SQL is written to run on both SQLite and
// PostgreSQL.
func RunTamper(t *testing.T, open func(t *testing.T) (store.Store, Exec)) {
	key, err := chain.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	cols := "seq, time, type, session_id, issuer, subject, connection, decision, reason, statement, detail, node, node_seq, prev_hash, hash"
	cases := []struct {
		name    string
		tamper  []string
		heads   bool   // verify with the Log's head in the header (a live export)
		nodeSeq int64  // first bad node_seq; 0 = verifies
		seq     int64  // the problem's store seq, when it names no node
		msg     string // part of the problem's message
		last    int64  // when it verifies: last node_seq (0 = 23)
		signed  int64  // when it verifies: last signed node_seq (0 = 20)
	}{
		{name: "clean"},
		{name: "clean live", heads: true},
		{name: "edit statement", tamper: []string{`UPDATE audit_events SET statement = 'SELECT 1' WHERE node_seq = 7`}, nodeSeq: 7, msg: "edited"},
		{name: "edit time", tamper: []string{`UPDATE audit_events SET time = time + ` + oneSecond + ` WHERE node_seq = 12`}, nodeSeq: 12, msg: "edited"},
		{name: "edit detail", tamper: []string{`UPDATE audit_events SET detail = '{"rows":99}' WHERE node_seq = 3`}, nodeSeq: 3, msg: "edited"},
		{name: "whitespace in detail", tamper: []string{`UPDATE audit_events SET detail = ' ' || detail WHERE node_seq = 4`}, nodeSeq: 4, msg: "edited"},
		{name: "edit hash", tamper: []string{`UPDATE audit_events SET hash = prev_hash WHERE node_seq = 9`}, nodeSeq: 9},
		{name: "delete", tamper: []string{`DELETE FROM audit_events WHERE node_seq = 7`}, nodeSeq: 7, msg: "missing"},
		{name: "delete first", tamper: []string{`DELETE FROM audit_events WHERE node_seq = 1`}, nodeSeq: 1, msg: "missing"},
		{name: "delete in tail", tamper: []string{`DELETE FROM audit_events WHERE node_seq = 22`}, nodeSeq: 22, msg: "missing"},
		{name: "insert outside chain", tamper: []string{
			`UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 8`,
			`INSERT INTO audit_events (seq, time, type) SELECT 8, time, 'statement' FROM audit_events WHERE node_seq = 7`}, seq: 8, msg: "inserted"},
		{name: "insert forged before", tamper: []string{
			`DROP INDEX audit_events_chain`,
			`UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 7`,
			`INSERT INTO audit_events (` + cols + `) SELECT 7, time, type, session_id, issuer, subject, connection, decision, reason, 'DELETE FROM t', detail, node, node_seq, prev_hash, hash FROM audit_events WHERE node_seq = 7`},
			nodeSeq: 7, msg: "edited"},
		{name: "insert copy", tamper: []string{
			`DROP INDEX audit_events_chain`,
			`UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 8`,
			`INSERT INTO audit_events (` + cols + `) SELECT 8, time, type, session_id, issuer, subject, connection, decision, reason, statement, detail, node, node_seq, prev_hash, hash FROM audit_events WHERE node_seq = 7`},
			nodeSeq: 7, msg: "appears again"},
		{name: "reorder", tamper: []string{
			`UPDATE audit_events SET seq = -seq WHERE node_seq = 7`,
			`UPDATE audit_events SET seq = seq - 1 WHERE node_seq = 8`,
			`UPDATE audit_events SET seq = -seq + 1 WHERE node_seq = 7`}, nodeSeq: 7, msg: "missing"},
		{name: "renumber after delete", tamper: []string{
			`DELETE FROM audit_events WHERE node_seq = 7`,
			`UPDATE audit_events SET node_seq = -(node_seq - 1) WHERE node_seq > 7`,
			`UPDATE audit_events SET node_seq = -node_seq WHERE node_seq < 0`}, nodeSeq: 7, msg: "edited"},
		{name: "truncate signed", tamper: []string{`DELETE FROM audit_events WHERE node_seq >= 18`}, nodeSeq: 18, msg: "truncated"},
		// Without a later checkpoint, a cut tail is invisible offline
		// (docs/audit.md) but a live export compares the gateway's head.
		{name: "truncate signed and checkpoint offline", tamper: []string{`DELETE FROM audit_events WHERE node_seq >= 18`, `DELETE FROM audit_checkpoints WHERE node_seq = 20`},
			last: 17, signed: 15},
		{name: "truncate signed and checkpoint live", heads: true, tamper: []string{`DELETE FROM audit_events WHERE node_seq >= 18`, `DELETE FROM audit_checkpoints WHERE node_seq = 20`},
			nodeSeq: 18, msg: "truncated"},
		{name: "truncate unsigned tail offline", tamper: []string{`DELETE FROM audit_events WHERE node_seq >= 21`}, last: 20},
		{name: "truncate unsigned tail live", heads: true, tamper: []string{`DELETE FROM audit_events WHERE node_seq >= 21`}, nodeSeq: 21, msg: "truncated"},
		{name: "forge checkpoint", tamper: []string{`UPDATE audit_checkpoints SET node_seq = 6 WHERE node_seq = 5`}, nodeSeq: 6, msg: "signature"},
		{name: "move checkpoint signature", tamper: []string{`UPDATE audit_checkpoints SET signature = (SELECT signature FROM audit_checkpoints WHERE node_seq = 5) WHERE node_seq = 10`}, nodeSeq: 10, msg: "signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, exec := open(t)
			t.Cleanup(func() { st.Close() })
			head := WriteChain(t, st, key)
			for _, q := range tc.tamper {
				exec(t, q)
			}
			var o export.Options
			if tc.heads {
				o.Heads = []audit.Head{head}
			}
			rep := VerifyStore(t, st, pub, o)
			if tc.last == 0 {
				tc.last = 23
			}
			if tc.signed == 0 {
				tc.signed = 20
			}
			checkReport(t, rep, tc.nodeSeq, tc.seq, tc.msg, tc.last, tc.signed)
		})
	}
	t.Run("rehash", func(t *testing.T) { testRehash(t, open, key) })
	t.Run("prune", func(t *testing.T) { testPrune(t, open, key) })
}

// oneSecond marks one second of the time column; Dialect rewrites it.
const oneSecond = "__ONE_SECOND__"

var hexRE = regexp.MustCompile(`__HEX__([0-9a-f]*)__`)

// Dialect rewrites the markers of the tamper SQL for a backend: "sqlite" or
// "postgres". Times are microsecond integers in SQLite and timestamptz in
// PostgreSQL; blob literals are X'..' and '\x..'::bytea.
func Dialect(d, q string) string {
	if d == "sqlite" {
		q = strings.ReplaceAll(q, oneSecond, "1000000")
		return hexRE.ReplaceAllString(q, "X'$1'")
	}
	q = strings.ReplaceAll(q, oneSecond, "interval '1 second'")
	return hexRE.ReplaceAllString(q, `'\x$1'::bytea`)
}

func checkReport(t *testing.T, rep *export.Report, nodeSeq, seq int64, msg string, last, signed int64) {
	t.Helper()
	if nodeSeq == 0 && seq == 0 {
		if !rep.OK() {
			t.Fatalf("verification fails: %v", rep.Problems)
		}
		if len(rep.Nodes) != 1 || rep.Nodes[0].Last != last || rep.Nodes[0].Signed != signed || rep.Nodes[0].UnsignedTail != last-signed {
			t.Errorf("report %+v", rep.Nodes)
		}
		return
	}
	if len(rep.Problems) == 0 {
		t.Fatal("tampering not detected")
	}
	p := rep.Problems[0]
	if nodeSeq != 0 && (p.Node != ChainNode || p.NodeSeq != nodeSeq) || seq != 0 && p.Seq != seq || !strings.Contains(p.String(), msg) {
		t.Errorf("first problem = %s; want node_seq %d seq %d containing %q (all: %v)", p, nodeSeq, seq, msg, rep.Problems)
	}
}

// testRehash edits an event and recomputes its hash, and then also every
// later hash: what an attacker who knows the format does. A lone rehash
// breaks the next link; a full rehash is caught by the next checkpoint.
func testRehash(t *testing.T, open func(t *testing.T) (store.Store, Exec), key ed25519.PrivateKey) {
	pub := key.Public().(ed25519.PublicKey)
	for _, full := range []bool{false, true} {
		st, exec := open(t)
		WriteChain(t, st, key)
		evs, err := st.ListEvents(context.Background(), audit.Filter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		prev := evs[5].Hash // node_seq 6
		for i := 6; i < len(evs); i++ {
			e := evs[i]
			if i == 6 {
				e.Statement = "SELECT 999"
			}
			e.PrevHash = prev
			if i > 6 && !full {
				break
			}
			h := chain.Hash(e.ChainFields())
			exec(t, fmt.Sprintf(`UPDATE audit_events SET statement = '%s', prev_hash = %s, hash = %s WHERE node_seq = %d`,
				e.Statement, hexLit(e.PrevHash), hexLit(h), e.NodeSeq))
			prev = h
		}
		rep := VerifyStore(t, st, pub, export.Options{})
		if full {
			checkReport(t, rep, 6, 0, "checkpoint at node_seq 10 does not match", 0, 0)
		} else {
			checkReport(t, rep, 7, 0, "changed and rehashed", 0, 0)
		}
		st.Close()
	}
}

// hexLit is a blob literal both dialects read: X'..' (SQLite) and
// '\x..'::bytea (PostgreSQL) differ, so the Exec rewrites the marker.
func hexLit(b []byte) string { return "__HEX__" + chain.Digest(b).String() + "__" }
