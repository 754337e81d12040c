package masking

import (
	"bytes"
	"net/netip"
	"strconv"
)

// ---- bytea -------------------------------------------------------------------

// decodeByteaText decodes bytea text output in hex (`\x…`) or escape format.
func decodeByteaText(dst, v []byte) ([]byte, bool, error) {
	if len(v) >= 2 && v[0] == '\\' && v[1] == 'x' {
		h := v[2:]
		if len(h)%2 != 0 {
			return dst, true, ErrValue
		}
		for i := 0; i < len(h); i += 2 {
			hi, ok1 := unhex(h[i])
			lo, ok2 := unhex(h[i+1])
			if !ok1 || !ok2 {
				return dst, true, ErrValue
			}
			dst = append(dst, hi<<4|lo)
		}
		return dst, true, nil
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		if i+1 < len(v) && v[i+1] == '\\' {
			dst = append(dst, '\\')
			i++
			continue
		}
		if i+3 < len(v) && isOct(v[i+1]) && isOct(v[i+2]) && isOct(v[i+3]) && v[i+1] <= '3' {
			dst = append(dst, (v[i+1]-'0')<<6|(v[i+2]-'0')<<3|(v[i+3]-'0'))
			i += 3
			continue
		}
		return dst, false, ErrValue
	}
	return dst, false, nil
}

func isOct(c byte) bool { return c >= '0' && c <= '7' }

func appendBytea(dst []byte, bin, hexFormat bool, b []byte) []byte {
	if bin {
		return append(dst, b...)
	}
	const hexd = "0123456789abcdef"
	if hexFormat {
		dst = append(dst, '\\', 'x')
		for _, c := range b {
			dst = append(dst, hexd[c>>4], hexd[c&15])
		}
		return dst
	}
	for _, c := range b {
		switch {
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c >= 0x20 && c < 0x7F:
			dst = append(dst, c)
		default:
			dst = append(dst, '\\', '0'+c>>6, '0'+(c>>3)&7, '0'+c&7)
		}
	}
	return dst
}

// maskBytea: redact/email-domain → empty; last4 → same length, all bytes
// zero but the last four; hash → the first 16 bytes of the HMAC. Text input
// may be hex or escape format; text output is hex.
func maskBytea(dst []byte, m Method, bin bool, v, key []byte) ([]byte, error) {
	// Output is always hex (bytea_output's default since 9.0): every client
	// decodes it, while some (pgx) reject the escape format.
	hexFormat := true
	if m != Last4 && m != Hash {
		return appendBytea(dst, bin, hexFormat, nil), nil
	}
	raw := v
	if !bin {
		var err error
		if raw, _, err = decodeByteaText(nil, v); err != nil {
			return dst, err
		}
	}
	if m == Hash {
		var sum [32]byte
		hmacSum(&sum, key, raw)
		return appendBytea(dst, bin, hexFormat, sum[:16]), nil
	}
	out := make([]byte, len(raw))
	if len(raw) > 4 {
		copy(out[len(raw)-4:], raw[len(raw)-4:])
	}
	return appendBytea(dst, bin, hexFormat, out), nil
}

// ---- inet / cidr -------------------------------------------------------------

const (
	pgAFInet  = 2
	pgAFInet6 = 3
)

func decodeInet(bin bool, v []byte) (netip.Prefix, error) {
	if bin {
		if len(v) < 4 {
			return netip.Prefix{}, ErrValue
		}
		fam, bits, nb := v[0], int(v[1]), int(v[3])
		if len(v) != 4+nb {
			return netip.Prefix{}, ErrValue
		}
		var a netip.Addr
		switch {
		case fam == pgAFInet && nb == 4 && bits <= 32:
			a = netip.AddrFrom4([4]byte(v[4:8]))
		case fam == pgAFInet6 && nb == 16 && bits <= 128:
			a = netip.AddrFrom16([16]byte(v[4:20]))
		default:
			return netip.Prefix{}, ErrValue
		}
		return netip.PrefixFrom(a, bits), nil
	}
	s := string(v)
	if bytes.IndexByte(v, '/') < 0 {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, ErrValue
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, ErrValue
	}
	return p, nil
}

func appendInet(dst []byte, f family, bin bool, a netip.Addr) []byte {
	bits := a.BitLen()
	if bin {
		fam := byte(pgAFInet)
		if a.Is6() {
			fam = pgAFInet6
		}
		isCIDR := byte(0)
		if f == famCIDR {
			isCIDR = 1
		}
		dst = append(dst, fam, byte(bits), isCIDR, byte(bits/8))
		return append(dst, a.AsSlice()...)
	}
	dst = a.AppendTo(dst)
	if f == famCIDR {
		dst = append(dst, '/')
		dst = strconv.AppendInt(dst, int64(bits), 10)
	}
	return dst
}

// maskInet: every method but hash → 0.0.0.0 (or :: for IPv6), as a host
// (/32, /128); hash → a stable host address in 10.0.0.0/8 (IPv4) or
// fd00::/8 (IPv6), family kept.
func maskInet(dst []byte, m Method, f family, bin bool, v, key []byte) ([]byte, error) {
	p, err := decodeInet(bin, v)
	if err != nil {
		return dst, err
	}
	is6 := p.Addr().Is6() && !p.Addr().Is4In6()
	if p.Addr().Is4In6() {
		is6 = true
	}
	if m != Hash {
		if is6 {
			return appendInet(dst, f, bin, netip.IPv6Unspecified()), nil
		}
		return appendInet(dst, f, bin, netip.IPv4Unspecified()), nil
	}
	var canon [64]byte
	var sum [32]byte
	hmacSum(&sum, key, p.AppendTo(canon[:0]))
	if is6 {
		var a [16]byte
		copy(a[:], sum[:16])
		a[0] = 0xfd
		return appendInet(dst, f, bin, netip.AddrFrom16(a)), nil
	}
	return appendInet(dst, f, bin, netip.AddrFrom4([4]byte{10, sum[0], sum[1], sum[2]})), nil
}
