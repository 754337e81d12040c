package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/pgtest"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUpstreamAuthAndTLS connects through gatehouse to upstreams using
// trust, md5 and SCRAM-SHA-256 authentication and each upstream TLS mode, and
// checks that no secret reaches the gateway's logs.
func TestUpstreamAuthAndTLS(t *testing.T) {
	md5TLS := pgtest.Start(t, pgtest.Options{Auth: "md5", TLS: true, Password: "md5-secret-pw"})
	trust := pgtest.Start(t, pgtest.Options{Auth: "trust"})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, md5TLS.CAPEM, 0o644)
	t.Setenv("MD5_PW", md5TLS.Password)
	logs := &syncBuffer{}
	conns := fmt.Sprintf(`
  - { name: md5-require, address: %[1]s, database: postgres, username: postgres, password: env:MD5_PW, tls: require, access: ["*"] }
  - { name: md5-verify, address: %[1]s, database: postgres, username: postgres, password: env:MD5_PW, tls: verify-full, tls_ca: file:%[2]s, access: ["*"] }
  - { name: md5-plain, address: %[1]s, database: postgres, username: postgres, password: env:MD5_PW, tls: disable, access: ["*"] }
  - { name: verify-wrong-ca, address: %[1]s, database: postgres, username: postgres, password: env:MD5_PW, tls: verify-full, access: ["*"] }
  - { name: trusty, address: %[3]s, database: postgres, username: postgres, tls: disable, access: ["*"] }
  - { name: wrong-password, address: %[4]s, database: postgres, username: postgres, password: env:MD5_PW, tls: disable, access: ["*"] }
`, md5TLS.Addr(), caFile, trust.Addr(), shared.Addr())
	e := startEnv(t, envOpts{connections: conns, logs: logs})
	tok := e.token("agent-1")
	ctx := context.Background()
	cases := []struct {
		conn    string
		wantSSL string // upstream pg_stat_ssl.ssl as seen by the server
		wantErr string
	}{
		{"orders", "f", ""}, // SCRAM (shared server)
		{"md5-require", "t", ""},
		{"md5-verify", "t", ""},
		{"md5-plain", "f", ""},
		{"trusty", "f", ""},
		{"verify-wrong-ca", "", "08001"}, // the system roots do not know the test CA
		{"wrong-password", "", "08001"},
	}
	for _, c := range cases {
		conn, err := pgx.Connect(ctx, e.dsn(c.conn, tok))
		if c.wantErr != "" {
			if sqlstate(err) != c.wantErr || !strings.Contains(err.Error(), c.conn) {
				t.Errorf("%s: got %v, want %s naming the connection", c.conn, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.conn, err)
			continue
		}
		var ssl bool
		err = conn.QueryRow(ctx, "select ssl from pg_stat_ssl where pid = pg_backend_pid()").Scan(&ssl)
		conn.Close(ctx)
		if err != nil || fmt.Sprint(map[bool]string{true: "t", false: "f"}[ssl]) != c.wantSSL {
			t.Errorf("%s: upstream ssl=%v err=%v, want %s", c.conn, ssl, err, c.wantSSL)
		}
	}
	// md5 really was md5: the stored verifier is an md5 hash.
	var verifier string
	c, err := pgx.Connect(ctx, md5TLS.DSN("postgres")+"&sslmode=require")
	if err != nil {
		t.Fatal(err)
	}
	c.QueryRow(ctx, "select rolpassword from pg_authid where rolname = 'postgres'").Scan(&verifier)
	c.Close(ctx)
	if !strings.HasPrefix(verifier, "md5") {
		t.Errorf("md5 server stores %q…, want an md5 verifier", verifier[:min(8, len(verifier))])
	}
	time.Sleep(200 * time.Millisecond)
	out := logs.String()
	for _, secret := range []string{md5TLS.Password, shared.Password, tok} {
		if strings.Contains(out, secret) {
			t.Fatalf("a secret or token leaked into the gateway log")
		}
	}
	if !strings.Contains(out, "upstream connect failed") {
		t.Errorf("the operator log does not explain the failed upstream connects:\n%s", out)
	}
}

// TestAPIConnectionEndToEnd creates a connection through the admin API
// (password sealed at rest), connects through it, checks the password is
// not stored in plaintext, then deletes it and sees the next statement of a
// live session denied and new sessions refused.
func TestAPIConnectionEndToEnd(t *testing.T) {
	e := startEnv(t, envOpts{})
	admin := e.token("root", "platform-admins")
	pwFile := filepath.Join(e.dir, "pw")
	os.WriteFile(pwFile, []byte(shared.Password+"\n"), 0o600)
	out := e.runCLI(admin, "connections", "create", "--name", "viaapi", "--address", shared.Addr(), "--database", e.db,
		"--username", "postgres", "--password-file", pwFile, "--tls", "disable", "--access", "group:api-users")
	if !strings.Contains(out, "viaapi") {
		t.Fatalf("create: %s", out)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dsn("viaapi", e.token("bot", "api-users")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	// The SQLite store holds ciphertext only.
	db, _ := os.ReadFile(filepath.Join(e.dir, "data", "gatehouse.db"))
	wal, _ := os.ReadFile(filepath.Join(e.dir, "data", "gatehouse.db-wal"))
	if bytes.Contains(db, []byte(shared.Password)) || bytes.Contains(wal, []byte(shared.Password)) {
		t.Fatal("the upstream password is stored in plaintext")
	}
	// The API never returns it.
	req, _ := http.NewRequest("GET", e.api+"/api/v1/connections/viaapi", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if strings.Contains(body.String(), shared.Password) || !strings.Contains(body.String(), `"password_set": true`) && !strings.Contains(body.String(), `"password_set":true`) {
		t.Fatalf("GET connection: %s", body.String())
	}
	// Deleting the connection: the live session's next statement is denied,
	// new sessions are refused.
	e.runCLI(admin, "connections", "delete", "viaapi")
	if _, err := conn.Exec(ctx, "select 2"); sqlstate(err) != "42501" {
		t.Fatalf("statement after delete: %v", err)
	}
	if _, err := pgx.Connect(ctx, e.dsn("viaapi", e.token("bot", "api-users"))); sqlstate(err) != "3D000" {
		t.Fatalf("connect after delete: %v", err)
	}
}

// TestGracefulShutdown: an idle session at shutdown is told 57P01 once the
// drain timeout passes; a statement already running finishes first.
func TestGracefulShutdown(t *testing.T) {
	e := startEnv(t, envOpts{})
	ctx := context.Background()
	tok := e.token("agent-1")
	conn, err := pgx.Connect(ctx, e.dsn("orders", tok))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "select pg_sleep(1)")
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- e.gw.Shutdown(sctx) }()
	if err := <-done; err != nil {
		t.Fatalf("running statement was cut off by shutdown: %v", err)
	}
	// New connections are refused while draining.
	if _, err := pgx.Connect(ctx, e.dsn("orders", tok)); err == nil {
		t.Fatal("new connection accepted during shutdown")
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	_, err = conn.Exec(ctx, "select 1")
	if sqlstate(err) != "57P01" && !conn.IsClosed() {
		t.Fatalf("after drain timeout: %v", err)
	}
}
