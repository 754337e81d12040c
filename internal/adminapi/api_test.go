package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/adminapi/adminapitest"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/credential"
	"github.com/gatehouse/gatehouse/internal/identity"
	"github.com/gatehouse/gatehouse/internal/identity/identitytest"
	"github.com/gatehouse/gatehouse/internal/store"
)

// env is an admin API on a loopback httptest server, verifying real tokens
// from a test OIDC issuer with identity.Verifier.
type env struct {
	t       *testing.T
	srv     *httptest.Server
	store   *adminapitest.Store
	sealer  *credential.Box
	issuer  *identitytest.Issuer
	logs    *syncBuffer
	changed atomic.Int64
	ready   atomic.Pointer[error]
}

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

func newEnv(t *testing.T, opts ...func(*adminapi.Options)) *env {
	t.Helper()
	box, err := credential.NewBox(bytes.Repeat([]byte{7}, credential.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sealer: box, store: adminapitest.NewStore(), issuer: identitytest.New(t), logs: &syncBuffer{}}
	v := identity.NewVerifier([]identity.IssuerConfig{{URL: e.issuer.URL, Audience: "gatehouse"}},
		identity.Options{HTTPClient: e.issuer.Client()})
	o := adminapi.Options{
		Store:    e.store,
		Verifier: v,
		Sealer:   e.sealer,
		Admins:   []string{"group:gatehouse-admins", "sub:root-robot"},
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "gatehouse_up 1\n")
		}),
		DevIssuer: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "dev issuer saw "+r.URL.Path)
		}),
		Ready: func(ctx context.Context) error {
			if p := e.ready.Load(); p != nil {
				return *p
			}
			return nil
		},
		Audit: func(ev audit.Event) {
			if err := e.store.AppendEvents(context.Background(), []audit.Event{ev}); err != nil {
				t.Errorf("append audit: %v", err)
			}
		},
		Logger:               slog.New(slog.NewJSONHandler(e.logs, nil)),
		OnConnectionsChanged: func() { e.changed.Add(1) },
	}
	for _, fn := range opts {
		fn(&o)
	}
	e.srv = httptest.NewServer(adminapi.New(o))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) adminToken() string {
	return e.issuer.Token("alice", func(c map[string]any) { c["groups"] = []string{"gatehouse-admins", "dev"} })
}

func (e *env) userToken() string {
	return e.issuer.Token("bob", func(c map[string]any) { c["groups"] = []string{"analysts"} })
}

func (e *env) client(token string) *adminapi.Client {
	return &adminapi.Client{BaseURL: e.srv.URL, Token: token, HTTP: e.srv.Client()}
}

// do sends a raw request and returns status, headers and body.
func (e *env) do(method, path, token, body string) (int, http.Header, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func errorBody(t *testing.T, body string) adminapi.ErrorBody {
	t.Helper()
	var eb adminapi.ErrorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error == "" {
		t.Fatalf("body is not a JSON error: %q (%v)", body, err)
	}
	return eb
}

func TestHealthReadyMetricsDev(t *testing.T) {
	e := newEnv(t)
	if st, _, body := e.do("GET", "/healthz", "", ""); st != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("healthz = %d %q", st, body)
	}
	if st, _, _ := e.do("GET", "/readyz", "", ""); st != 200 {
		t.Fatalf("readyz = %d", st)
	}
	notReady := errors.New("store unreachable: connection refused")
	e.ready.Store(&notReady)
	st, _, body := e.do("GET", "/readyz", "", "")
	if st != http.StatusServiceUnavailable || errorBody(t, body).Reason != notReady.Error() {
		t.Fatalf("readyz when not ready = %d %q", st, body)
	}
	// Liveness does not depend on readiness.
	if st, _, _ := e.do("GET", "/healthz", "", ""); st != 200 {
		t.Fatalf("healthz when not ready = %d", st)
	}
	if st, _, body := e.do("GET", "/metrics", "", ""); st != 200 || !strings.Contains(body, "gatehouse_up 1") {
		t.Fatalf("metrics = %d %q", st, body)
	}
	if st, _, body := e.do("POST", "/dev/oauth2/token", "", "x"); st != 200 || body != "dev issuer saw /oauth2/token" {
		t.Fatalf("dev issuer = %d %q", st, body)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	other := identitytest.New(t) // a different, untrusted issuer
	expired := e.issuer.Token("alice", func(c map[string]any) {
		c["groups"] = []string{"gatehouse-admins"}
		c["exp"] = time.Now().Add(-time.Hour).Unix()
	})
	for _, tc := range []struct{ name, header string }{
		{"none", ""},
		{"basic scheme", "Basic YWxpY2U6c2VjcmV0"},
		{"garbage", "Bearer not-a-jwt"},
		{"expired", "Bearer " + expired},
		{"untrusted issuer", "Bearer " + other.Token("alice")},
		{"bad signature", "Bearer " + e.issuer.SignBadSignature(e.issuer.Claims("alice"))},
		{"alg none", "Bearer " + identitytest.SignNone(e.issuer.Claims("alice"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/whoami", "/api/v1/connections", "/api/v1/audit/events"} {
				req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				resp, err := e.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("%s: status %d, want 401: %s", path, resp.StatusCode, b)
				}
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("%s: WWW-Authenticate = %q", path, resp.Header.Get("WWW-Authenticate"))
				}
				eb := errorBody(t, string(b))
				if eb.Reason == "" {
					t.Errorf("%s: no reason in %s", path, b)
				}
				if tc.header != "" && strings.Contains(string(b), strings.TrimPrefix(tc.header, "Bearer ")) {
					t.Errorf("%s: the token is echoed in the response", path)
				}
			}
		})
	}
	if strings.Contains(e.logs.String(), expired) {
		t.Error("a token reached the log")
	}
}

