package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DevClient is a client the dev issuer knows. Its tokens have subject = ID
// and the configured groups.
type DevClient struct {
	ID     string
	Secret string // required; compared in constant time
	Groups []string
}

// DevOptions configure a DevIssuer.
type DevOptions struct {
	Audience   string        // aud of issued tokens; "" means "gatehouse"
	Clients    []DevClient   // configured clients
	MaxTTL     time.Duration // longest lifetime a caller may ask for; 0 means 24h
	DefaultTTL time.Duration // lifetime when none is asked for; 0 means 1h
	Now        func() time.Time
}

// DevIssuer is a minimal OIDC issuer for trying gatehouse out: discovery,
// JWKS and an OAuth2 client-credentials token endpoint (RFC 6749 §4.4). It is
// an http.Handler meant to be mounted under the issuer URL's path (e.g.
// "/dev"); it accepts paths with or without that prefix.
//
// Besides configured clients, a caller on a loopback address may name any
// unconfigured client id and get a token without a secret, choosing subject,
// groups and ttl with extra form parameters. That is what `gatehouse token`
// uses. Behind a reverse proxy on the same host every caller looks local, so
// the dev issuer must not be enabled on an exposed gateway.
type DevIssuer struct {
	issuer  string
	prefix  string // path of the issuer URL, stripped from request paths
	opts    DevOptions
	clients map[string]DevClient
	alg     jose.SignatureAlgorithm
	jwk     jose.JSONWebKey // public
	signer  jose.Signer
}

// NewDevIssuer returns a dev issuer that signs with key (ECDSA P-256/P-384,
// Ed25519 or RSA). A nil key means a fresh ES256 key that lives as long as
// the process; use LoadOrCreateDevKey to keep tokens valid across restarts.
func NewDevIssuer(issuerURL string, key crypto.Signer, opts DevOptions) (*DevIssuer, error) {
	if opts.Audience == "" {
		opts.Audience = "gatehouse"
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = 24 * time.Hour
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = time.Hour
	}
	opts.DefaultTTL = min(opts.DefaultTTL, opts.MaxTTL)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	u, err := url.Parse(issuerURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("dev issuer: issuer URL %q is not an absolute URL", issuerURL)
	}
	if key == nil {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
	}
	alg, err := algFor(key)
	if err != nil {
		return nil, err
	}
	pub := jose.JSONWebKey{Key: key.Public(), Algorithm: string(alg), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	// RFC 7638 thumbprint as kid: stable for a given key, changes with it.
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: pub.KeyID, Algorithm: string(alg)}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	d := &DevIssuer{
		issuer:  strings.TrimSuffix(issuerURL, "/"),
		prefix:  strings.TrimSuffix(u.Path, "/"),
		opts:    opts,
		clients: make(map[string]DevClient, len(opts.Clients)),
		alg:     alg,
		jwk:     pub,
		signer:  signer,
	}
	for _, c := range opts.Clients {
		if c.ID == "" || c.Secret == "" {
			return nil, fmt.Errorf("dev issuer: client %q needs both an id and a secret", c.ID)
		}
		if _, dup := d.clients[c.ID]; dup {
			return nil, fmt.Errorf("dev issuer: client %q is configured twice", c.ID)
		}
		d.clients[c.ID] = c
	}
	return d, nil
}

func algFor(key crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		}
		return "", fmt.Errorf("dev issuer: unsupported EC curve %s", k.Curve.Params().Name)
	case ed25519.PrivateKey:
		return jose.EdDSA, nil
	case *rsa.PrivateKey:
		return jose.RS256, nil
	}
	return "", fmt.Errorf("dev issuer: unsupported key type %T", key)
}

// Issuer returns the issuer URL tokens carry in iss.
func (d *DevIssuer) Issuer() string { return d.issuer }

// Config returns the IssuerConfig a Verifier needs to trust this issuer.
func (d *DevIssuer) Config() IssuerConfig {
	return IssuerConfig{URL: d.issuer, Audience: d.opts.Audience}
}

// Keys returns the public signing keys (for Verifier.AddStaticIssuer).
func (d *DevIssuer) Keys() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{d.jwk}}
}

// ServeHTTP serves discovery, the JWKS and the token endpoint.
func (d *DevIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if d.prefix != "" && strings.HasPrefix(p, d.prefix+"/") {
		p = strings.TrimPrefix(p, d.prefix)
	}
	switch p {
	case "/.well-known/openid-configuration":
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                d.issuer,
			"jwks_uri":                              d.issuer + "/jwks.json",
			"token_endpoint":                        d.issuer + "/oauth2/token",
			"grant_types_supported":                 []string{"client_credentials"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
			"response_types_supported":              []string{"token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{string(d.alg)},
		})
	case "/jwks.json":
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		writeJSON(w, http.StatusOK, d.Keys())
	case "/oauth2/token":
		if !allowMethods(w, r, http.MethodPost) {
			return
		}
		d.serveToken(w, r)
	default:
		http.NotFound(w, r)
	}
}

func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// OAuthError is an RFC 6749 §5.2 error response.
type OAuthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	status      int
	basic       bool // client tried HTTP Basic: answer 401 with a challenge
}

func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

func oauthErr(status int, code, format string, args ...any) *OAuthError {
	return &OAuthError{Code: code, Description: fmt.Sprintf(format, args...), status: status}
}

// TokenRequest is a parsed client-credentials request.
type TokenRequest struct {
	GrantType    string
	ClientID     string
	ClientSecret string
	SecretGiven  bool   // a secret was sent (possibly empty)
	Basic        bool   // credentials came in an Authorization: Basic header
	Subject      string // dev-only parameters, for unconfigured loopback clients
	Groups       string
	TTL          string
}

