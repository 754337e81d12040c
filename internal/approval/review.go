// Package approval holds risky actions for a human's just-in-time approval.
// A policy rule with `review:` makes the checkpoint open a Review and wait;
// approvers vote through the API or CLI; the waiting session then runs the
// action exactly once, or refuses it with the approver's reason.
//
// The package knows nothing of protocols: the checkpoint builds a Request
// from the action, the Service keeps the review (in memory for the waiter, in
// the store for history and restarts) and enforces the approver rules.
package approval

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
)

// Status is where a review is in its life.
type Status string

const (
	Pending   Status = "pending"   // waiting for approvers
	Approved  Status = "approved"  // enough approvals; the statement ran (or runs now)
	Denied    Status = "denied"    // an approver refused it
	Expired   Status = "expired"   // nobody decided within the timeout
	Withdrawn Status = "withdrawn" // the client cancelled or disconnected while it waited
	Failed    Status = "failed"    // the gateway stopped while it waited; the client's connection is gone
)

// Final reports whether the status can no longer change.
func (s Status) Final() bool { return s != Pending }

// Requester is who asked: the principal of the session, as approvers must
// see it (including the agent's delegation chain).
type Requester struct {
	Issuer   string         `json:"issuer"`
	Subject  string         `json:"subject"`
	Groups   []string       `json:"groups,omitempty"`
	ClientID string         `json:"client_id,omitempty"`
	Act      []access.Actor `json:"act,omitempty"`
}

// Vote is one approver's decision.
type Vote struct {
	Issuer  string    `json:"issuer"`
	Subject string    `json:"subject"`
	Approve bool      `json:"approve"`
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
}

// Review is one held action and what became of it.
type Review struct {
	ID        string    `json:"id"`
	Status    Status    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	DecidedAt time.Time `json:"decided_at,omitzero"`

	Requester       Requester `json:"requester"`
	Connection      string    `json:"connection"`
	SessionID       string    `json:"session_id"`
	ClientAddr      string    `json:"client_addr,omitempty"`
	ApplicationName string    `json:"application_name,omitempty"`
	Protocol        string    `json:"protocol,omitempty"`

	// Statement is the exact text that will run; Params its bound
	// parameters as text (masked per the session's policy; binary values
	// are shown by size only).
	Statement string          `json:"statement"`
	Params    []string        `json:"params,omitempty"`
	Facts     json.RawMessage `json:"facts,omitempty"`   // statement facts, as the policy saw them
	History   []string        `json:"history,omitempty"` // the session's earlier statements, oldest first

	Policy string `json:"policy,omitempty"`
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"` // why the rule holds it

	Approvers    []string      `json:"approvers"` // who may approve
	MinApprovals int           `json:"min_approvals"`
	Remember     time.Duration `json:"remember,omitempty"`

	Votes []Vote `json:"votes,omitempty"`
	// Outcome explains a final status in one sentence: the denier's
	// reason, the timeout, the withdrawal.
	Outcome string `json:"outcome,omitempty"`
	// Binding is the SHA-256 of what was approved (statement, parameters,
	// session, principal): an approval is valid only for exactly that.
	Binding string `json:"binding"`
}

// Approvals counts the approving votes.
func (r *Review) Approvals() int {
	n := 0
	for _, v := range r.Votes {
		if v.Approve {
			n++
		}
	}
	return n
}

// Filter selects reviews for listing. Zero fields do not filter.
type Filter struct {
	Status     Status
	Connection string
	Subject    string // requester subject
	Limit      int    // at most N, most recent first (0 = 100)
}

// binding hashes what an approval is bound to. Fields are length-prefixed
// so no two different inputs encode alike.
func binding(statement string, params []string, sessionID string, who Requester) string {
	h := sha256.New()
	put := func(s string) {
		var n [8]byte
		for i, l := 0, uint64(len(s)); i < 8; i++ {
			n[i] = byte(l >> (56 - 8*i))
		}
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put("gatehouse-review-v1")
	put(statement)
	put(strings.Repeat("p", len(params)))
	for _, p := range params {
		put(p)
	}
	put(sessionID)
	put(who.Issuer)
	put(who.Subject)
	return hex.EncodeToString(h.Sum(nil))
}

// rememberKey identifies "the same statement by the same principal on the
// same connection" for a rule's remember window. The statement is
// normalised only in white space: anything else may change its meaning.
func rememberKey(who Requester, connection, statement string) string {
	return who.Issuer + "\x00" + who.Subject + "\x00" + connection + "\x00" + strings.Join(strings.Fields(statement), " ")
}
