package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/adminapi/adminapitest"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/credential"
	"github.com/gatehouse/gatehouse/internal/identity"
)

// apiServer is an admin API with the real dev issuer and token verifier on a
// loopback httptest server.
type apiServer struct {
	url   string
	store *adminapitest.Store
}

func startGateway(t *testing.T) *apiServer {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	dev, err := identity.NewDevIssuer(srv.URL+"/dev", nil, identity.DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := identity.NewVerifier(nil, identity.Options{})
	v.AddStaticIssuer(dev.Config(), dev.Keys)
	box, err := credential.NewBox(bytes.Repeat([]byte{1}, credential.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	g := &apiServer{url: srv.URL, store: adminapitest.NewStore()}
	h = adminapi.New(adminapi.Options{
		Store: g.store, Verifier: v, Sealer: box, Admins: []string{"group:admins"}, DevIssuer: dev,
		Audit: func(e audit.Event) { _ = g.store.AppendEvents(context.Background(), []audit.Event{e}) },
	})
	return g
}

type result struct {
	code           int
	stdout, stderr string
}

// gh runs the CLI in-process with env as its whole environment.
func gh(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	return ghCtx(context.Background(), env, stdin, args...)
}

func ghCtx(ctx context.Context, env map[string]string, stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

func (g *apiServer) token(t *testing.T, subject string, groups ...string) string {
	t.Helper()
	args := []string{"token", "--api", g.url, "--subject", subject}
	for _, gr := range groups {
		args = append(args, "--group", gr)
	}
	r := gh(t, nil, "", args...)
	if r.code != 0 {
		t.Fatalf("token: %+v", r)
	}
	return strings.TrimSpace(r.stdout)
}

func TestTokenAndWhoAmI(t *testing.T) {
	g := startGateway(t)
	tok := g.token(t, "alice", "admins", "dev")
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	env := map[string]string{"GATEHOUSE_API": g.url, "GATEHOUSE_TOKEN": tok}
	r := gh(t, env, "", "whoami")
	if r.code != 0 || !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "admins, dev") || !strings.Contains(r.stdout, "ADMIN:    yes") {
		t.Fatalf("whoami: %+v", r)
	}
	r = gh(t, env, "", "whoami", "-o", "json")
	var w adminapi.WhoAmI
	if err := json.Unmarshal([]byte(r.stdout), &w); err != nil || w.Subject != "alice" || w.Issuer != g.url+"/dev" || !w.Admin {
		t.Fatalf("whoami json: %+v %v", r, err)
	}
	// --token overrides the environment.
	r = gh(t, env, "", "whoami", "--token", g.token(t, "bob"), "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &w); err != nil || w.Subject != "bob" || w.Admin {
		t.Fatalf("whoami --token: %+v %v", r, err)
	}
	// --ttl is passed through.
	r = gh(t, nil, "", "token", "--api", g.url, "--subject", "carol", "--ttl", "5m")
	if r.code != 0 {
		t.Fatalf("token --ttl: %+v", r)
	}
	r = gh(t, map[string]string{"GATEHOUSE_API": g.url, "GATEHOUSE_TOKEN": strings.TrimSpace(r.stdout)}, "", "whoami", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &w); err != nil || time.Until(w.Expiry) > 6*time.Minute {
		t.Fatalf("ttl not applied: %+v %v", w, err)
	}
}

func TestConnectionsCommands(t *testing.T) {
	g := startGateway(t)
	const pw = "upstream-Secret-42"
	env := map[string]string{"GATEHOUSE_API": g.url, "GATEHOUSE_TOKEN": g.token(t, "alice", "admins"), "ORDERS_PW": pw}
	r := gh(t, env, "", "connections", "create", "--name", "orders", "--address", "db.internal:5432",
		"--database", "orders_prod", "--username", "gatehouse", "--password-env", "ORDERS_PW",
		"--tls", "require", "--access", "group:analysts", "--access", "sub:etl")
	if r.code != 0 || !strings.Contains(r.stdout, "set (encrypted at rest)") {
		t.Fatalf("create: %+v", r)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = gh(t, env, "", "connections", "create", "--name", "billing", "--address", "127.0.0.1",
		"--username", "u", "--password-file", pwFile, "--access", "*", "-o", "json")
	var created adminapi.Connection
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || !created.PasswordSet || created.TLS != "disable" {
		t.Fatalf("create from file: %+v %v", r, err)
	}
	r = gh(t, env, pw+"\n", "connections", "create", "--name", "stdin_pw", "--address", "db:5432",
		"--username", "u", "--password-file", "-", "--access", "*")
	if r.code != 0 {
		t.Fatalf("create with password on stdin: %+v", r)
	}

	r = gh(t, env, "", "connections", "list", "-o", "json")
	var list []adminapi.Connection
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 3 || list[1].Name != "orders" || list[1].Database != "orders_prod" {
		t.Fatalf("list json: %+v %v", r, err)
	}
	r = gh(t, env, "", "connections", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("list table: %+v", r)
	}
	// Columns are aligned: ADDRESS starts at the same offset on every line.
	col := strings.Index(lines[0], "ADDRESS")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("misaligned row %q (ADDRESS at %d)", l, col)
		}
	}
	r = gh(t, env, "", "connections", "show", "orders")
	if r.code != 0 || !strings.Contains(r.stdout, "group:analysts, sub:etl") {
		t.Fatalf("show: %+v", r)
	}
	r = gh(t, env, "", "connections", "delete", "orders")
	if r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	r = gh(t, env, "", "connections", "show", "orders")
	if r.code != 1 || !strings.Contains(r.stderr, `connection "orders" does not exist`) || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("show deleted: %+v", r)
	}
	// The password is never echoed by any command, nor accepted as a flag.
	r = gh(t, env, "", "audit", "tail", "-o", "json")
	for _, out := range []string{r.stdout, gh(t, env, "", "connections", "list", "-o", "json").stdout} {
		if strings.Contains(out, pw) {
			t.Fatal("the password was printed")
		}
	}
	r = gh(t, env, "", "connections", "create", "--name", "x", "--address", "db:1", "--username", "u", "--password", pw)
	if r.code != 2 {
		t.Fatalf("--password flag: %+v", r)
	}
	r = gh(t, env, "", "connections", "create", "--name", "x", "--address", "db:1", "--username", "u", "--password-env", "UNSET_VAR")
	if r.code != 2 || !strings.Contains(r.stderr, "UNSET_VAR") {
		t.Fatalf("unset password env: %+v", r)
	}
	r = gh(t, env, "", "connections", "create", "--name", "bad name", "--address", "db:1", "--username", "u")
	if r.code != 1 || !strings.Contains(r.stderr, "name") || !strings.Contains(r.stderr, "HTTP 400") {
		t.Fatalf("invalid connection: %+v", r)
	}
}

func TestAuditTail(t *testing.T) {
	g := startGateway(t)
	env := map[string]string{"GATEHOUSE_API": g.url, "GATEHOUSE_TOKEN": g.token(t, "alice", "admins")}
	ctx := context.Background()
	var evs []audit.Event
	for i := 0; i < 30; i++ {
		d := "allow"
		if i%10 == 0 {
			d = "deny"
		}
		evs = append(evs, audit.Event{Time: time.Now(), Type: audit.TypeStatement, Subject: "agent", Connection: "orders",
			SessionID: "s1", Decision: d, Statement: "SELECT\t" + itoa(int64(i))})
	}
	if err := g.store.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	r := gh(t, env, "", "audit", "tail")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 21 || !strings.HasPrefix(lines[0], "SEQ") || !strings.HasPrefix(lines[20], "30 ") ||
		!strings.Contains(lines[20], "SELECT 29") {
		t.Fatalf("tail: %+v", r)
	}
	r = gh(t, env, "", "audit", "tail", "-n", "5", "--decision", "deny", "-o", "json")
	var got []audit.Event
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e audit.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("json line %q: %v", l, err)
		}
		got = append(got, e)
	}
	if len(got) != 3 || got[0].Seq != 1 || got[2].Seq != 21 {
		t.Fatalf("tail --decision deny: %+v", got)
	}
	for _, args := range [][]string{{"-n", "0"}, {"--decision", "maybe"}, {"-o", "yaml"}} {
		r = gh(t, env, "", append([]string{"audit", "tail"}, args...)...)
		if r.code == 0 || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("audit tail %v: %+v", args, r)
		}
	}
}

