package identity_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/identity"
	"github.com/gatehouse/gatehouse/internal/identity/identitytest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newVerifier(t *testing.T, is *identitytest.Issuer, mod ...func(*identity.IssuerConfig, *identity.Options)) *identity.Verifier {
	t.Helper()
	cfg := identity.IssuerConfig{URL: is.URL, Audience: "gatehouse"}
	opts := identity.Options{HTTPClient: is.Client()}
	for _, m := range mod {
		m(&cfg, &opts)
	}
	return identity.NewVerifier([]identity.IssuerConfig{cfg}, opts)
}

// mustReject verifies tok and checks the error is a *TokenError whose reason
// contains want.
func mustReject(t *testing.T, v *identity.Verifier, tok, want string) *identity.TokenError {
	t.Helper()
	p, err := v.Verify(context.Background(), tok)
	if err == nil {
		t.Fatalf("token accepted (subject %q); want rejection containing %q", p.Subject, want)
	}
	var te *identity.TokenError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *identity.TokenError", err, err)
	}
	if !strings.Contains(te.Reason, want) {
		t.Fatalf("reason %q does not contain %q", te.Reason, want)
	}
	if len(tok) > 20 && strings.Contains(err.Error(), tok[len(tok)-20:]) {
		t.Fatalf("error leaks token material: %v", err)
	}
	return te
}

func TestVerifyValid(t *testing.T) {
	is := identitytest.New(t)
	v := newVerifier(t, is)
	tok := is.Token("agent-7", func(c map[string]any) {
		c["groups"] = []string{"analysts", "oncall"}
		c["client_id"] = "orders-bot"
		c["aud"] = []string{"other", "gatehouse"}
	})
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Issuer != is.URL || p.Subject != "agent-7" || p.ClientID != "orders-bot" {
		t.Fatalf("principal = %+v", p)
	}
	if strings.Join(p.Groups, ",") != "analysts,oncall" {
		t.Fatalf("groups = %v", p.Groups)
	}
	if p.Expiry.IsZero() || time.Until(p.Expiry) < 50*time.Minute {
		t.Fatalf("expiry = %v", p.Expiry)
	}
	if p.Claims["sub"] != "agent-7" {
		t.Fatalf("claims = %v", p.Claims)
	}
	if !p.Matches("group:oncall") || !p.Matches("client:orders-bot") {
		t.Fatal("selectors do not match the principal")
	}
}

