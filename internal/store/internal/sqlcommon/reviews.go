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
	return DocQuery("reviews", string(f.Status), f.Connection, f.Subject, f.Limit, ph)
}

// GrantQuery builds the SELECT of ListGrants, like ReviewQuery.
func GrantQuery(f approval.GrantFilter, ph func(i int) string) (string, []any) {
	return DocQuery("grants", string(f.Status), f.Connection, f.Subject, f.Limit, ph)
}

// DocQuery selects the body documents of table (reviews or grants) by
// status, connection and subject, most recent first.
func DocQuery(table, status, connection, subject string, limit int, ph func(i int) string) (string, []any) {
	var where []string
	var args []any
	add := func(col string, v any) {
		args = append(args, v)
		where = append(where, col+" = "+ph(len(args)))
	}
	if status != "" {
		add("status", status)
	}
	if connection != "" {
		add("connection", connection)
	}
	if subject != "" {
		add("subject", subject)
	}
	q := "SELECT body FROM " + table
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
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

// EncodeGrant returns the stored document of g.
func EncodeGrant(g approval.Grant) ([]byte, error) {
	if g.ID == "" {
		return nil, fmt.Errorf("grant id is empty")
	}
	g.CreatedAt = Micro(g.CreatedAt)
	if !g.DecidedAt.IsZero() {
		g.DecidedAt = Micro(g.DecidedAt)
	}
	if !g.ExpiresAt.IsZero() {
		g.ExpiresAt = Micro(g.ExpiresAt)
	}
	return json.Marshal(g)
}

// DecodeGrant parses a stored document.
func DecodeGrant(b []byte) (approval.Grant, error) {
	var g approval.Grant
	if err := json.Unmarshal(b, &g); err != nil {
		return g, fmt.Errorf("stored grant is not valid JSON: %w", err)
	}
	return g, nil
}

// DecodeAll decodes stored documents with decode.
func DecodeAll[T any](docs [][]byte, decode func([]byte) (T, error)) ([]T, error) {
	out := make([]T, 0, len(docs))
	for _, b := range docs {
		v, err := decode(b)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
