// Package adminapi is gatehouse's HTTP control plane: the JSON REST API under
// /api/v1 (connections, audit events, audit export and public key, whoami,
// OpenAPI document), plus the
// operational endpoints /healthz, /readyz and /metrics, and the optional dev
// token issuer under /dev/.
//
// The package depends only on small interfaces (Verifier, Sealer, store.Store)
// so it can be wired to any identity or credential backend and tested with
// the doubles in adminapitest.
package adminapi

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Verifier turns a bearer token into a verified principal.
type Verifier interface {
	Verify(ctx context.Context, token string) (*access.Principal, error)
}

// Sealer encrypts an upstream secret at rest. aad binds the ciphertext to
// its record, so a sealed password cannot be moved to another connection.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
}

// Options configures the admin API handler.
type Options struct {
	Store    store.Store
	Verifier Verifier
	Sealer   Sealer   // nil = connections with a password cannot be created
	Admins   []string // principal selectors (access.Principal.Matches) allowed to administer

	DevIssuer http.Handler                    // nil = none; mounted at /dev/ with the "/dev" prefix stripped
	Metrics   http.Handler                    // served at /metrics; nil = 404
	Ready     func(ctx context.Context) error // nil = always ready
	Audit     func(e audit.Event)             // records admin changes (audit.TypeAdmin); nil = not recorded
	Logger    *slog.Logger                    // nil = slog.Default()

	OnConnectionsChanged func() // called after a connection is created, replaced or deleted; optional

	// ReloadPolicies re-reads the policies file (POST /api/v1/policies/reload);
	// nil = the route answers 404.
	ReloadPolicies func() error

	// Reviews serves /api/v1/reviews (approvals); nil = the routes answer 404.
	Reviews Reviews
	// Grants serves /api/v1/grants (time-bound access); nil = 404.
	Grants Grants
	// AuditPublicKey verifies audit checkpoints; served without a token at
	// /api/v1/audit/public-key. nil = that route answers 404.
	AuditPublicKey ed25519.PublicKey
	// AuditHeads returns the audit chain heads the running gateway has
	// stored, put in the header of /api/v1/audit/export; nil = none.
	AuditHeads func() []audit.Head
	// PruneAudit prunes this gateway's audit chain before a time, behind a
	// signed prune marker (POST /api/v1/audit/prune); nil = 404.
	PruneAudit func(ctx context.Context, before time.Time) (audit.PruneResult, error)
	// HoldPrunes, when set, is called at the start of an audit export and
	// its result when the export ends: the gateway holds prunes off
	// meanwhile, so an export never lists a node's prune markers and then
	// misses events a prune deleted after that (nil = no guard).
	HoldPrunes func() (release func())
}

// maxBodyBytes bounds request bodies: a connection (with a PEM CA bundle) is
// a few KiB, so anything much larger is a mistake or an attack.
const maxBodyBytes = 256 << 10

// APIPrefix is the path prefix of the versioned REST API.
const APIPrefix = "/api/v1"

type server struct {
	o   Options
	log *slog.Logger
	now func() time.Time
}

// New returns the admin API handler.
func New(o Options) http.Handler {
	s := &server{o: o, log: o.Logger, now: time.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	mux := http.NewServeMux()
	// Routes are registered without a method and dispatched by methods, so
	// that wrong methods get a JSON 405 with an Allow header rather than the
	// mux's plain-text one.
	mux.Handle("/healthz", methods{http.MethodGet: http.HandlerFunc(s.healthz)})
	mux.Handle("/readyz", methods{http.MethodGet: http.HandlerFunc(s.readyz)})
	if o.Metrics != nil {
		mux.Handle("/metrics", o.Metrics)
	}
	if o.DevIssuer != nil {
		mux.Handle("/dev/", http.StripPrefix("/dev", o.DevIssuer))
	}
	mux.Handle(APIPrefix+"/openapi.json", methods{http.MethodGet: http.HandlerFunc(s.openAPI)})
	mux.Handle(APIPrefix+"/whoami", methods{http.MethodGet: s.authenticated(s.whoami)})
	mux.Handle(APIPrefix+"/connections", methods{
		http.MethodGet:  s.admin(s.listConnections),
		http.MethodPost: s.admin(s.createConnection),
	})
	mux.Handle(APIPrefix+"/connections/{name}", methods{
		http.MethodGet:    s.admin(s.getConnection),
		http.MethodDelete: s.admin(s.deleteConnection),
	})
	mux.Handle(APIPrefix+"/audit/events", methods{http.MethodGet: s.admin(s.listEvents)})
	mux.Handle(APIPrefix+"/audit/export", methods{http.MethodGet: s.admin(s.exportAudit)})
	mux.Handle(APIPrefix+"/audit/public-key", methods{http.MethodGet: http.HandlerFunc(s.publicKey)})
	mux.Handle(APIPrefix+"/audit/prune", methods{http.MethodPost: s.admin(s.pruneAudit)})
	if o.ReloadPolicies != nil {
		mux.Handle(APIPrefix+"/policies/reload", methods{http.MethodPost: s.admin(s.reloadPolicies)})
	}
	s.routeReviews(mux)
	s.routeGrants(mux)
	s.routeSessions(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
	})
	return s.logged(mux)
}

