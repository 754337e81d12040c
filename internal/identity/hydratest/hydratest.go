// Package hydratest starts a throwaway Ory Hydra for tests, so that token
// verification is checked against a real, independently written OAuth2/OIDC
// issuer rather than only against tokens the tests mint themselves.
//
// Hydra runs as a separate binary built from the pinned module in tools/hydra
// by scripts/build-hydra.sh (its dependency graph is far too large to pull into
// gatehouse's own go.mod). When the binary is missing the test is skipped,
// unless GATEHOUSE_TEST_REQUIRE=1 (CI), in which case it fails.
//
// Each server uses an in-memory SQLite database, loopback ports only, issues
// JWT access tokens, and is stopped when the test ends.
package hydratest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/pgtest"
)

// Version is the Hydra release the harness expects; it must match the version
// pinned in tools/hydra/go.mod and the file name scripts/build-hydra.sh writes.
const Version = "v2.3.0"

// BuildCommand is the command that builds the binary BinPath looks for.
const BuildCommand = "scripts/build-hydra.sh"

// startTimeout bounds how long one Hydra start may take to become ready. It is
// generous because CI machines are small and busy; it is a guard against a
// hung process, not a performance check.
const startTimeout = 90 * time.Second

// BinPath returns where the Hydra binary is expected: $GATEHOUSE_HYDRA_BIN, or
// the cache path scripts/build-hydra.sh writes
// (${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}/bin/hydra-<Version>).
func BinPath() string {
	if p := os.Getenv("GATEHOUSE_HYDRA_BIN"); p != "" {
		return p
	}
	cache := os.Getenv("GATEHOUSE_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		cache = filepath.Join(home, ".cache", "gatehouse")
	}
	return filepath.Join(cache, "bin", "hydra-"+Version)
}

// Hydra is a running Hydra server.
type Hydra struct {
	// PublicURL is the public (OAuth2/OIDC) endpoint base, without a
	// trailing slash, e.g. http://127.0.0.1:40001.
	PublicURL string
	// AdminURL is the admin API base, without a trailing slash.
	AdminURL string
	// Issuer is the issuer Hydra was configured with (URLS_SELF_ISSUER).
	// Hydra copies it verbatim into the iss claim and the discovery
	// document, so by default it carries a trailing slash
	// (http://127.0.0.1:40001/); see Options.NoTrailingSlash.
	Issuer string

	client *http.Client
}

// Options configure a Hydra server. The zero value is the default.
type Options struct {
	// NoTrailingSlash configures the issuer as http://127.0.0.1:<port>
	// rather than http://127.0.0.1:<port>/. Hydra does not normalise the
	// configured issuer and deployments are written both ways, so a verifier
	// must cope with whichever form the operator copied.
	NoTrailingSlash bool
}

// Start starts Hydra ("serve all --dev", in-memory database, JWT access
// tokens) on free loopback ports and waits until it reports ready. The server
// is stopped by t.Cleanup.
func Start(t testing.TB) *Hydra {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Hydra {
	t.Helper()
	bin := BinPath()
	if _, err := os.Stat(bin); err != nil {
		pgtest.SkipOrFail(t, "Hydra binary not found at %s: build it with %s (or set GATEHOUSE_HYDRA_BIN)", bin, BuildCommand)
	}
	// The ports are only known to be free a moment before Hydra binds them,
	// so a start that dies early (most likely a port taken in between) is
	// retried with fresh ports.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		h, err := start(t, bin, opts)
		if err == nil {
			return h
		}
		lastErr = err
		if !errors.Is(err, errExited) {
			break
		}
	}
	t.Fatalf("hydratest: %v", lastErr)
	return nil
}

var errExited = errors.New("hydra exited before becoming ready")

