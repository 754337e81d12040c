package adminapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/audit"
)

func seedEvents(t *testing.T, e *env) time.Time {
	t.Helper()
	old := time.Now().Add(-3 * time.Hour).UTC()
	now := time.Now().UTC()
	evs := []audit.Event{
		{Time: old, Type: audit.TypeSessionOpened, SessionID: "s1", Subject: "agent-1", Connection: "orders"},
		{Time: old, Type: audit.TypeStatement, SessionID: "s1", Subject: "agent-1", Connection: "orders", Decision: "allow", Statement: "SELECT 1"},
		{Time: now, Type: audit.TypeStatement, SessionID: "s2", Subject: "agent-2", Connection: "billing", Decision: "deny", Reason: "no writes", Statement: "DELETE FROM t"},
		{Time: now, Type: audit.TypeStatement, SessionID: "s2", Subject: "agent-2", Connection: "billing", Decision: "hold", Statement: "UPDATE t SET x=1"},
		{Time: now, Type: audit.TypeSessionClosed, SessionID: "s2", Subject: "agent-2", Connection: "billing"},
	}
	if err := e.store.AppendEvents(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return old
}

func TestAuditEventFilters(t *testing.T) {
	e := newEnv(t)
	old := seedEvents(t, e)
	c := e.client(e.adminToken())
	ctx := context.Background()
	seqs := func(q adminapi.EventQuery) []int64 {
		t.Helper()
		l, err := c.ListEvents(ctx, q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		out := []int64{}
		for _, ev := range l.Events {
			out = append(out, ev.Seq)
		}
		if n := len(l.Events); n > 0 && l.LastSeq != l.Events[n-1].Seq {
			t.Errorf("last_seq %d, last event %d", l.LastSeq, l.Events[n-1].Seq)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    adminapi.EventQuery
		want string
	}{
		{"all", adminapi.EventQuery{}, "[1 2 3 4 5]"},
		{"principal", adminapi.EventQuery{Principal: "agent-1"}, "[1 2]"},
		{"connection", adminapi.EventQuery{Connection: "billing"}, "[3 4 5]"},
		{"decision", adminapi.EventQuery{Decision: "deny"}, "[3]"},
		{"type", adminapi.EventQuery{Type: "statement"}, "[2 3 4]"},
		{"session", adminapi.EventQuery{Session: "s1"}, "[1 2]"},
		{"since duration", adminapi.EventQuery{Since: "1h"}, "[3 4 5]"},
		{"since rfc3339", adminapi.EventQuery{Since: old.Add(-time.Minute).Format(time.RFC3339)}, "[1 2 3 4 5]"},
		{"after", adminapi.EventQuery{After: 3}, "[4 5]"},
		{"limit keeps the most recent", adminapi.EventQuery{Limit: 2}, "[4 5]"},
		{"after pages forward", adminapi.EventQuery{After: 1, Limit: 2}, "[2 3]"},
		{"combined", adminapi.EventQuery{Type: "statement", Connection: "billing", Decision: "hold"}, "[4]"},
		{"none", adminapi.EventQuery{Principal: "nobody"}, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(seqs(tc.q)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	// after= with no newer events echoes it back as last_seq, so pollers keep their place.
	l, err := c.ListEvents(ctx, adminapi.EventQuery{After: 5})
	if err != nil || len(l.Events) != 0 || l.LastSeq != 5 {
		t.Fatalf("after=5: %+v %v", l, err)
	}
}

func TestAuditEventQueryErrors(t *testing.T) {
	e := newEnv(t)
	tok := e.adminToken()
	for _, q := range []string{
		"decision=maybe", "since=yesterday", "since=-1h", "after=-1", "after=x",
		"limit=0", "limit=1001", "limit=x", "colour=red",
	} {
		st, _, body := e.do("GET", "/api/v1/audit/events?"+q, tok, "")
		if st != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", q, st)
			continue
		}
		if eb := errorBody(t, body); eb.Reason == "" {
			t.Errorf("%s: no reason", q)
		}
	}
}

func TestParseEventFilterSince(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f, err := adminapi.ParseEventFilter(url.Values{"since": {"90m"}}, now)
	if err != nil || !f.Since.Equal(now.Add(-90*time.Minute)) || f.Limit != adminapi.DefaultEventLimit {
		t.Fatalf("since=90m: %+v %v", f, err)
	}
	f, err = adminapi.ParseEventFilter(url.Values{"since": {"2025-05-31T08:00:00+02:00"}}, now)
	if err != nil || !f.Since.Equal(time.Date(2025, 5, 31, 6, 0, 0, 0, time.UTC)) {
		t.Fatalf("since rfc3339: %+v %v", f, err)
	}
}

func FuzzParseEventFilter(f *testing.F) {
	for _, s := range []string{"", "since=1h&limit=10", "after=5&decision=deny", "since=2025-01-01T00:00:00Z", "limit=1000&type=statement", "since=-5m", "%zz"} {
		f.Add(s)
	}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fl, err := adminapi.ParseEventFilter(q, now)
		if err != nil {
			return
		}
		if fl.Limit < 1 || fl.Limit > adminapi.MaxEventLimit || fl.AfterSeq < 0 {
			t.Fatalf("accepted out-of-range filter %+v", fl)
		}
		switch fl.Decision {
		case "", "allow", "deny", "hold":
		default:
			t.Fatalf("accepted decision %q", fl.Decision)
		}
		if q.Get("since") != "" && fl.Since.IsZero() {
			t.Fatalf("since %q gave a zero time", q.Get("since"))
		}
	})
}
