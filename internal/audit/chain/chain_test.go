package chain

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// vectorEvent is one golden event: inputs, then the expected encoding and
// hash. The chain links: each prev_hash is the previous event's hash.
type vectorEvent struct {
	Node        string    `json:"node"`
	NodeSeq     int64     `json:"node_seq"`
	PrevHash    Digest    `json:"prev_hash"`
	Time        time.Time `json:"time"`
	Type        string    `json:"type"`
	SessionID   string    `json:"session_id"`
	Issuer      string    `json:"issuer"`
	Subject     string    `json:"subject"`
	Connection  string    `json:"connection"`
	Decision    string    `json:"decision"`
	Reason      string    `json:"reason"`
	Statement   string    `json:"statement"`
	Detail      string    `json:"detail"` // the stored JSON bytes, as a string ("" = none)
	EncodingHex string    `json:"encoding_hex"`
	Hash        Digest    `json:"hash"`
}

type vectorCheckpoint struct {
	SeedBase64      string    `json:"seed_base64"`
	PublicKeyPEM    string    `json:"public_key_pem"`
	KeyID           string    `json:"key_id"`
	Node            string    `json:"node"`
	NodeSeq         int64     `json:"node_seq"`
	Hash            Digest    `json:"hash"`
	Time            time.Time `json:"time"`
	MessageHex      string    `json:"message_hex"`
	SignatureBase64 string    `json:"signature_base64"`
}

type vectors struct {
	Comment    string           `json:"comment"`
	Events     []vectorEvent    `json:"events"`
	Checkpoint vectorCheckpoint `json:"checkpoint"`
	// PruneMarker: node_seq 1-2 pruned, the marker vouching for event 2's
	// hash (message per PruneMessage, same key).
	PruneMarker vectorCheckpoint `json:"prune_marker"`
}

func (v *vectorEvent) fields() *Fields {
	return &Fields{Node: v.Node, NodeSeq: v.NodeSeq, PrevHash: v.PrevHash, Time: v.Time, Type: v.Type,
		SessionID: v.SessionID, Issuer: v.Issuer, Subject: v.Subject, Connection: v.Connection,
		Decision: v.Decision, Reason: v.Reason, Statement: v.Statement, Detail: []byte(v.Detail)}
}

func makeVectors() vectors {
	t0 := time.Date(2024, 6, 1, 12, 0, 0, 123456000, time.UTC)
	evs := []vectorEvent{
		{Node: "gw-1", NodeSeq: 1, Time: t0, Type: "session.opened", SessionID: "9f2c", Issuer: "https://issuer.example",
			Subject: "agent-7", Connection: "orders", Decision: "allow",
			Detail: `{"protocol":"postgres","client_addr":"127.0.0.1:50000","tls":false}`},
		{Node: "gw-1", NodeSeq: 2, Time: t0.Add(1500 * time.Microsecond), Type: "statement", SessionID: "9f2c",
			Issuer: "https://issuer.example", Subject: "agent-7", Connection: "orders", Decision: "deny",
			Reason: "denied by rule no-ddl: use a migration", Statement: "DROP TABLE \"Ünïcode\"; -- ✓",
			Detail: `{"rows":0,"note":"\u003cb\u003e"}`},
		{Node: "gw-1", NodeSeq: 3, Time: time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), Type: "admin"},
	}
	prev := Genesis
	for i := range evs {
		evs[i].PrevHash = prev
		f := evs[i].fields()
		evs[i].EncodingHex = hex.EncodeToString(AppendEncoding(nil, f))
		evs[i].Hash = Hash(f)
		prev = evs[i].Hash
	}
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	key := ed25519.NewKeyFromSeed(seed)
	last := evs[len(evs)-1]
	cp := Sign(key, "gw-1", last.NodeSeq, last.Hash, t0.Add(10*time.Second))
	pm := SignPrune(key, "gw-1", evs[1].NodeSeq, evs[1].Hash, t0.Add(90*24*time.Hour))
	return vectors{
		Comment: "gatehouse audit chain v1 golden vectors; see docs/audit.md. Regenerate with go test ./internal/audit/chain -update",
		Events:  evs,
		Checkpoint: vectorCheckpoint{SeedBase64: base64.StdEncoding.EncodeToString(seed),
			PublicKeyPEM: string(PublicKeyPEM(key.Public().(ed25519.PublicKey))), KeyID: cp.KeyID,
			Node: cp.Node, NodeSeq: cp.NodeSeq, Hash: cp.Hash, Time: cp.Time,
			MessageHex:      hex.EncodeToString(CheckpointMessage(cp.Node, cp.NodeSeq, cp.Hash, cp.Time)),
			SignatureBase64: base64.StdEncoding.EncodeToString(cp.Signature)},
		PruneMarker: vectorCheckpoint{SeedBase64: base64.StdEncoding.EncodeToString(seed),
			PublicKeyPEM: string(PublicKeyPEM(key.Public().(ed25519.PublicKey))), KeyID: pm.KeyID,
			Node: pm.Node, NodeSeq: pm.NodeSeq, Hash: pm.Hash, Time: pm.Time,
			MessageHex:      hex.EncodeToString(PruneMessage(pm.Node, pm.NodeSeq, pm.Hash, pm.Time)),
			SignatureBase64: base64.StdEncoding.EncodeToString(pm.Signature)},
	}
}