// methods dispatches by HTTP method; HEAD is served by GET.
type methods map[string]http.Handler

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := m[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = m[http.MethodGet]
	}
	if !ok {
		allow := make([]string, 0, len(m))
		for k := range m {
			allow = append(allow, k)
		}
		sort.Strings(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			r.Method+" is not allowed here; use "+strings.Join(allow, " or "))
		return
	}
	h.ServeHTTP(w, r)
}

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Error  string `json:"error"`            // short machine-readable code, e.g. "invalid_token"
	Reason string `json:"reason,omitempty"` // one sentence saying what is wrong and what to do
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, reason string) {
	writeJSON(w, status, ErrorBody{Error: code, Reason: reason})
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.o.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.o.Ready(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not_ready", err.Error())
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}

type principalKey struct{}

// principalFrom returns the verified caller set by authenticated.
func principalFrom(ctx context.Context) *access.Principal {
	p, _ := ctx.Value(principalKey{}).(*access.Principal)
	return p
}

// bearerToken extracts the token of an "Authorization: Bearer" header
// (RFC 6750 section 2.1; the scheme is case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// authenticated requires a valid bearer token and puts the principal in the
// request context.
func (s *server) authenticated(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
			writeError(w, http.StatusUnauthorized, "unauthorized",
				"an Authorization: Bearer <token> header is required; get a token from your OIDC issuer (or `gatehouse token` in dev mode)")
			return
		}
		if s.o.Verifier == nil {
			writeError(w, http.StatusInternalServerError, "internal", "no token verifier is configured")
			return
		}
		p, err := s.o.Verifier.Verify(r.Context(), tok)
		if err != nil || p == nil {
			reason := "the bearer token was rejected"
			if err != nil {
				// Verifier errors describe the claim that failed, never the token itself.
				reason += ": " + err.Error()
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid_token", reason)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// admin requires a valid token whose principal matches one of Options.Admins.
func (s *server) admin(next http.HandlerFunc) http.HandlerFunc {
	return s.authenticated(func(w http.ResponseWriter, r *http.Request) {
		p := principalFrom(r.Context())
		if !p.MatchesAny(s.o.Admins) {
			reason := "this endpoint needs admin membership, but no admin selectors are configured (set admins in the config)"
			if len(s.o.Admins) > 0 {
				reason = "this endpoint needs admin membership: principal sub:" + p.Subject +
					" matches none of " + strings.Join(s.o.Admins, ", ")
			}
			writeError(w, http.StatusForbidden, "forbidden", reason)
			return
		}
		next(w, r)
	})
}

// reloadPolicies re-reads the policies file; live sessions use the new
// policies from their next statement.
func (s *server) reloadPolicies(w http.ResponseWriter, r *http.Request) {
	if err := s.o.ReloadPolicies(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "policy reload failed", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

func (s *server) whoami(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	writeJSON(w, http.StatusOK, WhoAmI{Principal: p, Admin: p.MatchesAny(s.o.Admins)})
}

// WhoAmI is the response of GET /api/v1/whoami.
type WhoAmI struct {
	*access.Principal
	Admin bool `json:"admin"` // the principal may use the admin endpoints
}

// statusRecorder remembers the status for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logged writes one access-log line per API request. Only the method, path
// and status are logged: never headers (Authorization) or bodies (passwords).
func (s *server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
			return // probes would drown the log
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "admin api request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Duration("duration", s.now().Sub(start)))
	})
}

// decodeJSON reads a size-limited JSON body strictly (unknown fields and
// trailing data are errors, so typos are not silently ignored).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errors.New("request body is larger than the limit")
		}
		return errors.New("request body is not valid JSON: " + err.Error())
	}
	if dec.More() {
		return errors.New("request body has data after the JSON object")
	}
	return nil
}
