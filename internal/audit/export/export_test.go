package export_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/adminapi/adminapitest"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/audit/export"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
)

// fixture is a clean export of storetest.WriteChain's chain (node_seq 1-23,
// checkpoints at 5, 10, 15, 20) and the key that signed it.
type fixture struct {
	st    *adminapitest.Store
	key   ed25519.PrivateKey
	pub   ed25519.PublicKey
	head  audit.Head
	lines [][]byte
}

func newFixture(t testing.TB) *fixture {
	key, err := chain.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: adminapitest.NewStore(), key: key, pub: key.Public().(ed25519.PublicKey)}
	f.head = storetest.WriteChain(t, f.st, key)
	f.lines = f.export(t, export.Options{})
	return f
}

func (f *fixture) export(t testing.TB, o export.Options) [][]byte {
	var buf bytes.Buffer
	if err := export.Write(context.Background(), &buf, f.st, o); err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(buf.Bytes(), []byte("\n"))
	return lines[:len(lines)-1] // after the final newline
}

// eventLine returns the index of the event line with node_seq n.
func eventLine(t *testing.T, lines [][]byte, n int64) int {
	t.Helper()
	for i, l := range lines {
		var e export.EventLine
		if json.Unmarshal(l, &e) == nil && e.Record == export.RecordEvent && e.NodeSeq == n {
			return i
		}
	}
	t.Fatalf("no event line with node_seq %d", n)
	return 0
}

