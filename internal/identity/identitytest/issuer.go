// Package identitytest provides a test OIDC issuer: an httptest server on
// loopback that serves discovery and a JWKS, counts how often they are
// fetched, and mints any token a test wants, including broken ones (expired,
// wrong audience, bad signature, alg none, HS256 keyed with the RSA public
// key, unknown kid) and tokens signed after a key rotation.
//
// Signing is done by hand here rather than with go-jose, so that tokens a
// correct library would refuse to produce can still be made, and so that
// the verifier under test is checked against an independent implementation.
package identitytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is a signing key of the test issuer.
type Key struct {
	KID     string
	Alg     string // JWS alg this key signs with, e.g. "RS256"
	Private crypto.Signer
}

// Public returns the key's public half.
func (k *Key) Public() crypto.PublicKey { return k.Private.Public() }

// JWK returns the public JWK as published in the JWKS.
func (k *Key) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Public(), KeyID: k.KID, Algorithm: k.Alg, Use: "sig"}
}

// NewKey generates a key for alg ("RS256", "RS384", "RS512", "PS256",
// "ES256", "ES384", "EdDSA"). It panics on an unknown alg (test helper).
func NewKey(kid, alg string) *Key {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "RS256", "RS384", "RS512", "PS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		panic("identitytest: unknown alg " + alg)
	}
	if err != nil {
		panic(err)
	}
	return &Key{KID: kid, Alg: alg, Private: priv}
}

// Issuer is a test OIDC issuer.
type Issuer struct {
	URL      string // issuer identifier (the server's base URL)
	Audience string // audience put in default claims: "gatehouse"

	srv *httptest.Server

	mu              sync.Mutex
	published       []*Key // keys in the JWKS
	current         *Key   // key Sign uses
	discoveryIssuer string // issuer named in the discovery document; defaults to URL
	down            bool   // serve 503 for everything
	rawJWKs         []json.RawMessage

	jwksFetches      atomic.Int64
	discoveryFetches atomic.Int64
}

// New starts an issuer with one RS256 key (kid "key-1"); it is closed when
// the test ends.
func New(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{Audience: "gatehouse"}
	is.srv = httptest.NewServer(http.HandlerFunc(is.serve))
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	k := NewKey("key-1", "RS256")
	is.published = []*Key{k}
	is.current = k
	return is
}

// Client returns an HTTP client for the issuer's server.
func (is *Issuer) Client() *http.Client { return is.srv.Client() }

func (is *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	is.mu.Lock()
	down := is.down
	discIss := is.discoveryIssuer
	keys := append([]*Key(nil), is.published...)
	raw := append([]json.RawMessage(nil), is.rawJWKs...)
	is.mu.Unlock()
	if down {
		http.Error(w, "issuer down", http.StatusServiceUnavailable)
		return
	}
	if discIss == "" {
		discIss = is.URL
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		is.discoveryFetches.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                discIss,
			"jwks_uri":                              is.URL + "/keys",
			"token_endpoint":                        is.URL + "/token",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "EdDSA"},
		})
	case "/keys":
		is.jwksFetches.Add(1)
		var set struct {
			Keys []any `json:"keys"`
		}
		for _, k := range keys {
			set.Keys = append(set.Keys, k.JWK())
		}
		for _, r := range raw {
			set.Keys = append(set.Keys, r)
		}
		_ = json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

// JWKSFetches reports how many times the JWKS was served.
func (is *Issuer) JWKSFetches() int { return int(is.jwksFetches.Load()) }

// DiscoveryFetches reports how many times the discovery document was served.
func (is *Issuer) DiscoveryFetches() int { return int(is.discoveryFetches.Load()) }

// SetDown makes the server answer 503 to everything (an IdP outage).
func (is *Issuer) SetDown(down bool) {
	is.mu.Lock()
	is.down = down
	is.mu.Unlock()
}

// SetDiscoveryIssuer makes the discovery document name another issuer.
func (is *Issuer) SetDiscoveryIssuer(iss string) {
	is.mu.Lock()
	is.discoveryIssuer = iss
	is.mu.Unlock()
}

// CurrentKey returns the key Sign uses.
func (is *Issuer) CurrentKey() *Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.current
}

// Publish adds k to the JWKS without making it current.
func (is *Issuer) Publish(k *Key) {
	is.mu.Lock()
	is.published = append(is.published, k)
	is.mu.Unlock()
}

// PublishRaw adds a JWK given as raw JSON (e.g. a symmetric "oct" key or an
// unknown kty) to the JWKS.
func (is *Issuer) PublishRaw(jwk string) {
	is.mu.Lock()
	is.rawJWKs = append(is.rawJWKs, json.RawMessage(jwk))
	is.mu.Unlock()
}