// TestGoldenVectors pins the format: a change to the encoding breaks every
// stored chain, so it must be a deliberate new version, not an accident.
func TestGoldenVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		b, _ := json.MarshalIndent(makeVectors(), "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Events) != 3 {
		t.Fatalf("%d vectors", len(v.Events))
	}
	prev := Genesis
	for i, e := range v.Events {
		if !bytes.Equal(e.PrevHash, prev) {
			t.Errorf("vector %d: prev_hash does not link", i)
		}
		f := e.fields()
		if got := hex.EncodeToString(AppendEncoding(nil, f)); got != e.EncodingHex {
			t.Errorf("vector %d: encoding\n got  %s\n want %s", i, got, e.EncodingHex)
		}
		if got := Hash(f); !bytes.Equal(got, e.Hash) {
			t.Errorf("vector %d: hash %s, want %s", i, got, e.Hash)
		}
		prev = e.Hash
	}
	c := v.Checkpoint
	pub, err := ParsePublicKey([]byte(c.PublicKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := base64.StdEncoding.DecodeString(c.SeedBase64)
	key, err := ParsePrivateKey([]byte(c.SeedBase64))
	if err != nil || !bytes.Equal(key.Seed(), seed) {
		t.Fatalf("seed key: %v", err)
	}
	if KeyID(pub) != c.KeyID {
		t.Errorf("key id %s, want %s", KeyID(pub), c.KeyID)
	}
	if got := hex.EncodeToString(CheckpointMessage(c.Node, c.NodeSeq, c.Hash, c.Time)); got != c.MessageHex {
		t.Errorf("checkpoint message\n got  %s\n want %s", got, c.MessageHex)
	}
	sig, _ := base64.StdEncoding.DecodeString(c.SignatureBase64)
	cp := Checkpoint{Node: c.Node, NodeSeq: c.NodeSeq, Hash: c.Hash, Time: c.Time, Signature: sig}
	if _, err := cp.Verify(pub); err != nil {
		t.Errorf("golden checkpoint: %v", err)
	}
	if got := Sign(key, c.Node, c.NodeSeq, c.Hash, c.Time); !bytes.Equal(got.Signature, sig) {
		t.Error("Ed25519 signature differs from the golden one")
	}
	if !bytes.Equal(c.Hash, v.Events[2].Hash) {
		t.Error("checkpoint does not sign the last vector")
	}
	pv := v.PruneMarker
	if got := hex.EncodeToString(PruneMessage(pv.Node, pv.NodeSeq, pv.Hash, pv.Time)); got != pv.MessageHex {
		t.Errorf("prune marker message\n got  %s\n want %s", got, pv.MessageHex)
	}
	psig, _ := base64.StdEncoding.DecodeString(pv.SignatureBase64)
	m := PruneMarker{Node: pv.Node, NodeSeq: pv.NodeSeq, Hash: pv.Hash, Time: pv.Time, Signature: psig}
	if _, err := m.Verify(pub); err != nil {
		t.Errorf("golden prune marker: %v", err)
	}
	if !bytes.Equal(pv.Hash, v.Events[1].Hash) || !bytes.Equal(v.Events[2].PrevHash, pv.Hash) {
		t.Error("prune marker does not vouch for the link into the last vector")
	}
}

// TestHashCoversEveryField changes each field in turn: every change must
// change the hash.
func TestHashCoversEveryField(t *testing.T) {
	base := Fields{Node: "n", NodeSeq: 5, PrevHash: Genesis, Time: time.Unix(1, 1000).UTC(), Type: "statement",
		SessionID: "s", Issuer: "i", Subject: "u", Connection: "c", Decision: "allow", Reason: "r", Statement: "q",
		Detail: []byte(`{}`)}
	h0 := Hash(&base)
	muts := map[string]func(f *Fields){
		"node": func(f *Fields) { f.Node = "m" }, "node_seq": func(f *Fields) { f.NodeSeq = 6 },
		"prev_hash": func(f *Fields) { f.PrevHash = bytes.Repeat([]byte{1}, 32) },
		"time":      func(f *Fields) { f.Time = f.Time.Add(time.Microsecond) },
		"type":      func(f *Fields) { f.Type = "admin" }, "session": func(f *Fields) { f.SessionID = "t" },
		"issuer": func(f *Fields) { f.Issuer = "j" }, "subject": func(f *Fields) { f.Subject = "v" },
		"connection": func(f *Fields) { f.Connection = "d" }, "decision": func(f *Fields) { f.Decision = "deny" },
		"reason": func(f *Fields) { f.Reason = "s" }, "statement": func(f *Fields) { f.Statement = "q2" },
		"detail": func(f *Fields) { f.Detail = []byte(`{ }`) },
		// Moving bytes between adjacent fields must change the hash too:
		// the length prefixes make the encoding unambiguous.
		"shift": func(f *Fields) { f.Reason, f.Statement = "rq", "" },
	}
	for name, m := range muts {
		f := base
		m(&f)
		if bytes.Equal(Hash(&f), h0) {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
}

func TestCheckpointVerify(t *testing.T) {
	k1, _ := GenerateKey()
	k2, _ := GenerateKey()
	p1, p2 := k1.Public().(ed25519.PublicKey), k2.Public().(ed25519.PublicKey)
	cp := Sign(k1, "n", 9, Genesis, time.Now())
	if k, err := cp.Verify(p2, p1); err != nil || !bytes.Equal(k, p1) {
		t.Fatalf("verify: %v", err)
	}
	if _, err := cp.Verify(p2); err == nil {
		t.Error("other key verified")
	}
	for name, m := range map[string]func(c *Checkpoint){
		"node": func(c *Checkpoint) { c.Node = "m" }, "seq": func(c *Checkpoint) { c.NodeSeq++ },
		"hash": func(c *Checkpoint) { c.Hash = bytes.Repeat([]byte{2}, 32) },
		"time": func(c *Checkpoint) { c.Time = c.Time.Add(time.Microsecond) },
		"sig":  func(c *Checkpoint) { c.Signature = c.Signature[:10] },
	} {
		c := cp
		m(&c)
		if _, err := c.Verify(p1); err == nil {
			t.Errorf("checkpoint with changed %s verifies", name)
		}
	}
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.key")
	k, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode().Perm())
	}
	k2, err := LoadOrCreateKeyFile(path)
	if err != nil || !k.Equal(k2) {
		t.Fatalf("reload: %v", err)
	}
	pub := k.Public().(ed25519.PublicKey)
	if p, err := ParsePublicKey(PublicKeyPEM(pub)); err != nil || !p.Equal(pub) {
		t.Errorf("public PEM round trip: %v", err)
	}
	if p, err := ParsePublicKey([]byte(base64.StdEncoding.EncodeToString(pub) + "\n")); err != nil || !p.Equal(pub) {
		t.Errorf("public base64: %v", err)
	}
	for _, bad := range []string{"", "nope", base64.StdEncoding.EncodeToString(make([]byte, 31)), string(PublicKeyPEM(pub))} {
		_, err := ParsePrivateKey([]byte(bad))
		if err == nil {
			t.Errorf("private key %q accepted", bad)
		} else if strings.Contains(err.Error(), bad) && bad != "" {
			t.Errorf("error echoes the input: %v", err)
		}
	}
	if _, err := ParsePublicKey(PrivateKeyPEM(k)); err == nil {
		t.Error("private PEM accepted as public key")
	}
}

func TestDigestText(t *testing.T) {
	var d Digest
	if err := d.UnmarshalText([]byte(strings.Repeat("AB", 32))); err != nil || d[0] != 0xab {
		t.Fatalf("%v %x", err, d)
	}
	if b, _ := d.MarshalText(); string(b) != strings.Repeat("ab", 32) {
		t.Errorf("text %s", b)
	}
	for _, bad := range []string{"ab", strings.Repeat("zz", 32)} {
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	f := Fields{Node: "gw-1", NodeSeq: 5, PrevHash: Genesis, Time: time.Now(), Type: "statement", SessionID: "s1",
		Issuer: "https://issuer.example", Subject: "agent-7", Connection: "orders", Decision: "allow",
		Statement: "SELECT abalance FROM pgbench_accounts WHERE aid = $1", Detail: []byte(`{"rows":1,"duration_us":412,"command":"SELECT 1"}`)}
	var h Hasher
	b.ReportAllocs()
	for b.Loop() {
		h.Sum(&f)
	}
}

// FuzzParseKeys feeds key parsers garbage: an error, never a panic, and a
// parsed key always has the right size.
func FuzzParseKeys(f *testing.F) {
	k, _ := GenerateKey()
	f.Add(PrivateKeyPEM(k))
	f.Add(PublicKeyPEM(k.Public().(ed25519.PublicKey)))
	f.Add([]byte(base64.StdEncoding.EncodeToString(k.Seed())))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParsePrivateKey(b); err == nil && len(k) != ed25519.PrivateKeySize {
			t.Fatalf("private key of %d bytes", len(k))
		}
		if p, err := ParsePublicKey(b); err == nil && len(p) != ed25519.PublicKeySize {
			t.Fatalf("public key of %d bytes", len(p))
		}
		var d Digest
		_ = d.UnmarshalText(b)
	})
}

// TestPruneMarker: a marker verifies with its key only, and a checkpoint's
// signature over the same values does not pass as a marker's.
func TestPruneMarker(t *testing.T) {
	key, _ := GenerateKey()
	other, _ := GenerateKey()
	pub := key.Public().(ed25519.PublicKey)
	h := Hash(&Fields{Node: "gw", NodeSeq: 7, PrevHash: Genesis})
	now := time.Unix(1700000000, 123456789)
	m := SignPrune(key, "gw", 7, h, now)
	if _, err := m.Verify(pub); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Verify(other.Public().(ed25519.PublicKey)); err == nil {
		t.Fatal("verifies with another key")
	}
	c := Sign(key, "gw", 7, h, now)
	forged := m
	forged.Signature = c.Signature
	if _, err := forged.Verify(pub); err == nil {
		t.Fatal("a checkpoint signature passes as a prune marker's")
	}
	moved := m
	moved.NodeSeq = 8
	if _, err := moved.Verify(pub); err == nil {
		t.Fatal("a moved marker verifies")
	}
	unsigned := m
	unsigned.Signature = nil
	if _, err := unsigned.Verify(pub); err == nil {
		t.Fatal("an unsigned marker verifies")
	}
}
