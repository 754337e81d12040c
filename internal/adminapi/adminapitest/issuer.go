package adminapitest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse/gatehouse/internal/access"
)

// Issuer signs Ed25519 JWTs and verifies them, like a tiny OIDC issuer
// without discovery. Its Handler serves the dev issuer's token endpoint
// (POST /oauth2/token) so CLI tests can fetch tokens over HTTP.
type Issuer struct {
	URL  string // iss claim
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	sig  jose.Signer
}

type tokenClaims struct {
	jwt.Claims
	Groups   []string `json:"groups,omitempty"`
	ClientID string   `json:"client_id,omitempty"`
}

// NewIssuer returns an issuer with a fresh key.
func NewIssuer(url string) (*Issuer, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), issuerKID))
	if err != nil {
		return nil, err
	}
	return &Issuer{URL: url, priv: priv, pub: pub, sig: sig}, nil
}

const issuerKID = "adminapitest-1"

// JWKS returns the issuer's public key set, for identity.Verifier's
// AddStaticIssuer (so tests can run the real verifier on these tokens).
func (i *Issuer) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: i.pub, KeyID: issuerKID, Algorithm: string(jose.EdDSA), Use: "sig"}}}
}

// Token signs a token for subject with groups, valid for ttl (ttl <= 0 gives
// an already expired token).
func (i *Issuer) Token(subject string, groups []string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := tokenClaims{
		Claims: jwt.Claims{
			Issuer: i.URL, Subject: subject, Audience: jwt.Audience{"gatehouse"},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			Expiry: jwt.NewNumericDate(now.Add(ttl)),
		},
		Groups: groups, ClientID: subject,
	}
	return jwt.Signed(i.sig).Claims(c).Serialize()
}

// Verify checks signature, issuer, audience and expiry.
func (i *Issuer) Verify(ctx context.Context, token string) (*access.Principal, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return nil, errors.New("token is not a well-formed JWT")
	}
	var c tokenClaims
	if err := tok.Claims(i.pub, &c); err != nil {
		return nil, errors.New("token signature does not verify")
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: i.URL, AnyAudience: jwt.Audience{"gatehouse"}, Time: time.Now()}, 30*time.Second); err != nil {
		return nil, fmt.Errorf("token claims are invalid: %w", err)
	}
	return &access.Principal{
		Issuer: c.Issuer, Subject: c.Subject, Groups: c.Groups, ClientID: c.ClientID,
		Expiry: c.Expiry.Time(),
	}, nil
}

// Handler serves POST /oauth2/token with the form the dev issuer takes:
// grant_type=client_credentials, client_id, subject, groups (space
// separated) and ttl (a Go duration).
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"unsupported_grant_type"}`))
			return
		}
		sub := r.PostForm.Get("subject")
		if sub == "" {
			sub = r.PostForm.Get("client_id")
		}
		ttl := time.Hour
		if v := r.PostForm.Get("ttl"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":"invalid_request","error_description":"bad ttl"}`))
				return
			}
			ttl = d
		}
		tok, err := i.Token(sub, strings.Fields(r.PostForm.Get("groups")), ttl)
		if err != nil {
			http.Error(w, "sign failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds()),
		})
	})
	return mux
}
