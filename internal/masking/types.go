package masking

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"time"
)

// PostgreSQL type OIDs (pg_type.dat) of the types Apply knows.
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidCIDR        = 650
	oidFloat4      = 700
	oidFloat8      = 701
	oidUnknown     = 705
	oidInet        = 869
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

type family uint8

const (
	famUnknown family = iota
	famText
	famBpchar
	famJSON
	famJSONB
	famInt2
	famInt4
	famInt8
	famNumeric
	famFloat4
	famFloat8
	famBool
	famDate
	famTimestamp
	famTimestamptz
	famUUID
	famBytea
	famInet
	famCIDR
)

func familyOf(oid uint32) family {
	switch oid {
	case oidText, oidVarchar, oidName, oidUnknown:
		return famText
	case oidBpchar:
		return famBpchar
	case oidJSON:
		return famJSON
	case oidJSONB:
		return famJSONB
	case oidInt2:
		return famInt2
	case oidInt4:
		return famInt4
	case oidInt8:
		return famInt8
	case oidNumeric:
		return famNumeric
	case oidFloat4:
		return famFloat4
	case oidFloat8:
		return famFloat8
	case oidBool:
		return famBool
	case oidDate:
		return famDate
	case oidTimestamp:
		return famTimestamp
	case oidTimestamptz:
		return famTimestamptz
	case oidUUID:
		return famUUID
	case oidBytea:
		return famBytea
	case oidInet:
		return famInet
	case oidCIDR:
		return famCIDR
	}
	return famUnknown
}

// isTextual reports whether values of the type are text the entity
// detectors can scan (the bytes are the same in both formats, except the
// jsonb version byte).
func isTextual(oid uint32) bool {
	switch familyOf(oid) {
	case famText, famBpchar, famJSON, famJSONB:
		return true
	}
	return false
}

// ---- integers ---------------------------------------------------------------

func intWidth(f family) int {
	switch f {
	case famInt2:
		return 2
	case famInt4:
		return 4
	}
	return 8
}

