// Package engine is the seam between protocol engines (engine/postgres, later
// mysql, http, ssh, kube) and the rest of gatehouse. An engine speaks one wire
// protocol; it turns client traffic into access.Actions, asks the Checkpoint,
// and carries out each Decision in its protocol's terms. It never verifies
// tokens, decides policy or writes audit itself: it reaches those through the
// Opener and Checkpoint given to it by the gateway.
package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/gatehouse/gatehouse/internal/access"
)

// Engine serves client connections of one protocol.
type Engine interface {
	// Protocol names the engine, e.g. "postgres".
	Protocol() string
	// Serve handles one accepted client connection until it ends or ctx is
	// cancelled. It owns conn and closes it.
	Serve(ctx context.Context, conn net.Conn)
}

// OpenRequest is what an engine learned from a client's handshake.
type OpenRequest struct {
	Protocol   string            // engine protocol, e.g. "postgres"
	Target     string            // connection name the client asked for
	Token      string            // bearer token (never log it)
	ClientAddr net.Addr          // remote address
	ClientUser string            // user name the client claimed; recorded, not trusted
	TLS        bool              // client connection is TLS
	Params     map[string]string // protocol startup parameters (application_name, options…)
}

// Upstream tells an engine how to reach the target. Password is the
// decrypted upstream secret: engines must never log it or send it to clients.
type Upstream struct {
	Address  string      // host:port
	Database string      // upstream database name
	Username string      // upstream user
	Password string      // upstream secret
	TLSMode  string      // "disable", "require" or "verify-full"
	TLS      *tls.Config // non-nil when TLSMode != "disable"
}

// Opened is a session the gateway accepted.
type Opened struct {
	Session    *access.Session
	Upstream   Upstream
	Checkpoint Checkpoint
	// Close must be called once when the session ends; it records the
	// session-closed event. err is why it ended (nil for a clean Terminate).
	Close func(err error)
}

// Opener authenticates a client and resolves its target. The gateway
// implements it; engines call it once per connection after the handshake.
type Opener interface {
	Open(ctx context.Context, req OpenRequest) (*Opened, error)
}

// Checkpoint is where every action is decided and recorded. Check may block
// (approval holds). Record is called once for every action that Check
// allowed, when its outcome is known; it must not block the data path.
type Checkpoint interface {
	Check(ctx context.Context, a *access.Action) (access.Decision, error)
	// Hold waits for the human decision on an action Check held (Verdict
	// Hold), calling notify once with a message for the client first. It
	// returns Allow or Deny; ending ctx (the client cancelled or left)
	// withdraws the review.
	Hold(ctx context.Context, a *access.Action, d access.Decision, hc access.HoldContext, notify func(msg string)) access.Decision
	// Commit makes the decision to run an allowed action durable in the
	// audit before the engine forwards it: once per execution, right
	// before forwarding. It sets d.AuditID, which the engine passes to
	// Record with the outcome. An error means the audit could not be
	// written: the engine must not forward the action and answers with
	// CodeAuditUnavailable and the error's message (Commit has recorded
	// the refusal).
	Commit(a *access.Action, d *access.Decision) error
	// Record reports an action's outcome: Settle and Emit at once.
	Record(a *access.Action, d access.Decision, o access.Outcome)
	// Settle applies an outcome to what the session's next actions are
	// decided against; the engine calls it before the client can see the
	// outcome. Emit then records it in the audit, at most a reply later:
	// an engine that defers it keeps the audit work out of the client's
	// round trip. Each outcome is settled once and emitted once, in order.
	Settle(a *access.Action, d access.Decision, o *access.Outcome)
	Emit(a *access.Action, d access.Decision, o access.Outcome)
}

// Revalidator is a Checkpoint that can tell whether an earlier decision
// still stands (access.Basis). Engines that reuse a decision (prepared
// statements) ask before every reuse and decide again when it does not.
type Revalidator interface {
	Current(d *access.Decision) bool
}

// AuditUnavailableSQLState is the SQLSTATE of a statement refused because
// its audit record could not be written (class 58: system error, external
// to PostgreSQL). Clients may retry once the operator fixed the audit.
const AuditUnavailableSQLState = "58000"

// ErrorCode classifies why a session could not be opened, so each engine can
// map it to its protocol's error codes (SQLSTATE, MySQL errno, HTTP status).
type ErrorCode int

const (
	CodeInternal      ErrorCode = iota // gateway fault; the message says what failed
	CodeBadToken                       // missing, malformed, expired or unverifiable token
	CodeUnknownTarget                  // no connection of that name
	CodeNoAccess                       // principal is not allowed on the connection
	CodeUnavailable                    // upstream cannot be reached
	CodePlaintext                      // token sent without TLS where TLS is required
)

// Error is an error with a class. Message is safe to show to the client:
// it never contains secrets.
type Error struct {
	Code    ErrorCode
	Message string
	Err     error // underlying cause, for logs; may be nil
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted client-safe message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the class of err, CodeInternal when it carries none.
func CodeOf(err error) ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// MessageOf returns the client-safe message of err.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal gateway error"
}
