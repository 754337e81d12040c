package identity

import (
	"errors"
	"fmt"
)

// ErrIssuerUnavailable is wrapped by a TokenError when the token could not be
// checked because its issuer's discovery document or JWKS could not be
// fetched. The token may be fine; the caller may retry later.
var ErrIssuerUnavailable = errors.New("issuer unavailable")

// TokenError says why a token was refused. Reason is one client-safe
// sentence: it never contains the token itself, only facts about it (which
// claim, which time, which algorithm), so a gateway may send it to the client
// (e.g. as SQLSTATE 28P01 message text) and log it.
type TokenError struct {
	Reason string
	Err    error // underlying cause for errors.Is (e.g. ErrIssuerUnavailable); may be nil
}

func (e *TokenError) Error() string { return "invalid token: " + e.Reason }

func (e *TokenError) Unwrap() error { return e.Err }

// Unavailable reports whether the token was refused only because its issuer
// could not be reached (as opposed to the token being bad).
func (e *TokenError) Unavailable() bool { return errors.Is(e.Err, ErrIssuerUnavailable) }

func tokenErr(format string, args ...any) *TokenError {
	return &TokenError{Reason: fmt.Sprintf(format, args...)}
}

// quoteClaim quotes an attacker-controlled string for an error message,
// truncated so a huge claim cannot bloat logs.
func quoteClaim(s string) string {
	const max = 120
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}
