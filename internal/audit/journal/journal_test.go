package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func entry(i int) Entry {
	return Entry{Time: time.Now().UnixNano(), SessionID: "s1", Issuer: "iss", Subject: "agent-1", Connection: "orders",
		Decision: "allow", Statement: fmt.Sprintf("insert into t values (%d)", i), Kind: "statement", Protocol: "simple",
		Policy: "p", Rule: "r", Approvers: []string{"alice", "bob"}}
}

func open(t *testing.T, dir string, o Options) (*Journal, Recovery) {
	t.Helper()
	o.Dir = dir
	j, rec, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return j, rec
}

func TestRoundTrip(t *testing.T) {
	e := entry(1)
	e.ID = 42
	e.Reason = "ünïcode \x00 bytes"
	b := appendDecision(nil, &e)
	b = appendAck(b, []uint64{42, 7})
	r, rest, err := parseRecord(b)
	if err != nil || r.kind != kindDecision || !reflect.DeepEqual(r.entry, e) {
		t.Fatalf("decision: %v %+v", err, r.entry)
	}
	r, rest, err = parseRecord(rest)
	if err != nil || r.kind != kindAck || !reflect.DeepEqual(r.acks, []uint64{42, 7}) || len(rest) != 0 {
		t.Fatalf("ack: %v %+v %d", err, r, len(rest))
	}
}

// TestRecovery: decisions without an ack survive a crash (a Journal never
// closed) and come back from Open in order; acknowledged ones do not.
func TestRecovery(t *testing.T) {
	dir := t.TempDir()
	j, rec := open(t, dir, Options{})
	if len(rec.Unstored) != 0 {
		t.Fatalf("fresh journal recovered %d", len(rec.Unstored))
	}
	var ids []uint64
	for i := range 5 {
		e := entry(i)
		id, err := j.Append(&e)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := j.Ack([]uint64{ids[1], ids[3]}); err != nil {
		t.Fatal(err)
	}
	if j.Pending() != 3 {
		t.Fatalf("pending %d", j.Pending())
	}
	// Crash: the file is not closed.
	j2, rec := open(t, dir, Options{})
	var got []string
	for _, e := range rec.Unstored {
		got = append(got, e.Statement)
	}
	want := []string{"insert into t values (0)", "insert into t values (2)", "insert into t values (4)"}
	if !reflect.DeepEqual(got, want) || rec.Unstored[0].ID != ids[0] || len(rec.Problems) != 0 {
		t.Fatalf("recovered %q %+v", got, rec)
	}
	if j2.Pending() != 3 {
		t.Fatalf("pending after recovery %d", j2.Pending())
	}
	// New IDs never repeat recovered ones.
	e := entry(9)
	id, err := j2.Append(&e)
	if err != nil || id <= ids[4] {
		t.Fatalf("new id %d after %d: %v", id, ids[4], err)
	}
	// Recovered entries stay until acknowledged, across another crash.
	_, rec = open(t, dir, Options{})
	if len(rec.Unstored) != 4 {
		t.Fatalf("second recovery: %d", len(rec.Unstored))
	}
	j4, rec := open(t, dir, Options{})
	var all []uint64
	for _, e := range rec.Unstored {
		all = append(all, e.ID)
	}
	if err := j4.Ack(all); err != nil {
		t.Fatal(err)
	}
	// A clean close with nothing pending leaves no segment.
	if err := j4.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix)); len(left) != 0 {
		t.Fatalf("segments after clean close: %v", left)
	}
	if _, err := j4.Append(&e); err != ErrClosed {
		t.Fatalf("append after close: %v", err)
	}
}

// TestTornTail: a record cut short or corrupted at the end of a segment is
// reported and skipped; everything before it is recovered.
func TestTornTail(t *testing.T) {
	for _, damage := range []string{"truncate", "flip", "garbage"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			j, _ := open(t, dir, Options{})
			for i := range 3 {
				e := entry(i)
				if _, err := j.Append(&e); err != nil {
					t.Fatal(err)
				}
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
			if len(segs) != 1 {
				t.Fatalf("segments %v", segs)
			}
			data, _ := os.ReadFile(segs[0])
			end := j.seg.off
			switch damage {
			case "truncate": // a copy cut short: the tail of the last record missing
				clear(data[end-5 : end])
			case "flip":
				data[end-3] ^= 0xff
			case "garbage":
				copy(data[end:], []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7})
			}
			os.WriteFile(segs[0], data, 0o600)
			_, rec := open(t, dir, Options{})
			n := 2
			if damage == "garbage" {
				n = 3
			}
			if len(rec.Unstored) != n || len(rec.Problems) != 1 {
				t.Fatalf("recovered %d, problems %q", len(rec.Unstored), rec.Problems)
			}
			t.Log(rec.Problems[0])
		})
	}
}

