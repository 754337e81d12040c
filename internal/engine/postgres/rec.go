package postgres

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gatehouse/gatehouse/internal/access"
)

// Recording bounds the session recording of each statement: how many result
// rows are sampled and how many bytes of values (sample cells and bound
// parameters together) are kept. Bytes 0 records no values at all (and no
// columns or notices: recording is off); Rows 0 records no rows.
type Recording struct {
	Rows  int
	Bytes int
}

// Recording limits on what is not a value.
const (
	maxNotices    = 10  // notices kept per statement
	maxNoticeText = 512 // bytes kept of each notice
)

// ellipsis marks a value cut at the byte limit.
const ellipsis = "…"

// stmtRec is the recording of one statement's result, built by the upstream
// goroutine from the messages the client is sent. Once a limit is reached it
// only sets truncated: no copy, no allocation per further row.
type stmtRec struct {
	fields    []field
	columns   []access.Column
	sample    [][]*string
	bytes     int // bytes of sampled values so far
	truncated bool
	notices   []string
}

// typeNames resolves type OIDs to names. TypeForOID only reads the map, so
// one map serves every session.
var typeNames = pgtype.NewMap()

func typeName(oid uint32) string {
	if t, ok := typeNames.TypeForOID(oid); ok {
		return t.Name
	}
	return "oid:" + strconv.FormatUint(uint64(oid), 10)
}

// withFields gives r (or a new recording) the result fields fs.
func withFields(r *stmtRec, fs []field) *stmtRec {
	if r == nil {
		r = &stmtRec{}
	}
	r.fields = fs
	r.columns = make([]access.Column, len(fs))
	for i, f := range fs {
		r.columns[i] = access.Column{Name: f.name, Type: typeName(f.typeOID)}
	}
	return r
}

// execFields is the result shape of an Execute: the portal's described
// fields, else the statement's with the portal's result formats; nil when
// neither was described.
func execFields(cur *pending) []field {
	if cur.portal == nil {
		return nil
	}
	if p := cur.portal.fields.Load(); p != nil {
		return *p
	}
	if cur.stmt != nil {
		if p := cur.stmt.fields.Load(); p != nil {
			return withFormats(*p, cur.portal.formats)
		}
	}
	return nil
}

// recShape is the recorded result shape (fields with result formats, and
// the column list) of a prepared statement for one Describe result and
// one set of result formats. Executing the statement again with the same
// formats reuses it instead of building both for every Execute. Events
// share its columns, which nothing modifies.
type recShape struct {
	src     *[]field // the statement's described fields it was built from
	formats []int16
	fields  []field
	columns []access.Column
}

// execRec starts the recording of an Execute.
func execRec(cur *pending) *stmtRec {
	if cur.portal == nil || cur.stmt == nil || cur.portal.fields.Load() != nil {
		return withFields(nil, execFields(cur))
	}
	src := cur.stmt.fields.Load()
	if src == nil {
		return withFields(nil, nil)
	}
	sh := cur.stmt.rec.Load()
	if sh == nil || sh.src != src || !slices.Equal(sh.formats, cur.portal.formats) {
		r := withFields(nil, withFormats(*src, cur.portal.formats))
		sh = &recShape{src: src, formats: cur.portal.formats, fields: r.fields, columns: r.columns}
		cur.stmt.rec.Store(sh)
		return r
	}
	return &stmtRec{fields: sh.fields, columns: sh.columns}
}

// recFor returns the recording of the current statement, starting it if
// need be; nil for responses that are not a statement's result.
func (s *session) recFor(cur *pending) *stmtRec {
	if !s.recOn {
		return nil
	}
	if cur.rec == nil {
		switch cur.kind {
		case rQuery:
			cur.rec = &stmtRec{}
		case rExecute:
			cur.rec = execRec(cur)
		}
	}
	return cur.rec
}

// sampleRow keeps the DataRow body (as sent to the client) in the sample
// while the limits allow.
func (s *session) sampleRow(cur *pending, body []byte) {
	r := s.recFor(cur)
	if r == nil {
		return
	}
	lim := s.e.cfg.Recording
	if lim.Rows <= 0 {
		return
	}
	if len(r.sample) >= lim.Rows || r.bytes >= lim.Bytes {
		r.truncated = true
		return
	}
	if len(body) < 2 {
		return
	}
	n := int(binary.BigEndian.Uint16(body))
	p := body[2:]
	row := make([]*string, n)
	for i := 0; i < n; i++ {
		if len(p) < 4 {
			return // malformed: the client sees it as it is; nothing is kept
		}
		l := int32(binary.BigEndian.Uint32(p))
		p = p[4:]
		if l < 0 {
			continue // NULL
		}
		if int(l) > len(p) {
			return
		}
		v := p[:l]
		p = p[l:]
		var f field
		if i < len(r.fields) {
			f = r.fields[i]
		} else {
			f.format = -1 // shape unknown
		}
		str, cut := renderValue(v, f.format, f.typeOID, lim.Bytes-r.bytes, &s.upTypes)
		r.truncated = r.truncated || cut
		r.bytes += len(str)
		row[i] = &str
	}
	r.sample = append(r.sample, row)
}

