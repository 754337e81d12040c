package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen.api", c.Listen.API, "127.0.0.1:8080"},
		{"listen.postgres", c.Listen.Postgres, "127.0.0.1:15432"},
		{"data_dir", c.DataDir, "./gatehouse-data"},
		{"store", c.Store, Secret("")},
		{"secret_key", c.SecretKey, Secret("env:GATEHOUSE_SECRET_KEY")},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"identity.dev_issuer", c.Identity.DevIssuer, false},
		{"identity.audience", c.Identity.Audience, "gatehouse"},
		{"postgres.allow_plaintext_remote", c.Postgres.AllowPlaintextRemote, false},
		{"postgres.max_message_size", c.Postgres.MaxMessageSize, 256 * MiB},
		{"audit.queue_size", c.Audit.QueueSize, 65536},
		{"tls enabled", c.TLS.Enabled(), false},
		{"connections", len(c.Connections), 0},
		{"admins", len(c.Admins), 0},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	// Each call is independent: editing one default must not leak.
	c.Admins = append(c.Admins, "group:x")
	if len(Default().Admins) != 0 {
		t.Error("Default shares state between calls")
	}
}

// TestEmptyFileIsDefault: a file with nothing in it changes nothing but
// where the data directory lives.
func TestEmptyFileIsDefault(t *testing.T) {
	c, err := Parse("/etc/gatehouse/gatehouse.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.DataDir = "/etc/gatehouse/gatehouse-data"
	want.Path = "/etc/gatehouse/gatehouse.yaml"
	c.lines, want.lines = nil, nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse(empty) = %+v\nwant %+v", c, want)
	}
}

func TestExampleFileLoads(t *testing.T) {
	c, err := Load("../../gatehouse.example.yaml")
	if err != nil {
		t.Fatalf("gatehouse.example.yaml does not load: %v", err)
	}
	if len(c.Connections) == 0 || len(c.Identity.Issuers) == 0 || len(c.Identity.DevClients) == 0 {
		t.Errorf("example should show connections, issuers and dev clients; got %+v", c)
	}
}

func TestLoadResolvesAgainstFileDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "gatehouse.yaml")
	writeFile(t, path, "data_dir: state\nsecret_key: file:key.txt\n")
	// Load from a relative path: results must still be absolute.
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, path)
	if err != nil {
		t.Skip("temp dir not reachable by a relative path")
	}
	c, err := Load(rel)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "sub", "state"); c.DataDir != want {
		t.Errorf("data_dir = %q, want %q", c.DataDir, want)
	}
	if want := Secret("file:" + filepath.Join(dir, "sub", "key.txt")); c.SecretKey != want {
		t.Errorf("secret_key = %q, want %q", c.SecretKey, want)
	}
	if c.Path != path {
		t.Errorf("Path = %q, want %q", c.Path, path)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestErrorsAreStructured(t *testing.T) {
	_, err := Parse("gh.yaml", []byte("log:\n  level: loud\naudit:\n  queue_size: -1\n"))
	if err == nil {
		t.Fatal("want error")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not *Error", err)
	}
	if e.File != "gh.yaml" || e.Line != 2 || e.Key != "log.level" {
		t.Errorf("first error = %+v", e)
	}
	all := err.(interface{ Unwrap() []error }).Unwrap()
	if len(all) != 2 {
		t.Errorf("got %d problems, want 2: %v", len(all), err)
	}
}

// TestValidateAfterEdit: a Config built in code gets the same derived
// defaults and checks as one read from a file, and errors without a file
// still name the key.
func TestValidateAfterEdit(t *testing.T) {
	c := Default()
	c.Connections = append(c.Connections, Connection{
		Name: "orders", Address: "db.internal", Username: "app", Password: "env:P",
	})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	got := c.Connections[0]
	if got.Type != "postgres" || got.Address != "db.internal:5432" || got.Database != "orders" || got.TLS != "require" {
		t.Errorf("derived defaults not applied: %+v", got)
	}
	c.Connections = append(c.Connections, Connection{Name: "orders", Address: "x:1", Username: "u", Password: "pw"})
	err := c.Validate()
	want := "connections[1].name: duplicate connection name \"orders\" (also connections[0])\n" +
		"connections[1].password: must be an env:NAME or file:/path reference; literal secrets are not allowed"
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v\nwant %s", err, want)
	}
}