func decodeInt(f family, bin bool, v []byte) (int64, error) {
	w := intWidth(f)
	if bin {
		if len(v) != w {
			return 0, ErrValue
		}
		switch w {
		case 2:
			return int64(int16(binary.BigEndian.Uint16(v))), nil
		case 4:
			return int64(int32(binary.BigEndian.Uint32(v))), nil
		}
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	n, err := strconv.ParseInt(string(v), 10, w*8)
	if err != nil {
		return 0, ErrValue
	}
	return n, nil
}

func appendInt(dst []byte, f family, bin bool, n int64) []byte {
	if !bin {
		return strconv.AppendInt(dst, n, 10)
	}
	switch intWidth(f) {
	case 2:
		return binary.BigEndian.AppendUint16(dst, uint16(n))
	case 4:
		return binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

// maskInt: redact → 0; last4 → the value modulo 10000 (sign kept; 0 when
// |value| < 10000, which would be kept whole); hash →
// a stable non-negative integer of the same width; email-domain → 0.
func maskInt(dst []byte, m Method, f family, bin bool, v, key []byte) ([]byte, error) {
	switch m {
	case Last4, Hash:
		n, err := decodeInt(f, bin, v)
		if err != nil {
			return dst, err
		}
		if m == Last4 {
			if n > -10000 && n < 10000 {
				n = 0 // four digits or fewer: "the last four" would be all of it
			}
			return appendInt(dst, f, bin, n%10000), nil
		}
		var canon [20]byte
		h := hash64(key, strconv.AppendInt(canon[:0], n, 10))
		max := uint64(1)<<(intWidth(f)*8-1) - 1
		return appendInt(dst, f, bin, int64(h&max)), nil
	}
	return appendInt(dst, f, bin, 0), nil
}

// ---- numeric ----------------------------------------------------------------

const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

// numericBinaryToText renders PostgreSQL's binary numeric as numeric_out
// would (dscale fractional digits), so that a value hashes the same in
// either format.
func numericBinaryToText(dst, v []byte) ([]byte, error) {
	if len(v) < 8 {
		return dst, ErrValue
	}
	ndigits := int(binary.BigEndian.Uint16(v[0:]))
	weight := int(int16(binary.BigEndian.Uint16(v[2:])))
	sign := binary.BigEndian.Uint16(v[4:])
	dscale := int(binary.BigEndian.Uint16(v[6:]))
	if len(v) != 8+2*ndigits || dscale > 0x3FFF || ndigits > 1000 {
		return dst, ErrValue
	}
	switch sign {
	case numericNaN:
		return append(dst, "NaN"...), nil
	case numericPInf:
		return append(dst, "Infinity"...), nil
	case numericNInf:
		return append(dst, "-Infinity"...), nil
	case numericPos, numericNeg:
	default:
		return dst, ErrValue
	}
	digit := func(i int) int { // base-10000 digit i, 0 outside the stored ones
		if i < 0 || i >= ndigits {
			return 0
		}
		d := int(binary.BigEndian.Uint16(v[8+2*i:]))
		return d
	}
	for i := 0; i < ndigits; i++ {
		if digit(i) > 9999 {
			return dst, ErrValue
		}
	}
	if weight > 1000 || weight < -1000 {
		return dst, ErrValue
	}
	if sign == numericNeg {
		dst = append(dst, '-')
	}
	if weight < 0 {
		dst = append(dst, '0')
	} else {
		for i := 0; i <= weight; i++ {
			d := digit(i)
			if i == 0 {
				dst = strconv.AppendInt(dst, int64(d), 10)
			} else {
				dst = append(dst, byte('0'+d/1000), byte('0'+d/100%10), byte('0'+d/10%10), byte('0'+d%10))
			}
		}
	}
	if dscale > 0 {
		dst = append(dst, '.')
		for k := 0; k < dscale; k++ {
			i := weight + 1 + k/4 // base-10000 digit holding fractional decimal k
			d := digit(i)
			p := [4]int{1000, 100, 10, 1}[k%4]
			dst = append(dst, byte('0'+d/p%10))
		}
	}
	return dst, nil
}

// validNumericText checks the subset of numeric text PostgreSQL emits.
func validNumericText(v []byte) bool {
	s := v
	switch string(s) {
	case "NaN", "Infinity", "-Infinity":
		return true
	}
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	digits, dot := 0, false
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// numericIntPartLast4 returns the last four digits of the integer part.
func numericIntPartLast4(text []byte) int64 {
	neg := len(text) > 0 && text[0] == '-'
	end := bytes.IndexByte(text, '.')
	if end < 0 {
		end = len(text)
	}
	var n int64
	mul := int64(1)
	for i, k := end-1, 0; i >= 0 && k < 4; i-- {
		c := text[i]
		if c < '0' || c > '9' {
			break
		}
		n += int64(c-'0') * mul
		mul *= 10
		k++
	}
	if k := end; neg && k > 0 {
		k--
		if k <= 4 {
			return 0
		}
	} else if k <= 4 {
		return 0 // four digits or fewer would be kept whole
	}
	if neg {
		n = -n
	}
	return n
}

func appendNumericInt(dst []byte, bin bool, n int64) []byte {
	if !bin {
		return strconv.AppendInt(dst, n, 10)
	}
	sign := uint16(numericPos)
	u := uint64(n)
	if n < 0 {
		sign = numericNeg
		u = uint64(-n)
	}
	var groups [5]uint16 // base-10000 digits, least significant first
	ng := 0
	for u > 0 {
		groups[ng] = uint16(u % 10000)
		u /= 10000
		ng++
	}
	// Trailing zero groups are not stored (PostgreSQL strips them; weight
	// says where the point is).
	low := 0
	for low < ng && groups[low] == 0 {
		low++
	}
	nd := ng - low
	dst = binary.BigEndian.AppendUint16(dst, uint16(nd))
	weight := ng - 1
	if ng == 0 {
		weight = 0
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(weight)))
	dst = binary.BigEndian.AppendUint16(dst, sign)
	dst = binary.BigEndian.AppendUint16(dst, 0)
	for i := ng - 1; i >= low; i-- {
		dst = binary.BigEndian.AppendUint16(dst, groups[i])
	}
	return dst
}

// maskNumeric: redact → 0; last4 → last four digits of the integer part;
// hash → a stable integer below 10^15.
func maskNumeric(dst []byte, m Method, bin bool, v, key []byte) ([]byte, error) {
	if m != Last4 && m != Hash {
		return appendNumericInt(dst, bin, 0), nil
	}
	var buf [64]byte
	text := buf[:0]
	if bin {
		var err error
		if text, err = numericBinaryToText(text, v); err != nil {
			return dst, err
		}
	} else {
		if !validNumericText(v) {
			return dst, ErrValue
		}
		text = v
	}
	if m == Last4 {
		return appendNumericInt(dst, bin, numericIntPartLast4(text)), nil // "0.5" → 0, "1234.5" → 1234
	}
	return appendNumericInt(dst, bin, int64(hash64(key, text)%1e15)), nil
}

// ---- floats -------------------------------------------------------------------

func decodeFloat(f family, bin bool, v []byte) (float64, error) {
	bits := 64
	if f == famFloat4 {
		bits = 32
	}
	if bin {
		if bits == 32 && len(v) == 4 {
			return float64(math.Float32frombits(binary.BigEndian.Uint32(v))), nil
		}
		if bits == 64 && len(v) == 8 {
			return math.Float64frombits(binary.BigEndian.Uint64(v)), nil
		}
		return 0, ErrValue
	}
	x, err := strconv.ParseFloat(string(v), bits)
	if err != nil {
		return 0, ErrValue
	}
	return x, nil
}

func appendFloat(dst []byte, f family, bin bool, x float64) []byte {
	if f == famFloat4 {
		if bin {
			return binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(x)))
		}
		return strconv.AppendFloat(dst, float64(float32(x)), 'g', -1, 32)
	}
	if bin {
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(x))
	}
	return strconv.AppendFloat(dst, x, 'g', -1, 64)
}