func TestVerifyAlgorithms(t *testing.T) {
	is := identitytest.New(t)
	v := newVerifier(t, is)
	algs := []string{"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}
	keys := map[string]*identitytest.Key{}
	for _, alg := range algs {
		keys[alg] = is.Rotate("rot-"+alg, alg)
	}
	for _, alg := range algs {
		k := keys[alg]
		tok := identitytest.SignWith(k, nil, is.Claims("s-"+alg))
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	is := identitytest.New(t)
	es := identitytest.NewKey("ec-1", "ES256")
	is.Publish(es)
	encKey := identitytest.NewKey("enc-1", "RS256")
	is.Publish(encKey)
	v := newVerifier(t, is)
	rsa := is.CurrentKey()
	now := time.Now()

	claims := func(edit func(map[string]any)) map[string]any {
		c := is.Claims("agent")
		edit(c)
		return c
	}
	cases := []struct {
		name, token, want string
	}{
		{"empty", "", "token is empty"},
		{"garbage", "not-a-token", "expected 3 dot-separated parts"},
		{"jwe", "a.b.c.d.e", "encrypted (JWE)"},
		{"json serialization", `{"payload":"x","signatures":[{},{}]}`, "JSON-serialized JWS"},
		{"bad base64 header", "!!!.e30.c2ln", "header is not valid base64url"},
		{"no signature", unsigned(is.Token("a")), "no signature"},
		{"expired", is.Sign(claims(func(c map[string]any) { c["exp"] = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Unix() })), "token expired at 2026-01-02T03:04:05Z"},
		{"expired beyond skew", is.Sign(claims(func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() })), "token expired at"},
		{"no exp", is.Sign(claims(func(c map[string]any) { delete(c, "exp") })), "no exp"},
		{"exp string", is.Sign(claims(func(c map[string]any) { c["exp"] = "tomorrow" })), "exp claim must be a number"},
		{"nbf future", is.Sign(claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })), "not valid before"},
		{"iat future", is.Sign(claims(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() })), "issued in the future"},
		{"wrong aud", is.Sign(claims(func(c map[string]any) { c["aud"] = "someone-else" })), `audience "someone-else" does not include "gatehouse"`},
		{"wrong aud array", is.Sign(claims(func(c map[string]any) { c["aud"] = []string{"a", "b"} })), `does not include "gatehouse"`},
		{"no aud", is.Sign(claims(func(c map[string]any) { delete(c, "aud") })), "no aud"},
		{"aud number", is.Sign(claims(func(c map[string]any) { c["aud"] = 7 })), "aud claim must be"},
		{"unknown iss", is.Sign(claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), `issuer "https://evil.example" is not trusted`},
		{"no iss", is.Sign(claims(func(c map[string]any) { delete(c, "iss") })), "no iss"},
		{"no sub", is.Sign(claims(func(c map[string]any) { delete(c, "sub") })), "no sub"},
		{"bad signature", is.SignBadSignature(is.Claims("agent")), "signature is invalid"},
		{"alg none", identitytest.SignNone(is.Claims("agent")), "alg none"},
		{"alg none no signature", identitytest.SignNone(is.Claims("agent")) + "", "alg none"},
		{"hs256 with rsa public key pem", identitytest.SignHS256WithPublicKey(rsa, is.Claims("agent"), false), "HMAC-signed token"},
		{"hs256 with rsa public key der", identitytest.SignHS256WithPublicKey(rsa, is.Claims("agent"), true), "HMAC-signed token"},
		{"hs512", identitytest.SignWith(rsa, map[string]any{"alg": "HS512"}, is.Claims("agent")), "HMAC-signed token"},
		{"missing alg", identitytest.SignWith(rsa, map[string]any{"alg": nil}, is.Claims("agent")), "no alg"},
		{"unknown alg", identitytest.SignWith(rsa, map[string]any{"alg": "RS1"}, is.Claims("agent")), `algorithm "RS1" is not allowed`},
		{"alg not string", identitytest.SignWith(rsa, map[string]any{"alg": 256}, is.Claims("agent")), "no alg"},
		{"key type mismatch", identitytest.SignWith(es, map[string]any{"kid": rsa.KID}, is.Claims("agent")), "is an RSA key, which cannot verify alg ES256"},
		{"key type mismatch ec", identitytest.SignWith(rsa, map[string]any{"kid": es.KID}, is.Claims("agent")), "is an EC key, which cannot verify alg RS256"},
		{"unknown kid", is.SignUnknownKid(is.Claims("agent")), `kid "unpublished" is not in the JWKS`},
		{"groups wrong type", is.Sign(claims(func(c map[string]any) { c["groups"] = 42 })), `"groups" claim must be`},
		{"act not object", is.Sign(claims(func(c map[string]any) { c["act"] = "bob" })), "act claim must be a JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustReject(t, v, tc.token, tc.want)
		})
	}
}

func TestVerifySkew(t *testing.T) {
	is := identitytest.New(t)
	v := newVerifier(t, is)
	// Expired 10s ago and not valid for another 10s: both within the 30s skew.
	tok := is.Token("s", func(c map[string]any) {
		c["exp"] = time.Now().Add(-10 * time.Second).Unix()
		c["nbf"] = time.Now().Add(10 * time.Second).Unix()
	})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("token within skew refused: %v", err)
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	is := identitytest.New(t)
	is.SetDiscoveryIssuer("https://impostor.example")
	v := newVerifier(t, is)
	te := mustReject(t, v, is.Token("s"), `discovery document names issuer "https://impostor.example"`)
	if !te.Unavailable() {
		t.Fatal("discovery mismatch should be reported as issuer unavailable")
	}
}

