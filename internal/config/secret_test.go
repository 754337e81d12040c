package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSecretResolve(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "lf"), "pw-lf\n")
	writeFile(t, filepath.Join(dir, "crlf"), "pw-crlf\r\n")
	writeFile(t, filepath.Join(dir, "two"), "line1\nline2\n\n")
	writeFile(t, filepath.Join(dir, "empty"), "\n")
	writeFile(t, filepath.Join(dir, "big"), strings.Repeat("x", maxSecretFile+1))
	t.Setenv("GH_TEST_SECRET", "from-env")
	t.Setenv("GH_TEST_EMPTY", "")
	os.Unsetenv("GH_TEST_UNSET")

	tests := []struct {
		s       Secret
		want    string
		wantErr string
	}{
		{"env:GH_TEST_SECRET", "from-env", ""},
		{"env:GH_TEST_UNSET", "", "env var GH_TEST_UNSET is not set"},
		{"env:GH_TEST_EMPTY", "", "env var GH_TEST_EMPTY is set but empty"},
		{"env:BAD-NAME", "", "env: reference needs a variable name"},
		{Secret("file:" + filepath.Join(dir, "lf")), "pw-lf", ""},
		{Secret("file:" + filepath.Join(dir, "crlf")), "pw-crlf", ""},
		{Secret("file:" + filepath.Join(dir, "two")), "line1\nline2\n", ""},
		{Secret("file:" + filepath.Join(dir, "empty")), "", "is empty"},
		{Secret("file:" + filepath.Join(dir, "missing")), "", "no such file"},
		{Secret("file:" + filepath.Join(dir, "big")), "", "larger than"},
		{"file:", "", "needs a path"},
		{"postgres://gh@db/gh", "postgres://gh@db/gh", ""},
		{"", "", "no value configured"},
	}
	for _, tt := range tests {
		got, err := tt.s.Resolve()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Resolve(%s) error = %v, want containing %q", tt.s, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%s) = %q, %v; want %q", tt.s, got, err, tt.want)
		}
	}
}

// TestSecretNeverPrinted: however a literal Secret is formatted, logged or
// marshalled, its value does not appear.
func TestSecretNeverPrinted(t *testing.T) {
	const value = "postgres://u@h/db?application_name=topsecretvalue"
	s := Secret(value)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "store", s)
	js, _ := json.Marshal(struct{ S Secret }{s})
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %s %q %+v %#v %x %X", s, s, s, s, s, s, s),
		fmt.Sprintf("%v", struct{ S Secret }{s}), logs.String(), string(js),
	}
	for _, out := range outs {
		if strings.Contains(out, "topsecretvalue") {
			t.Errorf("secret value printed: %s", out)
		}
	}
	// References are not secret and stay visible, which helps debugging.
	if got := Secret("env:ORDERS_DB_PASSWORD").String(); got != "env:ORDERS_DB_PASSWORD" {
		t.Errorf("reference String() = %q", got)
	}
}

func TestResolveSecrets(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	writeFile(t, filepath.Join(dir, "tls.crt"), certPEM)
	writeFile(t, filepath.Join(dir, "tls.key"), keyPEM)
	writeFile(t, filepath.Join(dir, "ca.pem"), certPEM)
	writeFile(t, filepath.Join(dir, "notpem"), "hello")
	t.Setenv("GH_KEY", "k")
	t.Setenv("GH_AGENT", "a")
	t.Setenv("GH_ORDERS", "o")

	yaml := `secret_key: env:GH_KEY
tls:
  cert: file:tls.crt
  key: file:tls.key
identity:
  dev_clients:
    - id: agent-1
      secret: env:GH_AGENT
connections:
  - name: orders
    address: db.internal
    username: app
    password: env:GH_ORDERS
    tls: verify-full
    tls_ca: file:ca.pem
`
	path := filepath.Join(dir, "gatehouse.yaml")
	writeFile(t, path, yaml)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ResolveSecrets(); err != nil {
		t.Fatalf("ResolveSecrets: %v", err)
	}

	// Break every secret: all failures come back, each with file, line
	// and key, none with a value.
	os.Unsetenv("GH_KEY")
	t.Setenv("GH_AGENT", "")
	os.Unsetenv("GH_ORDERS")
	broken := strings.NewReplacer("file:tls.key", "file:missing.key", "file:ca.pem", "file:notpem").Replace(yaml)
	writeFile(t, path, broken)
	if c, err = Load(path); err != nil {
		t.Fatal(err)
	}
	err = c.ResolveSecrets()
	if err == nil {
		t.Fatal("ResolveSecrets succeeded with missing secrets")
	}
	want := []string{
		path + ":1: secret_key: env var GH_KEY is not set",
		path + ":4: tls.key: cannot read secret file: open " + filepath.Join(dir, "missing.key") + ": no such file or directory",
		path + ":8: identity.dev_clients[0].secret: env var GH_AGENT is set but empty",
		path + ":13: connections[0].password: env var GH_ORDERS is not set",
		path + ":15: connections[0].tls_ca: no PEM certificates found",
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("ResolveSecrets() =\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}

	// A certificate with somebody else's key is caught too.
	_, otherKey := selfSigned(t)
	writeFile(t, filepath.Join(dir, "tls.key"), otherKey)
	writeFile(t, path, yaml)
	t.Setenv("GH_KEY", "k")
	t.Setenv("GH_AGENT", "a")
	t.Setenv("GH_ORDERS", "o")
	if c, err = Load(path); err != nil {
		t.Fatal(err)
	}
	if err := c.ResolveSecrets(); err == nil || !strings.Contains(err.Error(), ":2: tls: cert and key do not load") {
		t.Errorf("mismatched key pair: %v", err)
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gatehouse test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         true,
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}
