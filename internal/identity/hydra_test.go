package identity_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/identity"
	"github.com/gatehouse/gatehouse/internal/identity/hydratest"
)

// TestHydraInterop checks the verifier against a real, independently written
// OIDC issuer (Ory Hydra with JWT access tokens): discovery, JWKS fetch over
// HTTP, Hydra's claim layout, and refusals for the wrong audience and for
// tampered tokens. Hydra copies its configured issuer verbatim into iss and
// discovery, and operators write it with or without a trailing slash, so both
// forms are exercised.
func TestHydraInterop(t *testing.T) {
	t.Run("issuer with trailing slash", func(t *testing.T) {
		testHydraInterop(t, hydratest.Start(t))
	})
	t.Run("issuer without trailing slash", func(t *testing.T) {
		testHydraInterop(t, hydratest.StartWith(t, hydratest.Options{NoTrailingSlash: true}))
	})
}

func testHydraInterop(t *testing.T, h *hydratest.Hydra) {
	// The client may ask for either audience, so the refusal below is the
	// verifier's doing, not Hydra's.
	id, secret := h.CreateClient(t, []string{"gatehouse", "other-service"})

	// The verifier is configured with the issuer exactly as Hydra was, which
	// is what its discovery document and iss claim carry.
	v := identity.NewVerifier([]identity.IssuerConfig{{URL: h.Issuer, Audience: "gatehouse"}}, identity.Options{})
	ctx := context.Background()

	t.Run("accepted", func(t *testing.T) {
		p, err := v.Verify(ctx, h.Token(t, id, secret, "gatehouse"))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		// For the client credentials grant Hydra sets sub to the client id
		// (there is no end user) and also sends it as client_id.
		if p.Subject != id {
			t.Errorf("Subject = %q, want the client id %q", p.Subject, id)
		}
		if p.ClientID != id {
			t.Errorf("ClientID = %q, want %q", p.ClientID, id)
		}
		if p.Issuer != h.Issuer {
			t.Errorf("Issuer = %q, want %q", p.Issuer, h.Issuer)
		}
		if p.Expiry.IsZero() {
			t.Error("Expiry not set from exp")
		}
	})

	t.Run("token for several audiences accepted", func(t *testing.T) {
		if _, err := v.Verify(ctx, h.Token(t, id, secret, "other-service gatehouse")); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})

	t.Run("other audience rejected", func(t *testing.T) {
		_, err := v.Verify(ctx, h.Token(t, id, secret, "other-service"))
		te := tokenError(t, err)
		if !strings.Contains(te.Reason, "audience") || !strings.Contains(te.Reason, `"gatehouse"`) {
			t.Errorf("reason %q does not explain the audience mismatch", te.Reason)
		}
	})

	t.Run("no audience rejected", func(t *testing.T) {
		_, err := v.Verify(ctx, h.Token(t, id, secret, ""))
		te := tokenError(t, err)
		if !strings.Contains(te.Reason, "aud") {
			t.Errorf("reason %q does not mention the audience", te.Reason)
		}
	})

	t.Run("tampered payload rejected", func(t *testing.T) {
		tok := h.Token(t, id, secret, "gatehouse")
		parts := strings.Split(tok, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		// Claim to be someone else, keeping Hydra's signature.
		forged := strings.Replace(string(payload), `"sub":"`+id+`"`, `"sub":"admin"`, 1)
		if forged == string(payload) {
			t.Fatalf("token payload has no sub claim equal to the client id")
		}
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(forged))
		_, err = v.Verify(ctx, strings.Join(parts, "."))
		te := tokenError(t, err)
		if !strings.Contains(te.Reason, "signature") {
			t.Errorf("reason %q does not mention the signature", te.Reason)
		}
	})

	t.Run("tampered signature rejected", func(t *testing.T) {
		tok := h.Token(t, id, secret, "gatehouse")
		parts := strings.Split(tok, ".")
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			t.Fatal(err)
		}
		sig[len(sig)/2] ^= 0x01
		parts[2] = base64.RawURLEncoding.EncodeToString(sig)
		_, err = v.Verify(ctx, strings.Join(parts, "."))
		tokenError(t, err)
	})

	t.Run("issuer differing only by trailing slash rejected", func(t *testing.T) {
		// OIDC requires iss to match the configured issuer exactly, so this
		// misconfiguration is refused; the reason must name the token's
		// issuer so the operator can see what to configure.
		other := h.Issuer + "/"
		if strings.HasSuffix(h.Issuer, "/") {
			other = strings.TrimSuffix(h.Issuer, "/")
		}
		mis := identity.NewVerifier([]identity.IssuerConfig{{URL: other, Audience: "gatehouse"}}, identity.Options{})
		_, err := mis.Verify(ctx, h.Token(t, id, secret, "gatehouse"))
		te := tokenError(t, err)
		if !strings.Contains(te.Reason, `"`+h.Issuer+`"`) {
			t.Errorf("reason %q does not name the token's issuer %q", te.Reason, h.Issuer)
		}
	})

	t.Run("untrusted issuer rejected", func(t *testing.T) {
		other := identity.NewVerifier([]identity.IssuerConfig{{URL: "https://idp.example.test/", Audience: "gatehouse"}}, identity.Options{})
		_, err := other.Verify(ctx, h.Token(t, id, secret, "gatehouse"))
		te := tokenError(t, err)
		if !strings.Contains(te.Reason, "issuer") {
			t.Errorf("reason %q does not mention the issuer", te.Reason)
		}
	})
}

// tokenError asserts err is a *identity.TokenError about the token itself
// (not an unreachable issuer) and returns it.
func tokenError(t *testing.T, err error) *identity.TokenError {
	t.Helper()
	if err == nil {
		t.Fatal("Verify accepted the token")
	}
	var te *identity.TokenError
	if !errors.As(err, &te) {
		t.Fatalf("error %v is %T, want *identity.TokenError", err, err)
	}
	if te.Unavailable() {
		t.Fatalf("token refused because the issuer was unavailable, not because it is bad: %v", err)
	}
	// Reasons are client-safe by design (never the token), so show them.
	t.Logf("refused: %s", te.Reason)
	return te
}
