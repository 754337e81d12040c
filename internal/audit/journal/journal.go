package journal

import (
	"errors"
	"fmt"
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
	// Fsync makes every group commit wait for fsync: decisions then survive
	// a power loss or kernel crash, not only the gateway's death. Without
	// it a completed write(2) is in the page cache, which survives SIGKILL
	// and any crash of the process.
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

// Journal is an append-only file of decisions and acknowledgements with
// group commit: each caller of Append (or Ack) adds its record to a shared
// buffer; one of them (the leader) writes everything buffered with one
// write(2) while the others wait for it, then the next waiter leads. One
// statement at a time pays one write(2); many concurrent statements share
// one.
type Journal struct {
	dir      string
	fsync    bool
	segBytes int64
	log      *slog.Logger

	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte // records of batch gen, not yet written
	spare   []byte
	gen     uint64 // the batch being filled
	done    uint64 // the last batch written (or failed)
	writing bool   // a leader is writing
	failed  [32]failure
	nfailed int
	nextID  uint64
	closed  bool

	// Only the leader (writing) touches these.
	f      *os.File
	seg    uint64 // current segment number
	size   int64
	broken bool // the last write failed: the file may end in a torn record

	pending atomic.Int64           // decisions journaled, not yet acknowledged
	lastErr atomic.Pointer[string] // last write error; nil after a successful write
}

type failure struct {
	gen uint64
	err error
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
	j := &Journal{dir: o.Dir, fsync: o.Fsync, segBytes: o.SegmentBytes, log: o.Logger, gen: 1}
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
	next := uint64(1)
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	if err := j.create(next); err != nil {
		return nil, rec, err
	}
	var buf []byte
	for _, r := range carry {
		buf = append(buf, r.raw...)
		rec.Unstored = append(rec.Unstored, r.entry)
	}
	if err := j.writeFile(buf, true); err != nil {
		j.f.Close()
		return nil, rec, err
	}
	for _, n := range segs {
		if err := os.Remove(j.path(n)); err != nil {
			j.f.Close()
			return nil, rec, fmt.Errorf("audit journal: %w", err)
		}
	}
	if err := syncDir(j.dir); err != nil {
		j.f.Close()
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
// describes the damage ("" = none). Records after damage are not trusted:
// a length field can no longer be relied on to find the next record.
func scan(data []byte) (recs []record, problem string) {
	off := 0
	for len(data) > 0 {
		r, rest, err := parseRecord(data)
		if err != nil {
			return recs, fmt.Sprintf("%v at offset %d; %d bytes after it skipped", err, off, len(data))
		}
		off += len(data) - len(rest)
		recs = append(recs, r)
		data = rest
	}
	return recs, ""
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

// create makes segment n the current file.
func (j *Journal) create(n uint64) error {
	f, err := os.OpenFile(j.path(n), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	j.f, j.seg, j.size, j.broken = f, n, 0, false
	return nil
}

// writeFile writes b to the current segment (and fsyncs when configured or
// forced). Only the leader or Open calls it.
func (j *Journal) writeFile(b []byte, forceSync bool) error {
	if len(b) > 0 {
		n, err := j.f.Write(b)
		j.size += int64(n)
		if err != nil {
			j.broken = true
			return fmt.Errorf("audit journal: %w", err)
		}
	}
	if j.fsync || forceSync {
		if err := j.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the pages:
			// what the file holds is unknown.
			j.broken = true
			return fmt.Errorf("audit journal: fsync: %w", err)
		}
	}
	return nil
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

// Append journals e (assigning e.ID) and returns once it is written: then
// the statement may run. An error means it is not durable: refuse the
// statement.
func (j *Journal) Append(e *Entry) (uint64, error) {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return 0, ErrClosed
	}
	j.nextID++
	e.ID = j.nextID
	start := len(j.buf)
	j.buf = appendDecision(j.buf, e)
	if n := len(j.buf) - start - headerSize; n > MaxRecord {
		j.buf = j.buf[:start]
		j.mu.Unlock()
		return 0, fmt.Errorf("audit journal: decision record of %d bytes exceeds the limit of %d", n, MaxRecord)
	}
	err := j.commitLocked()
	j.mu.Unlock()
	if err != nil {
		return 0, err
	}
	j.pending.Add(1)
	return e.ID, nil
}

// Ack records that the statement events of ids are stored: recovery will
// not store them again, and rotation drops them. The audit writer calls it
// after each commit.
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
	j.buf = appendAck(j.buf, ids)
	return j.commitLocked()
}

// commitLocked waits (holding j.mu, released while waiting or writing)
// until the batch being filled is written, leading the write when no one
// else is.
func (j *Journal) commitLocked() error {
	my := j.gen
	for j.done < my {
		if !j.writing {
			j.lead()
			continue
		}
		j.cond.Wait()
	}
	return j.result(my)
}

// lead writes the batch being filled; j.mu is held on entry and exit but
// not during the write, so others keep filling the next batch.
func (j *Journal) lead() {
	j.writing = true
	g := j.gen
	j.gen++
	b := j.buf
	j.buf = j.spare[:0]
	j.mu.Unlock()

	err := j.write(b)

	j.mu.Lock()
	if cap(b) <= 1<<20 { // keep the buffer unless one huge statement grew it
		j.spare = b[:0]
	} else {
		j.spare = nil
	}
	if err != nil {
		j.failed[j.nfailed%len(j.failed)] = failure{g, err}
		j.nfailed++
		msg := err.Error()
		j.lastErr.Store(&msg)
	} else if j.lastErr.Load() != nil {
		j.lastErr.Store(nil)
	}
	j.done = g
	j.writing = false
	j.cond.Broadcast()
}

// result is the outcome of batch g, which is written.
func (j *Journal) result(g uint64) error {
	if j.nfailed == 0 {
		return nil
	}
	oldest := j.failed[0].gen
	if j.nfailed > len(j.failed) {
		oldest = j.failed[j.nfailed%len(j.failed)].gen
	}
	for _, f := range j.failed[:min(j.nfailed, len(j.failed))] {
		if f.gen == g {
			return f.err
		}
	}
	if g < oldest && j.nfailed > len(j.failed) {
		// Too many failures since to tell: fail closed.
		return errors.New("audit journal: write outcome unknown after repeated failures")
	}
	return nil
}

// write is the leader's: it writes b to the current segment, first moving
// to a new segment when the current one is full or a write to it failed.
func (j *Journal) write(b []byte) error {
	if j.broken || j.f == nil || j.size >= j.segBytes {
		if err := j.rotate(); err != nil {
			if j.broken || j.f == nil {
				return err // never append after a torn record
			}
			j.log.Error("audit journal: rotation failed; continuing in the current segment", "err", err)
		}
	}
	return j.writeFile(b, false)
}

// rotate starts segment seg+1 holding the decisions of the current segment
// that are not acknowledged in it, then deletes the current segment.
// Acknowledgements of carried decisions arriving meanwhile are written to
// the new segment after them, so each segment is self-contained: a decision
// is unacknowledged iff no ack for it follows in the same segment or a later
// one (recovery reads all of them).
func (j *Journal) rotate() error {
	old, oldSeg := j.f, j.seg
	var carry []byte
	if old != nil {
		data, err := os.ReadFile(j.path(oldSeg))
		if err != nil {
			return fmt.Errorf("audit journal: reading segment for rotation: %w", err)
		}
		recs, problem := scan(data)
		if problem != "" && !j.broken {
			j.log.Error("audit journal: damaged segment", "segment", filepath.Base(j.path(oldSeg)), "problem", problem)
		}
		acked := map[uint64]bool{}
		for _, r := range recs {
			for _, id := range r.acks {
				acked[id] = true
			}
		}
		for _, r := range recs {
			if r.kind == kindDecision && !acked[r.entry.ID] {
				carry = append(carry, r.raw...)
			}
		}
	}
	if err := j.create(oldSeg + 1); err != nil {
		j.f, j.seg = old, oldSeg
		return err
	}
	if err := j.writeFile(carry, j.fsync); err != nil {
		j.f.Close()
		os.Remove(j.path(j.seg))
		j.f, j.seg, j.broken = old, oldSeg, true
		return err
	}
	if j.fsync {
		if err := syncDir(j.dir); err != nil {
			return err
		}
	}
	if old != nil {
		old.Close()
		if err := os.Remove(j.path(oldSeg)); err != nil {
			j.log.Error("audit journal: removing rotated segment", "err", err)
		}
	}
	return nil
}

// Pending is the number of journaled decisions whose statement events are
// not stored yet: in flight, queued for the store, or waiting for a store
// that fails.
func (j *Journal) Pending() int64 { return j.pending.Load() }

// Err is the last write error, nil once a write succeeds again.
func (j *Journal) Err() error {
	if p := j.lastErr.Load(); p != nil {
		return errors.New(*p)
	}
	return nil
}

// Close writes what is buffered and closes the file. When every decision is
// acknowledged (a clean shutdown after the audit log drained), the segment
// is deleted: there is nothing to recover.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	var err error
	if len(j.buf) > 0 {
		err = j.commitLocked()
	}
	for j.writing {
		j.cond.Wait()
	}
	j.closed = true
	j.mu.Unlock()
	if j.f == nil {
		return err
	}
	clean := j.pending.Load() == 0 && !j.broken && err == nil
	if cerr := j.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("audit journal: %w", cerr)
	}
	if clean {
		if rerr := os.Remove(j.path(j.seg)); rerr != nil && err == nil {
			err = fmt.Errorf("audit journal: %w", rerr)
		}
	}
	return err
}
