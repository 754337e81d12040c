package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Journal.
type Options struct {
	Dir string // created 0700 when missing
	// Fsync makes every append wait for fsync (group commit: concurrent
	// appends share one): decisions then survive a power loss or kernel
	// crash, not only the gateway's death. Without it an append is in the
	// page cache, which survives SIGKILL and any crash of the process.
	Fsync bool
	// SegmentBytes starts a new segment once the current one is this big
	// (0 = DefaultSegmentBytes). Rotation copies the decisions still
	// waiting for their statement event into the new segment and deletes
	// the old one, so the journal holds about one segment.
	SegmentBytes int64
	Logger       *slog.Logger // nil = slog.Default()
}

// DefaultSegmentBytes is Options.SegmentBytes when zero.
const DefaultSegmentBytes = 16 << 20

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit journal is closed")

const segmentSuffix = ".journal"

// Journal is an append-only log of decisions and acknowledgements in
// segment files of fixed size. On Linux a segment is mapped into memory
// (MAP_SHARED), so an append is a copy under a mutex: no system call, no
// goroutine hand-off, and the bytes are in the page cache, which outlives
// the process. With Options.Fsync, appends also wait for fsync, and
// concurrent appends share one (leader/follower group commit). Elsewhere
// each record is written through with one pwrite(2).
type Journal struct {
	dir      string
	fsync    bool
	segBytes int
	log      *slog.Logger

	mu      sync.Mutex
	cond    sync.Cond // signals the end of an fsync
	seg     *segment
	scratch []byte // encoding buffer, reused
	pos     int64  // bytes appended since Open (across segments)
	synced  int64  // pos up to which appends are fsynced (Fsync)
	syncing bool   // a leader is in fsync
	failTo  int64  // appends up to this pos failed to fsync
	failErr error
	broken  error // the current segment cannot be trusted: rotate before the next append
	nextID  uint64
	closed  bool

	pending atomic.Int64           // decisions journaled, not yet acknowledged
	lastErr atomic.Pointer[string] // last append error; nil after a successful append
}

// segment is one journal file.
type segment struct {
	f    *os.File
	n    uint64
	mem  []byte // the mapped file; nil = records are written through (pwrite)
	size int    // capacity
	off  int    // bytes used
}

// Recovery is what Open found: decisions of earlier runs whose statement
// events were never stored, and damage it skipped.
type Recovery struct {
	Unstored []Entry  // in journal order; carried into the new segment until acknowledged
	Problems []string // e.g. a torn record at the end of a segment (reported, then skipped)
	Segments int      // segment files read
	Records  int      // valid records read
}

// Open opens the journal in o.Dir: it reads every segment an earlier run
// left, carries the unacknowledged decisions into a fresh segment, deletes
// the old segments and returns the unacknowledged decisions. The caller
// stores them (as statement events with an unknown outcome, each with its
// ID) and acknowledges them with Ack once stored.
func Open(o Options) (*Journal, Recovery, error) {
	var rec Recovery
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, rec, fmt.Errorf("audit journal: %w", err)
	}
	j := &Journal{dir: o.Dir, fsync: o.Fsync, segBytes: int(o.SegmentBytes), log: o.Logger}
	j.cond.L = &j.mu
	segs, err := j.segments()
	if err != nil {
		return nil, rec, err
	}
	decisions := map[uint64]record{}
	acked := map[uint64]bool{}
	var maxID uint64
	for _, n := range segs {
		data, err := os.ReadFile(j.path(n))
		if err != nil {
			return nil, rec, fmt.Errorf("audit journal: %w", err)
		}
		rec.Segments++
		recs, problem := scan(data)
		if problem != "" {
			rec.Problems = append(rec.Problems, fmt.Sprintf("segment %s: %s", filepath.Base(j.path(n)), problem))
		}
		rec.Records += len(recs)
		for _, r := range recs {
			switch r.kind {
			case kindDecision:
				decisions[r.entry.ID] = r
				maxID = max(maxID, r.entry.ID)
			case kindAck:
				for _, id := range r.acks {
					acked[id] = true
				}
			}
		}
	}
	var carry []record
	for id, r := range decisions {
		if !acked[id] {
			carry = append(carry, r)
		}
	}
	slices.SortFunc(carry, func(a, b record) int { return compareID(a.entry.ID, b.entry.ID) })
	var buf []byte
	for _, r := range carry {
		buf = append(buf, r.raw...)
		rec.Unstored = append(rec.Unstored, r.entry)
	}
	next := uint64(1)
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	seg, err := j.newSegment(next, len(buf))
	if err != nil {
		return nil, rec, err
	}
	if err := seg.place(buf); err == nil {
		err = seg.f.Sync()
	}
	if err != nil {
		seg.close()
		return nil, rec, fmt.Errorf("audit journal: %w", err)
	}
	j.seg = seg
	for _, n := range segs {
		if err := os.Remove(j.path(n)); err != nil {
			j.seg.close()
			return nil, rec, fmt.Errorf("audit journal: %w", err)
		}
	}
	if err := syncDir(j.dir); err != nil {
		j.seg.close()
		return nil, rec, err
	}
	// IDs stay unique across runs: they continue from the larger of the
	// clock and the journal, so neither a reset clock nor a deleted
	// journal repeats one (given fewer than 10⁹ decisions a second).
	j.nextID = max(uint64(time.Now().UnixNano()), maxID)
	j.pending.Store(int64(len(carry)))
	return j, rec, nil
}

