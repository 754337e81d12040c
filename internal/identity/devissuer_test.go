package identity_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/identity"
)

// devServer starts a loopback HTTP server with the dev issuer mounted under
// /dev, as the gateway mounts it.
func devServer(t *testing.T, opts identity.DevOptions, strip bool) (*httptest.Server, *identity.DevIssuer) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	key, err := identity.LoadOrCreateDevKey(filepath.Join(t.TempDir(), "dev.key"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := identity.NewDevIssuer(srv.URL+"/dev", key, opts)
	if err != nil {
		t.Fatal(err)
	}
	if strip {
		mux.Handle("/dev/", http.StripPrefix("/dev", dev))
	} else {
		mux.Handle("/dev/", dev)
	}
	return srv, dev
}

// postToken calls the token endpoint and decodes the JSON answer.
func postToken(t *testing.T, srv *httptest.Server, form url.Values, basicID, basicSecret string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/dev/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token endpoint answered non-JSON (HTTP %d): %v", resp.StatusCode, err)
	}
	return resp.StatusCode, resp.Header, body
}

func TestDevIssuerEndToEnd(t *testing.T) {
	for _, strip := range []bool{false, true} {
		t.Run(map[bool]string{false: "mounted", true: "stripped"}[strip], func(t *testing.T) {
			srv, dev := devServer(t, identity.DevOptions{}, strip)
			ctx := context.Background()

			// Discovery as any OIDC client sees it.
			resp, err := srv.Client().Get(srv.URL + "/dev/.well-known/openid-configuration")
			if err != nil {
				t.Fatal(err)
			}
			var disc map[string]any
			err = json.NewDecoder(resp.Body).Decode(&disc)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if disc["issuer"] != srv.URL+"/dev" || disc["token_endpoint"] != srv.URL+"/dev/oauth2/token" || disc["jwks_uri"] != srv.URL+"/dev/jwks.json" {
				t.Fatalf("discovery = %v", disc)
			}

			// A normal issuer: discovery → JWKS over HTTP.
			v := identity.NewVerifier([]identity.IssuerConfig{dev.Config()}, identity.Options{HTTPClient: srv.Client()})
			tok, err := identity.FetchDevToken(ctx, srv.URL, "alice", []string{"dba", "oncall"}, 2*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if p.Issuer != srv.URL+"/dev" || p.Subject != "alice" || p.ClientID != "alice" || strings.Join(p.Groups, ",") != "dba,oncall" {
				t.Fatalf("principal = %+v", p)
			}
			if d := time.Until(p.Expiry); d < 119*time.Minute || d > 2*time.Hour {
				t.Fatalf("expiry in %v, want 2h", d)
			}
			for _, c := range []string{"jti", "iat", "nbf"} {
				if p.Claims[c] == nil {
					t.Errorf("token lacks %s", c)
				}
			}

			// The same token through the in-process path.
			sv := identity.NewVerifier(nil, identity.Options{})
			sv.AddStaticIssuer(dev.Config(), dev.Keys)
			if _, err := sv.Verify(ctx, tok); err != nil {
				t.Fatalf("static issuer: %v", err)
			}

			// ttl is capped at MaxTTL (24h by default).
			tok, err = identity.FetchDevToken(ctx, srv.URL, "bob", nil, 1000*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			p, err = v.Verify(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Until(p.Expiry); d > 24*time.Hour {
				t.Fatalf("ttl not capped: expires in %v", d)
			}
			if len(p.Groups) != 0 {
				t.Fatalf("groups = %v", p.Groups)
			}
		})
	}
}

func TestDevIssuerConfiguredClient(t *testing.T) {
	srv, dev := devServer(t, identity.DevOptions{
		Audience: "gh-test",
		Clients:  []identity.DevClient{{ID: "orders-bot", Secret: "s3cret:&=", Groups: []string{"writers"}}},
	}, false)
	v := identity.NewVerifier([]identity.IssuerConfig{dev.Config()}, identity.Options{HTTPClient: srv.Client()})
	ctx := context.Background()
	cc := url.Values{"grant_type": {"client_credentials"}}

	check := func(status int, body map[string]any) {
		t.Helper()
		if status != http.StatusOK {
			t.Fatalf("HTTP %d: %v", status, body)
		}
		if body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) {
			t.Fatalf("token response = %v", body)
		}
		p, err := v.Verify(ctx, body["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if p.Subject != "orders-bot" || p.ClientID != "orders-bot" || strings.Join(p.Groups, ",") != "writers" {
			t.Fatalf("principal = %+v", p)
		}
		if p.Claims["aud"] != "gh-test" {
			t.Fatalf("aud = %v", p.Claims["aud"])
		}
	}

	// HTTP Basic (RFC 6749 §2.3.1: id and secret form-encoded first).
	status, _, body := postToken(t, srv, cc, "orders-bot", "s3cret:&=")
	check(status, body)
	// Form parameters.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"orders-bot"}, "client_secret": {"s3cret:&="}}
	status, _, body = postToken(t, srv, form, "", "")
	check(status, body)

	// Wrong secret, by Basic: 401 with a challenge.
	status, hdr, body := postToken(t, srv, cc, "orders-bot", "wrong")
	if status != http.StatusUnauthorized || body["error"] != "invalid_client" || hdr.Get("WWW-Authenticate") == "" {
		t.Fatalf("wrong secret: HTTP %d %v %v", status, body, hdr)
	}
	// Wrong and missing secret, by form.
	for _, f := range []url.Values{
		{"grant_type": {"client_credentials"}, "client_id": {"orders-bot"}, "client_secret": {"s3cret"}},
		{"grant_type": {"client_credentials"}, "client_id": {"orders-bot"}},
		{"grant_type": {"client_credentials"}, "client_id": {"orders-bot"}, "client_secret": {""}},
	} {
		status, _, body = postToken(t, srv, f, "", "")
		if status != http.StatusUnauthorized || body["error"] != "invalid_client" {
			t.Fatalf("form %v: HTTP %d %v", f, status, body)
		}
	}
	// FetchDevToken names the configured client without its secret: refused.
	if _, err := identity.FetchDevToken(ctx, srv.URL, "orders-bot", nil, 0); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("FetchDevToken as configured client: %v", err)
	}
	// A configured client cannot choose its subject or groups.
	f := url.Values{"grant_type": {"client_credentials"}, "client_id": {"orders-bot"}, "client_secret": {"s3cret:&="}, "groups": {"admins"}}
	status, _, body = postToken(t, srv, f, "", "")
	if status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Fatalf("configured client choosing groups: HTTP %d %v", status, body)
	}
}

func TestDevIssuerProtocolErrors(t *testing.T) {
	srv, _ := devServer(t, identity.DevOptions{}, false)
	cases := []struct {
		form   url.Values
		status int
		code   string
	}{
		{url.Values{"grant_type": {"password"}, "client_id": {"x"}}, 400, "unsupported_grant_type"},
		{url.Values{"client_id": {"x"}}, 400, "invalid_request"},
		{url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
		{url.Values{"grant_type": {"client_credentials"}, "client_id": {"x"}, "ttl": {"soon"}}, 400, "invalid_request"},
		{url.Values{"grant_type": {"client_credentials"}, "client_id": {"x"}, "ttl": {"-1h"}}, 400, "invalid_request"},
	}
	for _, tc := range cases {
		status, _, body := postToken(t, srv, tc.form, "", "")
		if status != tc.status || body["error"] != tc.code || body["error_description"] == "" {
			t.Errorf("%v: HTTP %d %v; want %d %s", tc.form, status, body, tc.status, tc.code)
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/dev/oauth2/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET token endpoint: HTTP %d", resp.StatusCode)
	}
}

func TestLoadOrCreateDevKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dev.key")
	k1, err := identity.LoadOrCreateDevKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %04o, want 0600", st.Mode().Perm())
	}
	k2, err := identity.LoadOrCreateDevKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.(*ecdsa.PrivateKey).Equal(k2) {
		t.Fatal("reloaded key differs")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadOrCreateDevKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
}
