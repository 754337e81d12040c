package approval

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
)

// GrantStatus is where a time-bound access grant is in its life.
type GrantStatus string

const (
	GrantPending GrantStatus = "pending" // waiting for an approver
	GrantActive  GrantStatus = "active"  // approved; in force until ExpiresAt
	GrantDenied  GrantStatus = "denied"
	GrantRevoked GrantStatus = "revoked"
	GrantExpired GrantStatus = "expired" // reported for active grants past ExpiresAt
)

// Grant is a request for extra access: membership of Group on Connection for
// Duration, once approved.
type Grant struct {
	ID         string        `json:"id"`
	Status     GrantStatus   `json:"status"`
	Requester  Requester     `json:"requester"`
	Connection string        `json:"connection"`
	Group      string        `json:"group"`
	Duration   time.Duration `json:"duration"`
	Reason     string        `json:"reason"`
	Approvers  []string      `json:"approvers"`
	CreatedAt  time.Time     `json:"created_at"`
	DecidedAt  time.Time     `json:"decided_at,omitzero"`
	ExpiresAt  time.Time     `json:"expires_at,omitzero"` // set on approval: DecidedAt + Duration
	Votes      []Vote        `json:"votes,omitempty"`
	Outcome    string        `json:"outcome,omitempty"`
}

// Effective is the status as of now: an active grant past its end is expired.
func (g Grant) Effective(now time.Time) GrantStatus {
	if g.Status == GrantActive && !now.Before(g.ExpiresAt) {
		return GrantExpired
	}
	return g.Status
}

// GrantFilter selects grants for listing. Zero fields do not filter.
type GrantFilter struct {
	Status     GrantStatus // stored status; "expired" selects active ones past their end
	Connection string
	Subject    string
	Limit      int
}

// GrantStore keeps grants durably.
type GrantStore interface {
	PutGrant(ctx context.Context, g Grant) error
	GetGrant(ctx context.Context, id string) (Grant, error)
	ListGrants(ctx context.Context, f GrantFilter) ([]Grant, error)
}

// Grant events.
const (
	EventGrantRequested = "grant.requested"
	EventGrantApproved  = "grant.approved"
	EventGrantDenied    = "grant.denied"
	EventGrantRevoked   = "grant.revoked"
)

// GrantEvent is a change to a grant.
type GrantEvent struct {
	Type  string
	Grant Grant
	Actor string
}

// MaxGrantDuration bounds how long one grant may last.
const MaxGrantDuration = 7 * 24 * time.Hour

// grantIndex maps issuer+subject+connection to the active grants, for the
// per-statement lookup: immutable, swapped whole on every change.
type grantIndex map[string][]Grant

func grantKey(issuer, subject, connection string) string {
	return issuer + "\x00" + subject + "\x00" + connection
}

// Grants manages time-bound access grants.
type Grants struct {
	store     GrantStore
	approvers []string
	onEvent   func(GrantEvent)
	index     atomic.Pointer[grantIndex]
}

// NewGrants returns the grant manager; approvers approve every grant (the
// gateway's approvals.approvers, else its admins). Call Load at startup.
func NewGrants(store GrantStore, approvers []string, onEvent func(GrantEvent)) *Grants {
	g := &Grants{store: store, approvers: approvers, onEvent: onEvent}
	g.index.Store(&grantIndex{})
	return g
}

// Load rebuilds the index of active grants from the store.
func (g *Grants) Load(ctx context.Context) error {
	active, err := g.store.ListGrants(ctx, GrantFilter{Status: GrantActive, Limit: 100000})
	if err != nil {
		return fmt.Errorf("approval: load grants: %w", err)
	}
	idx := grantIndex{}
	now := time.Now()
	for _, gr := range active {
		if gr.Effective(now) == GrantActive {
			k := grantKey(gr.Requester.Issuer, gr.Requester.Subject, gr.Connection)
			idx[k] = append(idx[k], gr)
		}
	}
	g.index.Store(&idx)
	return nil
}

// Groups returns the groups p holds on connection through grants active
// now. It is on every statement's path: one map lookup, no lock; expiry
// takes effect at the next statement.
func (g *Grants) Groups(p *access.Principal, connection string) []string {
	idx := *g.index.Load()
	if len(idx) == 0 || p == nil {
		return nil
	}
	grants := idx[grantKey(p.Issuer, p.Subject, connection)]
	if len(grants) == 0 {
		return nil
	}
	now := time.Now()
	var out []string
	for _, gr := range grants {
		if now.Before(gr.ExpiresAt) {
			out = append(out, gr.Group)
		}
	}
	return out
}

// Snapshot identifies the grants in force (compared by identity: any
// grant approved, revoked or expired by a sweep replaces it) and returns the
// earliest expiry among p's active grants on connection (zero = none), for
// decisions that must be made again once that grant lapses.
func (g *Grants) Snapshot(p *access.Principal, connection string) (index any, until time.Time) {
	idx := g.index.Load()
	if p == nil || len(*idx) == 0 {
		return idx, time.Time{}
	}
	now := time.Now()
	for _, gr := range (*idx)[grantKey(p.Issuer, p.Subject, connection)] {
		if now.Before(gr.ExpiresAt) && (until.IsZero() || gr.ExpiresAt.Before(until)) {
			until = gr.ExpiresAt
		}
	}
	return idx, until
}

