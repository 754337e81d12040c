package masking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"unicode/utf8"
)

// Method is a column masking method, as named in policy files.
type Method string

// The masking methods. See README.md for what each does per type.
const (
	Redact      Method = "redact"       // a fixed value: "[REDACTED]", 0, false, epoch, nil UUID, …
	Last4       Method = "last4"        // keep the last 4 characters/digits
	Hash        Method = "hash"         // keyed HMAC-SHA256, stable per value (joins keep working)
	Null        Method = "null"         // SQL NULL
	EmailDomain Method = "email-domain" // keep "@domain", replace the local part
)

// Valid reports whether m is one of the known methods.
func (m Method) Valid() bool {
	switch m {
	case Redact, Last4, Hash, Null, EmailDomain:
		return true
	}
	return false
}

// Wire formats of a field (RowDescription format codes).
const (
	FormatText   int16 = 0
	FormatBinary int16 = 1
)

// MinKeyLen is the shortest key accepted by the hash method: a short key
// would let anyone with a dictionary of card numbers invert the hash.
const MinKeyLen = 16

// Errors returned by Apply and RewriteDataRow.
var (
	ErrMethod  = errors.New("masking: unknown method")
	ErrFormat  = errors.New("masking: unknown format code")
	ErrKey     = errors.New("masking: hash method needs a key of at least 16 bytes")
	ErrValue   = errors.New("masking: value is not valid for its type")
	ErrDataRow = errors.New("masking: malformed DataRow")
	ErrPlan    = errors.New("masking: invalid field plan")
)

// Apply masks one field value of type typeOID in the given wire format and
// returns the new field bytes; nil means SQL NULL. value nil is NULL, and
// NULL stays NULL whatever the method. For a type this package does not know,
// every method yields NULL: it is the only value every client can decode.
//
// Methods that must read the value (last4, hash, email-domain on typed
// values) return ErrValue when it does not decode; a caller should then fail
// closed (drop the row or the response), never forward the original.
func Apply(m Method, typeOID uint32, format int16, value []byte, key []byte) ([]byte, error) {
	out, null, err := appendMasked(nil, m, typeOID, format, value, key)
	if err != nil || null {
		return nil, err
	}
	if out == nil {
		out = []byte{} // empty, not NULL
	}
	return out, nil
}

// Supported reports whether Apply knows typeOID (otherwise it yields NULL).
func Supported(typeOID uint32) bool { return familyOf(typeOID) != famUnknown }

// appendMasked appends the masked value to dst. null reports SQL NULL (then
// nothing was appended).
func appendMasked(dst []byte, m Method, oid uint32, format int16, v []byte, key []byte) (out []byte, null bool, err error) {
	if !m.Valid() {
		return dst, false, fmt.Errorf("%w %q", ErrMethod, m)
	}
	if format != FormatText && format != FormatBinary {
		return dst, false, fmt.Errorf("%w %d", ErrFormat, format)
	}
	if m == Hash && len(key) < MinKeyLen {
		return dst, false, ErrKey
	}
	if v == nil || m == Null {
		return dst, true, nil
	}
	fam := familyOf(oid)
	bin := format == FormatBinary
	switch fam {
	case famText:
		return appendTextMasked(dst, m, v, key), false, nil
	case famBpchar:
		return appendBpcharMasked(dst, m, v, key), false, nil
	case famJSON, famJSONB:
		if fam == famJSONB && bin {
			if len(v) < 1 || v[0] != 1 {
				return dst, false, ErrValue
			}
			dst = append(dst, 1)
			v = v[1:]
		}
		out, err := appendJSONMasked(dst, m, v, key)
		return out, false, err
	case famInt2, famInt4, famInt8:
		out, err := maskInt(dst, m, fam, bin, v, key)
		return out, false, err
	case famNumeric:
		out, err := maskNumeric(dst, m, bin, v, key)
		return out, false, err
	case famFloat4, famFloat8:
		out, err := maskFloat(dst, m, fam, bin, v, key)
		return out, false, err
	case famBool:
		out, err := maskBool(dst, m, bin, v, key)
		return out, false, err
	case famDate:
		out, err := maskDate(dst, m, bin, v, key)
		return out, false, err
	case famTimestamp, famTimestamptz:
		out, err := maskTimestamp(dst, m, fam, bin, v, key)
		return out, false, err
	case famUUID:
		out, err := maskUUID(dst, m, bin, v, key)
		return out, false, err
	case famBytea:
		out, err := maskBytea(dst, m, bin, v, key)
		return out, false, err
	case famInet, famCIDR:
		out, err := maskInet(dst, m, fam, bin, v, key)
		return out, false, err
	}
	return dst, true, nil
}

// ---- text-like values ----------------------------------------------------

const redactedText = "[REDACTED]"

// appendTextMasked masks a text value (text, varchar, name: same bytes in
// both formats).
func appendTextMasked(dst []byte, m Method, v, key []byte) []byte {
	switch m {
	case Last4:
		return appendLast4(dst, v)
	case Hash:
		return appendHashHex(dst, v, key)
	case EmailDomain:
		if at := lastAt(v); at >= 0 {
			return appendEmailDomain(dst, v, at)
		}
	}
	return append(dst, redactedText...)
}

