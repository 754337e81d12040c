package masking

import (
	"encoding/json"
	"unicode/utf8"
)

// appendJSONMasked masks a json/jsonb document (its text; the jsonb version
// byte is handled by the caller). The result is always a JSON string, so it
// stays valid for both types: redact → "[REDACTED]"; last4, hash and
// email-domain work on the string's content when the document is a JSON
// string and on the document's text otherwise.
func appendJSONMasked(dst []byte, m Method, v, key []byte) ([]byte, error) {
	if m == Redact {
		return append(dst, `"`+redactedText+`"`...), nil
	}
	content := trimJSONSpace(v)
	if len(content) > 0 && content[0] == '"' {
		var s string
		if err := json.Unmarshal(content, &s); err != nil {
			return dst, ErrValue
		}
		content = []byte(s)
	}
	var buf [128]byte
	masked := appendTextMasked(buf[:0], m, content, key)
	return appendJSONString(dst, masked), nil
}

func trimJSONSpace(v []byte) []byte {
	isSp := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(v) > 0 && isSp(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && isSp(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	return v
}

// appendJSONString appends s as a JSON string literal; invalid UTF-8 becomes
// U+FFFD so that the result is always valid JSON (and valid jsonb).
func appendJSONString(dst, s []byte) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}
