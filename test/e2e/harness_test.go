// Package e2e tests gatehouse end to end: a real PostgreSQL 15 with
// SCRAM-SHA-256 auth, the real gateway (config, store, identity, engine,
// admin API) on loopback ports, and real clients (pgx, psql, pgbench, node
// pg).
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/gateway"
	"github.com/gatehouse/gatehouse/internal/identity"
	"github.com/gatehouse/gatehouse/internal/pgtest"
)

var shared *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Shared(m, &shared, pgtest.Options{})) }

// env is one gateway in front of a fresh database on the shared server.
type env struct {
	t      *testing.T
	pg     *pgtest.Server
	db     string // upstream database
	gw     *gateway.Gateway
	api    string // http://host:port
	pgHost string
	pgPort string
	dir    string
}

type envOpts struct {
	issuers     string    // YAML inserted under identity: (e.g. an issuers: list)
	access      string    // YAML list for the "orders" connection; default ["group:analysts", "sub:agent-1"]
	connections string    // more YAML entries appended to the connections: list
	store       string    // store setting; "" = SQLite in data_dir
	policies    string    // YAML appended at top level (policies:, policies_file:)
	logs        io.Writer // where the gateway logs; default discarded (stderr with -v)
}

func startEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	pgtest.Need(t, shared)
	db := shared.CreateDB(t)
	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(dir, "secret.key")
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600)
	t.Setenv("ORDERS_DB_PASSWORD", shared.Password)
	if o.access == "" {
		o.access = `["group:analysts", "sub:agent-1"]`
	}
	yaml := fmt.Sprintf(`
listen: { api: 127.0.0.1:0, postgres: 127.0.0.1:0 }
data_dir: %s/data
store: "%s"
secret_key: file:%s
log: { level: warn }
identity:
  dev_issuer: true
%s
admins: ["group:platform-admins"]
connections:
  - name: orders
    type: postgres
    address: %s
    database: %s
    username: postgres
    password: env:ORDERS_DB_PASSWORD
    tls: disable
    access: %s
%s
%s
`, dir, o.store, keyFile, o.issuers, shared.Addr(), db, o.access, o.connections, o.policies)
	cfgPath := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(cfgPath, []byte(yaml), 0o600)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.logs != nil {
		logger = slog.New(slog.NewJSONHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	gw, err := gateway.New(context.Background(), gateway.Options{Config: cfg, Dev: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
	})
	host, port, _ := strings.Cut(gw.Addr("postgres"), ":")
	return &env{t: t, pg: shared, db: db, gw: gw, api: "http://" + gw.Addr("api"), pgHost: host, pgPort: port, dir: dir}
}

// token mints a dev-issuer token over HTTP, as `gatehouse token` does.
func (e *env) token(sub string, groups ...string) string {
	e.t.Helper()
	tok, err := identity.FetchDevToken(context.Background(), e.api, sub, groups, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) dsn(db, tok string) string {
	return fmt.Sprintf("host=%s port=%s dbname=%s user=agent password=%s sslmode=disable", e.pgHost, e.pgPort, db, tok)
}

// pgEnv is the libpq environment for command-line clients.
func (e *env) pgEnv(tok string) []string {
	return append(os.Environ(), "PGHOST="+e.pgHost, "PGPORT="+e.pgPort, "PGDATABASE=orders", "PGUSER=agent",
		"PGPASSWORD="+tok, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
}

// run runs a command-line client, failing the test with its output on error.
func (e *env) run(tok string, name string, args ...string) string {
	e.t.Helper()
	out, err := e.runErr(tok, name, args...)
	if err != nil {
		e.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

func (e *env) runErr(tok string, name string, args ...string) (string, error) {
	e.t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		pgtest.SkipOrFail(e.t, "%s not installed", name)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = e.pgEnv(tok)
	cmd.Dir = e.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	pgtest.SkipOrFail(t, format, args...)
}

var cliBuild struct {
	sync.Once
	path string
	err  error
}

// runCLI runs the real gatehouse binary (built once per test run) against
// this gateway's API as the holder of tok.
func (e *env) runCLI(tok string, args ...string) string {
	e.t.Helper()
	cliBuild.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-cli-")
		if err != nil {
			cliBuild.err = err
			return
		}
		cliBuild.path = filepath.Join(dir, "gatehouse")
		out, err := exec.Command("go", "build", "-o", cliBuild.path, "../../cmd/gatehouse").CombinedOutput()
		if err != nil {
			cliBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cliBuild.err != nil {
		e.t.Fatal(cliBuild.err)
	}
	cmd := exec.Command(cliBuild.path, args...)
	cmd.Env = append(os.Environ(), "GATEHOUSE_API="+e.api, "GATEHOUSE_TOKEN="+tok)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("gatehouse %v: %v\n%s", args, err, out)
	}
	return string(out)
}