// TestGroupCommit: concurrent appends (with fsync, so they share fsyncs)
// all complete and are all recovered with unique IDs.
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, Options{Fsync: true})
	const workers, each = 16, 50
	var wg sync.WaitGroup
	ids := make(chan uint64, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := entry(w*each + i)
				id, err := j.Append(&e)
				if err != nil {
					t.Error(err)
					return
				}
				ids <- id
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[uint64]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("duplicate id %d", id)
		}
		seen[id] = true
	}
	if j.synced != j.pos {
		t.Fatalf("synced %d of %d bytes", j.synced, j.pos)
	}
	_, rec := open(t, dir, Options{})
	if len(rec.Unstored) != workers*each {
		t.Fatalf("recovered %d of %d", len(rec.Unstored), workers*each)
	}
}

// TestRotation: small segments rotate; acknowledged decisions are dropped,
// unacknowledged ones are carried forward, and old segments are deleted.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, Options{SegmentBytes: 4096})
	var keep []uint64
	for i := range 500 {
		e := entry(i)
		id, err := j.Append(&e)
		if err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			keep = append(keep, id) // a long-running statement: no ack yet
			continue
		}
		if err := j.Ack([]uint64{id}); err != nil {
			t.Fatal(err)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if len(segs) != 1 || j.seg.n < 5 {
		t.Fatalf("segments %v (current %d)", segs, j.seg.n)
	}
	if j.Pending() != int64(len(keep)) {
		t.Fatalf("pending %d", j.Pending())
	}
	_, rec := open(t, dir, Options{})
	var got []uint64
	for _, e := range rec.Unstored {
		got = append(got, e.ID)
	}
	if !reflect.DeepEqual(got, keep) {
		t.Fatalf("recovered %v, want %v", got, keep)
	}
}

// TestWriteFailure: when the journal cannot move to a new segment the
// append is refused and Err reports it; once it can, appends succeed again
// and nothing written before is lost.
func TestWriteFailure(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, Options{})
	e := entry(1)
	if _, err := j.Append(&e); err != nil {
		t.Fatal(err)
	}
	// The segment failed (as after a failed fsync) and its successor's
	// name is taken: rotation fails.
	j.broken = fmt.Errorf("simulated")
	blocker := j.path(j.seg.n + 1)
	os.Mkdir(blocker, 0o700)
	e2 := entry(2)
	if _, err := j.Append(&e2); err == nil || j.Err() == nil {
		t.Fatal("append without a usable segment succeeded")
	}
	os.Remove(blocker)
	e3 := entry(3)
	if _, err := j.Append(&e3); err != nil {
		t.Fatalf("after a failure: %v", err)
	}
	if j.Err() != nil {
		t.Fatalf("error not cleared: %v", j.Err())
	}
	_, rec := open(t, dir, Options{})
	var got []string
	for _, e := range rec.Unstored {
		got = append(got, e.Statement)
	}
	if strings.Join(got, ";") != "insert into t values (1);insert into t values (3)" {
		t.Fatalf("recovered %q", got)
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, fsync := range []bool{false, true} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			j, _, err := Open(Options{Dir: b.TempDir(), Fsync: fsync})
			if err != nil {
				b.Fatal(err)
			}
			e := entry(1)
			ids := make([]uint64, 1)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := e
					id, err := j.Append(&e)
					if err != nil {
						b.Fatal(err)
					}
					_ = id
				}
			})
			_ = ids
		})
	}
}

func BenchmarkAppendSerial(b *testing.B) {
	j, _, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	e := entry(1)
	var ids []uint64
	b.ReportAllocs()
	for b.Loop() {
		id, err := j.Append(&e)
		if err != nil {
			b.Fatal(err)
		}
		// The audit writer acknowledges in batches, as in the gateway.
		if ids = append(ids, id); len(ids) == 64 {
			j.Ack(ids)
			ids = ids[:0]
		}
	}
}

// TestRotationBacklog: with nothing acknowledged (a failing store), the
// journal still rotates once per segment of new records.
func TestRotationBacklog(t *testing.T) {
	j, _ := open(t, t.TempDir(), Options{SegmentBytes: 8192})
	for i := range 2000 {
		e := entry(i)
		if _, err := j.Append(&e); err != nil {
			t.Fatal(err)
		}
	}
	if j.seg.n > 100 {
		t.Fatalf("%d rotations for 2000 appends", j.seg.n)
	}
}
