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
	"github.com/gatehouse/gatehouse/internal/audit"
)

// Limits of GET /api/v1/sessions and /api/v1/sessions/{id}.
const (
	DefaultSessionLimit      = 50
	MaxSessionLimit          = 500
	DefaultSessionEventLimit = 1000
	MaxSessionEventLimit     = 1000
)

// Session summarises one client session from its audit events: the
// session.opened event, the session.closed event (if any) and a count of
// its statement events.
type Session struct {
	ID              string         `json:"id"`
	Issuer          string         `json:"issuer,omitempty"`
	Subject         string         `json:"subject"`
	Groups          []string       `json:"groups,omitempty"`
	Act             []access.Actor `json:"act,omitempty"` // delegation chain (RFC 8693 act), outermost actor first
	Connection      string         `json:"connection"`
	Protocol        string         `json:"protocol,omitempty"`
	ClientAddr      string         `json:"client_addr,omitempty"`
	ClientUser      string         `json:"client_user,omitempty"`
	ApplicationName string         `json:"application_name,omitempty"`
	ClientID        string         `json:"client_id,omitempty"`
	TLS             bool           `json:"tls"`
	StartedAt       time.Time      `json:"started_at"`
	EndedAt         *time.Time     `json:"ended_at,omitempty"`  // nil: still open, or the gateway stopped before recording the end
	EndError        string         `json:"end_error,omitempty"` // why it ended, when not with a clean Terminate
	Statements      int64          `json:"statements"`          // statement events: allowed, denied and held
	OpenedSeq       int64          `json:"opened_seq"`          // seq of the session.opened event
}

// SessionList is the response of GET /api/v1/sessions: the most recent
// sessions matching the filter, oldest first.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

// SessionEvents is the response of GET /api/v1/sessions/{id}: the session
// and its events in order (session.opened first on the first page). More
// is set when a further page may follow: ask again with after=LastSeq.
type SessionEvents struct {
	Session Session       `json:"session"`
	Events  []audit.Event `json:"events"`
	LastSeq int64         `json:"last_seq"`
	More    bool          `json:"more"`
}

// sessionMeta is the part of the session events' Detail read here (the
// gateway's sessionDetail).
type sessionMeta struct {
	Protocol        string         `json:"protocol"`
	ClientAddr      string         `json:"client_addr"`
	ClientUser      string         `json:"client_user"`
	ApplicationName string         `json:"application_name"`
	ClientID        string         `json:"client_id"`
	TLS             bool           `json:"tls"`
	Error           string         `json:"error"`
	Groups          []string       `json:"groups"`
	Act             []access.Actor `json:"act"`
}

func (s *server) routeSessions(mux *http.ServeMux) {
	mux.Handle(APIPrefix+"/sessions", methods{http.MethodGet: s.admin(s.listSessions)})
	mux.Handle(APIPrefix+"/sessions/{id}", methods{http.MethodGet: s.admin(s.getSession)})
}

// ParseSessionFilter turns the query of GET /api/v1/sessions into a filter
// on session.opened events.
func ParseSessionFilter(q url.Values, now time.Time) (audit.Filter, error) {
	for k := range q {
		switch k {
		case "principal", "connection", "since", "limit":
		default:
			return audit.Filter{}, fmt.Errorf("unknown query parameter %q", k)
		}
	}
	f := audit.Filter{Type: audit.TypeSessionOpened, Principal: q.Get("principal"), Connection: q.Get("connection"),
		Limit: DefaultSessionLimit}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v, now)
		if err != nil {
			return audit.Filter{}, err
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxSessionLimit {
			return audit.Filter{}, fmt.Errorf("limit %q is invalid: use 1-%d", v, MaxSessionLimit)
		}
		f.Limit = n
	}
	return f, nil
}

