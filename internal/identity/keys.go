package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxDocSize bounds discovery documents and JWKS bodies.
const maxDocSize = 1 << 20

// issuer holds one issuer's configuration and key cache.
type issuer struct {
	cfg    IssuerConfig
	static func() jose.JSONWebKeySet // non-nil for in-process issuers: no HTTP at all
	opts   *Options

	// fetchMu serialises network fetches so a burst of tokens with the same
	// new kid causes one JWKS fetch, not one per token.
	fetchMu sync.Mutex

	mu          sync.RWMutex
	jwksURI     string            // from discovery; "" until discovery succeeded
	keys        []jose.JSONWebKey // last fetched JWKS (public keys only)
	loaded      bool              // keys were fetched at least once
	lastRefresh time.Time         // last refresh for an unknown kid, for the rate limit
	lastFail    time.Time         // last failed discovery/JWKS attempt
	failErr     error             // why it failed, reported while backing off
}

func newIssuer(cfg IssuerConfig, static func() jose.JSONWebKeySet, opts *Options) *issuer {
	return &issuer{cfg: cfg, static: static, opts: opts}
}

// retryInterval is how long a failed discovery or JWKS fetch is remembered
// before the next token retries it: short, so an IdP that comes back is
// noticed quickly, but enough that a flood of tokens is not a flood of
// fetches.
func (is *issuer) retryInterval() time.Duration {
	return min(is.opts.MinRefreshInterval, 5*time.Second)
}

// verifySignature finds the key for the token's kid (refreshing the JWKS once,
// rate-limited, if the kid is unknown) and checks the signature.
func (is *issuer) verifySignature(ctx context.Context, jws *jose.JSONWebSignature, hdr header) ([]byte, error) {
	alg, _ := hdr.Alg.(string)
	keys, err := is.currentKeys(ctx)
	if err != nil {
		return nil, err
	}
	cands := matchKeys(keys, hdr.Kid)
	if len(cands) == 0 && is.static == nil {
		keys, err = is.refresh(ctx, hdr.Kid)
		if err != nil {
			return nil, err
		}
		cands = matchKeys(keys, hdr.Kid)
	}
	if len(cands) == 0 {
		return nil, tokenErr("signing key %s is not in the JWKS of issuer %s", describeKey(hdr.Kid), quoteClaim(is.cfg.URL))
	}
	var mismatch error
	for _, k := range cands {
		if err := keyFits(k, alg); err != nil {
			mismatch = err
			continue
		}
		payload, err := jws.Verify(k.Key)
		if err == nil {
			return payload, nil
		}
	}
	if mismatch != nil && len(cands) == 1 {
		return nil, mismatch
	}
	return nil, tokenErr("token signature is invalid (%s, alg %s)", describeKey(hdr.Kid), alg)
}

// matchKeys returns the keys a token with kid may be signed by. A token with
// no kid may be checked against every key (some IdPs publish one key and
// omit kid).
func matchKeys(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	if kid == "" {
		return keys
	}
	var out []jose.JSONWebKey
	for _, k := range keys {
		if k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out
}

// keyFits checks that a JWK may verify alg: the key type must match the
// algorithm family and, if the JWK pins alg or use, those must agree.
func keyFits(k jose.JSONWebKey, alg string) error {
	if k.Use != "" && k.Use != "sig" {
		return tokenErr("key %s is for %s, not signatures", describeKey(k.KeyID), quoteClaim(k.Use))
	}
	var ok bool
	var kind string
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		kind = "an RSA"
		ok = strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		kind = "an EC"
		switch alg {
		case "ES256":
			ok = pub.Curve.Params().Name == "P-256"
		case "ES384":
			ok = pub.Curve.Params().Name == "P-384"
		}
	case ed25519.PublicKey:
		kind = "an Ed25519"
		ok = alg == "EdDSA"
	default:
		kind = fmt.Sprintf("a %T", k.Key)
	}
	if !ok {
		return tokenErr("key %s is %s key, which cannot verify alg %s", describeKey(k.KeyID), kind, alg)
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return tokenErr("key %s is for alg %s, but the token uses %s", describeKey(k.KeyID), k.Algorithm, alg)
	}
	return nil
}

