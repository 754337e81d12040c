package audit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countSink counts the events it is handed.
type countSink struct{ n atomic.Int64 }

func (s *countSink) AppendEvents(_ context.Context, ev []Event) error {
	s.n.Add(int64(len(ev)))
	return nil
}

// TestWriterSkipsLingerWhenBacklogged: with a full batch already queued the
// writer commits at once instead of lingering, so the linger never caps the
// store's throughput at maxBatch events per linger. The linger here is an
// hour: a writer that waited it out would not store the backlog in time.
func TestWriterSkipsLingerWhenBacklogged(t *testing.T) {
	sink := &countSink{}
	l := newLog(sink, 3*maxBatch, nil)
	l.linger = time.Hour
	for i := 0; i < 2*maxBatch+1; i++ {
		l.ch <- Event{Type: TypeStatement}
	}
	go l.run()
	deadline := time.Now().Add(30 * time.Second)
	for sink.n.Load() < 2*maxBatch {
		if time.Now().After(deadline) {
			t.Fatalf("stored %d of %d backlogged events: the writer lingered with full batches queued", sink.n.Load(), 2*maxBatch)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The last event is alone in the queue, so the writer now lingers (an
	// hour); the test ends without Close rather than waiting for it.
}

// TestAppendAfterClose: an event appended after Close (a review expiring
// during shutdown) is counted as late, not a panic on the closed queue.
func TestAppendAfterClose(t *testing.T) {
	l := NewLog(&countSink{}, 0, nil)
	l.Append(Event{Type: TypeStatement})
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Append(Event{Type: TypeStatement})
	if l.Late() != 1 {
		t.Fatalf("Late() = %d, want 1", l.Late())
	}
}

// batchSink records the size of each batch it is handed.
type batchSink struct {
	mu      sync.Mutex
	batches []int
}

func (s *batchSink) AppendEvents(_ context.Context, ev []Event) error {
	s.mu.Lock()
	s.batches = append(s.batches, len(ev))
	s.mu.Unlock()
	return nil
}

// TestWriterLingersLongerWhenBusy: a linger that brings busyBatch events
// or more is followed by more lingers (up to busyLingers), so a busy
// gateway commits fewer, bigger batches; a quiet one lingers once.
func TestWriterLingersLongerWhenBusy(t *testing.T) {
	for _, tc := range []struct {
		queued, lingers int
	}{
		{queued: busyBatch / 2, lingers: 1},
		{queued: busyBatch + 10, lingers: busyLingers},
	} {
		sink := &batchSink{}
		l := newLog(sink, 0, nil)
		var sleeps atomic.Int64
		l.sleep = func(time.Duration) { sleeps.Add(1); time.Sleep(time.Millisecond) }
		for i := 0; i <= tc.queued; i++ { // one for the writer to take, then the queue
			l.ch <- Event{Type: TypeStatement}
		}
		go l.run()
		if err := l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		sink.mu.Lock()
		batches := sink.batches
		sink.mu.Unlock()
		if len(batches) != 1 || batches[0] != tc.queued+1 || int(sleeps.Load()) != tc.lingers {
			t.Errorf("%d queued: batches %v after %d lingers, want one batch after %d", tc.queued, batches, sleeps.Load(), tc.lingers)
		}
	}
}