func (s *server) listSessions(w http.ResponseWriter, r *http.Request) {
	f, err := ParseSessionFilter(r.URL.Query(), s.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	opened, err := s.o.Store.ListEvents(r.Context(), f)
	if err != nil {
		s.internal(w, r, "list sessions", err)
		return
	}
	out := SessionList{Sessions: make([]Session, 0, len(opened))}
	for _, e := range opened {
		sess, err := s.summarise(r.Context(), e)
		if err != nil {
			s.internal(w, r, "list sessions", err)
			return
		}
		out.Sessions = append(out.Sessions, sess)
	}
	writeJSON(w, http.StatusOK, out)
}

// summarise builds a session's summary from its opened event, reading its
// closed event and counting its statements.
func (s *server) summarise(ctx context.Context, opened audit.Event) (Session, error) {
	var m sessionMeta
	if len(opened.Detail) > 0 {
		json.Unmarshal(opened.Detail, &m) // best effort: the summary still has the top-level fields
	}
	sess := Session{ID: opened.SessionID, Issuer: opened.Issuer, Subject: opened.Subject, Connection: opened.Connection,
		Protocol: m.Protocol, ClientAddr: m.ClientAddr, ClientUser: m.ClientUser, ApplicationName: m.ApplicationName,
		ClientID: m.ClientID, TLS: m.TLS, StartedAt: opened.Time, OpenedSeq: opened.Seq, Groups: m.Groups, Act: m.Act}
	closed, err := s.o.Store.ListEvents(ctx, audit.Filter{SessionID: opened.SessionID, Type: audit.TypeSessionClosed, Limit: 1})
	if err != nil {
		return sess, err
	}
	if len(closed) > 0 {
		t := closed[0].Time
		sess.EndedAt = &t
		var cm sessionMeta
		if len(closed[0].Detail) > 0 {
			json.Unmarshal(closed[0].Detail, &cm)
		}
		sess.EndError = cm.Error
	}
	sess.Statements, err = s.o.Store.CountEvents(ctx, audit.Filter{SessionID: opened.SessionID, Type: audit.TypeStatement})
	return sess, err
}

func (s *server) getSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	for k := range q {
		if k != "after" && k != "limit" {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("unknown query parameter %q", k))
			return
		}
	}
	limit := DefaultSessionEventLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxSessionEventLimit {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit %q is invalid: use 1-%d", v, MaxSessionEventLimit))
			return
		}
		limit = n
	}
	var after int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("after %q is invalid: use a sequence number >= 0", v))
			return
		}
		after = n
	}
	opened, err := s.o.Store.ListEvents(r.Context(), audit.Filter{SessionID: id, Type: audit.TypeSessionOpened, Limit: 1})
	if err != nil {
		s.internal(w, r, "get session", err)
		return
	}
	if id == "" || len(opened) == 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no session %q in the audit log", id))
		return
	}
	sess, err := s.summarise(r.Context(), opened[0])
	if err != nil {
		s.internal(w, r, "get session", err)
		return
	}
	out := SessionEvents{Session: sess, Events: []audit.Event{}}
	// Every event of a session follows its session.opened event, so paging
	// forward from there reads them oldest first (ListEvents takes the
	// oldest N only after a positive seq).
	if after < sess.OpenedSeq {
		out.Events = append(out.Events, opened[0])
		after = sess.OpenedSeq
		limit--
	}
	if limit > 0 {
		evs, err := s.o.Store.ListEvents(r.Context(), audit.Filter{SessionID: id, AfterSeq: after, Limit: limit})
		if err != nil {
			s.internal(w, r, "get session", err)
			return
		}
		out.Events = append(out.Events, evs...)
		out.More = len(evs) == limit
	} else {
		out.More = true
	}
	out.LastSeq = after
	if n := len(out.Events); n > 0 {
		out.LastSeq = out.Events[n-1].Seq
	}
	writeJSON(w, http.StatusOK, out)
}

// SessionQuery selects sessions; zero fields do not filter.
type SessionQuery struct {
	Principal, Connection string
	Since                 string // RFC 3339 or a duration such as 1h
	Limit                 int
}

// ListSessions reads session summaries.
func (c *Client) ListSessions(ctx context.Context, sq SessionQuery) (*SessionList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"principal": sq.Principal, "connection": sq.Connection, "since": sq.Since} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if sq.Limit > 0 {
		q.Set("limit", strconv.Itoa(sq.Limit))
	}
	var out SessionList
	if err := c.do(ctx, http.MethodGet, APIPrefix+"/sessions", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetSession reads one page of a session's events, after seq after (0 =
// from the start).
func (c *Client) GetSession(ctx context.Context, id string, after int64, limit int) (*SessionEvents, error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out SessionEvents
	if err := c.do(ctx, http.MethodGet, APIPrefix+"/sessions/"+url.PathEscape(id), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
