// Package sqlinspect turns SQL text into facts the gateway can decide on.
//
// This file holds the lexical statement splitter the PostgreSQL engine uses
// to give every statement of a multi-statement simple query its own Action.
// It understands the lexical structure of PostgreSQL SQL (string constants,
// escape strings, quoted identifiers, dollar quoting, nested comments and
// SQL-standard function bodies) so that semicolons inside them never split.
// Statement facts from the real grammar (libpg_query) build on top of it.
package sqlinspect

import (
	"slices"
	"strings"
)

// Split returns the statements of a PostgreSQL query string in order, each
// trimmed of surrounding whitespace, without the terminating semicolon.
// Statements that hold only whitespace and comments are dropped, as the
// server drops them (an all-empty string yields no statements).
func Split(sql string) []string { return split(sql, true, nil) }

// PlainBackslash reports whether a '…' string constant (not E'…') contains a
// backslash. Such text means something else when the session has
// standard_conforming_strings off, so it is refused in that state.
func PlainBackslash(sql string) bool {
	if !strings.Contains(sql, `\`) {
		return false
	}
	var found bool
	split(sql, true, &found)
	return found
}

// SplitAmbiguous reports whether sql splits differently depending on the
// server's standard_conforming_strings setting (off: a backslash escapes
// the next character in '…' strings too). A session can turn the setting off
// at any time, so a message whose statement boundaries depend on it cannot
// be decided safely: callers refuse it.
func SplitAmbiguous(sql string) bool {
	if !strings.Contains(sql, `\`) {
		return false
	}
	return !slices.Equal(split(sql, true, nil), split(sql, false, nil))
}

func split(sql string, conforming bool, plainBackslash *bool) []string {
	var out []string
	start := 0
	atomic := 0 // depth inside BEGIN ATOMIC … END (PostgreSQL 14+ function bodies)
	parens := 0 // depth inside ( … ): CREATE RULE … DO (a; b) holds several statements
	prevWord := ""
	firstWord := ""     // the current statement's first keyword
	meaningful := false // the current statement has a token besides comments
	flush := func(end int) {
		if meaningful {
			out = append(out, strings.TrimSpace(sql[start:end]))
		}
		start = end + 1
		meaningful = false
		prevWord, firstWord = "", ""
		parens = 0
	}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '(' || c == ')':
			meaningful = true
			prevWord = ""
			if c == '(' {
				parens++
			} else if parens > 0 {
				parens--
			}
			i++
		case c == ';':
			if atomic > 0 || parens > 0 {
				i++
				continue
			}
			flush(i)
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			i = skipBlockComment(sql, i)
		case c == '\'':
			meaningful = true
			escapes := !conforming || i > 0 && (sql[i-1] == 'e' || sql[i-1] == 'E') && (i < 2 || !isIdent(sql[i-2]))
			end := skipQuoted(sql, i, '\'', escapes)
			if plainBackslash != nil && !escapes && strings.Contains(sql[i:end], `\`) {
				*plainBackslash = true
			}
			i = end
			prevWord = ""
		case c == '"':
			meaningful = true
			i = skipQuoted(sql, i, '"', false)
			prevWord = ""
		case c == '$':
			meaningful = true
			if end, ok := skipDollar(sql, i); ok {
				i = end
				prevWord = ""
				continue
			}
			i++
		case isIdentStart(c):
			meaningful = true
			j := i
			for j < len(sql) && isIdent(sql[j]) {
				j++
			}
			w := strings.ToUpper(sql[i:j])
			if firstWord == "" {
				firstWord = w
			}
			switch {
			// Only CREATE FUNCTION/PROCEDURE has SQL-standard bodies; elsewhere
			// "begin atomic" is a column and its alias.
			case w == "ATOMIC" && prevWord == "BEGIN" && firstWord == "CREATE":
				atomic++
			case atomic > 0 && w == "CASE":
				atomic++
			case atomic > 0 && w == "END":
				atomic--
			}
			prevWord = w
			i = j
		default:
			if c > ' ' {
				meaningful = true
				prevWord = ""
			}
			i++
		}
	}
	flush(len(sql))
	return out
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' || c == '$' }

// skipBlockComment returns the index after a /* … */ comment starting at i.
// PostgreSQL block comments nest.
func skipBlockComment(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case s[i] == '/' && i+1 < len(s) && s[i+1] == '*':
			depth++
			i += 2
		case s[i] == '*' && i+1 < len(s) && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

// skipQuoted returns the index after a quoted token starting at i. A doubled
// quote is an escaped quote; with escapes, a backslash escapes the next byte.
func skipQuoted(s string, i int, q byte, escapes bool) int {
	i++
	for i < len(s) {
		switch {
		case escapes && s[i] == '\\':
			i += 2
		case s[i] == q:
			if i+1 < len(s) && s[i+1] == q {
				i += 2
				continue
			}
			return i + 1
		default:
			i++
		}
	}
	return i
}

// skipDollar skips a dollar-quoted string ($tag$ … $tag$) starting at i. It
// reports false when the $ does not open one (a parameter like $1).
func skipDollar(s string, i int) (int, bool) {
	j := i + 1
	for j < len(s) && s[j] != '$' {
		if !isIdent(s[j]) || s[j] == '$' || (j == i+1 && s[j] >= '0' && s[j] <= '9') {
			return 0, false
		}
		j++
	}
	if j >= len(s) {
		return 0, false
	}
	tag := s[i : j+1]
	end := strings.Index(s[j+1:], tag)
	if end < 0 {
		return len(s), true
	}
	return j + 1 + end + len(tag), true
}