func compareID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scan parses records until the data ends or a record is damaged; problem
// describes the damage ("" = none). A zero length where a record would
// start is the unused, zero-filled rest of a segment. Records after damage
// are not trusted: a length field can no longer be relied on to find the
// next record.
func scan(data []byte) (recs []record, problem string) {
	problem = walk(data, true, func(r *record) { recs = append(recs, *r) })
	return recs, problem
}

// walk calls fn for each record of data until the data ends or a record is
// damaged (see scan); full false decodes decisions only up to their IDs.
func walk(data []byte, full bool, fn func(*record)) (problem string) {
	return walkRecords(data, func(b []byte) ([]byte, error) {
		r, rest, err := parse(b, full)
		if err == nil {
			fn(&r)
		}
		return rest, err
	})
}

// walkIDs is walk for rotation: it checks each record's checksum and hands
// fn only the kind, a decision's ID, an ack's raw ID list (8 bytes each)
// and the raw record, decoding and allocating nothing else.
func walkIDs(data []byte, fn func(kind byte, id uint64, acks, raw []byte)) (problem string) {
	return walkRecords(data, func(b []byte) ([]byte, error) {
		if len(b) < headerSize {
			return nil, errTorn
		}
		n := binary.LittleEndian.Uint32(b)
		if n < 9 || n > MaxRecord || uint64(len(b)-headerSize) < uint64(n) {
			_, rest, err := parse(b, false) // the full parser says what is wrong
			if err == nil {
				err = errors.New("invalid record")
			}
			return rest, err
		}
		p := b[headerSize : headerSize+int(n)]
		if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
			return nil, errors.New("checksum mismatch")
		}
		switch p[0] {
		case kindDecision:
			fn(kindDecision, binary.LittleEndian.Uint64(p[1:]), nil, b[:headerSize+int(n)])
		case kindAck:
			c, k := binary.Uvarint(p[1:])
			if k <= 0 || c > uint64(len(p)-1-k)/8 {
				return nil, errors.New("invalid ack record")
			}
			fn(kindAck, 0, p[1+k:1+k+int(c)*8], b[:headerSize+int(n)])
		default:
			return nil, fmt.Errorf("unknown record kind %d", p[0])
		}
		return b[headerSize+int(n):], nil
	})
}