// maskFloat: hash → a stable value in [0, 1); every other method → 0 (last4
// of a float has no sensible meaning).
func maskFloat(dst []byte, m Method, f family, bin bool, v, key []byte) ([]byte, error) {
	if m != Hash {
		return appendFloat(dst, f, bin, 0), nil
	}
	x, err := decodeFloat(f, bin, v)
	if err != nil {
		return dst, err
	}
	bits := 64
	if f == famFloat4 {
		bits = 32
	}
	var canon [32]byte
	h := hash64(key, strconv.AppendFloat(canon[:0], x, 'g', -1, bits))
	return appendFloat(dst, f, bin, float64(h>>40)/(1<<24)), nil
}

// ---- bool -------------------------------------------------------------------

// maskBool: hash → a stable bit of the hash; every other method → false.
func maskBool(dst []byte, m Method, bin bool, v, key []byte) ([]byte, error) {
	b := false
	if m == Hash {
		var t bool
		switch {
		case bin && len(v) == 1:
			t = v[0] != 0
		case !bin && len(v) == 1 && (v[0] == 't' || v[0] == 'f'):
			t = v[0] == 't'
		default:
			return dst, ErrValue
		}
		c := []byte{'f'}
		if t {
			c[0] = 't'
		}
		b = hash64(key, c)&1 == 1
	}
	switch {
	case bin && b:
		return append(dst, 1), nil
	case bin:
		return append(dst, 0), nil
	case b:
		return append(dst, 't'), nil
	}
	return append(dst, 'f'), nil
}

// ---- date and timestamps -----------------------------------------------------

var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	epochDays    = -10957           // 1970-01-01 in days since 2000-01-01
	epochMicros  = -946684800000000 // 1970-01-01 00:00:00 in µs since 2000-01-01
	hashSpanDays = 47482            // 1970-01-01 … 2099-12-31: where hashed dates land
)

// maskDate: redact/last4/email-domain → 1970-01-01; hash → a stable date
// between 1970 and 2099. Text output is ISO (DateStyle ISO, the default and
// what drivers such as pgx and JDBC expect).
func maskDate(dst []byte, m Method, bin bool, v, key []byte) ([]byte, error) {
	days := int64(epochDays)
	if m == Hash {
		var canon []byte
		var buf [16]byte
		if bin {
			if len(v) != 4 {
				return dst, ErrValue
			}
			canon = binary.BigEndian.AppendUint32(buf[:0], binary.BigEndian.Uint32(v))
		} else {
			d, err := parseDateText(v)
			if err != nil {
				return dst, err
			}
			canon = binary.BigEndian.AppendUint32(buf[:0], uint32(d))
		}
		days = epochDays + int64(hash64(key, canon)%hashSpanDays)
	}
	if bin {
		return binary.BigEndian.AppendUint32(dst, uint32(int32(days))), nil
	}
	return pgEpoch.AddDate(0, 0, int(days)).AppendFormat(dst, "2006-01-02"), nil
}