func TestIssuerDownAtStartThenRecovers(t *testing.T) {
	is := identitytest.New(t)
	is.SetDown(true)
	clk := &clock{t: time.Now()}
	v := newVerifier(t, is, func(_ *identity.IssuerConfig, o *identity.Options) { o.Now = clk.Now })
	te := mustReject(t, v, is.Token("s"), "is unavailable")
	if !errors.Is(te, identity.ErrIssuerUnavailable) {
		t.Fatal("want ErrIssuerUnavailable")
	}
	is.SetDown(false)
	// Within the retry back-off the failure is remembered: no new fetch.
	mustReject(t, v, is.Token("s"), "is unavailable")
	if n := is.DiscoveryFetches(); n != 0 {
		t.Fatalf("discovery fetched %d times while down/backing off; want 0 successful", n)
	}
	clk.Advance(6 * time.Second)
	if _, err := v.Verify(context.Background(), is.Token("s")); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestUnknownKidRefreshAfterRotation(t *testing.T) {
	is := identitytest.New(t)
	clk := &clock{t: time.Now()}
	v := newVerifier(t, is, func(_ *identity.IssuerConfig, o *identity.Options) { o.Now = clk.Now })
	ctx := context.Background()
	if _, err := v.Verify(ctx, is.Token("s")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, is.Token("s")); err != nil {
		t.Fatal(err)
	}
	if n := is.JWKSFetches(); n != 1 {
		t.Fatalf("JWKS fetched %d times for cached key; want 1", n)
	}
	is.Rotate("key-2", "ES256")
	if _, err := v.Verify(ctx, is.Token("s")); err != nil {
		t.Fatalf("token signed with rotated key: %v", err)
	}
	if n := is.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS fetched %d times after rotation; want exactly 2", n)
	}
	if _, err := v.Verify(ctx, is.Token("s")); err != nil {
		t.Fatal(err)
	}
	if n := is.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS fetched %d times; rotated key should now be cached", n)
	}
	if n := is.DiscoveryFetches(); n != 1 {
		t.Fatalf("discovery fetched %d times; want 1", n)
	}
}

func TestUnknownKidRateLimit(t *testing.T) {
	is := identitytest.New(t)
	clk := &clock{t: time.Now()}
	v := newVerifier(t, is, func(_ *identity.IssuerConfig, o *identity.Options) {
		o.Now = clk.Now
		o.MinRefreshInterval = time.Minute
	})
	ctx := context.Background()
	if _, err := v.Verify(ctx, is.Token("s")); err != nil {
		t.Fatal(err)
	}
	// A stream of forged kids: one refresh, then the limit holds.
	for range 20 {
		mustReject(t, v, is.SignUnknownKid(is.Claims("s")), "is not in the JWKS")
	}
	if n := is.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS fetched %d times; want 2 (initial + one refresh)", n)
	}
	// A real rotation inside the window is not seen until the window ends.
	is.Rotate("key-2", "EdDSA")
	mustReject(t, v, is.Token("s"), `kid "key-2" is not in the JWKS`)
	if n := is.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS fetched %d times inside the rate-limit window", n)
	}
	clk.Advance(time.Minute)
	if _, err := v.Verify(ctx, is.Token("s")); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if n := is.JWKSFetches(); n != 3 {
		t.Fatalf("JWKS fetched %d times; want 3", n)
	}
}

func TestActChain(t *testing.T) {
	is := identitytest.New(t)
	v := newVerifier(t, is)
	tok := is.Token("user-alice", func(c map[string]any) {
		c["act"] = map[string]any{
			"sub": "agent-1", "client_id": "assistant",
			"act": map[string]any{"sub": "orchestrator", "iss": "https://other.example"},
		}
	})
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := []access.Actor{
		{Subject: "agent-1", ClientID: "assistant"},
		{Subject: "orchestrator", Issuer: "https://other.example"},
	}
	if len(p.Act) != len(want) {
		t.Fatalf("act = %+v", p.Act)
	}
	for i := range want {
		if p.Act[i] != want[i] {
			t.Fatalf("act[%d] = %+v, want %+v", i, p.Act[i], want[i])
		}
	}

	deep := map[string]any{"sub": "x"}
	for range 20 {
		deep = map[string]any{"sub": "x", "act": deep}
	}
	mustReject(t, v, is.Token("u", func(c map[string]any) { c["act"] = deep }), "act chain is deeper")
}