// start makes one attempt at starting Hydra.
func start(t testing.TB, bin string, opts Options) (*Hydra, error) {
	t.Helper()
	publicPort, adminPort := pgtest.FreePort(t), pgtest.FreePort(t)
	for adminPort == publicPort {
		adminPort = pgtest.FreePort(t)
	}
	h := &Hydra{
		PublicURL: "http://127.0.0.1:" + strconv.Itoa(publicPort),
		AdminURL:  "http://127.0.0.1:" + strconv.Itoa(adminPort),
		Issuer:    "http://127.0.0.1:" + strconv.Itoa(publicPort) + "/",
		client:    &http.Client{Timeout: 30 * time.Second},
	}
	if opts.NoTrailingSlash {
		h.Issuer = h.PublicURL
	}

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	// Hydra reads its whole configuration from the environment, so it gets a
	// clean one: a stray DSN or URLS_* in the developer's shell must not leak
	// in.
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"DSN=memory",
		"SECRETS_SYSTEM=" + hex.EncodeToString(secret),
		"SERVE_PUBLIC_HOST=127.0.0.1",
		"SERVE_PUBLIC_PORT=" + strconv.Itoa(publicPort),
		"SERVE_ADMIN_HOST=127.0.0.1",
		"SERVE_ADMIN_PORT=" + strconv.Itoa(adminPort),
		"URLS_SELF_ISSUER=" + h.Issuer,
		"URLS_SELF_PUBLIC=" + h.PublicURL + "/",
		"STRATEGIES_ACCESS_TOKEN=jwt",
		"LOG_LEVEL=info",
		"LOG_FORMAT=text",
		"LOG_LEAK_SENSITIVE_VALUES=false",
	}

	logPath := filepath.Join(t.TempDir(), "hydra.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// --sqa-opt-out: Hydra otherwise tries to send usage telemetry to an
	// outside host; tests must only talk to loopback.
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}

	if err := h.waitReady(exited); err != nil {
		stop()
		// Hydra's own log redacts secrets (LOG_LEAK_SENSITIVE_VALUES=false),
		// and no token has been issued yet, so its tail is safe to show.
		t.Logf("hydratest: hydra log tail:\n%s", tail(logPath, 40))
		if errors.Is(err, errExited) {
			return nil, fmt.Errorf("%w (%v)", err, waitErr)
		}
		return nil, err
	}
	t.Cleanup(stop)
	return h, nil
}

// waitReady polls both health endpoints until Hydra reports ready, the
// process exits, or startTimeout passes.
func (h *Hydra) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		if h.ready(h.AdminURL+"/health/ready") && h.ready(h.PublicURL+"/health/ready") {
			return nil
		}
		select {
		case <-exited:
			return errExited
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hydra not ready after %v", startTimeout)
		}
	}
}

func (h *Hydra) ready(u string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// CreateClient registers an OAuth2 client through the admin API that may use
// the client credentials grant (client_secret_basic) and request tokens for
// the given audiences. It returns the generated client id and secret.
func (h *Hydra) CreateClient(t testing.TB, audience []string) (id, secret string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"client_name":                "gatehouse-test",
		"grant_types":                []string{"client_credentials"},
		"response_types":             []string{"token"},
		"token_endpoint_auth_method": "client_secret_basic",
		"audience":                   audience,
	})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, h.AdminURL+"/admin/clients", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	h.do(t, req, http.StatusCreated, &out)
	if out.ClientID == "" || out.ClientSecret == "" {
		t.Fatalf("hydratest: create client: response lacks client_id or client_secret")
	}
	return out.ClientID, out.ClientSecret
}

// Token obtains an access token (a JWT, given the server's configuration)
// with the client credentials grant, requesting the given audience (space
// separated for several; empty requests none). It fails the test when Hydra
// refuses.
func (h *Hydra) Token(t testing.TB, id, secret, audience string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if audience != "" {
		form.Set("audience", audience)
	}
	req, err := http.NewRequest(http.MethodPost, h.PublicURL+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// RFC 6749 section 2.3.1: the id and secret are form-encoded before
	// being put into the Basic credentials.
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	var out struct {
		AccessToken string `json:"access_token"`
	}
	h.do(t, req, http.StatusOK, &out)
	if out.AccessToken == "" {
		t.Fatalf("hydratest: token response lacks access_token")
	}
	return out.AccessToken
}

// do sends req and decodes a JSON response with the wanted status into out.
// Error bodies are shown: Hydra's error responses carry no secrets.
func (h *Hydra) do(t testing.TB, req *http.Request, want int, out any) {
	t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("hydratest: %s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("hydratest: %s %s: read: %v", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("hydratest: %s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, want, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("hydratest: %s %s: decode: %v", req.Method, req.URL.Path, err)
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