// currentKeys returns the cached keys, fetching them the first time (and
// retrying after a failure once retryInterval has passed).
func (is *issuer) currentKeys(ctx context.Context) ([]jose.JSONWebKey, error) {
	if is.static != nil {
		return publicKeys(is.static().Keys), nil
	}
	is.mu.RLock()
	keys, loaded := is.keys, is.loaded
	is.mu.RUnlock()
	if loaded {
		return keys, nil
	}
	is.fetchMu.Lock()
	defer is.fetchMu.Unlock()
	is.mu.RLock()
	keys, loaded = is.keys, is.loaded
	failed, failErr := is.lastFail, is.failErr
	is.mu.RUnlock()
	if loaded {
		return keys, nil
	}
	if failErr != nil && is.opts.Now().Sub(failed) < is.retryInterval() {
		return nil, failErr
	}
	return is.fetchLocked(ctx)
}

// refresh re-fetches the JWKS because kid was not found, unless a fetch
// happened less than MinRefreshInterval ago.
func (is *issuer) refresh(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	is.fetchMu.Lock()
	defer is.fetchMu.Unlock()
	is.mu.RLock()
	keys, last := is.keys, is.lastRefresh
	is.mu.RUnlock()
	// Another token may have refreshed while we waited for fetchMu.
	if len(matchKeys(keys, kid)) > 0 {
		return keys, nil
	}
	now := is.opts.Now()
	if !last.IsZero() && now.Sub(last) < is.opts.MinRefreshInterval {
		return keys, nil
	}
	// The initial load does not count against the limit: a key rotated
	// just after the gateway started must still be picked up at once.
	is.mu.Lock()
	is.lastRefresh = now
	is.mu.Unlock()
	ks, err := is.fetchLocked(ctx)
	if err != nil {
		// Keep verifying with the keys we have; report the fetch failure.
		return keys, err
	}
	return ks, nil
}

// fetchLocked runs discovery (if not yet done) and fetches the JWKS. The
// caller holds fetchMu.
func (is *issuer) fetchLocked(ctx context.Context) ([]jose.JSONWebKey, error) {
	now := is.opts.Now()
	is.mu.RLock()
	uri := is.jwksURI
	is.mu.RUnlock()

	fail := func(format string, args ...any) ([]jose.JSONWebKey, error) {
		err := &TokenError{
			Reason: fmt.Sprintf("cannot check token: issuer %s is unavailable: ", quoteClaim(is.cfg.URL)) + fmt.Sprintf(format, args...),
			Err:    ErrIssuerUnavailable,
		}
		// A caller that gave up (cancelled ctx) says nothing about the
		// issuer: do not make other tokens wait out a back-off for it.
		if ctx.Err() == nil {
			is.mu.Lock()
			is.lastFail, is.failErr = now, err
			is.mu.Unlock()
		}
		return nil, err
	}

	if uri == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		discURL := strings.TrimSuffix(is.cfg.URL, "/") + "/.well-known/openid-configuration"
		if err := is.getJSON(ctx, discURL, &doc); err != nil {
			return fail("discovery failed: %v", err)
		}
		// OpenID Connect Discovery 1.0 §4.3: the issuer in the document
		// must be identical to the one used to find it.
		if doc.Issuer != is.cfg.URL {
			return fail("discovery document names issuer %s, not %s", quoteClaim(doc.Issuer), quoteClaim(is.cfg.URL))
		}
		if doc.JWKSURI == "" {
			return fail("discovery document has no jwks_uri")
		}
		uri = doc.JWKSURI
		is.mu.Lock()
		is.jwksURI = uri
		is.mu.Unlock()
	}

	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := is.getJSON(ctx, uri, &raw); err != nil {
		return fail("JWKS fetch failed: %v", err)
	}
	// Parse keys one by one and skip those we cannot use, so one exotic key
	// (a new kty, an encryption key) does not break the whole issuer.
	keys := make([]jose.JSONWebKey, 0, len(raw.Keys))
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil || k.Key == nil {
			continue
		}
		keys = append(keys, k)
	}
	keys = publicKeys(keys)
	is.mu.Lock()
	is.keys, is.loaded, is.failErr = keys, true, nil
	is.mu.Unlock()
	return keys, nil
}

// publicKeys drops symmetric keys and reduces private keys to public ones, so
// nothing but an asymmetric public key ever reaches jws.Verify.
func publicKeys(in []jose.JSONWebKey) []jose.JSONWebKey {
	out := make([]jose.JSONWebKey, 0, len(in))
	for _, k := range in {
		if !k.IsPublic() {
			k = k.Public()
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			out = append(out, k)
		}
	}
	return out
}

func (is *issuer) getJSON(ctx context.Context, url string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := is.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocSize+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxDocSize {
		return fmt.Errorf("GET %s: response larger than %d bytes", url, maxDocSize)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: invalid JSON: %w", url, err)
	}
	return nil
}
