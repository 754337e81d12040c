// Package identity turns bearer tokens into verified principals. Verifier
// checks JWTs from configured OIDC issuers (discovery, JWKS cache with
// rate-limited refresh on unknown key ids, strict algorithm allow-list, iss,
// aud, exp/nbf/iat with skew) and maps their claims to an access.Principal.
// DevIssuer is a small OAuth2 client-credentials issuer the gateway serves so
// gatehouse can be tried without an identity provider.
//
// Errors about a token are *TokenError values whose Reason is safe to show a
// client; nothing in this package ever logs or returns the token itself.
package identity

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	jose "github.com/go-jose/go-jose/v4"
)

// IssuerConfig is one trusted token issuer.
type IssuerConfig struct {
	URL           string // issuer identifier; must equal the token's iss and the discovery document's issuer exactly
	Audience      string // required value in the token's aud (string or array)
	GroupsClaim   string // claim holding group names; "" means "groups"
	ClientIDClaim string // claim holding the OAuth client id; "" means client_id, then azp
}

// Options tune a Verifier. The zero value is usable.
type Options struct {
	Skew time.Duration // clock skew allowed for exp, nbf and iat; 0 means 30s
	// MinRefreshInterval is the least time between two JWKS fetches for one
	// issuer triggered by unknown key ids, so forged kids cannot make the
	// gateway hammer an IdP; 0 means 30s.
	MinRefreshInterval time.Duration
	HTTPClient         *http.Client     // for discovery and JWKS; nil means a client with a 10s timeout
	Now                func() time.Time // clock; nil means time.Now
}

// allowedAlgs is the signature allow-list. HMAC algorithms are absent on
// purpose: a verifier holding only public keys must never treat one as an
// HMAC secret (the classic RS256→HS256 confusion attack).
var allowedAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA,
}

// maxTokenSize bounds what Verify will even look at; real JWTs are a few KiB.
const maxTokenSize = 64 << 10

// Verifier verifies tokens from a fixed set of issuers. It is safe for
// concurrent use.
type Verifier struct {
	opts    Options
	mu      sync.RWMutex
	issuers map[string]*issuer // by exact issuer URL
}

