package webhook

import (
	"strconv"
	"testing"
	"time"
)

func TestSignKnownVector(t *testing.T) {
	// Computed independently: printf '1795000000.{"a":1}' | openssl dgst -sha256 -hmac key
	const want = "sha256=1bd16f4bb96630234f5d9db1391a58d04079ea2aaf515271f43b4b91dcdfe987"
	got := Sign([]byte("key"), "1795000000", []byte(`{"a":1}`))
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerifyRejectsNonCanonicalTimestamp(t *testing.T) {
	now := time.Unix(1795000000, 0)
	body := []byte("{}")
	for _, ts := range []string{"+1795000000", "01795000000", " 1795000000", "1795000000.0", "-1"} {
		sig := Sign([]byte("k"), ts, body)
		if err := VerifyAt([]byte("k"), sig, ts, body, now, time.Hour); err != ErrBadTimestamp {
			t.Errorf("timestamp %q: %v, want ErrBadTimestamp", ts, err)
		}
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	if err := VerifyAt([]byte("k"), Sign([]byte("k"), ts, body), ts, body, now, time.Minute); err != nil {
		t.Errorf("canonical timestamp: %v", err)
	}
	// A clock ahead of the receiver's by more than the max age is refused
	// too, or a forged far-future timestamp would never go stale.
	if err := VerifyAt([]byte("k"), Sign([]byte("k"), ts, body), ts, body, now.Add(-2*time.Minute), time.Minute); err != ErrStale {
		t.Errorf("future timestamp: %v, want ErrStale", err)
	}
}

// FuzzVerify: Verify never panics on hostile headers, and what Sign makes
// always verifies.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("key"), "sha256=00", "1795000000", []byte(`{"type":"x"}`))
	f.Add([]byte(""), "", "", []byte(""))
	f.Add([]byte("k"), "sha256=zz", "99999999999999999999", []byte("\x00"))
	f.Fuzz(func(t *testing.T, key []byte, sig, ts string, body []byte) {
		_ = VerifyAt(key, sig, ts, body, time.Unix(1795000000, 0), time.Hour)
		now := time.Unix(1795000000, 0)
		good := strconv.FormatInt(now.Unix(), 10)
		if err := VerifyAt(key, Sign(key, good, body), good, body, now, time.Minute); err != nil {
			t.Fatalf("own signature: %v", err)
		}
	})
}
