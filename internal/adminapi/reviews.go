package adminapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/approval"
)

// Reviews is what the API needs of the approval service.
type Reviews interface {
	Get(ctx context.Context, id string) (approval.Review, error)
	List(ctx context.Context, f approval.Filter) ([]approval.Review, error)
	Vote(ctx context.Context, id string, voter *access.Principal, approve bool, reason string) (approval.Review, error)
	Subscribe() (<-chan approval.Event, func())
}

// ReviewList is the response of GET /api/v1/reviews.
type ReviewList struct {
	Reviews []approval.Review `json:"reviews"`
}

// VoteRequest is the body of POST /api/v1/reviews/{id}/approve|deny.
type VoteRequest struct {
	Reason string `json:"reason,omitempty"` // required to deny
}

// MaxReviewLimit bounds GET /api/v1/reviews?limit=.
const MaxReviewLimit = 1000

func (s *server) routeReviews(mux *http.ServeMux) {
	if s.o.Reviews == nil {
		return
	}
	mux.Handle(APIPrefix+"/reviews", methods{http.MethodGet: s.authenticated(s.listReviews)})
	mux.Handle(APIPrefix+"/reviews/stream", methods{http.MethodGet: s.authenticated(s.streamReviews)})
	mux.Handle(APIPrefix+"/reviews/{id}", methods{http.MethodGet: s.authenticated(s.getReview)})
	mux.Handle(APIPrefix+"/reviews/{id}/approve", methods{http.MethodPost: s.authenticated(s.vote(true))})
	mux.Handle(APIPrefix+"/reviews/{id}/deny", methods{http.MethodPost: s.authenticated(s.vote(false))})
}

// ParseReviewFilter turns the query of GET /api/v1/reviews into a filter.
func ParseReviewFilter(q url.Values) (approval.Filter, error) {
	for k := range q {
		switch k {
		case "status", "connection", "principal", "limit":
		default:
			return approval.Filter{}, fmt.Errorf("unknown query parameter %q", k)
		}
	}
	f := approval.Filter{Status: approval.Status(q.Get("status")), Connection: q.Get("connection"),
		Subject: q.Get("principal"), Limit: DefaultEventLimit}
	switch f.Status {
	case "", approval.Pending, approval.Approved, approval.Denied, approval.Expired, approval.Withdrawn, approval.Failed:
	default:
		return f, fmt.Errorf("status %q is invalid: use pending, approved, denied, expired, withdrawn or failed", f.Status)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxReviewLimit {
			return f, fmt.Errorf("limit must be an integer from 1 to %d (got %q)", MaxReviewLimit, v)
		}
		f.Limit = n
	}
	return f, nil
}

func (s *server) listReviews(w http.ResponseWriter, r *http.Request) {
	f, err := ParseReviewFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	p := principalFrom(r.Context())
	all, err := s.o.Reviews.List(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "listing reviews failed: "+err.Error())
		return
	}
	out := ReviewList{Reviews: []approval.Review{}}
	for i := range all {
		if s.canSee(p, &all[i]) {
			out.Reviews = append(out.Reviews, all[i])
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// canSee reports whether p may read review r: admins, the review's
// approvers and its requester may.
func (s *server) canSee(p *access.Principal, r *approval.Review) bool {
	return p.MatchesAny(s.o.Admins) || p.MatchesAny(r.Approvers) ||
		p.Issuer == r.Requester.Issuer && p.Subject == r.Requester.Subject
}

func (s *server) getReview(w http.ResponseWriter, r *http.Request) {
	rv, err := s.o.Reviews.Get(r.Context(), r.PathValue("id"))
	if err != nil || !s.canSee(principalFrom(r.Context()), &rv) {
		// Not found and not visible answer alike, so ids cannot be probed.
		writeError(w, http.StatusNotFound, "not_found", "no review "+r.PathValue("id")+" that you may see")
		return
	}
	writeJSON(w, http.StatusOK, rv)
}

func (s *server) vote(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req VoteRequest
		if !readJSON(w, r, &req) {
			return
		}
		p := principalFrom(r.Context())
		rv, err := s.o.Reviews.Vote(r.Context(), r.PathValue("id"), p, approve, req.Reason)
		if err != nil {
			approvalError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rv)
	}
}

// streamReviews is a Server-Sent Events stream of review events the caller
// may see: one `event: <type>` with the review as JSON data per change, and
// a comment line every 15 s so proxies keep the connection open.
func (s *server) streamReviews(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	p := principalFrom(r.Context())
	events, stop := s.o.Reviews.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": gatehouse review events\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case e, ok := <-events:
			if !ok {
				return
			}
			if !s.canSee(p, &e.Review) {
				continue
			}
			b, _ := json.Marshal(e.Review)
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b)
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// ListReviews lists the reviews the caller may see, most recent first.
func (c *Client) ListReviews(ctx context.Context, f approval.Filter) ([]approval.Review, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.Connection != "" {
		q.Set("connection", f.Connection)
	}
	if f.Subject != "" {
		q.Set("principal", f.Subject)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out ReviewList
	if err := c.do(ctx, http.MethodGet, APIPrefix+"/reviews", q, nil, &out); err != nil {
		return nil, err
	}
	return out.Reviews, nil
}

// GetReview returns one review.
func (c *Client) GetReview(ctx context.Context, id string) (*approval.Review, error) {
	var out approval.Review
	if err := c.do(ctx, http.MethodGet, APIPrefix+"/reviews/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VoteReview approves or denies a review.
func (c *Client) VoteReview(ctx context.Context, id string, approve bool, reason string) (*approval.Review, error) {
	verb := "deny"
	if approve {
		verb = "approve"
	}
	var out approval.Review
	if err := c.do(ctx, http.MethodPost, APIPrefix+"/reviews/"+url.PathEscape(id)+"/"+verb, nil, VoteRequest{Reason: reason}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