// appendLast4 keeps the last four letters or digits and replaces the other
// letters and digits with '*', keeping separators and the length in
// characters ("4111-1111-1111-1111" → "****-****-****-1111"). A value with
// four or fewer letters/digits is masked entirely: keeping "the last four"
// would keep all of it.
func appendLast4(dst, v []byte) []byte {
	if isASCII(v) {
		// The common case, a byte at a time: UTF-8 decoding per character
		// cost more than the rest of a masked row.
		alnum := 0
		for _, c := range v {
			if isAlnum(c) {
				alnum++
			}
		}
		keepFrom := max(alnum-4, 0)
		if alnum <= 4 {
			keepFrom = alnum
		}
		seen := 0
		for _, c := range v {
			if isAlnum(c) {
				if seen < keepFrom {
					c = '*'
				}
				seen++
			}
			dst = append(dst, c)
		}
		return dst
	}
	alnum := 0
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRune(v[i:])
		if isAlnumRune(r) {
			alnum++
		}
		i += n
	}
	keepFrom := alnum - 4
	if alnum <= 4 {
		keepFrom = alnum
	}
	seen := 0
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRune(v[i:])
		if isAlnumRune(r) {
			if seen >= keepFrom {
				dst = append(dst, v[i:i+n]...)
			} else {
				dst = append(dst, '*')
			}
			seen++
		} else if r == utf8.RuneError && n == 1 {
			dst = append(dst, '*') // never pass invalid UTF-8 through
		} else {
			dst = append(dst, v[i:i+n]...)
		}
		i += n
	}
	return dst
}

// isASCII reports whether v has no byte ≥ 0x80, eight bytes at a time.
func isASCII(v []byte) bool {
	for len(v) >= 8 {
		if binary.LittleEndian.Uint64(v)&0x8080808080808080 != 0 {
			return false
		}
		v = v[8:]
	}
	for _, c := range v {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isAlnumRune(r rune) bool {
	if r < utf8.RuneSelf {
		return isAlnum(byte(r))
	}
	return r != utf8.RuneError // letters of other scripts count as characters
}

func lastAt(v []byte) int {
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] == '@' {
			return i
		}
	}
	return -1
}

// appendEmailDomain replaces each character of the local part with '*'.
func appendEmailDomain(dst, v []byte, at int) []byte {
	if isASCII(v[:at]) {
		for range at {
			dst = append(dst, '*')
		}
		return append(dst, v[at:]...)
	}
	for i := 0; i < at; {
		_, n := utf8.DecodeRune(v[i:])
		dst = append(dst, '*')
		i += n
	}
	return append(dst, v[at:]...)
}

const hashHexLen = 16 // 64 bits of the HMAC: enough to keep joins distinct

func appendHashHex(dst, v, key []byte) []byte {
	var sum [32]byte
	hmacSum(&sum, key, v)
	const hexd = "0123456789abcdef"
	for _, b := range sum[:hashHexLen/2] {
		dst = append(dst, hexd[b>>4], hexd[b&15])
	}
	return dst
}

// appendBpcharMasked masks a character(n) value and keeps its width in
// characters: PostgreSQL pads bpchar with spaces, and clients that rely on
// the fixed width should still see it.
func appendBpcharMasked(dst []byte, m Method, v, key []byte) []byte {
	width := utf8.RuneCount(v)
	t := v
	for len(t) > 0 && t[len(t)-1] == ' ' {
		t = t[:len(t)-1]
	}
	start := len(dst)
	switch {
	case m == Redact && width < len(redactedText):
		for i := 0; i < width; i++ {
			dst = append(dst, '*')
		}
		return dst
	default:
		dst = appendTextMasked(dst, m, t, key)
	}
	// Fit to width: truncate (hash, redact of a short value) or pad.
	n := 0
	for i := start; i < len(dst); {
		_, sz := utf8.DecodeRune(dst[i:])
		if n == width {
			dst = dst[:i]
			break
		}
		n++
		i += sz
	}
	for ; n < width; n++ {
		dst = append(dst, ' ')
	}
	return dst
}

// ---- keyed hashing ---------------------------------------------------------

// hmacState caches one HMAC per key; pooled so that hashing a field does not
// allocate in the steady state. The input is copied into in first: handing
// the caller's stack buffer to hash.Hash.Write (an interface call) would move
// it to the heap.
type hmacState struct {
	key []byte
	h   hash.Hash
	in  []byte
	sum []byte
}

var hmacPool = sync.Pool{New: func() any { return &hmacState{} }}

func hmacSum(out *[32]byte, key []byte, v []byte) {
	st := hmacPool.Get().(*hmacState)
	if st.h == nil || !hmac.Equal(st.key, key) {
		st.key = append(st.key[:0], key...)
		st.h = hmac.New(sha256.New, st.key)
	} else {
		st.h.Reset()
	}
	st.in = append(st.in[:0], v...)
	st.h.Write(st.in)
	st.sum = st.h.Sum(st.sum[:0])
	copy(out[:], st.sum)
	hmacPool.Put(st)
}

// hash64 is the first 8 bytes of the keyed hash of v as an integer.
func hash64(key, v []byte) uint64 {
	var sum [32]byte
	hmacSum(&sum, key, v)
	return binary.BigEndian.Uint64(sum[:8])
}
