package approval

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
)

// Store keeps reviews durably (the store package implements it).
type Store interface {
	PutReview(ctx context.Context, r Review) error // insert or replace by ID
	GetReview(ctx context.Context, id string) (Review, error)
	ListReviews(ctx context.Context, f Filter) ([]Review, error)
}

// Errors a vote can meet. Each is wrapped with a sentence for the approver.
var (
	ErrNotFound     = errors.New("no such review")
	ErrFinal        = errors.New("review already decided")
	ErrNotApprover  = errors.New("not an approver of this review")
	ErrSelfApproval = errors.New("requesters cannot approve their own statements")
	ErrAlreadyVoted = errors.New("already voted")
	ErrNeedReason   = errors.New("a denial needs a reason")
)

// Event types, emitted for the audit log and notifications.
const (
	EventCreated   = "review.created"
	EventVoted     = "review.voted" // an approval that did not yet reach min_approvals
	EventApproved  = "review.approved"
	EventDenied    = "review.denied"
	EventExpired   = "review.expired"
	EventWithdrawn = "review.withdrawn"
	EventFailed    = "review.failed"
)

// Event is a change to a review.
type Event struct {
	Type   string
	Review Review
	Actor  string // who caused it: the voter, or "" for the gateway
}

// Config configures a Service.
type Config struct {
	Store Store
	// DefaultTimeout applies to rules without a timeout (0 = 5 minutes).
	DefaultTimeout time.Duration
	// DefaultApprovers approve for rules that name none (the gateway's admins).
	DefaultApprovers []string
	// OnEvent receives every change, synchronously and in order; it must
	// not block (the audit log and webhooks queue).
	OnEvent func(Event)
	Logger  *slog.Logger
}

// Service keeps the reviews: open ones in memory with the session waiting
// on each, and every one in the store.
type Service struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	live     map[string]*waiter        // open reviews by id
	remember map[string]rememberedPass // rememberKey → approval that covers repeats
	subs     map[chan Event]struct{}
}

type waiter struct {
	r    Review        // guarded by Service.mu
	done chan struct{} // closed when r.Status becomes final
}

type rememberedPass struct {
	id    string
	until time.Time
	votes []Vote
}

// New returns a Service. Call Recover once at startup.
func New(cfg Config) *Service {
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, log: cfg.Logger, live: map[string]*waiter{},
		remember: map[string]rememberedPass{}, subs: map[chan Event]struct{}{}}
}

// Recover marks reviews left pending by an earlier run as failed: their
// sessions died with that gateway process, so the statement never ran and
// can never run.
func (s *Service) Recover(ctx context.Context) error {
	for {
		open, err := s.cfg.Store.ListReviews(ctx, Filter{Status: Pending, Limit: 500})
		if err != nil {
			return fmt.Errorf("approval: recover pending reviews: %w", err)
		}
		if len(open) == 0 {
			return nil
		}
		for _, r := range open {
			r.Status, r.DecidedAt = Failed, time.Now().UTC()
			r.Outcome = "the gateway stopped while this statement was held; the client's connection was closed and the statement did not run"
			if err := s.cfg.Store.PutReview(ctx, r); err != nil {
				return fmt.Errorf("approval: recover review %s: %w", r.ID, err)
			}
			s.emit(Event{Type: EventFailed, Review: r})
		}
	}
}

// Request is a held action as the checkpoint describes it.
type Request struct {
	Session   *access.Session
	Protocol  string
	Statement string
	Params    []string
	Facts     json.RawMessage
	History   []string
	Decision  access.Decision // Verdict Hold, with Review set
}

// Ticket is a session's claim on one review.
type Ticket struct {
	s *Service
	w *waiter
	// Review is the review as opened (or, for a remembered approval, the
	// approved review it repeats).
	Review Review
	// Remembered is set when an earlier approval covers this request
	// (the rule's remember window): Wait returns at once, approved.
	Remembered bool
}

