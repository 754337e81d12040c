package postgres

import (
	"bytes"
	"strconv"

	"github.com/gatehouse/gatehouse/internal/access"
)

// Syntax errors in PostgreSQL's own words. Text the gateway's grammar
// (libpg_query) cannot parse is refused, fail closed: what cannot be parsed
// cannot be decided. The client should still get the error PostgreSQL would
// have given — message, position, DETAIL and HINT (libpg_query has neither)
// — and programs such as psql compare them. So instead of raising its own
// error the gateway asks the upstream to parse the text without running or
// even analysing it: a Parse of
//
//	SELECT 1;<client text>
//
// PostgreSQL runs its raw parser over the whole string first; a syntax error
// anywhere is reported as it would be for the client's own query (its
// position shifted by the prefix, which the gateway takes back). When the
// text does parse (the two grammars disagree), the string holds at least two
// statements, and PostgreSQL refuses it before parse analysis ("cannot
// insert multiple commands into a prepared statement", raised by
// exec_parse_message): the gateway then sends its own refusal. Nothing is
// prepared either way (a Describe of a statement that cannot exist follows
// the Parse, as for any refused Parse, in case one ever were), and the
// upstream is left as after a failed Parse: an open transaction block is
// aborted, as the client's own erroneous query would have aborted it.

// ruleParse is the rule the checkpoint gives a statement its grammar cannot
// parse (internal/checkpoint, decidePolicy).
const ruleParse = "gatehouse/parse"

// ruleLexer refuses text whose statement boundaries or strings depend on
// standard_conforming_strings while it may be off (session.lexDiverges).
// The probe is as safe there: whatever the server's lexer makes of the
// text, it only parses it; what it refuses gets its own error, what it
// accepts the gateway's refusal.
const ruleLexer = "gatehouse/lexer"

// syntaxProbePrefix is put before the client's text; see above.
const syntaxProbePrefix = "SELECT 1;"

// probeAccepted is the routine that raises "cannot insert multiple commands
// into a prepared statement": the upstream parsed the text. The routine
// field is not translated (lc_messages does not change it).
const probeAccepted = "exec_parse_message"

// probeSyntax sends the syntax probe for text refused by d, and the
// Describe that raises d should the probe ever prepare something. With
// sync (a simple query) it ends with a Sync of its own; otherwise the
// client's Sync ends it, and the client's messages until then are
// discarded, as after any refused Parse.
func (s *session) probeSyntax(text string, d *access.Decision, sync bool) {
	q := syntaxProbePrefix + text
	s.t.push(pending{kind: rParse, deny: d, probe: true, drop: true})
	writeHeader(s.uw, 'P', 1+len(q)+1+2)
	s.uw.WriteByte(0) // the unnamed statement
	s.uw.WriteString(q)
	s.uw.WriteByte(0)
	s.uw.Write([]byte{0, 0}) // no parameter types
	s.denyExtended(*d)
	if sync {
		s.t.push(pending{kind: rSync})
		writeMsg(s.uw, 'S', nil)
		s.skip = false
	}
}

// probeError is the client's view of the upstream's answer to a syntax
// probe refused by d: the upstream's own syntax error with its position
// moved back over the prefix, or d's error when the upstream parsed the
// text.
func probeError(body []byte, d access.Decision) []byte {
	if errorField(body, 'R') == probeAccepted {
		return denyError(d)
	}
	return shiftPosition(body, -len(syntaxProbePrefix))
}

// shiftPosition returns an ErrorResponse body with its position field
// ('P', characters from 1) moved by delta; a position that would fall
// before the client's text is dropped.
func shiftPosition(body []byte, delta int) []byte {
	out := make([]byte, 0, len(body))
	for len(body) > 0 && body[0] != 0 {
		k := body[0]
		end := bytes.IndexByte(body[1:], 0)
		if end < 0 {
			return body // malformed: pass it as it came
		}
		v := body[1 : 1+end]
		body = body[1+end+1:]
		if k == 'P' {
			p, err := strconv.Atoi(string(v))
			if err != nil || p+delta < 1 {
				continue
			}
			v = strconv.AppendInt(nil, int64(p+delta), 10)
		}
		out = append(out, k)
		out = append(out, v...)
		out = append(out, 0)
	}
	return append(out, 0)
}
