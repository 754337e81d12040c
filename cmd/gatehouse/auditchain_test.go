package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/adminapi/adminapitest"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/audit/export"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
)

// TestAuditVerifyOffline verifies an export file with nothing but the public
// key keygen printed, then the same file with one event removed.
func TestAuditVerifyOffline(t *testing.T) {
	dir := t.TempDir()
	keyFile, pubFile, file := filepath.Join(dir, "audit.key"), filepath.Join(dir, "audit.pub"), filepath.Join(dir, "audit.jsonl")
	r := gh(t, nil, "", "audit", "keygen", "--out", keyFile)
	if r.code != 0 || !strings.Contains(r.stdout, "BEGIN PUBLIC KEY") {
		t.Fatalf("keygen: %+v", r)
	}
	os.WriteFile(pubFile, []byte(r.stdout), 0o644)
	if st, _ := os.Stat(keyFile); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode().Perm())
	}
	if r := gh(t, nil, "", "audit", "keygen", "--out", keyFile); r.code != 1 {
		t.Errorf("keygen overwrote a key: %+v", r)
	}
	b, _ := os.ReadFile(keyFile)
	key, err := chain.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	st := adminapitest.NewStore()
	storetest.WriteChain(t, st, key)
	var buf bytes.Buffer
	if err := export.Write(context.Background(), &buf, st, export.Options{}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(file, buf.Bytes(), 0o600)

	r = gh(t, nil, "", "audit", "verify", "--file", file, "--public-key", pubFile)
	if r.code != 0 || !strings.Contains(r.stdout, "OK: 23 events and 4 checkpoints verified") ||
		!strings.Contains(r.stdout, "signed through node_seq 20, unsigned tail 3 events") {
		t.Fatalf("clean: %+v", r)
	}
	if r := gh(t, nil, buf.String(), "audit", "verify", "--file", "-", "--public-key", pubFile, "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"signed": 20`) {
		t.Errorf("stdin, json: %+v", r)
	}
	if r := gh(t, nil, "", "audit", "verify", "--file", file); r.code != 2 {
		t.Errorf("no key: %+v", r)
	}

	var kept []string
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if !strings.Contains(l, `"node_seq":7,`) || !strings.Contains(l, `"record":"event"`) {
			kept = append(kept, l)
		}
	}
	os.WriteFile(file, []byte(strings.Join(kept, "")), 0o600)
	r = gh(t, nil, "", "audit", "verify", "--file", file, "--public-key", pubFile)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL node gw-test node_seq 7: node_seq 7 is missing") ||
		!strings.Contains(r.stderr, "audit verification failed") {
		t.Errorf("deleted event: %+v", r)
	}
	os.WriteFile(file, []byte("not an export\n"), 0o600)
	if r := gh(t, nil, "", "audit", "verify", "--file", file, "--public-key", pubFile); r.code != 1 || !strings.Contains(r.stderr, "line 1") {
		t.Errorf("garbage: %+v", r)
	}
}
