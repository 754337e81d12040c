package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/masking"
)

// upstreamLoop relays upstream messages to the client as raw bytes, matching
// completions to the statements the client sent (tracker) so each statement's
// outcome is recorded, and hiding responses to gateway-injected messages.
func (s *session) upstreamLoop() error {
	var cur pending // the entry the next owed response belongs to
	has := false
	// ddlOpen: DDL ran in the transaction still open. The catalog's own
	// connections see its relations only once it commits, so the catalog
	// is cleared again when it ends, not just when the DDL completes.
	ddlOpen := false
	defer func() {
		// Every statement forwarded gets an outcome event, so its
		// journaled decision is acknowledged (see run for the rest).
		if has {
			s.settleAs(&cur, sessionEnded)
		}
		s.emitSettled()
	}()
	need := func() bool {
		if !has {
			cur, has = s.t.pop()
		}
		return has
	}
	for {
		typ, n, err := s.ur.header()
		if err != nil {
			return fmt.Errorf("upstream: %w", err)
		}
		if n > streamThreshold && (typ == 'd' || typ == 'D' && !s.masking(&cur, &has)) {
			// A large DataRow/CopyData: stream it through without buffering.
			// Only these types are streamed; every other message may move
			// the tracker, so it is read whole.
			if typ == 'D' && need() {
				cur.rows++
				if r := s.recFor(&cur); r != nil {
					r.truncated = true // too large to sample
				}
			}
			s.cwMu.Lock()
			writeHeader(s.cw, typ, n)
			err := s.ur.copyBody(s.cw, n)
			if err == nil && s.ur.r.Buffered() == 0 {
				err = s.cw.Flush()
			}
			s.cwMu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		body, err := s.ur.body(n)
		if err != nil {
			return fmt.Errorf("upstream: %w", err)
		}
		drop := false
		switch typ {
		case 'D':
			// Count rows: an Execute with a row limit ends in PortalSuspended,
			// whose outcome has no command tag to read them from.
			if need() {
				cur.rows++
				if s.masking(&cur, &has) && len(cur.plan) > 0 {
					var out []byte
					var err error
					if &cur.plan[0] == &nullAll[0] {
						out, err = nullRow(s.maskBuf[:0], body)
					} else {
						out, err = masking.RewriteDataRow(s.maskBuf[:0], body, cur.plan)
					}
					if err != nil {
						// Never pass an unmasked row: end the session.
						s.fatal(codeInternal, "gatehouse could not mask a result row, so the session was ended")
						return fmt.Errorf("masking: %w", err)
					}
					body, s.maskBuf = out, out
				}
				// The sample is taken from the bytes the client is sent:
				// after masking, never before.
				if s.recOn {
					s.sampleRow(&cur, body)
				}
			}
		case 'S': // ParameterStatus
			if name, rest, ok := cstring(body); ok && name == "standard_conforming_strings" {
				v, _, _ := cstring(rest)
				s.scsOff.Store(v == "off")
			}
		case 'N':
			if need() && cur.probe {
				// A warning the server's parser raised on the syntax probe
				// (nonstandard use of \\ …): the client's own query raises it
				// too, at the position in the client's text.
				body = shiftPosition(body, -len(syntaxProbePrefix))
			}
			if s.recOn && need() {
				s.recordNotice(&cur, body)
			}
		case 'd', 'A': // copy data, notifications
		case 't': // ParameterDescription: kept for held statements, whose parameters approvers read
			if need() && cur.kind == rDescribe && cur.dstmt != nil && (cur.dstmt.decision.Verdict == access.Hold || s.recOn) {
				if oids, ok := parseParameterDescription(body); ok {
					cur.dstmt.paramOIDs.Store(&oids)
				}
			}
		case '1':
			if need() && cur.kind == rParse {
				drop, has = cur.drop, false
			}
		case '2':
			if need() && cur.kind == rBind {
				drop, has = cur.drop, false
			}
		case '3':
			if need() && cur.kind == rClose {
				has = false
			}
		case 'T', 'n':
			if need() {
				switch {
				case cur.kind == rDescribe:
					if typ == 'T' {
						s.describe(&cur, body)
					}
					has = false
				case cur.kind == rQuery && typ == 'T' && cur.idx < len(cur.stmts):
					if m := cur.stmts[cur.idx].decision.Mask; m != nil || s.recOn {
						fs, err := parseRowDescription(body)
						if err != nil {
							return s.protocolError(err.Error())
						}
						if m != nil {
							cur.plan, cur.planned = s.queryPlans(body, fs, m), true
						}
						if s.recOn {
							cur.rec = withFields(cur.rec, fs)
						}
					}
				}
			}
		case 'C', 'I', 's':
			if typ == 'C' && isDDLTag(body) {
				s.catalog.invalidate() // a column may have been renamed or added
				ddlOpen = true
			}
			if need() {
				switch cur.kind {
				case rExecute:
					// Each Execute is recorded: a portal fetched in batches
					// gives one outcome per batch, rows summing to the total.
					cmd := tagText(typ, body)
					if typ == 's' {
						cmd = "(portal suspended)"
					}
					s.record(cur.stmt, cur.auditID, cur.start, outcomeRows(typ, body, cur.rows), cmd, "", &cur)
					has = false
				case rQuery:
					cur.plan, cur.planned = nil, false
					if cur.idx < len(cur.stmts) {
						s.record(cur.stmts[cur.idx], 0, cur.start, outcomeRows(typ, body, cur.rows), tagText(typ, body), "", &cur)
						cur.idx++
						cur.rec = nil
						cur.start = time.Now()
						cur.rows = 0
					}
				}
			}
		case 'V':
			if need() && cur.kind == rFunc {
				s.record(cur.stmt, cur.auditID, cur.start, -1, "", "", &cur)
				cur.stmt = nil
			}
		case 'E':
			if need() {
				if cur.probe {
					body = probeError(body, *cur.deny)
				} else if cur.deny != nil {
					// The upstream raised the gateway's denial (42501 from the
					// DO block, 26000 from the describe of a statement that
					// cannot exist); the client sees the gateway's own error.
					// Any other code (25P02 in an aborted block) is the
					// upstream's true answer and passes through.
					if c := errorCode(body); c == codeInsufficientPriv || c == codeInvalidStatementName {
						body = denyError(*cur.deny)
					}
				}
				msg := errorSummary(body)
				switch cur.kind {
				case rQuery:
					cur.plan, cur.planned = nil, false
					if cur.idx < len(cur.stmts) {
						s.record(cur.stmts[cur.idx], 0, cur.start, -1, "", msg, &cur)
						cur.idx++
						cur.rec = nil
					}
				case rFunc:
					s.record(cur.stmt, cur.auditID, cur.start, -1, "", msg, &cur)
					cur.stmt = nil
				case rSync:
					// An error at Sync (e.g. a deferred constraint at the
					// implicit commit); ReadyForQuery follows.
				default:
					if cur.kind == rExecute {
						s.record(cur.stmt, cur.auditID, cur.start, -1, "", msg, &cur)
					}
					// The upstream now discards messages until Sync; the
					// entries for them are settled at ReadyForQuery.
					has = false
				}
			}
		case 'Z':
			if ddlOpen && len(body) > 0 && body[0] == 'I' {
				s.catalog.invalidate() // what it created is visible (or gone) now
				ddlOpen = false
			}
			// ReadyForQuery settles everything owed up to the Sync (or the
			// simple query / function call) it answers.
			for need() {
				k, seq := cur.kind, cur.seq
				s.settle(&cur)
				has = false
				if k == rSync || k == rQuery || k == rFunc {
					if len(body) > 0 && body[0] == 'I' {
						// The transaction ended: PostgreSQL destroyed its
						// portals (the client goroutine forgets them).
						s.idleSeq.Store(seq)
					}
					break
				}
			}
		}
		s.cwMu.Lock()
		if !drop {
			writeMsg(s.cw, typ, body)
		}
		flushed := s.ur.r.Buffered() == 0
		if flushed {
			err = s.cw.Flush()
		}
		s.cwMu.Unlock()
		if err != nil {
			return fmt.Errorf("write client: %w", err)
		}
		if flushed {
			s.emitSettled()
		}
	}
}

// masking reports whether the current result is masked, deciding the plan
// on its first row. A statement with a mask plan whose result fields are
// unknown (never described) has every field nulled: fail closed.
func (s *session) masking(cur *pending, has *bool) bool {
	if !*has {
		if *cur, *has = s.t.pop(); !*has {
			return false
		}
	}
	if cur.planned {
		return cur.plan != nil
	}
	if cur.kind != rExecute || cur.stmt == nil || cur.stmt.decision.Mask == nil {
		cur.planned = true
		return false
	}
	var src *[]field // the described fields the plan derives from
	var formats []int16
	if cur.portal != nil {
		if src = cur.portal.fields.Load(); src == nil {
			src, formats = cur.stmt.fields.Load(), cur.portal.formats
		}
	}
	if src == nil {
		s.log.Warn("masking: result fields unknown (statement never described); nulling every field")
		cur.plan = nullAll
		cur.planned = true
		return true
	}
	gen, now := s.catalog.gen.Load(), time.Now()
	if c := cur.stmt.plan.Load(); c.matches(src, formats, gen, now) {
		cur.plan = c.plan
	} else {
		fs := *src
		if formats != nil || cur.portal.fields.Load() == nil {
			fs = withFormats(fs, formats)
		}
		cur.plan = s.fieldPlans(fs, cur.stmt.decision.Mask)
		cur.stmt.plan.Store(&planCache{fields: src, formats: formats, gen: gen, until: now.Add(catalogTTL), plan: cur.plan})
	}
	cur.planned = true
	return true
}

// nullAll marks "null every field" for rows of unknown shape.
var nullAll = []masking.FieldPlan{{Index: -1, Method: masking.Null}}

// nullRow is a DataRow with the same number of fields, all NULL.
func nullRow(dst, body []byte) ([]byte, error) {
	if len(body) < 2 {
		return nil, errors.New("short DataRow")
	}
	n := int(binary.BigEndian.Uint16(body))
	dst = append(dst, body[0], body[1])
	for i := 0; i < n; i++ {
		dst = append(dst, 0xff, 0xff, 0xff, 0xff)
	}
	return dst, nil
}

// describe keeps the fields a Describe reported on the statement or portal.
func (s *session) describe(cur *pending, body []byte) {
	fs, err := parseRowDescription(body)
	if err != nil {
		return
	}
	if cur.dstmt != nil {
		cur.dstmt.fields.Store(&fs)
	}
	if cur.dportal != nil {
		cur.dportal.fields.Store(&fs)
	}
}

func isDDLTag(body []byte) bool {
	return bytes.HasPrefix(body, []byte("ALTER ")) || bytes.HasPrefix(body, []byte("DROP ")) || bytes.HasPrefix(body, []byte("CREATE "))
}

// settle records statements that were owed but never ran because an earlier
// message of the same batch failed.
func (s *session) settle(p *pending) {
	s.settleAs(p, "not executed: an earlier statement or message in the same batch failed")
}

// sessionEnded is the outcome of statements owed when the session ended.
const sessionEnded = "unknown: the session ended before the outcome was known"

// settleAs records the statements of p as not completed, for the reason
// skipped.
func (s *session) settleAs(p *pending, skipped string) {
	switch p.kind {
	case rExecute:
		s.record(p.stmt, p.auditID, p.start, -1, "", skipped, nil)
	case rFunc:
		s.record(p.stmt, p.auditID, p.start, -1, "", skipped, nil)
	case rQuery:
		for _, ps := range p.stmts[min(p.idx, len(p.stmts)):] {
			s.record(ps, 0, p.start, -1, "", skipped, nil)
		}
	}
}

// record reports a statement's outcome; auditID (when not 0) is the
// execution's journaled decision, else the decision's own; cur, when given,
// is the response entry it completes, whose session recording goes with it.
// The outcome is settled now and emitted by emitSettled. Called by the
// upstream goroutine, or by run once both loops are done.
func (s *session) record(ps *prepared, auditID uint64, start time.Time, rows int64, command, errMsg string, cur *pending) {
	if ps == nil {
		return
	}
	d := ps.decision
	if auditID != 0 {
		d.AuditID = auditID
	}
	s.emits = append(s.emits, settled{a: ps.action, d: d,
		o: access.Outcome{Duration: time.Since(start), Rows: rows, Command: command, Error: errMsg}})
	e := &s.emits[len(s.emits)-1]
	if s.recOn && cur != nil {
		s.fillRecording(&e.o, cur)
	}
	s.cp.Settle(e.a, e.d, &e.o)
}

// settled is an outcome settled but not yet emitted.
type settled struct {
	a *access.Action
	d access.Decision
	o access.Outcome
}

// emitSettled emits the settled outcomes, in order.
func (s *session) emitSettled() {
	for i := range s.emits {
		e := &s.emits[i]
		s.cp.Emit(e.a, e.d, e.o)
		*e = settled{} // drop the references the reused slice would keep
	}
	s.emits = s.emits[:0]
}

// outcomeRows is the row count of a completed statement: the command tag's
// count when it has one ("INSERT 0 5"), else the DataRows seen.
func outcomeRows(typ byte, body []byte, seen int64) int64 {
	if n := tagRows(typ, body); n > 0 || (n == 0 && seen == 0) {
		return n
	}
	if seen > 0 {
		return seen
	}
	return -1
}

// tagRows extracts the row count from a CommandComplete tag ("SELECT 5",
// "INSERT 0 5", "UPDATE 5", "COPY 5"); -1 when it has none.
func tagRows(typ byte, body []byte) int64 {
	if typ != 'C' {
		return 0
	}
	tag := bytes.TrimRight(body, "\x00")
	i := bytes.LastIndexByte(tag, ' ')
	if i < 0 {
		return -1
	}
	n, err := strconv.ParseInt(string(tag[i+1:]), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func tagText(typ byte, body []byte) string {
	if typ != 'C' {
		return ""
	}
	return string(bytes.TrimRight(body, "\x00"))
}

// errorField returns field f of an ErrorResponse body.
// https://www.postgresql.org/docs/15/protocol-error-fields.html
func errorField(body []byte, f byte) string {
	for len(body) > 0 && body[0] != 0 {
		k := body[0]
		v, rest, ok := cstring(body[1:])
		if !ok {
			return ""
		}
		if k == f {
			return v
		}
		body = rest
	}
	return ""
}

func errorCode(body []byte) string { return errorField(body, 'C') }

func errorSummary(body []byte) string {
	return errorField(body, 'C') + ": " + errorField(body, 'M')
}