// grant is what a token will say.
type grant struct {
	subject  string
	clientID string
	groups   []string
	ttl      time.Duration
}

func (d *DevIssuer) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		d.writeOAuthError(w, oauthErr(http.StatusBadRequest, "invalid_request", "request body is not a valid form"))
		return
	}
	req, oerr := parseTokenRequest(r)
	if oerr == nil {
		var g grant
		g, oerr = d.decide(req, r.RemoteAddr)
		if oerr == nil {
			tok, err := d.mint(g)
			if err != nil {
				d.writeOAuthError(w, oauthErr(http.StatusInternalServerError, "server_error", "could not sign the token"))
				return
			}
			w.Header().Set("Pragma", "no-cache")
			writeJSON(w, http.StatusOK, map[string]any{
				"access_token": tok,
				"token_type":   "Bearer",
				"expires_in":   int64(g.ttl / time.Second),
			})
			return
		}
	}
	oerr.basic = req.Basic
	d.writeOAuthError(w, oerr)
}

func (d *DevIssuer) writeOAuthError(w http.ResponseWriter, e *OAuthError) {
	if e.status == http.StatusUnauthorized && e.basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="gatehouse dev issuer"`)
	}
	writeJSON(w, e.status, e)
}

// parseTokenRequest reads the grant and the client credentials: HTTP Basic
// (RFC 6749 §2.3.1, form-urlencoded id and secret) or form parameters, not
// both.
func parseTokenRequest(r *http.Request) (TokenRequest, *OAuthError) {
	req := TokenRequest{
		GrantType: r.PostForm.Get("grant_type"),
		Subject:   r.PostForm.Get("subject"),
		Groups:    r.PostForm.Get("groups"),
		TTL:       r.PostForm.Get("ttl"),
	}
	if id, secret, ok := r.BasicAuth(); ok {
		if r.PostForm.Has("client_id") && r.PostForm.Get("client_id") != "" || r.PostForm.Has("client_secret") {
			return req, oauthErr(http.StatusBadRequest, "invalid_request", "send client credentials either by HTTP Basic or in the form, not both")
		}
		var err1, err2 error
		req.ClientID, err1 = url.QueryUnescape(id)
		req.ClientSecret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return req, oauthErr(http.StatusBadRequest, "invalid_request", "HTTP Basic credentials are not form-encoded")
		}
		req.SecretGiven, req.Basic = true, true
	} else {
		req.ClientID = r.PostForm.Get("client_id")
		req.ClientSecret = r.PostForm.Get("client_secret")
		req.SecretGiven = r.PostForm.Has("client_secret")
	}
	return req, nil
}

// decide is the whole authorization decision: which client, whether its
// credentials are good, and what the token will say. remoteAddr is the
// request's RemoteAddr (host:port); only a loopback address may use
// unconfigured clients.
func (d *DevIssuer) decide(req TokenRequest, remoteAddr string) (grant, *OAuthError) {
	if req.GrantType != "client_credentials" {
		if req.GrantType == "" {
			return grant{}, oauthErr(http.StatusBadRequest, "invalid_request", "grant_type is required")
		}
		return grant{}, oauthErr(http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported")
	}
	if req.ClientID == "" {
		return grant{}, oauthErr(http.StatusUnauthorized, "invalid_client", "client_id is required")
	}
	ttl := d.opts.DefaultTTL
	if req.TTL != "" {
		t, err := time.ParseDuration(req.TTL)
		if err != nil || t <= 0 {
			return grant{}, oauthErr(http.StatusBadRequest, "invalid_request", "ttl must be a positive Go duration such as 30m or 2h")
		}
		ttl = min(t, d.opts.MaxTTL)
	}

	if c, ok := d.clients[req.ClientID]; ok {
		if !req.SecretGiven || !secretEqual(req.ClientSecret, c.Secret) {
			return grant{}, oauthErr(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		}
		if req.Subject != "" || req.Groups != "" {
			return grant{}, oauthErr(http.StatusBadRequest, "invalid_request", "subject and groups are fixed for configured client %q", req.ClientID)
		}
		return grant{subject: c.ID, clientID: c.ID, groups: append([]string(nil), c.Groups...), ttl: ttl}, nil
	}

	if !isLoopback(remoteAddr) {
		return grant{}, oauthErr(http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	g := grant{subject: req.Subject, clientID: req.ClientID, groups: splitList(req.Groups), ttl: ttl}
	if g.subject == "" {
		g.subject = req.ClientID
	}
	return g, nil
}

// secretEqual compares hashes so neither the content nor the length of the
// configured secret leaks through timing.
func secretEqual(got, want string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// devClaims is the payload of a dev token.
type devClaims struct {
	jwt.Claims
	ClientID string   `json:"client_id"`
	Groups   []string `json:"groups,omitempty"`
}

func (d *DevIssuer) mint(g grant) (string, error) {
	now := d.opts.Now()
	exp := now.Add(g.ttl)
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	c := devClaims{
		Claims: jwt.Claims{
			Issuer:    d.issuer,
			Subject:   g.subject,
			Audience:  jwt.Audience{d.opts.Audience},
			Expiry:    jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti[:]),
		},
		ClientID: g.clientID,
		Groups:   g.groups,
	}
	tok, err := jwt.Signed(d.signer).Claims(c).Serialize()
	if err != nil {
		return "", err
	}
	return tok, nil
}
