package export_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/export"
)

// FuzzVerifyPruned explores the prune record path of the verifier: seeds
// are a pruned chain's export and marker fragments. It never panics, and a
// report comes exactly when there is no error.
func FuzzVerifyPruned(f *testing.F) {
	fx := newFixture(f)
	evs, _ := fx.st.ListEvents(context.Background(), audit.Filter{Limit: 100})
	if _, err := audit.Prune(context.Background(), fx.st, fx.key, evs[0].Node, evs[10].Time); err != nil {
		f.Fatal(err)
	}
	pruned := fx.export(f, export.Options{})
	f.Add(bytes.Join(pruned, nil))
	f.Add(bytes.Join(pruned[:4], nil))
	f.Add([]byte(`{"record":"prune","node":"n","node_seq":1,"hash":"` + strings.Repeat("00", 32) + `","signature":"AA=="}` + "\n" +
		`{"record":"event","node":"n","node_seq":2,"prev_hash":"` + strings.Repeat("00", 32) + `"}`))
	keys := []ed25519.PublicKey{fx.pub}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := export.Verify(bytes.NewReader(data), keys)
		if (err == nil) != (rep != nil) {
			t.Fatalf("report %v with error %v", rep, err)
		}
	})
}

// TestVerifyPrunedExport: an export of a pruned chain verifies; dropping
// its prune line makes the chain start mid-way (reported at node_seq 1).
func TestVerifyPrunedExport(t *testing.T) {
	fx := newFixture(t)
	evs, _ := fx.st.ListEvents(context.Background(), audit.Filter{Limit: 100})
	if _, err := audit.Prune(context.Background(), fx.st, fx.key, evs[0].Node, evs[10].Time); err != nil {
		t.Fatal(err)
	}
	lines := fx.export(t, export.Options{})
	rep, err := export.Verify(bytes.NewReader(bytes.Join(lines, nil)), []ed25519.PublicKey{fx.pub})
	if err != nil || !rep.OK() || rep.Nodes[0].Pruned != 10 || rep.Prunes != 1 {
		t.Fatalf("pruned export: %v %+v", err, rep)
	}
	var kept [][]byte
	for _, l := range lines {
		if !bytes.Contains(l, []byte(`"record":"prune"`)) {
			kept = append(kept, l)
		}
	}
	rep, err = export.Verify(bytes.NewReader(bytes.Join(kept, nil)), []ed25519.PublicKey{fx.pub})
	if err != nil || rep.OK() || rep.Problems[0].NodeSeq != 1 {
		t.Fatalf("export without its prune marker: %v %+v", err, rep)
	}
}
