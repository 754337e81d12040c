package sqlcommon

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/internal/approval"
)

// ReviewQuery builds the SELECT of ListReviews: body documents matching f,
// most recent first. ph renders the i-th (1-based) placeholder.
func ReviewQuery(f approval.Filter, ph func(i int) string) (string, []any) {
	var where []string
	var args []any
	add := func(col string, v any) {
		args = append(args, v)
		where = append(where, col+" = "+ph(len(args)))
	}
	if f.Status != "" {
		add("status", string(f.Status))
	}
	if f.Connection != "" {
		add("connection", f.Connection)
	}
	if f.Subject != "" {
		add("subject", f.Subject)
	}
	q := "SELECT body FROM reviews"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	args = append(args, limit)
	return q + " ORDER BY created_at DESC, id DESC LIMIT " + ph(len(args)), args
}

// EncodeReview returns the stored document of r.
func EncodeReview(r approval.Review) ([]byte, error) {
	if r.ID == "" {
		return nil, fmt.Errorf("review id is empty")
	}
	r.CreatedAt, r.ExpiresAt = Micro(r.CreatedAt), Micro(r.ExpiresAt)
	if !r.DecidedAt.IsZero() {
		r.DecidedAt = Micro(r.DecidedAt)
	}
	return json.Marshal(r)
}

// DecodeReview parses a stored document.
func DecodeReview(b []byte) (approval.Review, error) {
	var r approval.Review
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("stored review is not valid JSON: %w", err)
	}
	return r, nil
}
