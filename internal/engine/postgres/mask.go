package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/masking"
)

// field is one result column as RowDescription describes it: the wire
// metadata that identifies where a value came from (table OID + attribute
// number) and how it is encoded.
// https://www.postgresql.org/docs/15/protocol-message-formats.html (RowDescription)
type field struct {
	name     string // column name as the result labels it (for the session recording)
	tableOID uint32
	attnum   int16
	typeOID  uint32
	format   int16
}

func parseRowDescription(body []byte) ([]field, error) {
	if len(body) < 2 {
		return nil, errors.New("short RowDescription")
	}
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	out := make([]field, 0, n)
	for i := 0; i < n; i++ {
		name, rest, ok := cstring(body)
		if !ok || len(rest) < 18 {
			return nil, errors.New("malformed RowDescription")
		}
		out = append(out, field{
			name:     name,
			tableOID: binary.BigEndian.Uint32(rest),
			attnum:   int16(binary.BigEndian.Uint16(rest[4:])),
			typeOID:  binary.BigEndian.Uint32(rest[6:]),
			format:   int16(binary.BigEndian.Uint16(rest[16:])),
		})
		body = rest[18:]
	}
	return out, nil
}

// withFormats applies Bind's result-format codes: none = all text, one =
// all columns, else one per column.
func withFormats(fs []field, formats []int16) []field {
	out := make([]field, len(fs))
	copy(out, fs)
	for i := range out {
		switch {
		case len(formats) == 0:
			out[i].format = 0
		case len(formats) == 1:
			out[i].format = formats[0]
		case i < len(formats):
			out[i].format = formats[i]
		}
	}
	return out
}

// planCache is a prepared statement's masking plan for one result shape.
// A prepared statement's decision (and so its mask plan) is fixed, and its
// Describe result rarely changes, so re-executing it reuses the plan
// instead of resolving every field through the shared catalog again (a
// mutex, a map and a slice per Execute, measurable on small results). The
// plan is rebuilt when the fields or result formats change, after DDL
// through the gateway (catalog generation) and after the catalog TTL, so
// a column renamed behind the gateway's back is seen as fast as before.
type planCache struct {
	fields  *[]field
	formats []int16
	gen     uint64
	until   time.Time
	plan    []masking.FieldPlan
}

// matches reports whether c was built for these fields, formats and
// catalog generation and is still fresh.
func (c *planCache) matches(fields *[]field, formats []int16, gen uint64, now time.Time) bool {
	return c != nil && c.fields == fields && c.gen == gen && now.Before(c.until) && slices.Equal(c.formats, formats)
}

// queryPlan is the masking plan of the last simple-query result shape
// (upstream goroutine only). Simple-protocol clients repeat a few query
// shapes with new literals, and each result would otherwise resolve every
// field through the shared catalog again. The key is the RowDescription's
// bytes and the decision's mask plan: decisions under the same policies
// share one plan (checkpoint's mask cache), and holding the pointer here
// keeps that plan alive, so the address is never another plan's. Like
// planCache, it is rebuilt after DDL through the gateway (catalog
// generation) and after the catalog TTL: a view replaced with the same
// column names describes its result with the very same bytes.
type queryPlan struct {
	desc  []byte
	mask  *access.MaskPlan
	gen   uint64
	until time.Time
	plan  []masking.FieldPlan
}

// queryPlans returns the masking plan for a simple query's result
// described by desc (parsed: fs) under m, from the session's queryPlan
// when it still applies.
func (s *session) queryPlans(desc []byte, fs []field, m *access.MaskPlan) []masking.FieldPlan {
	gen, now := s.catalog.gen.Load(), time.Now()
	c := &s.qplan
	if c.mask == m && c.gen == gen && now.Before(c.until) && bytes.Equal(c.desc, desc) {
		return c.plan
	}
	plan := s.fieldPlans(fs, m)
	c.desc = append(c.desc[:0], desc...)
	c.mask, c.gen, c.until, c.plan = m, gen, now.Add(catalogTTL), plan
	return plan
}

// portal is a bound portal: the statement it runs, the result formats Bind
// asked for and, once described, its exact fields.
type portal struct {
	stmt    *prepared
	formats []int16
	fields  atomic.Pointer[[]field]
	// For a held statement: its bound parameters (for approvers), and
	// whether this portal's execution was approved (an approval covers the
	// portal's continuations, never a new Bind).
	params   []string
	approved *access.Decision
	// recParams are the bound parameters for the session recording
	// (bounded by its byte limit); recTrunc says some were cut.
	recParams []string
	recTrunc  bool
	// epoch is how many messages answered by ReadyForQuery the client had
	// sent before the Bind: the portal dies with the transaction that the
	// first of those sent after it ends (see session.prunePortals).
	epoch uint64
}

