package adminapi_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/audit"
)

func TestSessions(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	evs := []audit.Event{
		{Time: now.Add(-2 * time.Hour), Type: audit.TypeSessionOpened, SessionID: "s1", Subject: "agent-1", Connection: "orders",
			Detail: []byte(`{"protocol":"postgres","client_addr":"127.0.0.1:5000","application_name":"psql","tls":false}`)},
		{Time: now, Type: audit.TypeSessionOpened, SessionID: "s2", Subject: "agent-2", Connection: "billing"},
		{Time: now, Type: audit.TypeStatement, SessionID: "s1", Subject: "agent-1", Connection: "orders", Decision: "allow", Statement: "SELECT 1"},
		{Time: now, Type: audit.TypeStatement, SessionID: "s1", Subject: "agent-1", Connection: "orders", Decision: "deny", Statement: "DROP TABLE t"},
		{Time: now, Type: audit.TypeStatement, SessionID: "s2", Subject: "agent-2", Connection: "billing", Decision: "allow", Statement: "SELECT 2"},
		{Time: now, Type: audit.TypeSessionClosed, SessionID: "s1", Subject: "agent-1", Connection: "orders", Detail: []byte(`{"error":"client disconnected"}`)},
	}
	if err := e.store.AppendEvents(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	c := e.client(e.adminToken())
	ctx := context.Background()
	l, err := c.ListSessions(ctx, adminapi.SessionQuery{})
	if err != nil || len(l.Sessions) != 2 {
		t.Fatalf("list = %+v, %v", l, err)
	}
	s1 := l.Sessions[0]
	if s1.ID != "s1" || s1.Subject != "agent-1" || s1.Statements != 2 || s1.EndedAt == nil || s1.EndError != "client disconnected" ||
		s1.ApplicationName != "psql" || s1.ClientAddr != "127.0.0.1:5000" || s1.Protocol != "postgres" {
		t.Errorf("s1 = %+v", s1)
	}
	if s2 := l.Sessions[1]; s2.ID != "s2" || s2.Statements != 1 || s2.EndedAt != nil {
		t.Errorf("s2 = %+v", s2)
	}
	for q, want := range map[adminapi.SessionQuery]string{
		{Principal: "agent-2"}: "s2", {Connection: "orders"}: "s1", {Since: "1h"}: "s2", {Limit: 1}: "s2",
	} {
		l, err := c.ListSessions(ctx, q)
		if err != nil || len(l.Sessions) != 1 || l.Sessions[0].ID != want {
			t.Errorf("%+v: %+v, %v; want only %s", q, l, err, want)
		}
	}
	// One session's events, in pages.
	got, err := c.GetSession(ctx, "s1", 0, 2)
	if err != nil || got.Session.ID != "s1" || len(got.Events) != 2 || got.Events[0].Type != audit.TypeSessionOpened ||
		got.Events[1].Statement != "SELECT 1" || !got.More {
		t.Fatalf("page 1 = %+v, %v", got, err)
	}
	got, err = c.GetSession(ctx, "s1", got.LastSeq, 2)
	if err != nil || len(got.Events) != 2 || got.Events[0].Statement != "DROP TABLE t" || got.Events[1].Type != audit.TypeSessionClosed {
		t.Fatalf("page 2 = %+v, %v", got, err)
	}
	var he *adminapi.APIError
	if _, err := c.GetSession(ctx, "nope", 0, 0); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Errorf("unknown session: %v", err)
	}
	// Admins only.
	if st, _, _ := e.do("GET", "/api/v1/sessions", e.userToken(), ""); st != http.StatusForbidden {
		t.Errorf("non-admin list: %d", st)
	}
	if st, _, _ := e.do("GET", "/api/v1/sessions/s1", e.userToken(), ""); st != http.StatusForbidden {
		t.Errorf("non-admin get: %d", st)
	}
	if st, _, _ := e.do("GET", "/api/v1/sessions?limit=0", e.adminToken(), ""); st != http.StatusBadRequest {
		t.Errorf("bad limit: %d", st)
	}
}