func verify(t *testing.T, lines [][]byte, keys ...ed25519.PublicKey) *export.Report {
	t.Helper()
	rep, err := export.Verify(bytes.NewReader(bytes.Join(lines, nil)), keys)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func edit(t *testing.T, line []byte, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func del(lines [][]byte, from, to int) [][]byte {
	out := append([][]byte(nil), lines[:from]...)
	return append(out, lines[to:]...)
}

func TestExportFileTamper(t *testing.T) {
	f := newFixture(t)
	at := func(n int64) int { return eventLine(t, f.lines, n) }
	cases := []struct {
		name    string
		tamper  func(l [][]byte) [][]byte
		nodeSeq int64
		msg     string
		last    int64
	}{
		{name: "clean", tamper: func(l [][]byte) [][]byte { return l }, last: 23},
		{name: "edit statement", nodeSeq: 7, msg: "edited", tamper: func(l [][]byte) [][]byte {
			l[at(7)] = edit(t, l[at(7)], func(m map[string]any) { m["statement"] = "SELECT 1" })
			return l
		}},
		{name: "edit detail", nodeSeq: 8, msg: "edited", tamper: func(l [][]byte) [][]byte {
			l[at(8)] = edit(t, l[at(8)], func(m map[string]any) { m["detail"] = map[string]any{"rows": 5} })
			return l
		}},
		{name: "drop detail", nodeSeq: 8, msg: "edited", tamper: func(l [][]byte) [][]byte {
			l[at(8)] = edit(t, l[at(8)], func(m map[string]any) { delete(m, "detail") })
			return l
		}},
		{name: "edit node", nodeSeq: 1, msg: "missing", tamper: func(l [][]byte) [][]byte {
			// The event moves to another chain, which then starts at 9,
			// reported before gw-test's own break at 9.
			l[at(9)] = edit(t, l[at(9)], func(m map[string]any) { m["node"] = "gw-other" })
			return l
		}},
		{name: "delete", nodeSeq: 7, msg: "missing", tamper: func(l [][]byte) [][]byte { return del(l, at(7), at(7)+1) }},
		{name: "insert copy", nodeSeq: 7, msg: "appears again", tamper: func(l [][]byte) [][]byte {
			i := at(7)
			return append(l[:i+1], append([][]byte{l[i]}, l[i+1:]...)...)
		}},
		{name: "insert forged", nodeSeq: 7, msg: "edited", tamper: func(l [][]byte) [][]byte {
			i := at(7)
			forged := edit(t, l[i], func(m map[string]any) { m["statement"] = "DROP TABLE t" })
			return append(l[:i], append([][]byte{forged}, l[i:]...)...)
		}},
		{name: "reorder", nodeSeq: 7, msg: "missing", tamper: func(l [][]byte) [][]byte {
			l[at(7)], l[at(8)] = l[at(8)], l[at(7)]
			return l
		}},
		{name: "reorder far", nodeSeq: 3, msg: "missing", tamper: func(l [][]byte) [][]byte {
			i := at(3)
			moved := l[i]
			l = del(l, i, i+1)
			return append(l[:len(l)-1], moved, l[len(l)-1])
		}},
		{name: "truncate signed", nodeSeq: 18, msg: "truncated", tamper: func(l [][]byte) [][]byte { return l[:at(18)] }},
		// An editor who also fixes the end record's count removes an
		// unsigned tail unseen (docs/audit.md).
		{name: "truncate unsigned tail", last: 20, tamper: func(l [][]byte) [][]byte {
			end := edit(t, l[len(l)-1], func(m map[string]any) { m["events"] = 20 })
			return append(l[:at(21)], end)
		}},
		{name: "cut off", msg: "no end record", tamper: func(l [][]byte) [][]byte { return l[:at(22)] }},
		{name: "end count", msg: "end record counts", tamper: func(l [][]byte) [][]byte { return del(l, at(22), at(23)+1) }},
		{name: "forged signature", nodeSeq: 10, msg: "signature", tamper: func(l [][]byte) [][]byte {
			for i, line := range l {
				if bytes.Contains(line, []byte(`"node_seq":10,`)) && bytes.Contains(line, []byte(`"record":"checkpoint"`)) {
					l[i] = edit(t, line, func(m map[string]any) { m["hash"] = strings.Repeat("00", 32) })
				}
			}
			return l
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines := make([][]byte, len(f.lines))
			for i := range f.lines {
				lines[i] = bytes.Clone(f.lines[i])
			}
			rep := verify(t, tc.tamper(lines), f.pub)
			if tc.nodeSeq == 0 && tc.msg == "" {
				if !rep.OK() || len(rep.Nodes) != 1 || rep.Nodes[0].Last != tc.last {
					t.Fatalf("report: %+v", rep)
				}
				return
			}
			if rep.OK() {
				t.Fatal("tampering not detected")
			}
			p := rep.Problems[0]
			if tc.nodeSeq == 0 {
				p = rep.Problems[len(rep.Problems)-1]
			}
			if p.NodeSeq != tc.nodeSeq || !strings.Contains(p.Message, tc.msg) {
				t.Errorf("first problem %s; want node_seq %d with %q (all %v)", p, tc.nodeSeq, tc.msg, rep.Problems)
			}
		})
	}
}

func TestVerifyNeedsTheRightKey(t *testing.T) {
	f := newFixture(t)
	other, _ := chain.GenerateKey()
	rep := verify(t, f.lines, other.Public().(ed25519.PublicKey))
	if rep.OK() || !strings.Contains(rep.Problems[0].Message, chain.KeyID(f.pub)) {
		t.Fatalf("verified with another key: %v", rep.Problems)
	}
	// Both keys given (a rotation): verifies.
	if rep := verify(t, f.lines, other.Public().(ed25519.PublicKey), f.pub); !rep.OK() {
		t.Fatalf("two keys: %v", rep.Problems)
	}
	if _, err := export.Verify(bytes.NewReader(bytes.Join(f.lines, nil)), nil); err == nil {
		t.Error("no key accepted")
	}
}

func TestVerifyReport(t *testing.T) {
	f := newFixture(t)
	rep := verify(t, f.lines, f.pub)
	n := rep.Nodes[0]
	if rep.Events != 23 || rep.Checkpoints != 4 || n.Node != storetest.ChainNode || n.First != 1 || n.Last != 23 ||
		n.Signed != 20 || n.UnsignedTail != 3 || n.Checkpoints != 4 || rep.Partial {
		t.Errorf("report %+v %+v", rep, n)
	}
	// The live head in the header matches.
	rep = verify(t, f.export(t, export.Options{Heads: []audit.Head{f.head}}), f.pub)
	if !rep.OK() {
		t.Errorf("live: %v", rep.Problems)
	}
	// An empty chain's zero head is no anchor.
	rep = verify(t, f.export(t, export.Options{Heads: []audit.Head{f.head, {Node: "fresh"}}}), f.pub)
	if !rep.OK() || len(rep.Nodes) != 1 {
		t.Errorf("zero head: %+v", rep)
	}
	// A head the export lacks is truncation.
	h := f.head
	h.NodeSeq = 30
	rep = verify(t, f.export(t, export.Options{Heads: []audit.Head{h}}), f.pub)
	if rep.OK() || rep.Problems[0].NodeSeq != 24 {
		t.Errorf("missing head: %v", rep.Problems)
	}
}

// TestPartialExport exports from an event in the middle: the chain starts
// there, the checkpoints that sign later events come along, and it
// verifies; deleting within it is still caught.
func TestPartialExport(t *testing.T) {
	f := newFixture(t)
	evs, err := f.st.ListEvents(context.Background(), audit.Filter{Node: storetest.ChainNode, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	since := evs[11].Time // node_seq 12
	for i := 12; i < len(evs); i++ {
		if evs[i].Time.Before(since) {
			since = evs[i].Time
		}
	}
	lines := f.export(t, export.Options{Since: since, Node: storetest.ChainNode})
	rep := verify(t, lines, f.pub)
	if !rep.OK() || !rep.Partial || rep.Nodes[0].First > 12 || rep.Nodes[0].Signed != 20 || rep.Checkpoints < 2 {
		t.Fatalf("partial: %+v %v", rep.Nodes, rep.Problems)
	}
	rep = verify(t, del(lines, eventLine(t, lines, 16), eventLine(t, lines, 16)+1), f.pub)
	if rep.OK() || rep.Problems[0].NodeSeq != 16 {
		t.Errorf("partial with a deletion: %v", rep.Problems)
	}
	// The header is what makes it partial: without it, a chain starting
	// mid-way is missing its beginning.
	rep = verify(t, lines[1:], f.pub)
	if rep.OK() || rep.Problems[0].NodeSeq != 1 {
		t.Errorf("headerless partial: %v", rep.Problems)
	}
}

func TestVerifyMalformed(t *testing.T) {
	f := newFixture(t)
	key := []ed25519.PublicKey{f.pub}
	hdr := string(f.lines[0])
	cases := map[string]string{
		"empty":                "",
		"garbage":              "hello\n",
		"array":                "[1,2]\n",
		"unknown record":       `{"record":"nope"}` + "\n",
		"late header":          hdr + hdr,
		"wrong format":         `{"record":"header","format":"x","version":1}` + "\n",
		"bad hash":             `{"record":"event","node":"n","node_seq":1,"hash":"zz"}` + "\n",
		"checkpoint at end":    string(bytes.Join(f.lines[5:], nil)) + string(f.lines[1]),
		"truncated json":       string(f.lines[6][:20]),
		"string where integer": `{"record":"event","node_seq":"1"}` + "\n",
	}
	for name, in := range cases {
		if _, err := export.Verify(strings.NewReader(in), key); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	f.Add(bytes.Join(fx.lines, nil))
	f.Add(bytes.Join(fx.lines[:8], nil))
	f.Add([]byte(`{"record":"checkpoint","node":"n","node_seq":1,"hash":"` + strings.Repeat("ab", 32) + `","signature":"AAAA"}`))
	f.Add([]byte("{}\n\n{\"record\":\"event\",\"node\":\"n\",\"node_seq\":3}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := export.Verify(bytes.NewReader(data), []ed25519.PublicKey{fx.pub})
		if err == nil && rep == nil {
			t.Fatal("nil report without error")
		}
		if err != nil && rep != nil {
			t.Fatal("report with error")
		}
	})
}

// withoutCheckpoints drops the checkpoint lines and fixes the end count,
// as someone rewriting an export would.
func withoutCheckpoints(t *testing.T, lines [][]byte) [][]byte {
	var out [][]byte
	for _, l := range lines {
		switch {
		case bytes.Contains(l, []byte(`"record":"checkpoint"`)):
		case bytes.Contains(l, []byte(`"record":"end"`)):
			out = append(out, edit(t, l, func(m map[string]any) { m["checkpoints"] = 0 }))
		default:
			out = append(out, l)
		}
	}
	return out
}

// TestVerifyNoCheckpoint: an export without any signed checkpoint proves
// nothing (anyone can write a consistent chain) and must not verify.
func TestVerifyNoCheckpoint(t *testing.T) {
	f := newFixture(t)
	rep := verify(t, withoutCheckpoints(t, f.lines), f.pub)
	if rep.OK() || !strings.Contains(rep.Problems[len(rep.Problems)-1].Message, "no validly signed checkpoint: it proves nothing") {
		t.Fatalf("no checkpoint: %+v", rep.Problems)
	}
	// A store written without a signing key: same.
	st := adminapitest.NewStore()
	l, err := audit.Open(context.Background(), st, audit.Options{Node: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	l.Append(audit.Event{Type: audit.TypeStatement, Statement: "select 1"})
	l.Close(context.Background())
	var buf bytes.Buffer
	if err := export.Write(context.Background(), &buf, st, export.Options{}); err != nil {
		t.Fatal(err)
	}
	rep, err = export.Verify(&buf, []ed25519.PublicKey{f.pub})
	if err != nil || rep.OK() {
		t.Fatalf("unsigned store: %v %+v", err, rep)
	}
}

// TestVerifyUnsignedNode: a second node's chain with no checkpoint at all
// (made up in the store) fails although the first node's is signed.
func TestVerifyUnsignedNode(t *testing.T) {
	f := newFixture(t)
	e := audit.Event{Node: "made-up", NodeSeq: 1, PrevHash: chain.Genesis, Type: audit.TypeStatement, Statement: "select 1"}
	e.Time = e.Time.UTC()
	e.Hash = chain.Hash(e.ChainFields())
	b, _ := json.Marshal(export.EventLine{Record: export.RecordEvent, Event: e})
	lines := append([][]byte(nil), f.lines[:len(f.lines)-1]...)
	lines = append(lines, append(b, '\n'), edit(t, f.lines[len(f.lines)-1], func(m map[string]any) { m["events"] = 24 }))
	rep := verify(t, lines, f.pub)
	if rep.OK() || rep.Problems[0].Node != "made-up" || !strings.Contains(rep.Problems[0].Message, "no validly signed checkpoint covers this chain") {
		t.Fatalf("%+v", rep.Problems)
	}
}

// TestVerifyUnchainedWithoutChainStart: events outside every chain pass
// only before a signed chain start (legacy events from before chaining);
// in an export without one they may be forged and are flagged.
func TestVerifyUnchainedWithoutChainStart(t *testing.T) {
	f := newFixture(t)
	unchained, _ := json.Marshal(export.EventLine{Record: export.RecordEvent, Event: audit.Event{Seq: 1, Type: audit.TypeStatement, Statement: "select 'pre-chain'"}})
	unchained = append(unchained, '\n')
	insert := func(lines [][]byte) [][]byte {
		i := eventLine(t, lines, lineFirstSeq(t, lines))
		out := append([][]byte(nil), lines[:i]...)
		out = append(out, unchained)
		return append(out, lines[i:]...)
	}
	// Before a full chain (node_seq 1, signed): a legacy event.
	full := insert(f.lines)
	if rep := verify(t, fixEnd(t, full), f.pub); !rep.OK() || rep.Unchained != 1 {
		t.Fatalf("before the chain start: %+v", rep)
	}
	// Before a chain that starts mid-way (a partial export): flagged.
	evs, _ := f.st.ListEvents(context.Background(), audit.Filter{Node: storetest.ChainNode, Limit: 100})
	part := insert(f.export(t, export.Options{Since: evs[11].Time, Node: storetest.ChainNode}))
	rep := verify(t, fixEnd(t, part), f.pub)
	if rep.OK() || !strings.Contains(rep.Problems[0].Message, "not followed by a signed chain start") {
		t.Fatalf("partial: %+v", rep.Problems)
	}
}

// lineFirstSeq is the node_seq of the first event line.
func lineFirstSeq(t *testing.T, lines [][]byte) int64 {
	for _, l := range lines {
		var e export.EventLine
		if json.Unmarshal(l, &e) == nil && e.Record == export.RecordEvent {
			return e.NodeSeq
		}
	}
	t.Fatal("no event line")
	return 0
}

// fixEnd rewrites the end record's event count to match the lines.
func fixEnd(t *testing.T, lines [][]byte) [][]byte {
	n := 0
	for _, l := range lines {
		if bytes.Contains(l, []byte(`"record":"event"`)) {
			n++
		}
	}
	out := append([][]byte(nil), lines[:len(lines)-1]...)
	return append(out, edit(t, lines[len(lines)-1], func(m map[string]any) { m["events"] = n }))
}