func TestGroupsAndClientIDClaims(t *testing.T) {
	is := identitytest.New(t)
	cases := []struct {
		name       string
		cfg        func(*identity.IssuerConfig)
		claims     map[string]any
		wantGroups string
		wantClient string
	}{
		{"default array", nil, map[string]any{"groups": []string{"a", "b"}}, "a|b", ""},
		{"space string", nil, map[string]any{"groups": "a b  c"}, "a|b|c", ""},
		{"comma string", nil, map[string]any{"groups": "a,b, c"}, "a|b|c", ""},
		{"custom claim", func(c *identity.IssuerConfig) { c.GroupsClaim = "roles" }, map[string]any{"roles": []string{"dba"}, "groups": []string{"ignored"}}, "dba", ""},
		{"nested claim", func(c *identity.IssuerConfig) { c.GroupsClaim = "realm_access.roles" }, map[string]any{"realm_access": map[string]any{"roles": []string{"r1"}}}, "r1", ""},
		{"azp fallback", nil, map[string]any{"azp": "web"}, "", "web"},
		{"client_id before azp", nil, map[string]any{"azp": "web", "client_id": "cli"}, "", "cli"},
		{"custom client claim", func(c *identity.IssuerConfig) { c.ClientIDClaim = "cid" }, map[string]any{"cid": "okta-app", "client_id": "no"}, "", "okta-app"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, is, func(c *identity.IssuerConfig, _ *identity.Options) {
				if tc.cfg != nil {
					tc.cfg(c)
				}
			})
			p, err := v.Verify(context.Background(), is.Token("s", func(c map[string]any) {
				for k, val := range tc.claims {
					c[k] = val
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(p.Groups, "|"); got != tc.wantGroups {
				t.Errorf("groups = %q, want %q", got, tc.wantGroups)
			}
			if p.ClientID != tc.wantClient {
				t.Errorf("client id = %q, want %q", p.ClientID, tc.wantClient)
			}
		})
	}
}

func TestMultipleIssuers(t *testing.T) {
	a, b := identitytest.New(t), identitytest.New(t)
	v := identity.NewVerifier([]identity.IssuerConfig{
		{URL: a.URL, Audience: "gatehouse"},
		{URL: b.URL, Audience: "gatehouse"},
	}, identity.Options{HTTPClient: a.Client()})
	for _, is := range []*identitytest.Issuer{a, b} {
		p, err := v.Verify(context.Background(), is.Token("s"))
		if err != nil {
			t.Fatal(err)
		}
		if p.Issuer != is.URL {
			t.Fatalf("issuer = %q", p.Issuer)
		}
	}
	// b's token claiming to be from a, signed with b's key (kid collides): refused.
	forged := identitytest.SignWith(b.CurrentKey(), nil, a.Claims("s"))
	mustReject(t, v, forged, "signature is invalid")
}

func BenchmarkVerify(b *testing.B) {
	is := identitytest.New(b)
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			k := is.Rotate("bench-"+alg, alg)
			v := identity.NewVerifier([]identity.IssuerConfig{{URL: is.URL, Audience: "gatehouse"}}, identity.Options{HTTPClient: is.Client()})
			tok := identitytest.SignWith(k, nil, is.Claims("bench"))
			ctx := context.Background()
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// unsigned strips the signature, keeping the trailing dot.
func unsigned(tok string) string { return tok[:strings.LastIndex(tok, ".")+1] }

func TestJWKSWithUnusableKeys(t *testing.T) {
	is := identitytest.New(t)
	// A symmetric key must never become a verification key, and an unknown
	// key type must not break the rest of the set.
	is.PublishRaw(`{"kty":"oct","kid":"hmac","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}`)
	is.PublishRaw(`{"kty":"FUTURE","kid":"new"}`)
	v := newVerifier(t, is)
	if _, err := v.Verify(context.Background(), is.Token("s")); err != nil {
		t.Fatal(err)
	}
	// An RS256 token pointing at the oct key's kid finds no usable key.
	forged := identitytest.SignWith(is.CurrentKey(), map[string]any{"kid": "hmac"}, is.Claims("s"))
	mustReject(t, v, forged, `kid "hmac" is not in the JWKS`)
}

func TestConcurrentRotationFetchesOnce(t *testing.T) {
	is := identitytest.New(t)
	v := newVerifier(t, is)
	ctx := context.Background()
	if _, err := v.Verify(ctx, is.Token("s")); err != nil {
		t.Fatal(err)
	}
	is.Rotate("key-2", "ES256")
	tok := is.Token("s")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			if _, err := v.Verify(ctx, tok); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := is.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS fetched %d times for 16 concurrent tokens with a new kid; want 2", n)
	}
}