// walkRecords applies step to each record of data (step returns the bytes
// after it) until the data ends, a zero-filled rest begins, or step fails.
func walkRecords(data []byte, step func([]byte) ([]byte, error)) (problem string) {
	off := 0
	for len(data) > 0 {
		if len(data) >= 4 && data[0]|data[1]|data[2]|data[3] == 0 {
			if i := bytes.IndexFunc(data, func(r rune) bool { return r != 0 }); i >= 0 {
				return fmt.Sprintf("data after the end of the records at offset %d (%d bytes skipped)", off, len(data))
			}
			return ""
		}
		rest, err := step(data)
		if err != nil {
			return fmt.Sprintf("%v at offset %d; %d bytes after it skipped", err, off, len(data))
		}
		off += len(data) - len(rest)
		data = rest
	}
	return ""
}

func (j *Journal) path(n uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%016d%s", n, segmentSuffix))
}

// segments lists the segment numbers in the directory, ascending.
func (j *Journal) segments() ([]uint64, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segmentSuffix)
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// newSegment creates segment n with room for need bytes plus a full
// segment's worth of new records: while decisions pile up unacknowledged
// (a failing store), rotation then still happens only once per segment of
// new records, not at every append.
func (j *Journal) newSegment(n uint64, need int) (*segment, error) {
	size := (j.segBytes + need + 4095) / 4096 * 4096
	f, err := os.OpenFile(j.path(n), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	s := &segment{f: f, n: n, size: size}
	if s.mem, err = mapSegment(f, size); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		j.log.Warn("audit journal: cannot map the segment; writing records through instead", "err", err)
		f.Truncate(0)
	}
	return s, nil
}

// place appends b to the segment, which has room for it.
func (s *segment) place(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if s.mem != nil {
		copy(s.mem[s.off:], b)
	} else if _, err := s.f.WriteAt(b, int64(s.off)); err != nil {
		return err
	}
	s.off += len(b)
	return nil
}

// used returns the segment's records.
func (s *segment) used() ([]byte, error) {
	if s.mem != nil {
		return s.mem[:s.off], nil
	}
	b := make([]byte, s.off)
	_, err := s.f.ReadAt(b, 0)
	return b, err
}

func (s *segment) close() error {
	var err error
	if s.mem != nil {
		err = unmapSegment(s.mem)
		s.mem = nil
	}
	return errors.Join(err, s.f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit journal: fsync %s: %w", dir, err)
	}
	return nil
}

// Append journals e (assigning e.ID) and returns once it is in the
// journal: then the statement may run. An error means it is not: refuse
// the statement.
func (j *Journal) Append(e *Entry) (uint64, error) {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return 0, ErrClosed
	}
	j.nextID++
	e.ID = j.nextID
	j.scratch = appendDecision(j.scratch[:0], e)
	err := j.appendLocked(j.scratch)
	if cap(j.scratch) > 1<<20 {
		j.scratch = nil // one huge statement: do not keep its buffer
	}
	if err == nil && j.fsync {
		err = j.syncLocked(j.pos)
	}
	if err != nil {
		msg := err.Error()
		j.lastErr.Store(&msg)
		j.mu.Unlock()
		return 0, err
	}
	if j.lastErr.Load() != nil {
		j.lastErr.Store(nil)
	}
	j.mu.Unlock()
	j.pending.Add(1)
	return e.ID, nil
}

// Ack records that the statement events of ids are stored: recovery will
// not store them again, and rotation drops them. The audit writer calls it
// after each commit. It does not wait for fsync: a lost acknowledgement
// only makes recovery look the ids up in the store.
func (j *Journal) Ack(ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	j.pending.Add(-int64(len(ids)))
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	j.scratch = appendAck(j.scratch[:0], ids)
	return j.appendLocked(j.scratch)
}

// appendLocked puts the record b in the current segment, first moving to
// a new one when b does not fit or the current one failed.
func (j *Journal) appendLocked(b []byte) error {
	if n := len(b) - headerSize; n > MaxRecord {
		return fmt.Errorf("audit journal: record of %d bytes exceeds the limit of %d", n, MaxRecord)
	}
	for j.broken != nil || j.seg.off+len(b) > j.seg.size {
		if j.syncing {
			// The leader is syncing this segment: do not close it under it.
			j.cond.Wait()
			continue
		}
		if err := j.rotate(len(b)); err != nil {
			return err
		}
	}
	if err := j.seg.place(b); err != nil {
		j.broken = fmt.Errorf("audit journal: %w", err)
		return j.broken
	}
	j.pos += int64(len(b))
	return nil
}

