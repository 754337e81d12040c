package sqlinspect

import (
	"strings"
	"unicode/utf8"
)

// This file holds the literal normalizer behind the second cache level: a
// lexical pass that replaces numeric and string constants with placeholders
// and keeps every other byte as written, so that statements repeated with
// new values (pgbench -M simple, ORMs that inline parameters) share one
// cache entry. Which literals may be replaced, and why facts found through
// the normalized key are those of the text itself, is argued in shape.go.

// Literal classes. Each class is one token type of PostgreSQL's lexer, so
// texts of one shape lex to the same token types:
//
//	litInt  a decimal integer that fits int32 (ICONST)
//	litNum  any other plain decimal number: too large for int32, or with a
//	        fraction (FCONST)
//	litStr  a standard '…' string (SCONST): no prefix (E, B, X, N, U&), no
//	        backslash, valid UTF-8 inside
const (
	litInt byte = 'i'
	litNum byte = 'n'
	litStr byte = 's'
)

// placeholderLen is the length of a placeholder in a normalized key: a NUL
// and the class byte. Texts holding a NUL are never normalized (the grammar
// refuses them), so a NUL in a key always starts a placeholder.
const placeholderLen = 2

// litSpan is a literal's place in the original text: [start, end).
type litSpan struct {
	start, end int
	class      byte
}

// normalize appends to key the text with each candidate literal replaced by
// its placeholder and returns the literal spans, appended to spans. ok is
// false when there is nothing to normalize (no candidate literal) or the
// text must not be normalized (a NUL byte). The lexer is split's, reading
// text as libpg_query does (standard_conforming_strings on).
func normalize(sql string, key []byte, spans []litSpan) (_ []byte, _ []litSpan, ok bool) {
	if strings.IndexByte(sql, 0) >= 0 {
		return key, spans, false
	}
	last := 0 // end of the text already copied to key
	emit := func(start, end int, class byte) {
		key = append(key, sql[last:start]...)
		key = append(key, 0, class)
		last = end
		spans = append(spans, litSpan{start: start, end: end, class: class})
	}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			i = skipBlockComment(sql, i)
		case c == '\'':
			// A quote right after an identifier character or & belongs to a
			// prefixed string (E'…', B'…', X'…', N'…', U&'…') or follows an
			// identifier without a space: left as written.
			prefixed := i > 0 && (isIdent(sql[i-1]) || sql[i-1] == '&')
			escapes := i > 0 && (sql[i-1] == 'e' || sql[i-1] == 'E') && (i < 2 || !isIdent(sql[i-2]))
			end := skipQuoted(sql, i, '\'', escapes)
			if !prefixed && end > i+1 && sql[end-1] == '\'' && plainContent(sql[i+1:end-1]) {
				emit(i, end, litStr)
			}
			i = end
		case c == '"':
			i = skipQuoted(sql, i, '"', false)
		case c == '$':
			if end, ok := skipDollar(sql, i); ok {
				i = end // dollar-quoted text ($$ function bodies) is kept as written
				continue
			}
			i++
			for i < len(sql) && sql[i] >= '0' && sql[i] <= '9' {
				i++ // a parameter ($1): its digits are no literal
			}
		case c >= '0' && c <= '9':
			j := i
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			class := litInt
			if j+1 < len(sql) && sql[j] == '.' && sql[j+1] >= '0' && sql[j+1] <= '9' {
				class = litNum
				for j++; j < len(sql) && sql[j] >= '0' && sql[j] <= '9'; j++ {
				}
			}
			// Only a number that is a whole token on its own is a candidate:
			// not after '.' (.5) and not followed by an identifier character
			// (1e5, 0x1F, 1_000, trailing junk) or a '.' (1., 1..2).
			whole := (i == 0 || sql[i-1] != '.') && (j == len(sql) || !isIdent(sql[j]) && sql[j] != '.')
			if whole {
				if class == litInt && !fitsInt32(sql[i:j]) {
					class = litNum
				}
				emit(i, j, class)
			}
			i = j
		case isIdentStart(c):
			for i < len(sql) && isIdent(sql[i]) {
				i++
			}
		default:
			i++
		}
	}
	if len(spans) == 0 {
		return key, spans, false
	}
	key = append(key, sql[last:]...)
	return key, spans, true
}

// plainContent reports whether the inside of a '…' string is in the string
// class: no backslash (which only standard_conforming_strings makes plain)
// and valid UTF-8 (libpg_query refuses invalid UTF-8 in a constant).
func plainContent(s string) bool {
	return strings.IndexByte(s, '\\') < 0 && utf8.ValidString(s)
}

// fitsInt32 reports whether a string of decimal digits is at most
// 2147483647, the test PostgreSQL's lexer applies to choose between ICONST
// and FCONST (leading zeros allowed).
func fitsInt32(digits string) bool {
	digits = strings.TrimLeft(digits, "0")
	const maxInt32 = "2147483647"
	return len(digits) < len(maxInt32) || len(digits) == len(maxInt32) && digits <= maxInt32
}

// origOffset maps an offset of a normalized key to the original text whose
// literal spans are given. Offsets inside a placeholder do not occur: the
// offsets mapped are statement boundaries.
func origOffset(norm int, spans []litSpan) int {
	delta := 0
	pos := 0 // start of the current span in the key
	for _, s := range spans {
		pos = s.start - delta
		if pos >= norm {
			break
		}
		delta += (s.end - s.start) - placeholderLen
	}
	return norm + delta
}

// normOffset maps an offset of an original text to its normalized key.
func normOffset(orig int, spans []litSpan) int {
	delta := 0
	for _, s := range spans {
		if s.start >= orig {
			break
		}
		delta += (s.end - s.start) - placeholderLen
	}
	return orig - delta
}
