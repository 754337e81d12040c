// Package journal is the per-node decision journal that makes a statement's
// audit decision durable before the statement is forwarded upstream.
//
// The audit store is written in batches off the data path (package audit),
// so an event queued in memory is lost if the gateway is killed. The journal
// closes that gap cheaply: the session goroutine appends the decision to an
// append-only segment file in data_dir (on Linux a shared memory mapping of
// it, so an append is a copy into the page cache, which outlives the
// process; with fsync, concurrent appends share one fsync), and only then
// forwards the statement. When the
// statement event carrying the same id is stored, the audit writer appends an
// acknowledgement. At startup, decisions without an acknowledgement are
// stored as statement events whose outcome is unknown. docs/audit.md
// describes the design and its trade-offs.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Entry is one journaled decision: what the statement event needs when the
// gateway stops before the outcome is known. No token, password or unmasked
// value may appear here (the same rule as audit events).
type Entry struct {
	ID         uint64 // unique per node; assigned by Append
	Time       int64  // Unix nanoseconds of the decision
	SessionID  string
	Issuer     string
	Subject    string
	Connection string
	Decision   string // allow (an approved hold is allowed too)
	Reason     string
	Statement  string
	Kind       string // access.ActionKind
	Protocol   string
	Prepared   string
	Policy     string
	Rule       string
	ReviewID   string
	Approvers  []string
}

// Record kinds.
const (
	kindDecision byte = 1
	kindAck      byte = 2
)

// headerSize is a record's length (4 bytes LE) and CRC-32C of the payload
// (4 bytes LE).
const headerSize = 8

// MaxRecord bounds one record's payload so a corrupt length cannot make the
// reader allocate without limit. A statement larger than this cannot be
// journaled (and is refused); postgres.max_message_size (at most 2 GiB)
// keeps statements below it.
const MaxRecord = 1<<31 + 1<<20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendDecision appends e's record to b. Strings are length-prefixed with
// uvarints: no reflection, no allocation beyond growing b.
func appendDecision(b []byte, e *Entry) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, kindDecision)
	b = binary.LittleEndian.AppendUint64(b, e.ID)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Time))
	for _, s := range [...]string{e.SessionID, e.Issuer, e.Subject, e.Connection, e.Decision, e.Reason,
		e.Statement, e.Kind, e.Protocol, e.Prepared, e.Policy, e.Rule, e.ReviewID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Approvers)))
	for _, s := range e.Approvers {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return seal(b, start)
}

// appendAck appends an acknowledgement of ids: their statement events are
// stored.
func appendAck(b []byte, ids []uint64) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, kindAck)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint64(b, id)
	}
	return seal(b, start)
}

// seal fills in the header of the record starting at b[start].
func seal(b []byte, start int) []byte {
	p := b[start+headerSize:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(p, castagnoli))
	return b
}

// record is one parsed record.
type record struct {
	kind  byte
	entry Entry    // kindDecision
	acks  []uint64 // kindAck
	raw   []byte   // the whole record, header included (aliases the input)
}

// errTorn marks an incomplete record at the end of the input: what a write
// cut short (power loss, a full disk) leaves.
var errTorn = errors.New("incomplete record (torn write)")

// parseRecord parses the record at the start of b and returns the bytes
// after it. It never panics on any input (see FuzzParseRecord).
func parseRecord(b []byte) (record, []byte, error) { return parse(b, true) }

// parse is parseRecord; with full false a decision's fields after its ID
// are not decoded (rotation needs only IDs and the raw bytes).
func parse(b []byte, full bool) (record, []byte, error) {
	if len(b) < headerSize {
		return record{}, nil, errTorn
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > MaxRecord {
		return record{}, nil, fmt.Errorf("invalid record length %d", n)
	}
	if uint64(len(b)-headerSize) < uint64(n) {
		return record{}, nil, errTorn
	}
	p := b[headerSize : headerSize+int(n)]
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return record{}, nil, errors.New("checksum mismatch")
	}
	r := record{kind: p[0], raw: b[:headerSize+int(n)]}
	d := decoder{b: p[1:]}
	switch r.kind {
	case kindDecision:
		e := &r.entry
		e.ID = d.u64()
		if !full {
			d.b = nil
			if d.err == nil && e.ID == 0 {
				d.err = errors.New("decision without id")
			}
			break
		}
		e.Time = int64(d.u64())
		for _, s := range [...]*string{&e.SessionID, &e.Issuer, &e.Subject, &e.Connection, &e.Decision, &e.Reason,
			&e.Statement, &e.Kind, &e.Protocol, &e.Prepared, &e.Policy, &e.Rule, &e.ReviewID} {
			*s = d.str()
		}
		if n := d.uvarint(); n > 0 && n <= uint64(len(d.b)) {
			e.Approvers = make([]string, n)
			for i := range e.Approvers {
				e.Approvers[i] = d.str()
			}
		} else if n > 0 {
			d.err = errors.New("approver count exceeds the record")
		}
		if d.err == nil && e.ID == 0 {
			d.err = errors.New("decision without id")
		}
	case kindAck:
		n := d.uvarint()
		if n > uint64(len(d.b))/8 {
			d.err = errors.New("ack count exceeds the record")
			break
		}
		r.acks = make([]uint64, n)
		for i := range r.acks {
			r.acks[i] = d.u64()
		}
	default:
		return record{}, nil, fmt.Errorf("unknown record kind %d", r.kind)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return record{}, nil, d.err
	}
	return r, b[headerSize+int(n):], nil
}

// decoder reads a record's payload; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) u64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errors.New("record too short")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("invalid length")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("string exceeds the record")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
