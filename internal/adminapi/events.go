package adminapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
)

// Limits of GET /api/v1/audit/events.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 1000
)

// EventList is the response of GET /api/v1/audit/events. Events are in
// ascending Seq order; pass LastSeq as after= to read on from there.
type EventList struct {
	Events  []audit.Event `json:"events"`
	LastSeq int64         `json:"last_seq"` // Seq of the last event, or the after= given when none
}

// ParseEventFilter turns the query of GET /api/v1/audit/events into an
// audit.Filter. since accepts RFC 3339 or a Go duration ("1h", meaning
// events of the last hour) relative to now.
func ParseEventFilter(q url.Values, now time.Time) (audit.Filter, error) {
	for k := range q {
		switch k {
		case "principal", "connection", "decision", "type", "session", "since", "after", "limit":
		default:
			return audit.Filter{}, fmt.Errorf("unknown query parameter %q", k)
		}
	}
	f := audit.Filter{
		Principal:  q.Get("principal"),
		Connection: q.Get("connection"),
		Decision:   q.Get("decision"),
		Type:       q.Get("type"),
		SessionID:  q.Get("session"),
		Limit:      DefaultEventLimit,
	}
	switch f.Decision {
	case "", "allow", "deny", "hold":
	default:
		return audit.Filter{}, fmt.Errorf("decision %q is invalid: use allow, deny or hold", f.Decision)
	}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v, now)
		if err != nil {
			return audit.Filter{}, err
		}
		f.Since = t
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return audit.Filter{}, fmt.Errorf("after %q is invalid: use a sequence number >= 0", v)
		}
		f.AfterSeq = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxEventLimit {
			return audit.Filter{}, fmt.Errorf("limit %q is invalid: use 1-%d", v, MaxEventLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// parseSince reads an RFC 3339 time or a positive duration back from now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || strings.HasPrefix(v, "-") {
		return time.Time{}, fmt.Errorf("since %q is invalid: use an RFC 3339 time (2006-01-02T15:04:05Z) or a duration such as 1h", v)
	}
	return now.Add(-d), nil
}

func (s *server) listEvents(w http.ResponseWriter, r *http.Request) {
	f, err := ParseEventFilter(r.URL.Query(), s.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	evs, err := s.o.Store.ListEvents(r.Context(), f)
	if err != nil {
		s.internal(w, r, "list audit events", err)
		return
	}
	out := EventList{Events: evs, LastSeq: f.AfterSeq}
	if out.Events == nil {
		out.Events = []audit.Event{}
	}
	if n := len(evs); n > 0 {
		out.LastSeq = evs[n-1].Seq
	}
	writeJSON(w, http.StatusOK, out)
}
