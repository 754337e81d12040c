package adminapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/audit/export"
)

// publicKey serves the audit signing key's public half as PEM, without a
// token: it is public by design, and a verifier must be able to fetch it
// (and pin it) before it trusts anything else the gateway says.
func (s *server) publicKey(w http.ResponseWriter, r *http.Request) {
	if s.o.AuditPublicKey == nil {
		writeError(w, http.StatusNotFound, "not_found", "no audit.signing_key is configured, so audit checkpoints are not signed")
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("X-Gatehouse-Key-Id", chain.KeyID(s.o.AuditPublicKey))
	_, _ = w.Write(chain.PublicKeyPEM(s.o.AuditPublicKey))
}

// exportAudit streams the audit export (package export) as JSON lines.
func (s *server) exportAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var o export.Options
	for k := range q {
		if k != "since" && k != "node" {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("unknown query parameter %q (use since, node)", k))
			return
		}
	}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v, s.now())
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		o.Since = t
	}
	o.Node = q.Get("node")
	if s.o.AuditHeads != nil {
		o.Heads = s.o.AuditHeads()
	}
	if s.o.HoldPrunes != nil {
		defer s.o.HoldPrunes()()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	if err := export.Write(r.Context(), w, s.o.Store, o); err != nil {
		// The status is sent; the missing end record tells the verifier.
		s.log.Error("audit export failed", "err", err)
	}
}

// AuditExportQuery selects what ExportAudit exports.
type AuditExportQuery struct {
	Since string // RFC 3339 or a duration such as 24h; "" = everything
	Node  string // "" = every node
}

// ExportAudit streams GET /api/v1/audit/export into w. The HTTP client's
// overall timeout does not apply: an export may take long.
func (c *Client) ExportAudit(ctx context.Context, eq AuditExportQuery, w io.Writer) error {
	q := url.Values{}
	if eq.Since != "" {
		q.Set("since", eq.Since)
	}
	if eq.Node != "" {
		q.Set("node", eq.Node)
	}
	resp, err := c.stream(ctx, APIPrefix+"/audit/export", q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("reading the export: %w", err)
	}
	return nil
}

// AuditPublicKey fetches the audit signing public key (PEM).
func (c *Client) AuditPublicKey(ctx context.Context) (ed25519.PublicKey, error) {
	resp, err := c.stream(ctx, APIPrefix+"/audit/public-key", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	return chain.ParsePublicKey(b)
}

// stream GETs path and returns the open 2xx response.
func (c *Client) stream(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := &http.Client{}
	if c.HTTP != nil {
		cp := *c.HTTP
		cp.Timeout = 0
		hc = &cp
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &APIError{Status: resp.StatusCode}
		var eb ErrorBody
		if json.Unmarshal(bytes.TrimSpace(data), &eb) == nil {
			e.Code, e.Reason = eb.Error, eb.Reason
		}
		return nil, e
	}
	return resp, nil
}
