package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
)

// Client calls the admin API. It is what the gatehouse CLI uses.
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:8080; no trailing /api/v1
	Token   string       // bearer token; "" sends none
	HTTP    *http.Client // nil = a client with a 30s timeout
}

// APIError is a non-2xx answer from the API.
type APIError struct {
	Status int    // HTTP status code
	Code   string // ErrorBody.Error
	Reason string // ErrorBody.Reason
}

func (e *APIError) Error() string {
	msg := e.Reason
	if msg == "" {
		msg = e.Code
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &APIError{Status: resp.StatusCode}
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil {
			e.Code, e.Reason = eb.Error, eb.Reason
		}
		return e
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding response of %s %s: %w", method, path, err)
	}
	return nil
}

// WhoAmI returns the caller's principal.
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmI, error) {
	var out WhoAmI
	if err := c.do(ctx, http.MethodGet, APIPrefix+"/whoami", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListConnections returns all connections.
func (c *Client) ListConnections(ctx context.Context) ([]Connection, error) {
	var out ConnectionList
	if err := c.do(ctx, http.MethodGet, APIPrefix+"/connections", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Connections, nil
}

// GetConnection returns one connection.
func (c *Client) GetConnection(ctx context.Context, name string) (*Connection, error) {
	var out Connection
	if err := c.do(ctx, http.MethodGet, APIPrefix+"/connections/"+url.PathEscape(name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateConnection creates or replaces an API-managed connection.
func (c *Client) CreateConnection(ctx context.Context, req ConnectionRequest) (*Connection, error) {
	var out Connection
	if err := c.do(ctx, http.MethodPost, APIPrefix+"/connections", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteConnection deletes an API-managed connection.
func (c *Client) DeleteConnection(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, APIPrefix+"/connections/"+url.PathEscape(name), nil, nil, nil)
}

// EventQuery selects audit events; zero fields do not filter.
type EventQuery struct {
	Principal, Connection, Decision, Type, Session string
	Since                                          string // RFC 3339 or a duration such as 1h
	After                                          int64
	Limit                                          int
}

// ListEvents reads audit events.
func (c *Client) ListEvents(ctx context.Context, eq EventQuery) (*EventList, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("principal", eq.Principal)
	set("connection", eq.Connection)
	set("decision", eq.Decision)
	set("type", eq.Type)
	set("session", eq.Session)
	set("since", eq.Since)
	if eq.After > 0 {
		q.Set("after", fmt.Sprint(eq.After))
	}
	if eq.Limit > 0 {
		q.Set("limit", fmt.Sprint(eq.Limit))
	}
	var out EventList
	if err := c.do(ctx, http.MethodGet, APIPrefix+"/audit/events", q, nil, &out); err != nil {
		return nil, err
	}
	if out.Events == nil {
		out.Events = []audit.Event{}
	}
	return &out, nil
}
