package approval_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
)

func openStore(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.OpenDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type events struct {
	mu  sync.Mutex
	got []approval.Event
}

func (e *events) add(ev approval.Event) {
	e.mu.Lock()
	e.got = append(e.got, ev)
	e.mu.Unlock()
}

func (e *events) types() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got {
		out = append(out, ev.Type)
	}
	return out
}

var (
	agent = &access.Principal{Issuer: "https://idp", Subject: "agent-7", Groups: []string{"agents", "dba"}}
	dana  = &access.Principal{Issuer: "https://idp", Subject: "dana", Groups: []string{"dba"}}
	dan   = &access.Principal{Issuer: "https://idp", Subject: "dan", Groups: []string{"dba"}}
	eve   = &access.Principal{Issuer: "https://idp", Subject: "eve", Groups: []string{"analysts"}}
	// A subject of the same name from another issuer is someone else.
	otherIssuerAgent = &access.Principal{Issuer: "https://other", Subject: "agent-7", Groups: []string{"dba"}}
)

func request(stmt string, rule access.ReviewRule) approval.Request {
	return approval.Request{
		Session: &access.Session{ID: "s1", Principal: agent, Target: access.Target{Name: "orders", Type: "postgres"},
			ClientAddr: "127.0.0.1:5000", ApplicationName: "bot"},
		Protocol: "simple", Statement: stmt, Params: []string{"1"},
		Decision: access.Decision{Verdict: access.Hold, Policy: "p", Rule: "p/rule-1", Review: &rule},
	}
}

func newService(t *testing.T, dir string, ev *events) *approval.Service {
	return approval.New(approval.Config{Store: openStore(t, dir), DefaultTimeout: time.Minute,
		DefaultApprovers: []string{"group:admins"}, OnEvent: ev.add})
}

func TestVoteRules(t *testing.T) {
	ctx := context.Background()
	ev := &events{}
	s := newService(t, t.TempDir(), ev)
	tk, err := s.Open(ctx, request("delete from t where id = 1", access.ReviewRule{Approvers: []string{"group:dba"}, MinApprovals: 2}))
	if err != nil {
		t.Fatal(err)
	}
	id := tk.Review.ID
	for _, tc := range []struct {
		who     *access.Principal
		approve bool
		reason  string
		want    error
	}{
		{agent, true, "", approval.ErrSelfApproval},
		{eve, true, "", approval.ErrNotApprover},
		{dana, false, "", approval.ErrNeedReason},
		{dana, true, "", nil},
		{dana, true, "", approval.ErrAlreadyVoted},
	} {
		if _, err := s.Vote(ctx, id, tc.who, tc.approve, tc.reason); !errors.Is(err, tc.want) {
			t.Errorf("%s approve=%v: %v, want %v", tc.who.Subject, tc.approve, err, tc.want)
		}
	}
	if r, _ := s.Get(ctx, id); r.Status != approval.Pending || r.Approvals() != 1 {
		t.Fatalf("after one of two approvals: %+v", r)
	}
	// Same subject, other issuer: a different principal, may approve.
	r, err := s.Vote(ctx, id, otherIssuerAgent, true, "")
	if err != nil || r.Status != approval.Approved {
		t.Fatalf("second approval: %+v %v", r, err)
	}
	if got := tk.Wait(ctx); got.Status != approval.Approved || got.Outcome != "approved by dana, agent-7" {
		t.Fatalf("Wait: %+v", got)
	}
	if _, err := s.Vote(ctx, id, dan, true, ""); !errors.Is(err, approval.ErrFinal) {
		t.Fatalf("vote after decision: %v", err)
	}
	if _, err := s.Vote(ctx, "rv_nope", dan, true, ""); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("unknown review: %v", err)
	}
	want := []string{approval.EventCreated, approval.EventVoted, approval.EventApproved}
	if got := ev.types(); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("events %v, want %v", got, want)
	}
	stored, err := s.List(ctx, approval.Filter{Status: approval.Approved})
	if err != nil || len(stored) != 1 || len(stored[0].Votes) != 2 {
		t.Fatalf("stored: %+v %v", stored, err)
	}
}

