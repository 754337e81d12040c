package adminapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/adminapi/adminapitest"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/identity"
	"github.com/gatehouse/gatehouse/internal/identity/identitytest"
	"github.com/gatehouse/gatehouse/internal/store"
)

const secretPassword = "s3cr3t-Upstream-Pa55"

func TestConnectionLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client(e.adminToken())

	conns, err := c.ListConnections(ctx)
	if err != nil || len(conns) != 0 {
		t.Fatalf("empty list = %v, %v", conns, err)
	}
	created, err := c.CreateConnection(ctx, adminapi.ConnectionRequest{
		Name: "orders", Address: "db.internal:5432", Database: "orders_prod", Username: "gatehouse",
		Password: secretPassword, TLS: "verify-full", Access: []string{"group:analysts", "sub:etl"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if created.Name != "orders" || created.Type != "postgres" || !created.PasswordSet || created.Source != "api" ||
		created.TLS != "verify-full" || created.CreatedAt.IsZero() {
		t.Fatalf("created = %+v", created)
	}
	if e.changed.Load() != 1 {
		t.Errorf("OnConnectionsChanged called %d times, want 1", e.changed.Load())
	}

	// The stored secret is sealed with aad "connection:orders" and nothing else.
	sc, err := e.store.GetConnection(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sc.Secret), secretPassword) {
		t.Fatal("password stored in plaintext")
	}
	if pt, err := e.sealer.Open(sc.Secret, []byte("connection:orders")); err != nil || string(pt) != secretPassword {
		t.Fatalf("open with connection aad = %q, %v", pt, err)
	}
	if _, err := e.sealer.Open(sc.Secret, []byte("connection:other")); err == nil {
		t.Fatal("secret opens under another connection's aad")
	}

	// Defaults: database = name, port 5432, tls by address, type postgres.
	local, err := c.CreateConnection(ctx, adminapi.ConnectionRequest{
		Name: "local_dev", Address: "127.0.0.1", Username: "postgres", Access: []string{"*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if local.Database != "local_dev" || local.Address != "127.0.0.1:5432" || local.TLS != "disable" || local.PasswordSet {
		t.Fatalf("defaults = %+v", local)
	}
	remote, err := c.CreateConnection(ctx, adminapi.ConnectionRequest{
		Name: "remote", Address: "db.example.internal", Username: "u", Access: []string{"*"},
	})
	if err != nil || remote.TLS != "require" {
		t.Fatalf("remote default tls = %+v, %v", remote, err)
	}

	conns, err = c.ListConnections(ctx)
	if err != nil || len(conns) != 3 || conns[0].Name != "local_dev" || conns[1].Name != "orders" {
		t.Fatalf("list = %+v, %v", conns, err)
	}
	got, err := c.GetConnection(ctx, "orders")
	if err != nil || got.Database != "orders_prod" || len(got.Access) != 2 || !got.PasswordSet {
		t.Fatalf("show = %+v, %v", got, err)
	}

	// Replacing an API connection keeps created_at and answers 200.
	time.Sleep(2 * time.Millisecond) // distinct updated_at; not a timing assertion
	st, _, body := e.do("POST", "/api/v1/connections", e.adminToken(),
		`{"name":"orders","address":"db2.internal:6432","username":"gatehouse","access":["group:analysts"]}`)
	if st != http.StatusOK {
		t.Fatalf("replace = %d %s", st, body)
	}
	var replaced adminapi.Connection
	_ = json.Unmarshal([]byte(body), &replaced)
	if !replaced.CreatedAt.Equal(created.CreatedAt) || replaced.PasswordSet || replaced.Address != "db2.internal:6432" {
		t.Fatalf("replaced = %+v (created %v)", replaced, created.CreatedAt)
	}

	if err := c.DeleteConnection(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	var apiErr *adminapi.APIError
	if _, err := c.GetConnection(ctx, "orders"); !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "not_found" {
		t.Fatalf("show after delete: %v", err)
	}
	if err := c.DeleteConnection(ctx, "orders"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("second delete: %v", err)
	}
	if e.changed.Load() != 5 {
		t.Errorf("OnConnectionsChanged called %d times, want 5", e.changed.Load())
	}

	// Admin changes are audited with who and what.
	var admin []audit.Event
	for _, ev := range e.store.Events() {
		if ev.Type == audit.TypeAdmin {
			admin = append(admin, ev)
		}
	}
	if len(admin) != 5 {
		t.Fatalf("%d admin events, want 5", len(admin))
	}
	var d map[string]any
	if err := json.Unmarshal(admin[0].Detail, &d); err != nil {
		t.Fatal(err)
	}
	if admin[0].Subject != "alice" || admin[0].Issuer != e.issuer.URL || admin[0].Connection != "orders" ||
		d["action"] != "connection.create" || d["password_set"] != true {
		t.Fatalf("create event = %+v detail %v", admin[0], d)
	}
	if json.Unmarshal(admin[3].Detail, &d); d["action"] != "connection.replace" {
		t.Errorf("replace event detail %v", d)
	}
	if json.Unmarshal(admin[4].Detail, &d); d["action"] != "connection.delete" || admin[4].Connection != "orders" {
		t.Errorf("delete event %+v detail %v", admin[4], d)
	}
}

// TestPasswordNeverExposed sends a password through every path and checks
// that no response, audit event or log line carries it.
func TestPasswordNeverExposed(t *testing.T) {
	e := newEnv(t)
	tok := e.adminToken()
	var bodies []string
	record := func(method, path, body string) {
		_, _, b := e.do(method, path, tok, body)
		bodies = append(bodies, b)
	}
	pw, _ := json.Marshal(secretPassword)
	record("POST", "/api/v1/connections", `{"name":"pg","address":"db:5432","username":"u","password":`+string(pw)+`,"access":["*"]}`)
	record("POST", "/api/v1/connections", `{"name":"pg","address":"db:5432","username":"u","password":`+string(pw)+`,"access":["*"]}`)
	// Invalid requests must not echo the password in their error either.
	record("POST", "/api/v1/connections", `{"name":"bad name","address":"db:5432","username":"u","password":`+string(pw)+`}`)
	record("POST", "/api/v1/connections", `{"name":"pg2","address":"db:5432","username":"u","password":`+string(pw)+`,"tls":"bogus"}`)
	record("POST", "/api/v1/connections", `{"name":"pg2","password":`+string(pw)+`,"extra":1}`)
	record("GET", "/api/v1/connections", "")
	record("GET", "/api/v1/connections/pg", "")
	record("GET", "/api/v1/audit/events", "")
	record("DELETE", "/api/v1/connections/pg", "")
	record("GET", "/api/v1/audit/events?type=admin", "")
	for i, b := range bodies {
		if strings.Contains(b, secretPassword) {
			t.Errorf("response %d contains the password: %s", i, b)
		}
	}
	evs := e.store.Events()
	if len(evs) != 3 {
		t.Errorf("%d audit events, want 3", len(evs))
	}
	for _, ev := range evs {
		raw, _ := json.Marshal(ev)
		if strings.Contains(string(raw), secretPassword) {
			t.Errorf("audit event contains the password: %s", raw)
		}
	}
	if strings.Contains(e.logs.String(), secretPassword) || strings.Contains(e.logs.String(), tok) {
		t.Error("the log contains a password or token")
	}
	if !strings.Contains(e.logs.String(), `"path":"/api/v1/connections"`) {
		t.Error("requests are not logged") // guards the check above against an empty log
	}
}

func TestConfigConnectionsProtected(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := store.Connection{Name: "billing", Type: "postgres", Address: "billing:5432", Database: "billing",
		Username: "gh", TLSMode: "require", Access: []string{"group:finance"}, Source: "config"}
	if err := e.store.PutConnection(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	tok := e.adminToken()
	st, _, body := e.do("POST", "/api/v1/connections", tok,
		`{"name":"billing","address":"evil:5432","username":"x","access":["*"]}`)
	if st != http.StatusConflict || !strings.Contains(errorBody(t, body).Reason, "config") {
		t.Fatalf("replace config connection = %d %s", st, body)
	}
	st, _, body = e.do("DELETE", "/api/v1/connections/billing", tok, "")
	if st != http.StatusConflict || !strings.Contains(errorBody(t, body).Reason, "config") {
		t.Fatalf("delete config connection = %d %s", st, body)
	}
	got, err := e.store.GetConnection(ctx, "billing")
	if err != nil || got.Address != "billing:5432" || got.Source != "config" {
		t.Fatalf("config connection changed: %+v %v", got, err)
	}
	shown, err := e.client(tok).GetConnection(ctx, "billing")
	if err != nil || shown.Source != "config" || shown.PasswordSet {
		t.Fatalf("show config connection = %+v %v", shown, err)
	}
	if e.changed.Load() != 0 || len(e.store.Events()) != 0 {
		t.Error("a refused change was announced or audited")
	}
}

func TestCreateConnectionValidation(t *testing.T) {
	e := newEnv(t)
	tok := e.adminToken()
	base := map[string]any{"name": "ok", "address": "db:5432", "username": "u", "access": []string{"*"}}
	with := func(k string, v any) string {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"empty name", with("name", ""), "name"},
		{"name with space", with("name", "my db"), "name"},
		{"name with dot", with("name", "a.b"), "name"},
		{"name too long", with("name", strings.Repeat("a", 64)), "name"},
		{"type", with("type", "mysql"), "type"},
		{"no address", with("address", nil), "address"},
		{"bad port", with("address", "db:99999"), "port"},
		{"no host", with("address", ":5432"), "address"},
		{"no username", with("username", nil), "username"},
		{"tls", with("tls", "prefer"), "tls"},
		{"ca without verify-full", with("tls_ca", "file:/etc/ca.pem"), "tls_ca"},
		{"bad selector", with("access", []string{"admins"}), "selector"},
		{"unknown selector kind", with("access", []string{"role:x"}), "selector"},
		{"unknown field", with("passwd", "x"), "unknown field"},
		{"not json", `{"name":`, "JSON"},
		{"trailing data", with("name", "x") + `{}`, "after"},
		{"huge body", `{"name":"` + strings.Repeat("a", 300<<10) + `"}`, "larger"},
		{"nul in password", with("password", "a\x00b"), "NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _, body := e.do("POST", "/api/v1/connections", tok, tc.body)
			if st != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", st, body)
			}
			if eb := errorBody(t, body); !strings.Contains(eb.Reason, tc.want) {
				t.Errorf("reason %q does not mention %q", eb.Reason, tc.want)
			}
		})
	}
	// A PEM CA with verify-full is accepted; a non-PEM one is not.
	pemCA := "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY29tZQ==\n-----END CERTIFICATE-----\n"
	st, _, body := e.do("POST", "/api/v1/connections", tok,
		`{"name":"ca","address":"db:5432","username":"u","tls":"verify-full","tls_ca":`+mustJSON(pemCA)+`,"access":["*"]}`)
	if st != http.StatusCreated {
		t.Fatalf("verify-full with PEM CA = %d %s", st, body)
	}
	st, _, _ = e.do("POST", "/api/v1/connections", tok,
		`{"name":"ca","address":"db:5432","username":"u","tls":"verify-full","tls_ca":"not pem","access":["*"]}`)
	if st != http.StatusBadRequest {
		t.Fatalf("verify-full with junk CA = %d", st)
	}
	if _, err := e.store.GetConnection(context.Background(), "ok"); !errors.Is(err, store.ErrNotFound) {
		t.Error("an invalid connection was stored")
	}
}

func TestNoSealer(t *testing.T) {
	is := identitytest.New(t)
	srv := httptest.NewServer(adminapi.New(adminapi.Options{
		Store:    adminapitest.NewStore(),
		Verifier: identity.NewVerifier([]identity.IssuerConfig{{URL: is.URL, Audience: "gatehouse"}}, identity.Options{HTTPClient: is.Client()}),
		Admins:   []string{"*"},
	}))
	defer srv.Close()
	c := &adminapi.Client{BaseURL: srv.URL, Token: is.Token("alice"), HTTP: srv.Client()}
	_, err := c.CreateConnection(context.Background(), adminapi.ConnectionRequest{
		Name: "pg", Address: "db:5432", Username: "u", Password: "pw", Access: []string{"*"}})
	var apiErr *adminapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
		t.Fatalf("create with password and no sealer: %v, want 503", err)
	}
	// Without a password no sealer is needed.
	if _, err := c.CreateConnection(context.Background(), adminapi.ConnectionRequest{
		Name: "pg", Address: "db:5432", Username: "u", Access: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func FuzzValidateConnection(f *testing.F) {
	f.Add(`{"name":"orders","address":"db:5432","username":"u","access":["group:a"]}`)
	f.Add(`{"name":"x","address":"[::1]","username":"u","tls":"verify-full","tls_ca":"file:/ca"}`)
	f.Add(`{"name":"-","address":"h:0","username":"u","access":["*","sub:"]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req adminapi.ConnectionRequest
		if json.Unmarshal([]byte(body), &req) != nil {
			return
		}
		if req.Validate() != nil {
			return
		}
		// Whatever validates must be storable and usable as-is.
		if !adminapi.ValidName(req.Name) || req.Type != "postgres" || req.Database == "" {
			t.Fatalf("validated request has bad fields: %+v", req)
		}
		switch req.TLS {
		case "disable", "require", "verify-full":
		default:
			t.Fatalf("validated tls %q", req.TLS)
		}
		again := req
		if err := again.Validate(); err != nil || again.Address != req.Address {
			t.Fatalf("validation is not idempotent: %v %q %q", err, again.Address, req.Address)
		}
	})
}