// recordNotice keeps a NoticeResponse of the current statement.
func (s *session) recordNotice(cur *pending, body []byte) {
	r := s.recFor(cur)
	if r == nil || len(r.notices) >= maxNotices {
		return
	}
	msg := errorField(body, 'S') + " " + errorField(body, 'C') + ": " + errorField(body, 'M')
	if len(msg) > maxNoticeText {
		msg = validPrefix(msg[:maxNoticeText]) + ellipsis
	}
	r.notices = append(r.notices, msg)
}

// fillRecording puts the recording of the statement cur completes into o.
func (s *session) fillRecording(o *access.Outcome, cur *pending) {
	r := cur.rec
	if r == nil && cur.kind == rExecute {
		if er := execRec(cur); er.fields != nil {
			r = er
		}
	}
	if r != nil {
		o.Columns, o.Sample, o.Notices, o.SampleTruncated = r.columns, r.sample, r.notices, r.truncated
	}
	if cur.kind == rExecute && cur.portal != nil {
		o.Params = cur.portal.recParams
		o.SampleTruncated = o.SampleTruncated || cur.portal.recTrunc
	}
}

// recordParams renders a Bind's parameter values for the recording, within
// the byte limit: text as sent, binary decoded by the statement's parameter
// types, NULL as NULL. The checkpoint masks them before they are stored.
func (s *session) recordParams(body []byte, ps *prepared) (out []string, truncated bool) {
	var oids []uint32
	if p := ps.paramOIDs.Load(); p != nil {
		oids = *p
	}
	_, rest, ok := cstring(body)
	if ok {
		_, rest, ok = cstring(rest)
	}
	if !ok || len(rest) < 2 {
		return nil, false
	}
	nf := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < 2*nf+2 {
		return nil, false
	}
	formats := rest[:2*nf]
	rest = rest[2*nf:]
	np := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if np == 0 {
		return nil, false
	}
	budget := s.e.cfg.Recording.Bytes
	out = make([]string, 0, min(np, 64))
	for i := 0; i < np; i++ {
		if budget <= 0 {
			return out, true
		}
		if len(rest) < 4 {
			return out, truncated
		}
		l := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if l < 0 {
			out = append(out, "NULL")
			budget -= 4
			continue
		}
		if int(l) > len(rest) {
			return out, truncated
		}
		v := rest[:l]
		rest = rest[l:]
		f := int16(0)
		if nf == 1 {
			f = int16(binary.BigEndian.Uint16(formats))
		} else if i < nf {
			f = int16(binary.BigEndian.Uint16(formats[2*i:]))
		}
		var oid uint32
		if i < len(oids) {
			oid = oids[i]
		}
		str, cut := renderValue(v, f, oid, budget, &s.cliTypes)
		truncated = truncated || cut
		budget -= len(str)
		out = append(out, str)
	}
	return out, truncated
}

// renderValue renders one wire value as text within room bytes: text format
// as text (invalid UTF-8 quoted), binary decoded by type or shown by size.
// format -1 means unknown: shown as text when it is valid UTF-8. It copies
// at most room bytes of the value.
func renderValue(v []byte, format int16, oid uint32, room int, tm **pgtype.Map) (string, bool) {
	if room <= 0 {
		return ellipsis, true
	}
	if format == 1 {
		s := binaryValue(v, oid, tm)
		if len(s) > room {
			return validPrefix(s[:room]) + ellipsis, true
		}
		return s, false
	}
	w, cut := v, false
	if len(w) > room {
		w, cut = w[:room], true
	}
	text := string(w)
	if cut {
		text = validPrefix(text)
	}
	switch {
	case utf8.ValidString(text):
	case format == -1:
		return fmt.Sprintf("<binary %d bytes>", len(v)), false
	default:
		text = strconv.Quote(text)
		if len(text) > room {
			text, cut = validPrefix(text[:room]), true
		}
	}
	if cut {
		text += ellipsis
	}
	return text, cut
}

// binaryValue decodes a binary-format value by its type OID.
func binaryValue(v []byte, oid uint32, tm **pgtype.Map) string {
	if oid != 0 {
		if *tm == nil {
			*tm = pgtype.NewMap()
		}
		m := *tm
		if t, ok := m.TypeForOID(oid); ok {
			if val, err := t.Codec.DecodeValue(m, oid, pgtype.BinaryFormatCode, v); err == nil {
				if _, isBytes := val.([]byte); !isBytes {
					return fmt.Sprint(val)
				}
			}
		}
	}
	return fmt.Sprintf("<binary %d bytes>", len(v))
}

// validPrefix drops a rune cut in half at the end of s.
func validPrefix(s string) string {
	for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size > 1 {
			return s
		}
		s = s[:len(s)-1]
	}
	return s
}