// Rotate generates a key, publishes it and makes it current; the old keys
// stay published (as real IdPs do during rotation).
func (is *Issuer) Rotate(kid, alg string) *Key {
	k := NewKey(kid, alg)
	is.mu.Lock()
	is.published = append(is.published, k)
	is.current = k
	is.mu.Unlock()
	return k
}

// Claims returns valid claims for sub: iss, sub, aud, iat, nbf, exp (1h).
func (is *Issuer) Claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": is.URL,
		"sub": sub,
		"aud": is.Audience,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

// Token returns a valid token for sub, after letting edit change the claims.
func (is *Issuer) Token(sub string, edit ...func(map[string]any)) string {
	c := is.Claims(sub)
	for _, e := range edit {
		e(c)
	}
	return is.Sign(c)
}

// Sign signs claims with the current key.
func (is *Issuer) Sign(claims map[string]any) string {
	return SignWith(is.CurrentKey(), nil, claims)
}

// SignWith signs claims with k using k.Alg, the header {"alg", "kid", "typ"}
// plus extra (which may override them, e.g. a lying alg or kid).
func SignWith(k *Key, extra map[string]any, claims map[string]any) string {
	hdr := map[string]any{"alg": k.Alg, "kid": k.KID, "typ": "JWT"}
	for n, v := range extra {
		if v == nil {
			delete(hdr, n)
		} else {
			hdr[n] = v
		}
	}
	input := encodeSegment(hdr) + "." + encodeSegment(claims)
	return input + "." + b64(sign(k, k.Alg, []byte(input)))
}

// SignNone returns an unsigned token (alg none, empty signature).
func SignNone(claims map[string]any) string {
	return encodeSegment(map[string]any{"alg": "none", "typ": "JWT"}) + "." + encodeSegment(claims) + "."
}

// SignHS256WithPublicKey mounts the algorithm-confusion attack: an HS256
// token whose HMAC secret is the PEM (or DER, with der=true) encoding of the
// issuer's RSA public key, with the kid of that key.
func SignHS256WithPublicKey(k *Key, claims map[string]any, der bool) string {
	pubDER, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		panic(err)
	}
	secret := pubDER
	if !der {
		secret = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	}
	input := encodeSegment(map[string]any{"alg": "HS256", "kid": k.KID, "typ": "JWT"}) + "." + encodeSegment(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

// SignBadSignature returns a token from the current key whose signature has
// been altered.
func (is *Issuer) SignBadSignature(claims map[string]any) string {
	k := is.CurrentKey()
	hdr := encodeSegment(map[string]any{"alg": k.Alg, "kid": k.KID, "typ": "JWT"})
	input := hdr + "." + encodeSegment(claims)
	sig := sign(k, k.Alg, []byte(input))
	sig[len(sig)/2] ^= 0x55
	return input + "." + b64(sig)
}

// SignUnknownKid signs with a fresh key that is not published.
func (is *Issuer) SignUnknownKid(claims map[string]any) string {
	return SignWith(NewKey("unpublished", "ES256"), nil, claims)
}

func encodeSegment(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b64(b)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sign produces a JWS signature (RFC 7518 §3) over input.
func sign(k *Key, alg string, input []byte) []byte {
	var h crypto.Hash
	var hf func() hash.Hash
	switch alg {
	case "RS256", "PS256", "ES256":
		h, hf = crypto.SHA256, sha256.New
	case "RS384", "ES384":
		h, hf = crypto.SHA384, sha512.New384
	case "RS512":
		h, hf = crypto.SHA512, sha512.New
	case "EdDSA":
		return ed25519.Sign(k.Private.(ed25519.PrivateKey), input)
	default:
		panic("identitytest: cannot sign alg " + alg)
	}
	d := hf()
	d.Write(input)
	digest := d.Sum(nil)
	switch priv := k.Private.(type) {
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if alg == "PS256" {
			sig, err = rsa.SignPSS(rand.Reader, priv, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, priv, h, digest)
		}
		if err != nil {
			panic(err)
		}
		return sig
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest)
		if err != nil {
			panic(err)
		}
		// RFC 7518 §3.4: R and S as fixed-width big-endian integers.
		size := (priv.Curve.Params().BitSize + 7) / 8
		return append(pad(r, size), pad(s, size)...)
	}
	panic(fmt.Sprintf("identitytest: key %T cannot sign %s", k.Private, alg))
}

func pad(n *big.Int, size int) []byte {
	out := make([]byte, size)
	return n.FillBytes(out)
}