// Request records p's request for group on connection for d.
func (g *Grants) Request(ctx context.Context, p *access.Principal, connection, group string, d time.Duration, reason string) (Grant, error) {
	switch {
	case connection == "" || group == "":
		return Grant{}, fmt.Errorf("%w: a grant names a connection and a group", ErrBadRequest)
	case d <= 0 || d > MaxGrantDuration:
		return Grant{}, fmt.Errorf("%w: the duration must be positive and at most %s (got %s)", ErrBadRequest, MaxGrantDuration, d)
	case strings.TrimSpace(reason) == "":
		return Grant{}, fmt.Errorf("%w: say why you need the access; approvers read it", ErrBadRequest)
	}
	gr := Grant{ID: "gr_" + newID()[3:], Status: GrantPending, Connection: connection, Group: group, Duration: d,
		Reason: reason, Approvers: g.approvers, CreatedAt: time.Now().UTC(),
		Requester: Requester{Issuer: p.Issuer, Subject: p.Subject, Groups: p.Groups, ClientID: p.ClientID, Act: p.Act}}
	if err := g.store.PutGrant(ctx, gr); err != nil {
		return Grant{}, fmt.Errorf("approval: store grant: %w", err)
	}
	g.emit(EventGrantRequested, gr, p.Subject)
	return gr, nil
}

// ErrBadRequest marks a malformed grant request.
var ErrBadRequest = fmt.Errorf("invalid request")

// Vote approves or denies a pending grant. Approval starts it now.
func (g *Grants) Vote(ctx context.Context, id string, voter *access.Principal, approve bool, reason string) (Grant, error) {
	gr, err := g.store.GetGrant(ctx, id)
	if err != nil {
		return Grant{}, fmt.Errorf("%w %q", ErrNotFound, id)
	}
	switch {
	case gr.Status != GrantPending:
		return gr, fmt.Errorf("%w: grant %s is already %s", ErrFinal, id, gr.Effective(time.Now()))
	case voter.Issuer == gr.Requester.Issuer && voter.Subject == gr.Requester.Subject:
		return gr, fmt.Errorf("%w: %s asked for grant %s", ErrSelfApproval, voter.Subject, id)
	case !voter.MatchesAny(gr.Approvers):
		return gr, fmt.Errorf("%w: grant %s needs one of %s", ErrNotApprover, id, strings.Join(gr.Approvers, ", "))
	case !approve && strings.TrimSpace(reason) == "":
		return gr, fmt.Errorf("%w: say why, the requester sees it", ErrNeedReason)
	}
	now := time.Now().UTC()
	gr.Votes = append(gr.Votes, Vote{Issuer: voter.Issuer, Subject: voter.Subject, Approve: approve, Reason: reason, Time: now})
	gr.DecidedAt = now
	ev := EventGrantDenied
	if approve {
		gr.Status, gr.ExpiresAt, ev = GrantActive, now.Add(gr.Duration), EventGrantApproved
		gr.Outcome = fmt.Sprintf("approved by %s until %s", voter.Subject, gr.ExpiresAt.Format(time.RFC3339))
	} else {
		gr.Status, gr.Outcome = GrantDenied, fmt.Sprintf("denied by %s: %s", voter.Subject, reason)
	}
	if err := g.store.PutGrant(ctx, gr); err != nil {
		return gr, fmt.Errorf("approval: store grant: %w", err)
	}
	if err := g.Load(ctx); err != nil {
		return gr, err
	}
	g.emit(ev, gr, voter.Subject)
	return gr, nil
}

// Revoke ends an active (or withdraws a pending) grant. Admins and the
// grant's approvers may revoke any grant; requesters their own. Live
// sessions lose the access at their next statement.
func (g *Grants) Revoke(ctx context.Context, id string, by *access.Principal, admins []string, reason string) (Grant, error) {
	gr, err := g.store.GetGrant(ctx, id)
	if err != nil {
		return Grant{}, fmt.Errorf("%w %q", ErrNotFound, id)
	}
	own := by.Issuer == gr.Requester.Issuer && by.Subject == gr.Requester.Subject
	if !own && !by.MatchesAny(admins) && !by.MatchesAny(gr.Approvers) {
		return gr, fmt.Errorf("%w: only admins, approvers and the requester may revoke grant %s", ErrNotApprover, id)
	}
	if st := gr.Effective(time.Now()); st != GrantActive && st != GrantPending {
		return gr, fmt.Errorf("%w: grant %s is already %s", ErrFinal, id, st)
	}
	gr.Status, gr.DecidedAt = GrantRevoked, time.Now().UTC()
	gr.Outcome = "revoked by " + by.Subject
	if reason != "" {
		gr.Outcome += ": " + reason
	}
	if err := g.store.PutGrant(ctx, gr); err != nil {
		return gr, fmt.Errorf("approval: store grant: %w", err)
	}
	if err := g.Load(ctx); err != nil {
		return gr, err
	}
	g.emit(EventGrantRevoked, gr, by.Subject)
	return gr, nil
}

// Get returns one grant.
func (g *Grants) Get(ctx context.Context, id string) (Grant, error) {
	gr, err := g.store.GetGrant(ctx, id)
	if err != nil {
		return Grant{}, fmt.Errorf("%w %q", ErrNotFound, id)
	}
	return gr, nil
}

// List returns grants matching f, most recent first, with expired ones
// reported as such.
func (g *Grants) List(ctx context.Context, f GrantFilter) ([]Grant, error) {
	want := f.Status
	if want == GrantExpired {
		f.Status = GrantActive
	}
	all, err := g.store.ListGrants(ctx, f)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := all[:0]
	for _, gr := range all {
		gr.Status = gr.Effective(now)
		if want == "" || gr.Status == want {
			out = append(out, gr)
		}
	}
	return out, nil
}

func (g *Grants) emit(typ string, gr Grant, actor string) {
	if g.onEvent != nil {
		g.onEvent(GrantEvent{Type: typ, Grant: gr, Actor: actor})
	}
}
