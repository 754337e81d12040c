package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/identity/hydratest"
	"github.com/gatehouse/gatehouse/internal/identity/identitytest"
)

func connectErr(e *env, db, tok string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, e.dsn(db, tok))
	if err == nil {
		c.Close(ctx)
	}
	return err
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestTokenCases connects through the gateway with tokens from an external
// OIDC issuer (discovery + JWKS over HTTP) and checks each failure gives
// SQLSTATE 28P01 with a reason that says what is wrong.
func TestTokenCases(t *testing.T) {
	is := identitytest.New(t)
	e := startEnv(t, envOpts{issuers: fmt.Sprintf(`
  issuers:
    - url: %s
      audience: gatehouse
`, is.URL), access: `["sub:agent-1", "group:analysts"]`})
	now := time.Now()
	cases := []struct {
		name, tok, reason string
	}{
		{"expired", is.Token("agent-1", func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), "expired"},
		{"not yet valid", is.Token("agent-1", func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), "not valid before"},
		{"wrong audience", is.Token("agent-1", func(c map[string]any) { c["aud"] = "someone-else" }), "audience"},
		{"wrong issuer", is.Token("agent-1", func(c map[string]any) { c["iss"] = "https://evil.example/" }), "issuer"},
		{"bad signature", is.SignBadSignature(is.Claims("agent-1")), "signature"},
		{"alg none", identitytest.SignNone(is.Claims("agent-1")), "none"},
		{"hs256 with rsa public key", identitytest.SignHS256WithPublicKey(is.CurrentKey(), is.Claims("agent-1"), true), "HS256"},
		{"garbage", "not-a-jwt", "token"},
	}
	for _, c := range cases {
		err := connectErr(e, "orders", c.tok)
		if sqlstate(err) != "28P01" || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(c.reason)) {
			t.Errorf("%s: got %v, want 28P01 mentioning %q", c.name, err, c.reason)
		}
	}
	// A valid token works.
	if err := connectErr(e, "orders", is.Token("agent-1")); err != nil {
		t.Fatalf("valid external token refused: %v", err)
	}
	// Key rotation: a token signed by a new key (unknown kid) makes the
	// gateway refresh the JWKS once and accept it.
	before := is.JWKSFetches()
	is.Rotate("key-2", "ES256")
	if err := connectErr(e, "orders", is.Token("agent-1")); err != nil {
		t.Fatalf("token after rotation refused: %v", err)
	}
	if got := is.JWKSFetches() - before; got != 1 {
		t.Errorf("JWKS fetched %d times after rotation, want 1", got)
	}
	// An unknown kid that the refreshed JWKS does not have either.
	err := connectErr(e, "orders", is.SignUnknownKid(is.Claims("agent-1")))
	if sqlstate(err) != "28P01" || !strings.Contains(err.Error(), "key") {
		t.Errorf("unknown kid: %v", err)
	}
}

func TestAccessAndUnknownConnection(t *testing.T) {
	e := startEnv(t, envOpts{})
	// Allowed by group.
	if err := connectErr(e, "orders", e.token("someone", "analysts")); err != nil {
		t.Fatalf("analyst refused: %v", err)
	}
	// Not in the access list.
	err := connectErr(e, "orders", e.token("intruder", "marketing"))
	if sqlstate(err) != "28000" || !strings.Contains(err.Error(), `"orders"`) {
		t.Errorf("no access: got %v", err)
	}
	// Unknown connection name.
	err = connectErr(e, "nope", e.token("agent-1"))
	if sqlstate(err) != "3D000" || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown connection: got %v", err)
	}
	// Missing token.
	err = connectErr(e, "orders", "")
	if err == nil {
		t.Error("empty token accepted")
	}
	// The refusals are audited, without the token.
	evs := e.events(t, "type=session.refused")
	if len(evs) < 2 {
		t.Fatalf("refused sessions audited: %d", len(evs))
	}
	for _, ev := range evs {
		if strings.Contains(string(ev.Detail), "eyJ") || strings.Contains(ev.Reason, "eyJ") {
			t.Fatalf("a token leaked into the audit log: %+v", ev)
		}
	}
}

// TestHydraTokenThroughGateway: an agent gets an access token from Ory Hydra
// (a real external OIDC issuer, client-credentials grant, JWT strategy) and
// uses it as its PostgreSQL password; access is granted by client id.
func TestHydraTokenThroughGateway(t *testing.T) {
	h := hydratest.Start(t)
	id, secret := h.CreateClient(t, []string{"gatehouse"})
	e := startEnv(t, envOpts{issuers: fmt.Sprintf(`
  issuers:
    - url: %s
      audience: gatehouse
`, h.Issuer), access: fmt.Sprintf(`["client:%s"]`, id)})
	tok := h.Token(t, id, secret, "gatehouse")
	out := e.run(tok, "psql", "-X", "-Atc", "select 'via hydra'")
	if strings.TrimSpace(out) != "via hydra" {
		t.Fatalf("psql with a Hydra token: %s", out)
	}
	evs := e.events(t, "type=session.opened&principal="+id)
	if len(evs) != 1 || evs[0].Issuer != h.Issuer {
		t.Fatalf("session.opened for the Hydra client: %+v", evs)
	}
}
