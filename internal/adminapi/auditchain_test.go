package adminapi_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/audit/export"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
)

func TestAuditPublicKey(t *testing.T) {
	e := newEnv(t)
	if st, _, body := e.do("GET", "/api/v1/audit/public-key", "", ""); st != http.StatusNotFound || !strings.Contains(body, "signing_key") {
		t.Errorf("without a key: %d %s", st, body)
	}
	key, _ := chain.GenerateKey()
	pub := key.Public().(ed25519.PublicKey)
	e = newEnv(t, func(o *adminapi.Options) { o.AuditPublicKey = pub })
	st, hdr, body := e.do("GET", "/api/v1/audit/public-key", "", "") // no token: the key is public
	if st != 200 || hdr.Get("X-Gatehouse-Key-Id") != chain.KeyID(pub) {
		t.Fatalf("public key: %d %v", st, hdr)
	}
	if got, err := chain.ParsePublicKey([]byte(body)); err != nil || !got.Equal(pub) {
		t.Errorf("served key: %v", err)
	}
	if got, err := e.client("").AuditPublicKey(t.Context()); err != nil || !got.Equal(pub) {
		t.Errorf("client: %v", err)
	}
}

// TestAuditExport streams an export through the API and verifies it; the
// header carries the running gateway's head.
func TestAuditExport(t *testing.T) {
	key, _ := chain.GenerateKey()
	pub := key.Public().(ed25519.PublicKey)
	var head audit.Head
	e := newEnv(t, func(o *adminapi.Options) {
		o.AuditPublicKey = pub
		o.AuditHeads = func() []audit.Head { return []audit.Head{head} }
	})
	head = storetest.WriteChain(t, e.store, key)
	if st, _, _ := e.do("GET", "/api/v1/audit/export", "", ""); st != http.StatusUnauthorized {
		t.Errorf("export without a token: %d", st)
	}
	if st, _, _ := e.do("GET", "/api/v1/audit/export", e.userToken(), ""); st != http.StatusForbidden {
		t.Errorf("export as a non-admin: %d", st)
	}
	if st, _, body := e.do("GET", "/api/v1/audit/export?limit=3", e.adminToken(), ""); st != http.StatusBadRequest {
		t.Errorf("unknown parameter: %d %s", st, body)
	}
	var buf bytes.Buffer
	if err := e.client(e.adminToken()).ExportAudit(t.Context(), adminapi.AuditExportQuery{Node: storetest.ChainNode}, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"heads":[{"node":"gw-test","node_seq":23`) {
		t.Errorf("header lacks the head: %.300s", buf.String())
	}
	rep, err := export.Verify(&buf, []ed25519.PublicKey{pub})
	if err != nil || !rep.OK() || rep.Events != 23 || rep.Checkpoints != 4 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	buf.Reset()
	err = e.client(e.adminToken()).ExportAudit(t.Context(), adminapi.AuditExportQuery{Since: "yesterday"}, &buf)
	var apiErr *adminapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("bad since: %v", err)
	}
}