// NewVerifier returns a Verifier for issuers. No network I/O happens here:
// discovery runs on the first token of each issuer and is retried on later
// tokens if it failed, so the gateway starts even when an IdP is down.
func NewVerifier(issuers []IssuerConfig, opts Options) *Verifier {
	if opts.Skew == 0 {
		opts.Skew = 30 * time.Second
	}
	if opts.MinRefreshInterval == 0 {
		opts.MinRefreshInterval = 30 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{opts: opts, issuers: make(map[string]*issuer)}
	for _, c := range issuers {
		v.issuers[c.URL] = newIssuer(normalize(c), nil, &v.opts)
	}
	return v
}

// AddStaticIssuer trusts an in-process issuer whose keys are known without
// HTTP (the dev issuer served by the gateway itself). keys is called for each
// token, so it may reflect rotation. It replaces any issuer with the same URL.
func (v *Verifier) AddStaticIssuer(cfg IssuerConfig, keys func() jose.JSONWebKeySet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.issuers[cfg.URL] = newIssuer(normalize(cfg), keys, &v.opts)
}

func normalize(c IssuerConfig) IssuerConfig {
	if c.GroupsClaim == "" {
		c.GroupsClaim = "groups"
	}
	return c
}

// Verify checks token and returns the principal it names. Any failure is a
// *TokenError whose Reason says what is wrong.
func (v *Verifier) Verify(ctx context.Context, token string) (*access.Principal, error) {
	hdr, unverifiedClaims, err := splitToken(token)
	if err != nil {
		return nil, err
	}
	if err := checkAlg(hdr.Alg); err != nil {
		return nil, err
	}
	if strings.HasSuffix(token, ".") {
		return nil, tokenErr("token has no signature")
	}
	var iss struct {
		Iss any `json:"iss"`
	}
	if err := json.Unmarshal(unverifiedClaims, &iss); err != nil {
		return nil, tokenErr("token payload is not a JSON object")
	}
	issStr, ok := iss.Iss.(string)
	if !ok || issStr == "" {
		return nil, tokenErr("token has no iss (issuer) claim")
	}
	v.mu.RLock()
	is, ok := v.issuers[issStr]
	v.mu.RUnlock()
	if !ok {
		// OIDC requires exact issuer matching (OpenID Connect Discovery
		// §4.3), but a trailing slash is the classic misconfiguration: say so.
		alt := strings.TrimSuffix(issStr, "/")
		if alt == issStr {
			alt += "/"
		}
		v.mu.RLock()
		_, near := v.issuers[alt]
		v.mu.RUnlock()
		if near {
			return nil, tokenErr("token issuer %s is not trusted by this gateway; a configured issuer differs only by a trailing slash (%s): make identity.issuers[].url match the token's iss exactly", quoteClaim(issStr), quoteClaim(alt))
		}
		return nil, tokenErr("token issuer %s is not trusted by this gateway", quoteClaim(issStr))
	}

	jws, err := jose.ParseSignedCompact(token, allowedAlgs)
	if err != nil {
		return nil, tokenErr("token is not a valid signed JWT: %s", safeJoseErr(err))
	}
	if len(jws.Signatures) != 1 {
		return nil, tokenErr("token must carry exactly one signature, it has %d", len(jws.Signatures))
	}
	// go-jose parses the header with its own JSON decoder; if it reads alg
	// or kid differently from us (duplicate keys), the header is ambiguous.
	if h := jws.Signatures[0].Header; string(h.Algorithm) != hdr.Alg.(string) || h.KeyID != hdr.Kid {
		return nil, tokenErr("token header is ambiguous (duplicate alg or kid)")
	}
	payload, err := is.verifySignature(ctx, jws, hdr)
	if err != nil {
		return nil, err
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(is.cfg, claims); err != nil {
		return nil, err
	}
	return toPrincipal(is.cfg, claims)
}

// header is the part of the JOSE header Verify looks at before parsing.
type header struct {
	Alg any    `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// splitToken does the cheap structural checks and returns the decoded header
// and the unverified payload (used only to pick the issuer).
func splitToken(token string) (header, []byte, error) {
	var h header
	switch {
	case token == "":
		return h, nil, tokenErr("token is empty")
	case len(token) > maxTokenSize:
		return h, nil, tokenErr("token is too large (%d bytes, at most %d)", len(token), maxTokenSize)
	case strings.HasPrefix(token, "{"):
		return h, nil, tokenErr("JSON-serialized JWS is not accepted; send a compact JWT")
	}
	parts := strings.Split(token, ".")
	switch len(parts) {
	case 3:
	case 5:
		return h, nil, tokenErr("token is encrypted (JWE); only signed JWTs are accepted")
	default:
		return h, nil, tokenErr("token is not a JWT (expected 3 dot-separated parts, got %d)", len(parts))
	}
	rawHdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return h, nil, tokenErr("token header is not valid base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(rawHdr))
	if err := dec.Decode(&h); err != nil {
		return h, nil, tokenErr("token header is not a JSON object")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return h, nil, tokenErr("token payload is not valid base64url")
	}
	return h, payload, nil
}

// checkAlg gives each refused algorithm its own reason; go-jose would refuse
// them too, but with a less useful message.
func checkAlg(raw any) error {
	alg, ok := raw.(string)
	if !ok || alg == "" {
		return tokenErr("token header has no alg (signature algorithm)")
	}
	switch {
	case strings.EqualFold(alg, "none"):
		return tokenErr("unsigned token (alg none) is not accepted")
	case strings.HasPrefix(strings.ToUpper(alg), "HS"):
		return tokenErr("HMAC-signed token (alg %s) is not accepted; issuers must sign with an asymmetric key", quoteClaim(alg))
	}
	for _, a := range allowedAlgs {
		if string(a) == alg {
			return nil
		}
	}
	return tokenErr("signature algorithm %s is not allowed (allowed: RS256, RS384, RS512, PS256, ES256, ES384, EdDSA)", quoteClaim(alg))
}

// safeJoseErr keeps go-jose's parse errors (which describe structure, never
// echo the token) but strips its package prefix.
func safeJoseErr(err error) string {
	return strings.TrimPrefix(err.Error(), "go-jose/go-jose: ")
}

func (v *Verifier) checkClaims(cfg IssuerConfig, c map[string]any) error {
	now := v.opts.Now()
	skew := v.opts.Skew

	if iss, _ := c["iss"].(string); iss != cfg.URL {
		// Unreachable unless the signed payload differs from what we parsed
		// unverified; checked anyway so correctness never rests on that.
		return tokenErr("token issuer %s does not match %s", quoteClaim(iss), quoteClaim(cfg.URL))
	}
	if err := checkAudience(c["aud"], cfg.Audience); err != nil {
		return err
	}
	exp, ok, err := numericDate(c, "exp")
	if err != nil {
		return err
	}
	if !ok {
		return tokenErr("token has no exp (expiry) claim")
	}
	if !now.Before(exp.Add(skew)) {
		return tokenErr("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	nbf, ok, err := numericDate(c, "nbf")
	if err != nil {
		return err
	}
	if ok && now.Add(skew).Before(nbf) {
		return tokenErr("token is not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	iat, ok, err := numericDate(c, "iat")
	if err != nil {
		return err
	}
	if ok && now.Add(skew).Before(iat) {
		return tokenErr("token was issued in the future (iat %s)", iat.UTC().Format(time.RFC3339))
	}
	return nil
}

func checkAudience(raw any, want string) error {
	switch aud := raw.(type) {
	case nil:
		return tokenErr("token has no aud (audience) claim; expected %s", quoteClaim(want))
	case string:
		if aud == want {
			return nil
		}
		return tokenErr("token audience %s does not include %s", quoteClaim(aud), quoteClaim(want))
	case []any:
		got := make([]string, 0, len(aud))
		for _, a := range aud {
			s, ok := a.(string)
			if !ok {
				return tokenErr("token aud claim must be a string or an array of strings")
			}
			if s == want {
				return nil
			}
			got = append(got, s)
		}
		return tokenErr("token audience %s does not include %s", quoteClaim(strings.Join(got, ", ")), quoteClaim(want))
	}
	return tokenErr("token aud claim must be a string or an array of strings")
}

// numericDate reads an RFC 7519 NumericDate (seconds since the epoch, may be
// fractional).
func numericDate(c map[string]any, name string) (time.Time, bool, error) {
	raw, ok := c[name]
	if !ok || raw == nil {
		return time.Time{}, false, nil
	}
	n, ok := raw.(json.Number)
	if !ok {
		return time.Time{}, false, tokenErr("token %s claim must be a number (seconds since 1970)", name)
	}
	f, err := n.Float64()
	// Bound to years 0..9999-ish so time arithmetic cannot overflow.
	if err != nil || f < -62135596800 || f > 253402300799 {
		return time.Time{}, false, tokenErr("token %s claim is out of range", name)
	}
	sec := int64(f)
	nsec := int64((f - float64(sec)) * 1e9)
	return time.Unix(sec, nsec), true, nil
}

// decodeClaims parses the verified payload, keeping numbers exact.
func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var c map[string]any
	if err := dec.Decode(&c); err != nil || c == nil {
		return nil, tokenErr("token payload is not a JSON object")
	}
	if dec.More() {
		return nil, tokenErr("token payload has trailing data")
	}
	return c, nil
}

// describeKey names a key for error messages.
func describeKey(kid string) string {
	if kid == "" {
		return "(no kid)"
	}
	return fmt.Sprintf("kid %s", quoteClaim(kid))
}