// syncLocked waits until the journal is fsynced up to pos end, leading the
// fsync when no one else is (j.mu is released during it, so others keep
// appending and share the next one).
func (j *Journal) syncLocked(end int64) error {
	for j.synced < end {
		if end <= j.failTo {
			return j.failErr
		}
		if j.syncing {
			j.cond.Wait()
			continue
		}
		j.syncing = true
		target, f := j.pos, j.seg.f
		j.mu.Unlock()
		err := f.Sync()
		j.mu.Lock()
		j.syncing = false
		if err != nil {
			// After a failed fsync the kernel may have dropped the pages:
			// what the segment holds is unknown. Move on to a new one.
			j.failTo, j.failErr = target, fmt.Errorf("audit journal: fsync: %w", err)
			j.broken = j.failErr
		} else {
			j.synced = max(j.synced, target)
		}
		j.cond.Broadcast()
	}
	return nil
}

// rotate starts a new segment holding the decisions of the current segment
// that are not acknowledged in it, with room for need more bytes, then
// deletes the current segment. Acknowledgements of carried decisions
// arriving later are written to the new segment after them, so each
// segment is self-contained: a decision is unacknowledged iff no ack for it
// is in the same segment (recovery reads all segments anyway).
func (j *Journal) rotate(need int) error {
	old := j.seg
	data, err := old.used()
	if err != nil {
		return fmt.Errorf("audit journal: reading segment for rotation: %w", err)
	}
	acked := map[uint64]struct{}{}
	problem := walkIDs(data, func(kind byte, id uint64, acks, raw []byte) {
		for ; len(acks) >= 8; acks = acks[8:] {
			acked[binary.LittleEndian.Uint64(acks)] = struct{}{}
		}
	})
	if problem != "" {
		j.log.Error("audit journal: damaged segment", "segment", filepath.Base(old.f.Name()), "problem", problem)
	}
	var carry []byte
	walkIDs(data, func(kind byte, id uint64, acks, raw []byte) {
		if _, ok := acked[id]; kind == kindDecision && !ok {
			carry = append(carry, raw...)
		}
	})
	seg, err := j.newSegment(old.n+1, len(carry)+need)
	if err != nil {
		return err
	}
	if err := seg.place(carry); err == nil && j.fsync {
		if err = seg.f.Sync(); err == nil {
			err = syncDir(j.dir)
		}
	}
	if err != nil {
		seg.close()
		os.Remove(seg.f.Name())
		return fmt.Errorf("audit journal: rotating: %w", err)
	}
	j.seg, j.broken = seg, nil
	// Every decision placed so far is in the new segment (or
	// acknowledged), synced when Fsync.
	j.synced = j.pos
	if err := old.close(); err != nil {
		j.log.Error("audit journal: closing rotated segment", "err", err)
	}
	if err := os.Remove(old.f.Name()); err != nil {
		j.log.Error("audit journal: removing rotated segment", "err", err)
	}
	return nil
}

// Pending is the number of journaled decisions whose statement events are
// not stored yet: in flight, queued for the store, or waiting for a store
// that fails.
func (j *Journal) Pending() int64 { return j.pending.Load() }

// Err is the last append error, nil once an append succeeds again.
func (j *Journal) Err() error {
	if p := j.lastErr.Load(); p != nil {
		return errors.New(*p)
	}
	return nil
}

// Close closes the journal (fsyncing it with Options.Fsync). When every
// decision is acknowledged (a clean shutdown after the audit log drained),
// the segment is deleted: there is nothing to recover.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	for j.syncing {
		j.cond.Wait()
	}
	j.closed = true
	var err error
	if j.fsync {
		err = j.seg.f.Sync()
	}
	clean := j.pending.Load() == 0 && j.broken == nil
	err = errors.Join(err, j.seg.close())
	if clean && err == nil {
		err = os.Remove(j.seg.f.Name())
	}
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	return nil
}
