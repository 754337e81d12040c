package audit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Sink durably stores batches of events (the store implements it).
type Sink interface {
	AppendEvents(ctx context.Context, events []Event) error
}

// Log appends events to a Sink in batches from one writer goroutine, so the
// data path pays for a channel send, not a database write. It never drops an
// event: when the queue is full, Append waits (back-pressure), and a failing
// sink is retried with backoff.
type Log struct {
	ch      chan Event
	sink    Sink
	log     *slog.Logger
	done    chan struct{}
	closing sync.Once

	written  atomic.Int64
	failures atomic.Int64
	lastErr  atomic.Pointer[string] // last sink error; nil when the last write succeeded
}

// maxBatch bounds one transaction; larger batches gain little.
const maxBatch = 1024

// linger is how long the writer waits for more events after the first one
// before committing. Each commit rewrites the touched index pages, so at
// thousands of statements per second a few milliseconds of batching cut the
// store's write cost by an order of magnitude; it delays only when events
// become readable, never the statements themselves.
const linger = 5 * time.Millisecond

// NewLog starts a Log with a queue of queueSize events (0 = 65536).
func NewLog(sink Sink, queueSize int, logger *slog.Logger) *Log {
	if queueSize <= 0 {
		queueSize = 65536
	}
	if logger == nil {
		logger = slog.Default()
	}
	l := &Log{ch: make(chan Event, queueSize), sink: sink, log: logger, done: make(chan struct{})}
	go l.run()
	return l
}

// Append queues e. It fills in Time when zero.
func (l *Log) Append(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.ch <- e
}

// QueueDepth is the number of events waiting to be written.
func (l *Log) QueueDepth() int { return len(l.ch) }

// Written is the number of events durably stored so far.
func (l *Log) Written() int64 { return l.written.Load() }

// Failures counts failed sink writes (each retried).
func (l *Log) Failures() int64 { return l.failures.Load() }

// Healthy reports the last sink error, nil when writes succeed.
func (l *Log) Healthy() error {
	if p := l.lastErr.Load(); p != nil {
		return errors.New(*p)
	}
	return nil
}

// Close stops accepting events and waits until queued ones are written or
// ctx ends. Append must not be called after Close.
func (l *Log) Close(ctx context.Context) error {
	l.closing.Do(func() { close(l.ch) })
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return errors.New("audit: events still queued at shutdown: " + ctx.Err().Error())
	}
}

func (l *Log) run() {
	defer close(l.done)
	batch := make([]Event, 0, maxBatch)
	for e := range l.ch {
		batch = append(batch[:0], e)
		// Sleep instead of selecting on the channel: a goroutine parked on
		// the channel would be woken (a thread wake-up) by every Append,
		// which at one statement at a time costs the data path more than
		// the write itself. Events queue in the buffered channel meanwhile.
		time.Sleep(linger)
	fill:
		for len(batch) < maxBatch {
			select {
			case e, ok := <-l.ch:
				if !ok {
					break fill
				}
				batch = append(batch, e)
			default:
				break fill
			}
		}
		l.write(batch)
	}
}

func (l *Log) write(batch []Event) {
	for i := range batch {
		if batch[i].Detail == nil && batch[i].DetailValue != nil {
			b, err := json.Marshal(batch[i].DetailValue)
			if err != nil {
				b, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
			}
			batch[i].Detail, batch[i].DetailValue = b, nil
		}
	}
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := l.sink.AppendEvents(ctx, batch)
		cancel()
		if err == nil {
			l.written.Add(int64(len(batch)))
			l.lastErr.Store(nil)
			return
		}
		l.failures.Add(1)
		msg := err.Error()
		l.lastErr.Store(&msg)
		l.log.Error("audit write failed; retrying", "events", len(batch), "err", err, "retry_in", backoff)
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}