// Open creates a review for req, or returns a Ticket that is already
// approved when the rule's remember window covers it.
func (s *Service) Open(ctx context.Context, req Request) (*Ticket, error) {
	rule := req.Decision.Review
	if rule == nil {
		rule = &access.ReviewRule{}
	}
	p := req.Session.Principal
	who := Requester{Issuer: p.Issuer, Subject: p.Subject, Groups: p.Groups, ClientID: p.ClientID, Act: p.Act}
	key := rememberKey(who, req.Session.Target.Name, req.Statement)
	now := time.Now().UTC()
	s.mu.Lock()
	if pass, ok := s.remember[key]; ok {
		if now.Before(pass.until) {
			s.mu.Unlock()
			r := Review{ID: pass.id, Status: Approved, Votes: pass.votes, Statement: req.Statement,
				Connection: req.Session.Target.Name, Requester: who, SessionID: req.Session.ID,
				Outcome: "approved earlier; the rule remembers the approval until " + pass.until.Format(time.RFC3339)}
			return &Ticket{s: s, Review: r, Remembered: true}, nil
		}
		delete(s.remember, key)
	}
	s.mu.Unlock()

	timeout := rule.Timeout
	if timeout <= 0 {
		timeout = s.cfg.DefaultTimeout
	}
	approvers := rule.Approvers
	if len(approvers) == 0 {
		approvers = s.cfg.DefaultApprovers
	}
	r := Review{
		ID: newID(), Status: Pending, CreatedAt: now, ExpiresAt: now.Add(timeout),
		Requester: who, Connection: req.Session.Target.Name, SessionID: req.Session.ID,
		ClientAddr: req.Session.ClientAddr, ApplicationName: req.Session.ApplicationName, Protocol: req.Protocol,
		Statement: req.Statement, Params: req.Params, Facts: req.Facts, History: req.History,
		Policy: req.Decision.Policy, Rule: req.Decision.Rule, Reason: rule.Message,
		Approvers: approvers, MinApprovals: max(rule.MinApprovals, 1), Remember: rule.Remember,
		Binding: binding(req.Statement, req.Params, req.Session.ID, who),
	}
	if err := s.cfg.Store.PutReview(ctx, r); err != nil {
		return nil, fmt.Errorf("approval: store review: %w", err)
	}
	w := &waiter{r: r, done: make(chan struct{})}
	s.mu.Lock()
	s.live[r.ID] = w
	s.mu.Unlock()
	s.emit(Event{Type: EventCreated, Review: r})
	return &Ticket{s: s, w: w, Review: r}, nil
}

// Wait blocks until the review is decided or expires, or ctx ends (the
// client cancelled or went away: the review is withdrawn). It returns the
// final review; the caller runs the statement only for Approved, once.
func (t *Ticket) Wait(ctx context.Context) Review {
	if t.Remembered {
		return t.Review
	}
	s, w := t.s, t.w
	timer := time.NewTimer(time.Until(w.r.ExpiresAt))
	defer timer.Stop()
	select {
	case <-w.done:
	case <-timer.C:
		s.finish(w, Expired, fmt.Sprintf("no decision within %s; the statement was not run", w.r.ExpiresAt.Sub(w.r.CreatedAt).Round(time.Second)), "")
	case <-ctx.Done():
		why := "the client cancelled the statement while it waited for approval"
		if errors.Is(context.Cause(ctx), access.ErrClientGone) {
			why = "the client disconnected while the statement waited for approval"
		}
		s.finish(w, Withdrawn, why, "")
	}
	<-w.done
	s.mu.Lock()
	r := w.r
	delete(s.live, r.ID)
	s.mu.Unlock()
	return r
}

// finish moves w to a final status unless it already has one. It reports
// whether it did.
func (s *Service) finish(w *waiter, st Status, outcome, actor string) bool {
	s.mu.Lock()
	if w.r.Status.Final() {
		s.mu.Unlock()
		return false
	}
	w.r.Status, w.r.Outcome, w.r.DecidedAt = st, outcome, time.Now().UTC()
	r := w.r
	if st == Approved && r.Remember > 0 {
		s.remember[rememberKey(r.Requester, r.Connection, r.Statement)] = rememberedPass{
			id: r.ID, until: r.DecidedAt.Add(r.Remember), votes: r.Votes}
	}
	s.mu.Unlock()
	s.persist(r)
	close(w.done)
	s.emit(Event{Type: eventFor(st), Review: r, Actor: actor})
	return true
}

func eventFor(st Status) string {
	switch st {
	case Approved:
		return EventApproved
	case Denied:
		return EventDenied
	case Expired:
		return EventExpired
	case Withdrawn:
		return EventWithdrawn
	}
	return EventFailed
}