func TestBaseURL(t *testing.T) {
	tests := []struct {
		api, public string
		tls         bool
		want        string
	}{
		{"127.0.0.1:8080", "", false, "http://127.0.0.1:8080"},
		{"127.0.0.1:8080", "", true, "https://127.0.0.1:8080"},
		{":8080", "", false, "http://localhost:8080"},
		{"0.0.0.0:8443", "", true, "https://localhost:8443"},
		{"[::]:8443", "", true, "https://localhost:8443"},
		{"[::1]:8443", "", true, "https://[::1]:8443"},
		{"0.0.0.0:8443", "https://gh.example.com/base", true, "https://gh.example.com/base"},
	}
	for _, tt := range tests {
		c := Default()
		c.Listen.API, c.PublicURL = tt.api, tt.public
		if got := c.BaseURL(tt.tls); got != tt.want {
			t.Errorf("BaseURL(%q, %q, %v) = %q, want %q", tt.api, tt.public, tt.tls, got, tt.want)
		}
	}
}

func TestConnectionLookup(t *testing.T) {
	c, err := Parse("x.yaml", []byte("connections:\n  - {name: a, address: h, username: u}\n  - {name: b, address: h, username: u}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Connection("b"); got == nil || got.Name != "b" {
		t.Errorf("Connection(b) = %+v", got)
	}
	if got := c.Connection("B"); got != nil {
		t.Errorf("Connection(B) = %+v, want nil (names are exact)", got)
	}
}

// TestAliasExpansionIsBounded: aliases are followed on every use, so a
// short file can name millions of nodes; the walk stops at a budget.
func TestAliasExpansionIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("connections:\n  - &c {name: a, address: h, username: u, access: [")
	for i := 0; i < 2000; i++ {
		b.WriteString(`"*", `)
	}
	b.WriteString("]}\n")
	for i := 0; i < 2000; i++ {
		b.WriteString("  - *c\n")
	}
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "expands too far") {
		t.Errorf("Parse(alias bomb) = %.300v, want an expansion error", err)
	}
}

func TestByteSize(t *testing.T) {
	good := []struct {
		in   string
		want ByteSize
		str  string
	}{
		{"0", 0, "0B"},
		{"1048576", MiB, "1MiB"},
		{"64MiB", 64 * MiB, "64MiB"},
		{"1GiB", GiB, "1GiB"},
		{"1 GiB", GiB, "1GiB"},
		{"512KiB", 512 * KiB, "512KiB"},
		{"100MB", 100 * MB, "100MB"},
		{"1500", 1500, "1500B"},
		{"2TiB", 2 * TiB, "2TiB"},
		{"7B", 7, "7B"},
	}
	for _, tt := range good {
		got, err := ParseByteSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.str {
			t.Errorf("%d.String() = %q, want %q", got, s, tt.str)
		}
		back, err := ParseByteSize(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q: %d, %v", tt.in, back, err)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5GiB", "64mb", "64 m", "9999999999999999999", "9000000TiB", "1e6"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want error", in, got)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDocsNameEveryKey keeps docs/configuration.md in step with the schema:
// every key of a fully populated configuration must appear in it.
func TestDocsNameEveryKey(t *testing.T) {
	docs, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("testdata/valid/full.json")
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(data, &tree); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if !strings.Contains(string(docs), "`"+k) && !strings.Contains(string(docs), "."+k+"`") {
					t.Errorf("docs/configuration.md does not document key %q", k)
				}
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(tree)
}