// syncWriter lets the test read what the follower wrote so far.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
	ch chan struct{}
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	select {
	case w.ch <- struct{}{}:
	default:
	}
	return n, err
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestAuditTailFollow(t *testing.T) {
	g := startGateway(t)
	env := map[string]string{"GATEHOUSE_API": g.url, "GATEHOUSE_TOKEN": g.token(t, "alice", "admins")}
	bg := context.Background()
	_ = g.store.AppendEvents(bg, []audit.Event{{Time: time.Now(), Type: audit.TypeSessionOpened, Subject: "agent", Connection: "orders"}})

	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	out := &syncWriter{ch: make(chan struct{}, 1)}
	c := &cli{stdin: strings.NewReader(""), stdout: out, stderr: out, getenv: func(k string) string { return env[k] },
		pollInterval: 10 * time.Millisecond}
	root := c.newRootCmd()
	root.SetArgs([]string{"audit", "tail", "--follow", "--connection", "orders", "-o", "json"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	waitFor := func(s string) {
		t.Helper()
		for !strings.Contains(out.String(), s) {
			select {
			case <-out.ch:
			case err := <-done:
				t.Fatalf("follow ended early (%v): %s", err, out.String())
			}
		}
	}
	waitFor(`"type":"session.opened"`)
	// A burst arrives whole; other connections are filtered out.
	var burst []audit.Event
	for i := 0; i < 50; i++ {
		burst = append(burst, audit.Event{Time: time.Now(), Type: audit.TypeStatement, Connection: "orders", Statement: "SELECT " + itoa(int64(i))})
	}
	burst = append(burst, audit.Event{Time: time.Now(), Type: audit.TypeStatement, Connection: "billing", Statement: "SELECT 'other'"})
	burst = append(burst, audit.Event{Time: time.Now(), Type: audit.TypeSessionClosed, Connection: "orders"})
	if err := g.store.AppendEvents(bg, burst); err != nil {
		t.Fatal(err)
	}
	waitFor(`"type":"session.closed"`)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow returned %v after interrupt", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1+50+1 {
		t.Fatalf("followed %d events, want %d", len(lines), 52)
	}
	if strings.Contains(out.String(), "billing") || strings.Contains(out.String(), "warning") {
		t.Errorf("unexpected output: %s", out.String())
	}
}

// TestAuditTailFollowOverflow checks that a burst larger than one page is
// read whole: follow pages forward until a page comes back short.
func TestAuditTailFollowOverflow(t *testing.T) {
	g := startGateway(t)
	env := map[string]string{"GATEHOUSE_API": g.url, "GATEHOUSE_TOKEN": g.token(t, "alice", "admins")}
	bg := context.Background()
	_ = g.store.AppendEvents(bg, []audit.Event{{Time: time.Now(), Type: audit.TypeSessionOpened}})
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	out := &syncWriter{ch: make(chan struct{}, 1)}
	c := &cli{stdin: strings.NewReader(""), stdout: out, stderr: out, getenv: func(k string) string { return env[k] },
		pollInterval: 10 * time.Millisecond}
	root := c.newRootCmd()
	root.SetArgs([]string{"audit", "tail", "--follow", "-o", "json"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	waitOut := func(s string) {
		t.Helper()
		for !strings.Contains(out.String(), s) {
			select {
			case <-out.ch:
			case err := <-done:
				t.Fatalf("follow ended early (%v): %s", err, out.String())
			}
		}
	}
	waitOut("session.opened")
	var burst []audit.Event
	for i := 0; i < adminapi.MaxEventLimit+5; i++ {
		burst = append(burst, audit.Event{Time: time.Now(), Type: audit.TypeStatement})
	}
	_ = g.store.AppendEvents(bg, burst)
	// The last event of the burst is seq 1+MaxEventLimit+5.
	waitOut(`"seq":` + itoa(int64(adminapi.MaxEventLimit+6)) + `,`)
	cancel()
	<-done
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if want := 1 + adminapi.MaxEventLimit + 5; len(lines) != want {
		t.Fatalf("followed %d events, want %d", len(lines), want)
	}
	for i, l := range lines {
		if !strings.Contains(l, `"seq":`+itoa(int64(i+1))+`,`) {
			t.Fatalf("line %d is not seq %d: %s", i, i+1, l)
		}
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	g := startGateway(t)
	user := g.token(t, "bob", "analysts")
	// A closed loopback port for "unreachable".
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no token", map[string]string{"GATEHOUSE_API": g.url}, []string{"connections", "list"}, 2, "no token"},
		{"bad token", map[string]string{"GATEHOUSE_API": g.url, "GATEHOUSE_TOKEN": "nope"}, []string{"whoami"}, 1, "HTTP 401"},
		{"not admin", map[string]string{"GATEHOUSE_API": g.url, "GATEHOUSE_TOKEN": user}, []string{"connections", "list"}, 1, "group:admins"},
		{"not admin audit", map[string]string{"GATEHOUSE_API": g.url, "GATEHOUSE_TOKEN": user}, []string{"audit", "tail"}, 1, "HTTP 403"},
		{"unreachable", map[string]string{"GATEHOUSE_TOKEN": "x"}, []string{"whoami", "--api", dead}, 1, "cannot reach"},
		{"bad api url", nil, []string{"whoami", "--api", "ftp://x", "--token", "x"}, 2, "--api"},
		{"unknown command", nil, []string{"frobnicate"}, 2, "unknown command"},
		{"unknown flag", nil, []string{"whoami", "--colour"}, 2, "unknown flag"},
		{"missing subject", map[string]string{"GATEHOUSE_API": g.url}, []string{"token"}, 2, "subject"},
		{"show without name", map[string]string{"GATEHOUSE_TOKEN": "x"}, []string{"connections", "show"}, 2, "NAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := gh(t, tc.env, "", tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d: %+v", r.code, tc.code, r)
			}
			if !strings.HasPrefix(r.stderr, "gatehouse: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q: want one line mentioning %q", r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout on failure: %q", r.stdout)
			}
		})
	}
}

func TestHelpEverywhere(t *testing.T) {
	for _, args := range [][]string{
		{}, {"--help"}, {"token", "--help"}, {"whoami", "--help"}, {"connections", "--help"},
		{"connections", "list", "--help"}, {"connections", "show", "--help"}, {"connections", "create", "--help"},
		{"connections", "delete", "--help"}, {"audit", "--help"}, {"audit", "tail", "--help"}, {"version", "--help"},
	} {
		r := gh(t, map[string]string{"GATEHOUSE_TOKEN": "secret-token-value"}, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: %+v", args, r)
		}
		if strings.Contains(r.stdout, "secret-token-value") {
			t.Errorf("%v: help shows the token from the environment", args)
		}
	}
	r := gh(t, nil, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "gatehouse ") {
		t.Errorf("version: %+v", r)
	}
}
