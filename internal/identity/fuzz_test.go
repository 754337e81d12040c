package identity_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/identity"
	"github.com/gatehouse/gatehouse/internal/identity/identitytest"
)

// FuzzVerify feeds mutated tokens to Verify. It must never panic, and it must
// never accept a token whose content was not signed by the issuer: the seeds
// include valid tokens so the fuzzer works near the accept path, and any
// accepted input must decode to exactly a payload the issuer signed (base64
// re-encodings of a signed token are the same token).
func FuzzVerify(f *testing.F) {
	is := identitytest.New(f)
	v := identity.NewVerifier([]identity.IssuerConfig{{URL: is.URL, Audience: "gatehouse"}},
		identity.Options{HTTPClient: is.Client(), MinRefreshInterval: 24 * time.Hour})

	var signed [][]byte
	add := func(tok string) {
		if _, err := v.Verify(context.Background(), tok); err == nil {
			parts := strings.Split(tok, ".")
			p, _ := base64.RawURLEncoding.DecodeString(parts[1])
			signed = append(signed, p)
		}
		f.Add(tok)
	}
	rsa := is.CurrentKey()
	es := is.Rotate("es", "ES256")
	add(identitytest.SignWith(rsa, nil, is.Claims("a")))
	add(identitytest.SignWith(es, nil, is.Claims("b")))
	add(is.Token("c", func(c map[string]any) {
		c["groups"] = "x,y"
		c["act"] = map[string]any{"sub": "d", "act": map[string]any{"sub": "e"}}
	}))
	add(is.Token("late", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))
	add(identitytest.SignNone(is.Claims("n")))
	add(identitytest.SignHS256WithPublicKey(rsa, is.Claims("h"), false))
	add(is.SignBadSignature(is.Claims("bad")))
	add(identitytest.SignWith(es, map[string]any{"kid": rsa.KID}, is.Claims("mix")))
	add(is.SignUnknownKid(is.Claims("u")))
	add("a.b.c.d.e")
	add(`{"payload":"e30","signatures":[]}`)
	add("")
	add("..")
	if len(signed) != 3 {
		f.Fatalf("%d seeds verified, want 3", len(signed))
	}

	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(context.Background(), tok)
		if err == nil {
			if p == nil || p.Subject == "" {
				t.Fatalf("accepted with empty principal")
			}
			parts := strings.Split(tok, ".")
			payload, derr := base64.RawURLEncoding.DecodeString(parts[1])
			for _, s := range signed {
				if derr == nil && bytes.Equal(payload, s) {
					return
				}
			}
			t.Fatalf("accepted a token the issuer never signed")
		}
	})
}
