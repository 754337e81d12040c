package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LoadOrCreateDevKey returns the dev issuer's signing key stored at path (a
// PKCS#8 PEM file), creating an ES256 key there (mode 0600, directory 0700)
// if there is none. Keeping the key across restarts keeps issued dev tokens
// valid. A key file readable by group or others is refused.
func LoadOrCreateDevKey(path string) (crypto.Signer, error) {
	if k, err := loadDevKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev key: %w", err)
	}
	// Write a temp file then hard-link it into place: a crash never leaves
	// a half-written key, and if another process created the key first we
	// load theirs instead of overwriting it.
	tmp, err := os.CreateTemp(dir, ".devkey-*")
	if err != nil {
		return nil, fmt.Errorf("dev key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("dev key: %w", err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("dev key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("dev key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("dev key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadDevKey(path)
		}
		return nil, fmt.Errorf("dev key: %w", err)
	}
	return priv, nil
}

func loadDevKey(path string) (crypto.Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("dev key %s is accessible by other users (mode %04o); run chmod 600 on it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("dev key %s: not a PEM \"PRIVATE KEY\" (PKCS#8) file", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dev key %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("dev key %s: %T cannot sign", path, k)
	}
	if _, err := algFor(s); err != nil {
		return nil, fmt.Errorf("dev key %s: %w", path, err)
	}
	return s, nil
}

// DevClientID is the client id FetchDevToken uses when subject is empty.
const DevClientID = "gatehouse-cli"

// FetchDevToken asks the dev issuer of the gateway at apiURL (its HTTP API
// base, e.g. http://127.0.0.1:8080) for a token for subject with groups,
// living ttl (0 = the issuer's default). It uses the unconfigured-client
// path, so it only works from the gateway's own host. The client id is the
// subject, so policies naming client:SUBJECT work as with real
// client-credentials tokens.
func FetchDevToken(ctx context.Context, apiURL, subject string, groups []string, ttl time.Duration) (string, error) {
	clientID := subject
	if clientID == "" {
		clientID = DevClientID
	}
	form := url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {clientID},
	}
	if subject != "" {
		form.Set("subject", subject)
	}
	if len(groups) > 0 {
		form.Set("groups", strings.Join(groups, " "))
	}
	if ttl > 0 {
		form.Set("ttl", ttl.String())
	}
	endpoint := strings.TrimSuffix(apiURL, "/") + "/dev/oauth2/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("dev issuer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocSize))
	if err != nil {
		return "", fmt.Errorf("dev issuer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var oe OAuthError
		if json.Unmarshal(body, &oe) == nil && oe.Code != "" {
			return "", fmt.Errorf("dev issuer refused the request: %s", oe.Error())
		}
		return "", fmt.Errorf("dev issuer at %s: HTTP %s (is the dev issuer enabled?)", endpoint, resp.Status)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("dev issuer at %s: response has no access_token", endpoint)
	}
	return tr.AccessToken, nil
}
