package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/config"
)

// PruneResult is the answer of POST /api/v1/audit/prune.
type PruneResult struct {
	Pruned bool `json:"pruned"` // false: nothing was old enough (or signed yet)
	// Marker is the signed prune marker written; nil when nothing was
	// pruned.
	Marker  *audit.PruneMarker `json:"marker,omitempty"`
	Deleted int64              `json:"deleted"` // events deleted
	Reason  string             `json:"reason,omitempty"`
}

// pruneAudit prunes this gateway's audit chain before ?before= (an RFC 3339
// time or an age such as 90d or 36h), behind a signed prune marker.
func (s *server) pruneAudit(w http.ResponseWriter, r *http.Request) {
	if s.o.PruneAudit == nil {
		writeError(w, http.StatusNotFound, "not_found", "audit pruning needs audit.signing_key: a prune writes a signed marker")
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "before" {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("unknown query parameter %q (use before)", k))
			return
		}
	}
	before, err := parseBefore(q.Get("before"), s.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	res, err := s.o.PruneAudit(r.Context(), before)
	out := PruneResult{Marker: res.Marker, Deleted: res.Deleted, Pruned: res.Marker != nil}
	switch {
	case errors.Is(err, audit.ErrNothingSigned):
		out.Reason = err.Error()
	case err != nil:
		s.log.Error("audit prune failed", "err", err)
		writeError(w, http.StatusInternalServerError, "prune_failed", err.Error())
		return
	case res.Marker == nil:
		out.Reason = "no event of this node's chain is both older than the cutoff and covered by a signed checkpoint (the newest event is never pruned)"
	}
	writeJSON(w, http.StatusOK, out)
}

// parseBefore reads the prune cutoff: an RFC 3339 time, or an age (90d,
// 36h) back from now. It is required: a prune without a cutoff is a typo.
func parseBefore(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, errors.New("before is required: an RFC 3339 time or an age such as 90d")
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := config.ParseDays(v)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("before %q is invalid: use an RFC 3339 time (2006-01-02T15:04:05Z) or an age such as 90d or 36h", v)
	}
	return now.Add(-time.Duration(d)), nil
}

// PruneAudit calls POST /api/v1/audit/prune.
func (c *Client) PruneAudit(ctx context.Context, before string) (*PruneResult, error) {
	var out PruneResult
	if err := c.do(ctx, http.MethodPost, APIPrefix+"/audit/prune", url.Values{"before": {before}}, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