// parseDateText returns days since 2000-01-01 for the ISO text PostgreSQL
// emits, with the infinities at the int32 extremes as in the binary format.
func parseDateText(v []byte) (int32, error) {
	switch string(v) {
	case "infinity":
		return math.MaxInt32, nil
	case "-infinity":
		return math.MinInt32, nil
	}
	t, err := time.Parse("2006-01-02", string(v))
	if err != nil {
		return 0, ErrValue
	}
	return int32(t.Sub(pgEpoch).Hours() / 24), nil
}

// maskTimestamp: redact/last4/email-domain → 1970-01-01 00:00:00 (UTC for
// timestamptz); hash → a stable whole second between 1970 and 2099.
func maskTimestamp(dst []byte, m Method, f family, bin bool, v, key []byte) ([]byte, error) {
	us := int64(epochMicros)
	if m == Hash {
		var canonUS int64
		if bin {
			if len(v) != 8 {
				return dst, ErrValue
			}
			canonUS = int64(binary.BigEndian.Uint64(v))
		} else {
			var err error
			if canonUS, err = parseTimestampText(v, f == famTimestamptz); err != nil {
				return dst, err
			}
		}
		var buf [8]byte
		h := hash64(key, binary.BigEndian.AppendUint64(buf[:0], uint64(canonUS)))
		us = epochMicros + int64(h%(hashSpanDays*86400))*1e6
	}
	if bin {
		return binary.BigEndian.AppendUint64(dst, uint64(us)), nil
	}
	t := pgEpoch.Add(time.Duration(us) * time.Microsecond)
	dst = t.AppendFormat(dst, "2006-01-02 15:04:05")
	if f == famTimestamptz {
		dst = append(dst, "+00"...)
	}
	return dst, nil
}

var tsLayouts = []string{
	"2006-01-02 15:04:05.999999",
}

var tstzLayouts = []string{
	"2006-01-02 15:04:05.999999-07",
	"2006-01-02 15:04:05.999999-07:00",
	"2006-01-02 15:04:05.999999-07:00:00",
}

// parseTimestampText returns µs since 2000-01-01 (UTC for timestamptz).
func parseTimestampText(v []byte, tz bool) (int64, error) {
	switch string(v) {
	case "infinity":
		return math.MaxInt64, nil
	case "-infinity":
		return math.MinInt64, nil
	}
	layouts := tsLayouts
	if tz {
		layouts = tstzLayouts
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, string(v)); err == nil {
			return t.Sub(pgEpoch).Microseconds(), nil
		}
	}
	return 0, ErrValue
}

// ---- uuid ----------------------------------------------------------------------

func decodeUUID(bin bool, v []byte) ([16]byte, error) {
	var u [16]byte
	if bin {
		if len(v) != 16 {
			return u, ErrValue
		}
		copy(u[:], v)
		return u, nil
	}
	// PostgreSQL emits the canonical 8-4-4-4-12 lower-case form.
	if len(v) != 36 || v[8] != '-' || v[13] != '-' || v[18] != '-' || v[23] != '-' {
		return u, ErrValue
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if v[i] == '-' {
			i--
			continue
		}
		hi, ok1 := unhex(v[i])
		lo, ok2 := unhex(v[i+1])
		if !ok1 || !ok2 || j >= 16 {
			return u, ErrValue
		}
		u[j] = hi<<4 | lo
		j++
	}
	if j != 16 {
		return u, ErrValue
	}
	return u, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func appendUUID(dst []byte, bin bool, u [16]byte) []byte {
	if bin {
		return append(dst, u[:]...)
	}
	const hexd = "0123456789abcdef"
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexd[b>>4], hexd[b&15])
	}
	return dst
}

// maskUUID: redact/email-domain → the nil UUID; last4 → nil UUID but the
// last four hex digits; hash → a version-8 (RFC 9562 custom) UUID made of
// the HMAC of the 16 bytes.
func maskUUID(dst []byte, m Method, bin bool, v, key []byte) ([]byte, error) {
	var out [16]byte
	if m == Last4 || m == Hash {
		u, err := decodeUUID(bin, v)
		if err != nil {
			return dst, err
		}
		if m == Last4 {
			out[14], out[15] = u[14], u[15]
		} else {
			var sum [32]byte
			hmacSum(&sum, key, u[:])
			copy(out[:], sum[:16])
			out[6] = out[6]&0x0F | 0x80 // version 8
			out[8] = out[8]&0x3F | 0x80 // RFC 9562 variant
		}
	}
	return appendUUID(dst, bin, out), nil
}