// bindResultFormats returns the result-format codes at the end of a Bind.
func bindResultFormats(body []byte) ([]int16, error) {
	_, rest, ok := cstring(body)
	if ok {
		_, rest, ok = cstring(rest)
	}
	if !ok || len(rest) < 2 {
		return nil, errMalformedBind
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < 2*n+2 {
		return nil, errMalformedBind
	}
	rest = rest[2*n:]
	np := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	for i := 0; i < np; i++ {
		if len(rest) < 4 {
			return nil, errMalformedBind
		}
		l := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if l > 0 {
			if int(l) > len(rest) {
				return nil, errMalformedBind
			}
			rest = rest[l:]
		}
	}
	if len(rest) < 2 {
		return nil, errMalformedBind
	}
	nr := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < 2*nr {
		return nil, errMalformedBind
	}
	switch {
	case nr == 0:
		return nil, nil // all text
	case nr == 1 && rest[0] == 0 && rest[1] <= 1:
		// One format for every column, text or binary: what drivers
		// send. Shared, so a Bind allocates none; nothing modifies them.
		return oneFormat[rest[1]], nil
	}
	out := make([]int16, nr)
	for i := range out {
		out[i] = int16(binary.BigEndian.Uint16(rest[2*i:]))
	}
	return out, nil
}

var (
	errMalformedBind = errors.New("malformed Bind message")
	oneFormat        = [2][]int16{{0}, {1}}
)

// colName is a column's identity in the catalog. For a column of a view it
// is the base-table column the view passes through (via names the view's
// own column, which rules may name too), or, for a computed view column,
// the view's column with the base-table columns it may carry in from.
type colName struct {
	schema, table, column string
	via                   *colName
	computed              bool // a view column computed from the columns in from
	from                  []engine.ColumnRef
	untraced              bool // a view column that could not be traced: may carry anything
}

// entityKinds maps the policy's entity names to the detectors' (the policy
// names IP versions apart; one detector finds both).
func entityKinds(names []string) []masking.Entity {
	var out []masking.Entity
	for _, n := range names {
		if n == "ipv4" || n == "ipv6" {
			n = "ip"
		}
		if k, err := masking.ParseEntity(n); err == nil && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// textLike types get entity detection.
func textLike(oid uint32) bool {
	switch oid {
	case 25, 1043, 1042, 114, 3802, 19: // text, varchar, bpchar, json, jsonb, name
		return true
	}
	return false
}

// fieldPlans decides, per result field, how to mask it. A field that cannot
// be identified (the catalog is unreachable) is nulled: fail closed.
func (s *session) fieldPlans(fs []field, m *access.MaskPlan) []masking.FieldPlan {
	if m == nil {
		return nil
	}
	var names []colName
	if m.MethodFor != nil {
		var err error
		if names, err = s.catalog.resolve(s.ctx, fs); err != nil {
			s.log.Error("masking: cannot resolve result columns; nulling them (fail closed)", "err", err)
			names = nil
		}
	}
	var plans []masking.FieldPlan
	for i, f := range fs {
		fp := masking.FieldPlan{Index: i, TypeOID: f.typeOID, Format: f.format, Key: s.e.cfg.MaskKey}
		switch {
		case f.tableOID != 0 && m.MethodFor != nil && names == nil:
			fp.Method = masking.Null
		case f.tableOID != 0 && m.MethodFor != nil:
			fp.Method = columnMethod(names[i], m)
		case f.tableOID == 0 && m.ReadsMasked:
			// Computed from a masked column (an expression, cast, function,
			// row_to_json…): its value may carry the masked data.
			fp.Method = masking.Null
		}
		if fp.Method == masking.Hash && len(fp.Key) < 16 {
			fp.Method = masking.Null // no key configured: hide rather than fail
		}
		if len(m.Entities) > 0 && textLike(f.typeOID) && fp.Method == "" {
			fp.Entities = true
			fp.Kinds = entityKinds(m.Entities)
		}
		if fp.Method != "" || fp.Entities {
			plans = append(plans, fp)
		}
	}
	if plans == nil {
		plans = []masking.FieldPlan{} // masking active, nothing to change
	}
	return plans
}

// columnMethod is the masking method for a result column the catalog named.
func columnMethod(n colName, m *access.MaskPlan) masking.Method {
	switch {
	case n.table == "" && !n.computed:
		// The catalog does not know the field's relation (created in the
		// client's uncommitted transaction, which the catalog's own
		// connection cannot see, or dropped meanwhile): it may carry a
		// masked column, so hide it while column rules apply.
		if len(m.Columns) > 0 {
			return masking.Null
		}
		return ""
	case n.untraced:
		// A view column that could not be traced may carry anything.
		if len(m.Columns) > 0 {
			return masking.Null
		}
		return ""
	case n.computed:
		// Computed in a view from a masked column: the value may carry it
		// (the checkpoint refuses such reads unless derived: mask).
		if meth, ok := m.MethodFor(n.schema, n.table, n.column); ok {
			return masking.Method(meth)
		}
		for _, f := range n.from {
			if _, ok := m.MethodFor(f.Schema, f.Table, f.Column); ok {
				return masking.Null
			}
		}
		return ""
	}
	meth, ok := m.MethodFor(n.schema, n.table, n.column)
	if n.via != nil {
		// A rule may name the view's column too; if both apply and
		// disagree, hide the value.
		if vm, vok := m.MethodFor(n.via.schema, n.via.table, n.via.column); vok {
			if ok && vm != meth {
				return masking.Null
			}
			meth, ok = vm, true
		}
	}
	if ok {
		return masking.Method(meth)
	}
	return ""
}