func TestForbiddenForNonAdmin(t *testing.T) {
	e := newEnv(t)
	tok := e.userToken()
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/connections", ""},
		{"POST", "/api/v1/connections", `{"name":"x","address":"db:5432","username":"u"}`},
		{"GET", "/api/v1/connections/x", ""},
		{"DELETE", "/api/v1/connections/x", ""},
		{"GET", "/api/v1/audit/events", ""},
	} {
		st, _, body := e.do(r.method, r.path, tok, r.body)
		if st != http.StatusForbidden {
			t.Fatalf("%s %s = %d, want 403: %s", r.method, r.path, st, body)
		}
		eb := errorBody(t, body)
		if !strings.Contains(eb.Reason, "group:gatehouse-admins") || !strings.Contains(eb.Reason, "sub:bob") {
			t.Errorf("403 reason does not name the missing membership: %q", eb.Reason)
		}
	}
	if _, err := e.store.GetConnection(context.Background(), "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a non-admin created a connection")
	}
}

func TestWhoAmI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w, err := e.client(e.userToken()).WhoAmI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w.Subject != "bob" || w.Issuer != e.issuer.URL || w.Admin || len(w.Groups) != 1 || w.Groups[0] != "analysts" {
		t.Fatalf("whoami(bob) = %+v", w)
	}
	if w.Expiry.IsZero() {
		t.Error("whoami has no expiry")
	}
	w, err = e.client(e.adminToken()).WhoAmI(ctx)
	if err != nil || w.Subject != "alice" || !w.Admin {
		t.Fatalf("whoami(alice) = %+v, %v", w, err)
	}
	var apiErr *adminapi.APIError
	if _, err := e.client("").WhoAmI(ctx); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("whoami without token: %v", err)
	}
}

func TestRoutingErrorsAreJSON(t *testing.T) {
	e := newEnv(t)
	st, hdr, body := e.do("PUT", "/api/v1/connections", e.adminToken(), "{}")
	if st != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET, POST" {
		t.Fatalf("PUT connections = %d Allow=%q", st, hdr.Get("Allow"))
	}
	errorBody(t, body)
	st, _, body = e.do("GET", "/api/v1/nope", e.adminToken(), "")
	if st != http.StatusNotFound {
		t.Fatalf("unknown path = %d", st)
	}
	errorBody(t, body)
}

func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t)
	st, hdr, body := e.do("GET", "/api/v1/openapi.json", "", "")
	if st != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("openapi = %d %s", st, hdr.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	want := map[string][]string{
		"/healthz": {"get"}, "/readyz": {"get"}, "/metrics": {"get"},
		"/api/v1/openapi.json": {"get"}, "/api/v1/whoami": {"get"},
		"/api/v1/connections":          {"get", "post"},
		"/api/v1/connections/{name}":   {"get", "delete"},
		"/api/v1/audit/events":         {"get"},
		"/api/v1/sessions":             {"get"},
		"/api/v1/sessions/{id}":        {"get"},
		"/api/v1/reviews":              {"get"},
		"/api/v1/reviews/stream":       {"get"},
		"/api/v1/reviews/{id}":         {"get"},
		"/api/v1/reviews/{id}/approve": {"post"},
		"/api/v1/reviews/{id}/deny":    {"post"},
		"/api/v1/grants":               {"get", "post"},
		"/api/v1/grants/{id}":          {"get"},
		"/api/v1/grants/{id}/approve":  {"post"},
		"/api/v1/grants/{id}/deny":     {"post"},
		"/api/v1/grants/{id}/revoke":   {"post"},
		"/api/v1/audit/export":         {"get"},
		"/api/v1/audit/public-key":     {"get"},
		"/api/v1/audit/prune":          {"post"},
	}
	for path, ms := range want {
		for _, m := range ms {
			if _, ok := doc.Paths[path][m]; !ok {
				t.Errorf("openapi lacks %s %s", m, path)
			}
		}
	}
	if len(doc.Paths) != len(want) {
		t.Errorf("openapi has %d paths, want %d", len(doc.Paths), len(want))
	}
	// Every $ref must resolve.
	refs := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					refs[s] = true
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var all map[string]any
	_ = json.Unmarshal([]byte(body), &all)
	walk(all)
	for ref := range refs {
		cur := any(all)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, _ := cur.(map[string]any)
			cur = m[part]
		}
		if cur == nil {
			t.Errorf("unresolved $ref %s", ref)
		}
	}
}
