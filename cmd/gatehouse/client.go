package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/gatehouse/gatehouse/internal/adminapi"
)

const defaultAPI = "http://127.0.0.1:8080"

// apiURL resolves --api, then GATEHOUSE_API, then the default.
func (c *cli) apiURL() (string, error) {
	u := c.api
	if u == "" {
		u = c.getenv("GATEHOUSE_API")
	}
	if u == "" {
		u = defaultAPI
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return "", usagef("--api %q is not an http(s) URL", u)
	}
	return strings.TrimRight(u, "/"), nil
}

// apiClient returns an admin API client; needToken says whether the command
// is useless without a token, so it can fail early with a clear message.
func (c *cli) apiClient(needToken bool) (*adminapi.Client, error) {
	u, err := c.apiURL()
	if err != nil {
		return nil, err
	}
	tok := c.token
	if tok == "" {
		tok = c.getenv("GATEHOUSE_TOKEN")
	}
	tok = strings.TrimSpace(tok)
	if needToken && tok == "" {
		return nil, usagef("no token: pass --token or set GATEHOUSE_TOKEN (in dev mode: export GATEHOUSE_TOKEN=$(gatehouse token --subject you --group admins))")
	}
	return &adminapi.Client{BaseURL: u, Token: tok, HTTP: c.http}, nil
}

// explain turns transport errors into a sentence naming the API address.
func explain(base string, err error) error {
	var apiErr *adminapi.APIError
	if err == nil || errors.As(err, &apiErr) {
		return err
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return fmt.Errorf("cannot reach the gatehouse API at %s (is `gatehouse serve` running? set --api or GATEHOUSE_API): %v", base, opErr.Err)
	}
	return err
}