// persist writes r to the store. A failure is logged and does not change
// the decision: the session is waiting on it, and the audit log records it.
func (s *Service) persist(r Review) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.cfg.Store.PutReview(ctx, r); err != nil {
		s.log.Error("storing review failed", "review", r.ID, "status", r.Status, "err", err)
	}
}

// Vote records voter's decision on review id. Approvals count once per
// approver; one denial decides.
func (s *Service) Vote(ctx context.Context, id string, voter *access.Principal, approve bool, reason string) (Review, error) {
	if !approve && strings.TrimSpace(reason) == "" {
		return Review{}, fmt.Errorf("%w: say why, the requester sees it", ErrNeedReason)
	}
	s.mu.Lock()
	w := s.live[id]
	if w == nil {
		s.mu.Unlock()
		r, err := s.cfg.Store.GetReview(ctx, id)
		if err != nil {
			return Review{}, fmt.Errorf("%w %q", ErrNotFound, id)
		}
		if r.Status == Pending {
			// Pending in the store but no session waits here: another
			// gateway node holds it, or it is being recovered.
			return r, fmt.Errorf("%w: review %s is held by another gateway process; vote there", ErrNotFound, id)
		}
		return r, fmt.Errorf("%w: review %s is already %s", ErrFinal, id, r.Status)
	}
	r := w.r
	switch {
	case r.Status.Final():
		s.mu.Unlock()
		return r, fmt.Errorf("%w: review %s is already %s", ErrFinal, id, r.Status)
	case voter.Issuer == r.Requester.Issuer && voter.Subject == r.Requester.Subject:
		s.mu.Unlock()
		return r, fmt.Errorf("%w: %s asked for review %s", ErrSelfApproval, voter.Subject, id)
	case !voter.MatchesAny(r.Approvers):
		s.mu.Unlock()
		return r, fmt.Errorf("%w: review %s needs one of %s", ErrNotApprover, id, strings.Join(r.Approvers, ", "))
	}
	for _, v := range r.Votes {
		if v.Issuer == voter.Issuer && v.Subject == voter.Subject {
			s.mu.Unlock()
			return r, fmt.Errorf("%w: %s already voted on review %s", ErrAlreadyVoted, voter.Subject, id)
		}
	}
	w.r.Votes = append(w.r.Votes, Vote{Issuer: voter.Issuer, Subject: voter.Subject, Approve: approve,
		Reason: reason, Time: time.Now().UTC()})
	approvals, need := w.r.Approvals(), w.r.MinApprovals
	r = w.r
	s.mu.Unlock()

	switch {
	case !approve:
		s.finish(w, Denied, fmt.Sprintf("denied by %s: %s", voter.Subject, reason), voter.Subject)
	case approvals >= need:
		s.finish(w, Approved, fmt.Sprintf("approved by %s", approverNames(r.Votes)), voter.Subject)
	default:
		s.persist(r)
		s.emit(Event{Type: EventVoted, Review: r, Actor: voter.Subject})
		return r, nil
	}
	s.mu.Lock()
	r = w.r
	s.mu.Unlock()
	return r, nil
}

func approverNames(votes []Vote) string {
	var names []string
	for _, v := range votes {
		if v.Approve {
			names = append(names, v.Subject)
		}
	}
	return strings.Join(names, ", ")
}

// Get returns review id: the live copy while it is open, else the stored one.
func (s *Service) Get(ctx context.Context, id string) (Review, error) {
	s.mu.Lock()
	if w := s.live[id]; w != nil {
		r := w.r
		s.mu.Unlock()
		return r, nil
	}
	s.mu.Unlock()
	r, err := s.cfg.Store.GetReview(ctx, id)
	if err != nil {
		return Review{}, fmt.Errorf("%w %q", ErrNotFound, id)
	}
	return r, nil
}

// List returns stored reviews matching f, most recent first.
func (s *Service) List(ctx context.Context, f Filter) ([]Review, error) {
	return s.cfg.Store.ListReviews(ctx, f)
}

// Subscribe returns a channel of every event from now on, and a function
// that ends the subscription. A subscriber that falls behind by more than
// the buffer loses events (it can re-list); the data path never waits.
func (s *Service) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 64)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
		s.mu.Unlock()
	}
}

func (s *Service) emit(e Event) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(e)
	}
	s.mu.Lock()
	for ch := range s.subs {
		select {
		case ch <- e:
		default:
		}
	}
	s.mu.Unlock()
}

// newID returns a short, unguessable, URL- and shell-safe review id.
func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return "rv_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
