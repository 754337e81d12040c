package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/approval"
)

// Grants is what the API needs of the grant manager.
type Grants interface {
	Request(ctx context.Context, p *access.Principal, connection, group string, d time.Duration, reason string) (approval.Grant, error)
	Vote(ctx context.Context, id string, voter *access.Principal, approve bool, reason string) (approval.Grant, error)
	Revoke(ctx context.Context, id string, by *access.Principal, admins []string, reason string) (approval.Grant, error)
	Get(ctx context.Context, id string) (approval.Grant, error)
	List(ctx context.Context, f approval.GrantFilter) ([]approval.Grant, error)
}

// GrantRequest is the body of POST /api/v1/grants: the caller asks for
// membership of Group on Connection for Duration ("30m").
type GrantRequest struct {
	Connection string `json:"connection"`
	Group      string `json:"group"`
	Duration   string `json:"duration"`
	Reason     string `json:"reason"`
}

// GrantList is the response of GET /api/v1/grants.
type GrantList struct {
	Grants []approval.Grant `json:"grants"`
}

func (s *server) routeGrants(mux *http.ServeMux) {
	if s.o.Grants == nil {
		return
	}
	mux.Handle(APIPrefix+"/grants", methods{
		http.MethodGet:  s.authenticated(s.listGrants),
		http.MethodPost: s.authenticated(s.requestGrant),
	})
	mux.Handle(APIPrefix+"/grants/{id}", methods{http.MethodGet: s.authenticated(s.getGrant)})
	mux.Handle(APIPrefix+"/grants/{id}/approve", methods{http.MethodPost: s.authenticated(s.voteGrant(true))})
	mux.Handle(APIPrefix+"/grants/{id}/deny", methods{http.MethodPost: s.authenticated(s.voteGrant(false))})
	mux.Handle(APIPrefix+"/grants/{id}/revoke", methods{http.MethodPost: s.authenticated(s.revokeGrant)})
}

// canSeeGrant: admins, the grant's approvers and its requester.
func (s *server) canSeeGrant(p *access.Principal, g *approval.Grant) bool {
	return p.MatchesAny(s.o.Admins) || p.MatchesAny(g.Approvers) ||
		p.Issuer == g.Requester.Issuer && p.Subject == g.Requester.Subject
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "reading the request body: "+err.Error())
		return false
	}
	if len(body) == 0 {
		return true
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "the body is not valid JSON for this endpoint: "+err.Error())
		return false
	}
	return true
}

// approvalError maps the approval package's errors to HTTP.
func approvalError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.Is(err, approval.ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, approval.ErrFinal), errors.Is(err, approval.ErrAlreadyVoted):
		status, code = http.StatusConflict, "conflict"
	case errors.Is(err, approval.ErrNotApprover), errors.Is(err, approval.ErrSelfApproval):
		status, code = http.StatusForbidden, "forbidden"
	case errors.Is(err, approval.ErrNeedReason), errors.Is(err, approval.ErrBadRequest):
		status, code = http.StatusBadRequest, "bad_request"
	}
	writeError(w, status, code, err.Error())
}

func (s *server) requestGrant(w http.ResponseWriter, r *http.Request) {
	var req GrantRequest
	if !readJSON(w, r, &req) {
		return
	}
	d, err := time.ParseDuration(req.Duration)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("duration must be like 30m or 2h (got %q)", req.Duration))
		return
	}
	g, err := s.o.Grants.Request(r.Context(), principalFrom(r.Context()), req.Connection, req.Group, d, req.Reason)
	if err != nil {
		approvalError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, g)
}

func (s *server) listGrants(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := approval.GrantFilter{Status: approval.GrantStatus(q.Get("status")), Connection: q.Get("connection"), Subject: q.Get("principal")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxReviewLimit {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit must be an integer from 1 to %d", MaxReviewLimit))
			return
		}
		f.Limit = n
	}
	all, err := s.o.Grants.List(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "listing grants failed: "+err.Error())
		return
	}
	p := principalFrom(r.Context())
	out := GrantList{Grants: []approval.Grant{}}
	for i := range all {
		if s.canSeeGrant(p, &all[i]) {
			out.Grants = append(out.Grants, all[i])
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getGrant(w http.ResponseWriter, r *http.Request) {
	g, err := s.o.Grants.Get(r.Context(), r.PathValue("id"))
	if err != nil || !s.canSeeGrant(principalFrom(r.Context()), &g) {
		writeError(w, http.StatusNotFound, "not_found", "no grant "+r.PathValue("id")+" that you may see")
		return
	}
	g.Status = g.Effective(time.Now())
	writeJSON(w, http.StatusOK, g)
}

func (s *server) voteGrant(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req VoteRequest
		if !readJSON(w, r, &req) {
			return
		}
		g, err := s.o.Grants.Vote(r.Context(), r.PathValue("id"), principalFrom(r.Context()), approve, req.Reason)
		if err != nil {
			approvalError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, g)
	}
}

func (s *server) revokeGrant(w http.ResponseWriter, r *http.Request) {
	var req VoteRequest
	if !readJSON(w, r, &req) {
		return
	}
	g, err := s.o.Grants.Revoke(r.Context(), r.PathValue("id"), principalFrom(r.Context()), s.o.Admins, req.Reason)
	if err != nil {
		approvalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// RequestGrant asks for a time-bound grant for the caller.
func (c *Client) RequestGrant(ctx context.Context, req GrantRequest) (*approval.Grant, error) {
	var out approval.Grant
	if err := c.do(ctx, http.MethodPost, APIPrefix+"/grants", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListGrants lists the grants the caller may see.
func (c *Client) ListGrants(ctx context.Context, f approval.GrantFilter) ([]approval.Grant, error) {
	q := url.Values{}
	for k, v := range map[string]string{"status": string(f.Status), "connection": f.Connection, "principal": f.Subject} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out GrantList
	if err := c.do(ctx, http.MethodGet, APIPrefix+"/grants", q, nil, &out); err != nil {
		return nil, err
	}
	return out.Grants, nil
}

// GrantAction approves, denies or revokes a grant (verb: approve|deny|revoke).
func (c *Client) GrantAction(ctx context.Context, id, verb, reason string) (*approval.Grant, error) {
	var out approval.Grant
	if err := c.do(ctx, http.MethodPost, APIPrefix+"/grants/"+url.PathEscape(id)+"/"+verb, nil, VoteRequest{Reason: reason}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
