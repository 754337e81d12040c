package hydratest_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/identity/hydratest"
)

// TestStartIssuesJWT checks the harness end to end: Hydra starts, a client is
// registered, and the client credentials grant yields a JWT access token whose
// claims are what the interop tests rely on.
func TestStartIssuesJWT(t *testing.T) {
	h := hydratest.Start(t)
	id, secret := h.CreateClient(t, []string{"gatehouse", "other"})
	tok := h.Token(t, id, secret, "gatehouse")

	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token has %d dot-separated parts, want 3 (JWT strategy not in effect?)", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	var claims struct {
		Iss      string   `json:"iss"`
		Sub      string   `json:"sub"`
		Aud      []string `json:"aud"`
		ClientID string   `json:"client_id"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("unmarshal claims: %v", err)
	}
	if claims.Iss != h.Issuer {
		t.Errorf("iss = %q, want %q", claims.Iss, h.Issuer)
	}
	if claims.Sub != id || claims.ClientID != id {
		t.Errorf("sub = %q, client_id = %q, want both %q", claims.Sub, claims.ClientID, id)
	}
	if len(claims.Aud) != 1 || claims.Aud[0] != "gatehouse" {
		t.Errorf("aud = %q, want [gatehouse]", claims.Aud)
	}
}
