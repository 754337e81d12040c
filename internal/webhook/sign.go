package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Request headers of every delivery. docs/webhooks.md describes them.
const (
	HeaderEvent     = "X-Gatehouse-Event"     // event type, or "batch" for a batched POST
	HeaderDelivery  = "X-Gatehouse-Delivery"  // unique per delivery, the same on every retry of it
	HeaderTimestamp = "X-Gatehouse-Timestamp" // Unix seconds when this attempt was signed
	HeaderSignature = "X-Gatehouse-Signature" // "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body)
)

// DefaultMaxAge is how far a delivery's timestamp may be from the
// receiver's clock before Verify refuses it: long enough for clock skew and
// a slow network, short enough that a captured request cannot be replayed
// much later. Receivers dedupe by the delivery id within that window.
const DefaultMaxAge = 5 * time.Minute

const sigPrefix = "sha256="

// Verification errors. None of them says more than which check failed.
var (
	ErrNoSignature  = errors.New("webhook: missing or malformed signature header")
	ErrBadTimestamp = errors.New("webhook: missing or malformed timestamp header")
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrStale        = errors.New("webhook: timestamp outside the allowed age")
)

// Sign returns the X-Gatehouse-Signature value for body sent at timestamp
// (decimal Unix seconds). The timestamp is inside the MAC so that an old
// request cannot be replayed with a fresh timestamp header.
func Sign(secret []byte, timestamp string, body []byte) string {
	return sigPrefix + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(timestamp))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a delivery as a receiver would: signature is the
// X-Gatehouse-Signature header, timestamp the X-Gatehouse-Timestamp header
// and body the raw request body. The timestamp must be within
// DefaultMaxAge of now.
func Verify(secret []byte, signature, timestamp string, body []byte) error {
	return VerifyAt(secret, signature, timestamp, body, time.Now(), DefaultMaxAge)
}

// VerifyAt is Verify with an explicit clock and maximum age.
func VerifyAt(secret []byte, signature, timestamp string, body []byte, now time.Time, maxAge time.Duration) error {
	hexSig, ok := strings.CutPrefix(signature, sigPrefix)
	if !ok || len(hexSig) != 2*sha256.Size {
		return ErrNoSignature
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || ts < 0 || strconv.FormatInt(ts, 10) != timestamp {
		// Only the canonical form: "+17…" or "017…" would verify under
		// a different string than the one a strict receiver logs.
		return ErrBadTimestamp
	}
	if !hmac.Equal(got, mac(secret, timestamp, body)) {
		return ErrBadSignature
	}
	if age := now.Sub(time.Unix(ts, 0)); age > maxAge || age < -maxAge {
		return ErrStale
	}
	return nil
}
