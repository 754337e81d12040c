package credential

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func mustBox(t testing.TB, key []byte) *Box {
	t.Helper()
	b, err := NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	b := mustBox(t, testKey(1))
	for _, pt := range [][]byte{nil, {}, []byte("s3cret"), bytes.Repeat([]byte{0xff}, 4096)} {
		ct, err := b.Seal(pt, []byte("orders"))
		if err != nil {
			t.Fatal(err)
		}
		if len(ct) != headerSize+len(pt)+tagSize {
			t.Errorf("len = %d, want %d", len(ct), headerSize+len(pt)+tagSize)
		}
		if ct[0] != version1 {
			t.Errorf("version byte = %d", ct[0])
		}
		if len(pt) > 4 && bytes.Contains(ct, pt) {
			t.Error("ciphertext contains the plaintext")
		}
		got, err := b.Open(ct, []byte("orders"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open = %q, want %q", got, pt)
		}
	}
}

func TestSealIsRandomized(t *testing.T) {
	b := mustBox(t, testKey(1))
	c1, _ := b.Seal([]byte("pw"), nil)
	c2, _ := b.Seal([]byte("pw"), nil)
	if bytes.Equal(c1, c2) {
		t.Fatal("two seals of the same plaintext are equal: nonce reuse")
	}
}

func TestOpenWrongAAD(t *testing.T) {
	b := mustBox(t, testKey(1))
	ct, _ := b.Seal([]byte("pw"), []byte("orders"))
	for _, aad := range [][]byte{nil, []byte("billing"), []byte("orders "), []byte("Orders")} {
		if _, err := b.Open(ct, aad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Open with aad %q: err = %v, want ErrCorrupt", aad, err)
		}
	}
}

func TestOpenWrongKey(t *testing.T) {
	b1 := mustBox(t, testKey(1))
	b2 := mustBox(t, testKey(2))
	ct, _ := b1.Seal([]byte("pw"), []byte("x"))
	_, err := b2.Open(ct, []byte("x"))
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("err = %v, want ErrWrongKey", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "different key") || !strings.Contains(msg, b1.KeyID()) || !strings.Contains(msg, b2.KeyID()) {
		t.Errorf("message %q should name both key ids", msg)
	}
}

func TestOpenTampered(t *testing.T) {
	b := mustBox(t, testKey(1))
	ct, _ := b.Seal([]byte("password"), []byte("x"))
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		_, err := b.Open(bad, []byte("x"))
		if err == nil {
			t.Fatalf("flipping byte %d was accepted", i)
		}
		// A flipped key-id byte is reported as a key mismatch; everything
		// else is corruption.
		if i >= 1 && i < 1+keyIDSize {
			if !errors.Is(err, ErrWrongKey) {
				t.Errorf("byte %d: err = %v, want ErrWrongKey", i, err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d: err = %v, want ErrCorrupt", i, err)
		}
	}
	for n := 0; n < len(ct); n++ {
		if _, err := b.Open(ct[:n], []byte("x")); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d: err = %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := b.Open(append(bytes.Clone(ct), 0), []byte("x")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("extended: err = %v", err)
	}
}

func TestNewBoxKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := NewBox(make([]byte, n)); err == nil {
			t.Errorf("NewBox accepted a %d-byte key", n)
		}
	}
}

func TestKeyIDIsPrefixOfSHA256(t *testing.T) {
	// sha256 of 32 zero bytes begins 66687aad.
	if got := mustBox(t, make([]byte, KeySize)).KeyID(); got != "66687aad" {
		t.Fatalf("KeyID = %s", got)
	}
}

// FuzzOpen checks that Open never panics and never accepts anything but the
// exact ciphertext Seal produced, under the exact associated data.
func FuzzOpen(f *testing.F) {
	b := mustBox(f, testKey(7))
	valid := map[string]string{} // ciphertext -> aad
	// Fixed nonces: every fuzz worker process must build the same set.
	for i, s := range []struct{ pt, aad string }{{"pw", "orders"}, {"", ""}, {"a longer password value", "billing"}} {
		ct := b.seal([]byte(s.pt), []byte(s.aad), [nonceSize]byte{byte(i)})
		valid[string(ct)] = s.aad
		f.Add(ct, []byte(s.aad))
		f.Add(ct[:len(ct)-1], []byte(s.aad))
		f.Add(ct, []byte(s.aad+"x"))
	}
	f.Add([]byte{}, []byte{})
	f.Add([]byte{1}, []byte("x"))
	f.Add([]byte{2, 0, 0, 0, 0}, []byte("x"))
	f.Fuzz(func(t *testing.T, ct, aad []byte) {
		pt, err := b.Open(ct, aad)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if wantAAD, ok := valid[string(ct)]; !ok || wantAAD != string(aad) {
			t.Fatalf("Open accepted a ciphertext Seal never produced: %x (aad %q)", ct, aad)
		}
	})
}