func TestDenyExpireWithdraw(t *testing.T) {
	ctx := context.Background()
	s := newService(t, t.TempDir(), &events{})
	// Deny: one denial decides, with the reason.
	tk, _ := s.Open(ctx, request("drop table t", access.ReviewRule{Approvers: []string{"group:dba"}, MinApprovals: 2}))
	go s.Vote(ctx, tk.Review.ID, dana, false, "not in business hours")
	if r := tk.Wait(ctx); r.Status != approval.Denied || r.Outcome != "denied by dana: not in business hours" {
		t.Fatalf("deny: %+v", r)
	}
	// Expire: the rule's timeout.
	tk, _ = s.Open(ctx, request("drop table u", access.ReviewRule{Timeout: 50 * time.Millisecond}))
	if r := tk.Wait(ctx); r.Status != approval.Expired {
		t.Fatalf("expire: %+v", r)
	}
	// Withdraw: the waiter's context ends; the cause says why.
	tk, _ = s.Open(ctx, request("drop table v", access.ReviewRule{}))
	wctx, cancel := context.WithCancelCause(ctx)
	cancel(access.ErrClientGone)
	if r := tk.Wait(wctx); r.Status != approval.Withdrawn || r.Outcome != "the client disconnected while the statement waited for approval" {
		t.Fatalf("withdraw: %+v", r)
	}
	// Default approvers apply to a rule without approvers.
	if r, _ := s.Get(ctx, tk.Review.ID); len(r.Approvers) != 1 || r.Approvers[0] != "group:admins" {
		t.Fatalf("default approvers: %v", r.Approvers)
	}
}

func TestRemember(t *testing.T) {
	ctx := context.Background()
	s := newService(t, t.TempDir(), &events{})
	rule := access.ReviewRule{Approvers: []string{"group:dba"}, Remember: time.Minute}
	tk, _ := s.Open(ctx, request("insert into t values (1)", rule))
	s.Vote(ctx, tk.Review.ID, dana, true, "")
	tk.Wait(ctx)
	// The same statement (white space aside) is covered; another is not.
	again, _ := s.Open(ctx, request("insert  into t\nvalues (1)", rule))
	if !again.Remembered || again.Wait(ctx).Status != approval.Approved {
		t.Fatalf("not remembered: %+v", again)
	}
	other, _ := s.Open(ctx, request("insert into t values (2)", rule))
	if other.Remembered {
		t.Fatal("a different statement was covered by the remembered approval")
	}
}

// TestRecoverAfterRestart: a review pending when the gateway died is marked
// failed on the next start, and its history survives.
func TestRecoverAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first := newService(t, dir, &events{})
	tk, err := first.Open(ctx, request("delete from t where id = 9", access.ReviewRule{}))
	if err != nil {
		t.Fatal(err)
	}
	// The process "dies": nobody waits any more. A new one starts on the
	// same store.
	ev := &events{}
	second := newService(t, dir, ev)
	if err := second.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := second.Get(ctx, tk.Review.ID)
	if err != nil || r.Status != approval.Failed || r.Statement != "delete from t where id = 9" {
		t.Fatalf("after restart: %+v %v", r, err)
	}
	if got := ev.types(); len(got) != 1 || got[0] != approval.EventFailed {
		t.Fatalf("events: %v", got)
	}
	if _, err := second.Vote(ctx, r.ID, dana, true, ""); !errors.Is(err, approval.ErrFinal) {
		t.Fatalf("vote on a failed review: %v", err)
	}
}

// TestBinding: the approval binds statement, parameters, session and
// principal; changing any changes it.
func TestBinding(t *testing.T) {
	ctx := context.Background()
	s := newService(t, t.TempDir(), &events{})
	base := request("delete from t where id = $1", access.ReviewRule{})
	a, _ := s.Open(ctx, base)
	seen := map[string]bool{a.Review.Binding: true}
	variants := []func(r *approval.Request){
		func(r *approval.Request) { r.Statement += " " },
		func(r *approval.Request) { r.Params = []string{"2"} },
		func(r *approval.Request) { r.Params = []string{"1", ""} },
		func(r *approval.Request) { s := *r.Session; s.ID = "s2"; r.Session = &s },
		func(r *approval.Request) { s := *r.Session; s.Principal = dana; r.Session = &s },
	}
	for i, v := range variants {
		req := base
		v(&req)
		tk, _ := s.Open(ctx, req)
		if seen[tk.Review.Binding] {
			t.Errorf("variant %d has a binding seen before", i)
		}
		seen[tk.Review.Binding] = true
	}
}
