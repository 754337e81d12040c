package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/internal/audit/chain"
)

// Sink durably stores batches of events (the store implements it).
type Sink interface {
	AppendEvents(ctx context.Context, events []Event) error
}

// ChainStore is the Sink of a chained Log: it also finds where a node's
// chain ends (to resume it after a restart) and stores checkpoints.
type ChainStore interface {
	Sink
	// ChainHead returns the node's event with the highest NodeSeq, or a
	// zero Head when the node has none.
	ChainHead(ctx context.Context, node string) (Head, error)
	// AppendCheckpoint stores c (assigning c.ID); storing a checkpoint for
	// a (node, node_seq) that already has one is a no-op.
	AppendCheckpoint(ctx context.Context, c *Checkpoint) error
}

// Log appends events to a Sink in batches from one writer goroutine, so the
// data path pays for a channel send, not a database write. It never drops an
// event: when the queue is full, Append waits (back-pressure), and a failing
// sink is retried with backoff.
//
// A chained Log (Open) also assigns each event its place in the node's hash
// chain and signs checkpoints, all in the writer goroutine: the chain order
// is the order events leave the queue, decided in one place, independent of
// the store.
type Log struct {
	ch      chan Event
	sink    Sink
	log     *slog.Logger
	done    chan struct{}
	closing sync.Once
	// mu orders Append against Close: Appends hold it shared while they
	// send, Close exclusively while it closes ch, so an event that arrives
	// after Close (a late review or grant event during shutdown) is counted
	// and logged as lost instead of panicking on the closed channel.
	mu     sync.RWMutex
	closed bool
	late   atomic.Int64

	appended atomic.Int64 // events accepted by Append (see QueueDepth)

	written     atomic.Int64
	failures    atomic.Int64
	checkpoints atomic.Int64
	lastErr     atomic.Pointer[string] // last sink error; nil when the last write succeeded

	// Chain state; only the writer goroutine touches it.
	chained  bool
	cs       ChainStore
	next     Head // head including events assigned but maybe not yet stored
	hasher   chain.Hasher
	key      ed25519.PrivateKey
	every    int64
	interval time.Duration
	signed   int64 // NodeSeq of the last checkpoint
	head     atomic.Pointer[Head]

	linger    time.Duration       // the linger constant; tests shorten or lengthen it
	sleep     func(time.Duration) // time.Sleep; tests count the lingers
	onStored  func(ids []uint64)  // nil = nothing journaled
	storedIDs []uint64            // reused by the writer
	shipped   func([]Event)       // Options.OnStored

	stateFile string     // Options.StateFile
	state     chainState // its content; the writer updates it
	signNow   bool       // sign after the next batch (a chain-break marker)
}

// maxBatch bounds one transaction.
const maxBatch = 4096

// linger is how long the writer waits for more events after the first one
// before committing. Every commit rewrites the touched page of each of the
// events table's b-trees (and fsyncs the WAL), so the store's CPU per event
// falls with the batch size: in BenchmarkAppendEvents 25-event batches cost
// ≈50 µs of CPU per event and 256-event batches ≈30 µs. 50 ms gives a
// few-hundred-event batch at a few thousand statements per second, which
// cut the gateway's CPU per pgbench transaction at -c 1 from ≈130 µs to
// ≈95 µs (docs/performance.md). It delays only when events become readable
// in the store, never the statements: their decisions are already durable in
// the decision journal (audit.durability: journal). With durability off, a
// crash loses at most the events of one linger.
const linger = 50 * time.Millisecond

// While a linger brings at least busyBatch events (≥ 5,000 a second), the
// writer lingers again, up to busyLingers lingers (200 ms) in all. At one
// statement at a time through one gateway (≈ 8,000 a second on the
// benchmark VM) that makes one commit of ≈ 1,600 events instead of four of
// ≈ 400: a quarter of the commits and fsyncs, fewer checkpoints (they are
// signed at batch boundaries) and ≈ 10 % less store CPU per event (SQLite
// rewrites each b-tree's last pages once per commit). The gateway's CPU per
// pgbench transaction fell ≈ 3 µs (docs/performance.md). A quiet gateway
// keeps the 50 ms linger, so its events are readable as soon as before.
const (
	busyBatch   = 250
	busyLingers = 4
)

// Checkpoint defaults.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Second
)

// NewLog starts an unchained Log with a queue of queueSize events (0 =
// 65536): events get no chain fields. The gateway uses Open; NewLog serves
// tests and tools that need only batching.
func NewLog(sink Sink, queueSize int, logger *slog.Logger) *Log {
	l := newLog(sink, queueSize, logger)
	go l.run()
	return l
}

func newLog(sink Sink, queueSize int, logger *slog.Logger) *Log {
	if queueSize <= 0 {
		queueSize = 65536
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Log{ch: make(chan Event, queueSize), sink: sink, log: logger, done: make(chan struct{}), linger: linger, sleep: time.Sleep}
}

// Options configure a chained Log.
type Options struct {
	Node      string       // chain name (required): one chain per gateway node
	QueueSize int          // 0 = 65536
	Logger    *slog.Logger // nil = slog.Default()

	// SigningKey signs checkpoints; nil = no checkpoints (the chain is then
	// verifiable for consistency but nothing vouches for its head).
	SigningKey         ed25519.PrivateKey
	CheckpointEvery    int           // sign after this many new events (at a batch boundary); 0 = 1000
	CheckpointInterval time.Duration // sign at this interval when new events exist; 0 = 10s

	// Stored, when set, is called by the writer after each commit with the
	// JournalIDs of the events it stored (the decision journal's
	// acknowledgement).
	Stored func(ids []uint64)

	// OnStored, when set, is called by the writer goroutine with each batch
	// after the store has durably accepted it (Seq and chain fields set),
	// so copies outside the store (package auditsink) never carry an event
	// the store lacks. It must not block and must not keep the slice: the
	// writer reuses it.
	OnStored func([]Event)

	// StateFile, when set, is the local state file (in data_dir) that
	// records the newest checkpoint this node signed, rewritten atomically
	// after each one. Open checks the store against it, so events or
	// checkpoints deleted from the store while the gateway was down show.
	StateFile string
	// AcceptBreak lets Open start although the stored chain fails its
	// startup check: a new chain segment then begins with a signed
	// TypeChainBreak event recording what was found. An operator's
	// explicit, one-off decision (serve --audit-accept-break).
	AcceptBreak bool
}

// Open starts a chained Log for o.Node, resuming the node's chain from the
// last event the store holds for it.
func Open(ctx context.Context, st ChainStore, o Options) (*Log, error) {
	if o.Node == "" {
		return nil, errors.New("audit: chain node name is empty")
	}
	h, err := st.ChainHead(ctx, o.Node)
	if err != nil {
		return nil, fmt.Errorf("audit: resuming chain %q: %w", o.Node, err)
	}
	if h.NodeSeq == 0 {
		h = Head{Node: o.Node, Hash: chain.Genesis}
	} else if len(h.Hash) != chain.HashSize {
		return nil, fmt.Errorf("audit: resuming chain %q: the store's event node_seq %d has no valid hash", o.Node, h.NodeSeq)
	}
	h.Node = o.Node
	state, err := readState(o.StateFile)
	if err != nil {
		return nil, fmt.Errorf("audit: chain state: %w", err)
	}
	brk, err := startCheck(ctx, st, o, state, h)
	if err != nil {
		return nil, err
	}
	next := h
	if brk != nil {
		// A new segment after everything the store or this node ever
		// numbered, so no node_seq is reused.
		next = Head{Node: o.Node, NodeSeq: max(h.NodeSeq, brk.Signed), Hash: chain.Genesis}
	}
	l := newLog(st, o.QueueSize, o.Logger)
	l.chained, l.cs, l.next, l.key = true, st, next, o.SigningKey
	l.stateFile, l.state = o.StateFile, state
	l.every, l.interval = int64(o.CheckpointEvery), o.CheckpointInterval
	l.onStored = o.Stored
	l.shipped = o.OnStored
	if l.every <= 0 {
		l.every = DefaultCheckpointEvery
	}
	if l.interval <= 0 {
		l.interval = DefaultCheckpointInterval
	}
	// Events of an earlier run after its last checkpoint (a crash) are
	// signed by this run's first checkpoint; an already signed head is not
	// signed twice (AppendCheckpoint ignores the duplicate).
	hc := h
	l.head.Store(&hc)
	if brk != nil {
		brk.Accepted = time.Now().UTC()
		l.log.Warn("audit: starting a new chain segment after a failed startup check (accepted by the operator)",
			"node", o.Node, "first_bad_node_seq", brk.FirstBad, "new_segment_node_seq", next.NodeSeq+1)
		l.signNow = true
		l.ch <- Event{Time: brk.Accepted, Type: TypeChainBreak, Reason: "operator accepted a failed startup check (" + AcceptBreakFlag + ")", DetailValue: brk}
	}
	go l.run()
	return l, nil
}

// startCheck runs the startup check when the Log signs checkpoints and the
// store can be read; it returns the break to record when the operator
// accepted it, and an error (a *ChainBreak) when not.
func startCheck(ctx context.Context, st ChainStore, o Options, state chainState, h Head) (*ChainBreak, error) {
	rd, ok := st.(ChainReader)
	if o.SigningKey == nil || !ok {
		return nil, nil // nothing signed to check against
	}
	var se *stateEntry
	if e, ok := state.Nodes[o.Node]; ok {
		se = &e
	}
	brk, err := checkStart(ctx, rd, o.Node, o.SigningKey.Public().(ed25519.PublicKey), se, h)
	if err != nil {
		return nil, fmt.Errorf("audit: checking the stored chain of node %q: %w", o.Node, err)
	}
	if brk != nil && !o.AcceptBreak {
		return nil, brk
	}
	return brk, nil
}

// Append queues e. It fills in Time when zero.
func (l *Log) Append(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		l.late.Add(1)
		l.log.Error("audit event after the audit log closed: not recorded", "type", e.Type, "session", e.SessionID)
		return
	}
	// Counted before the send, so QueueDepth never sees an event stored
	// before it was counted. A full queue blocks here, holding mu shared:
	// the writer drains the queue without mu, and Close waits for the send
	// to land.
	l.appended.Add(1)
	l.ch <- e
	l.mu.RUnlock()
}

// Late is the number of events appended after Close, which were not
// recorded.
func (l *Log) Late() int64 { return l.late.Load() }

// QueueDepth is the number of events appended but not yet stored: queued,
// or in the batch the writer is lingering over or writing.
func (l *Log) QueueDepth() int { return int(l.appended.Load() - l.written.Load()) }

// Written is the number of events durably stored so far.
func (l *Log) Written() int64 { return l.written.Load() }

// Failures counts failed sink writes (each retried) and failed checkpoints.
func (l *Log) Failures() int64 { return l.failures.Load() }

// Checkpoints counts checkpoints stored by this Log.
func (l *Log) Checkpoints() int64 { return l.checkpoints.Load() }

// Head is the last event of this node's chain that is durably stored (zero
// for an unchained Log). A verifier of the live store checks that the
// store still holds it.
func (l *Log) Head() Head {
	if h := l.head.Load(); h != nil {
		return *h
	}
	return Head{}
}

// Healthy reports the last sink error, nil when writes succeed.
func (l *Log) Healthy() error {
	if p := l.lastErr.Load(); p != nil {
		return errors.New(*p)
	}
	return nil
}

// Close stops accepting events and waits until queued ones are written (and
// a final checkpoint signed) or ctx ends. Append must not be called after
// Close.
func (l *Log) Close(ctx context.Context) error {
	l.closing.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.ch)
		l.mu.Unlock()
	})
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return errors.New("audit: events still queued at shutdown: " + ctx.Err().Error())
	}
}

func (l *Log) run() {
	defer close(l.done)
	var tick <-chan time.Time
	if l.key != nil {
		t := time.NewTicker(l.interval)
		defer t.Stop()
		tick = t.C
	}
	batch := make([]Event, 0, maxBatch)
	for {
		var e Event
		var ok bool
		select {
		case e, ok = <-l.ch:
		case <-tick:
			l.checkpoint()
			continue
		}
		if !ok {
			break
		}
		batch = append(batch[:0], e)
		// Sleep instead of selecting on the channel: a goroutine parked on
		// the channel would be woken (a thread wake-up) by every Append,
		// which at one statement at a time costs the data path more than
		// the write itself. Events queue in the buffered channel meanwhile.
		// When a full batch is already queued, waiting gains nothing and
		// would cap the store at maxBatch events per linger.
		if len(l.ch) < maxBatch-1 {
			l.sleep(l.linger)
			// Under load, linger again for a bigger batch (see busyBatch).
			for n := 1; n < busyLingers && len(l.ch) >= busyBatch && len(l.ch) < maxBatch-1; n++ {
				l.sleep(l.linger)
			}
		}
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
		if l.key != nil && (l.next.NodeSeq-l.signed >= l.every || l.signNow) {
			l.signNow = false
			l.checkpoint()
		}
	}
	l.checkpoint() // at shutdown
}

// prepare encodes details and, for a chained Log, links the batch into the
// chain. A Detail handed in as bytes is stored compact, so the bytes the
// hash covers are the bytes an export carries (JSON encoders compact raw
// JSON they embed).
func (l *Log) prepare(batch []Event) {
	var buf bytes.Buffer
	for i := range batch {
		e := &batch[i]
		if e.Detail == nil && e.DetailValue != nil {
			b, err := json.Marshal(e.DetailValue)
			if err != nil {
				b, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
			}
			e.Detail, e.DetailValue = b, nil
		} else if len(e.Detail) > 0 {
			buf.Reset()
			if err := json.Compact(&buf, e.Detail); err != nil {
				b, _ := json.Marshal(map[string]string{"invalid_detail": string(e.Detail)})
				e.Detail = b
			} else if buf.Len() != len(e.Detail) {
				e.Detail = bytes.Clone(buf.Bytes())
			}
		}
		if !l.chained {
			continue
		}
		// Text columns and JSON hold only UTF-8: a client can send other
		// bytes (a denied statement never reaches PostgreSQL's check), and
		// an export would carry them as U+FFFD, no longer the hashed bytes.
		for _, p := range [...]*string{&e.Type, &e.SessionID, &e.Issuer, &e.Subject, &e.Connection, &e.Decision, &e.Reason, &e.Statement} {
			if !utf8.ValidString(*p) {
				*p = strings.ToValidUTF8(*p, "\uFFFD")
			}
		}
		// The store keeps UTC microseconds; hash exactly what it keeps.
		e.Time = e.Time.UTC().Truncate(time.Microsecond)
		e.Node = l.next.Node
		e.NodeSeq = l.next.NodeSeq + 1
		e.PrevHash = l.next.Hash
		e.Hash = l.hasher.Sum(e.ChainFields())
		l.next.NodeSeq, l.next.Hash = e.NodeSeq, e.Hash
	}
}

func (l *Log) write(batch []Event) {
	l.prepare(batch)
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := l.sink.AppendEvents(ctx, batch)
		if err != nil && l.chained && l.stored(ctx, batch) {
			// The commit went through but its answer was lost: retrying
			// would collide with the stored events' node_seqs.
			err = nil
		}
		cancel()
		if err == nil {
			l.written.Add(int64(len(batch)))
			l.lastErr.Store(nil)
			if l.chained {
				last := batch[len(batch)-1]
				l.head.Store(&Head{Node: last.Node, NodeSeq: last.NodeSeq, Hash: last.Hash})
			}
			if l.onStored != nil {
				l.ack(batch)
			}
			if l.shipped != nil {
				l.shipped(batch)
			}
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

// ack hands the journal the ids of the batch's journaled events.
func (l *Log) ack(batch []Event) {
	ids := l.storedIDs[:0]
	for i := range batch {
		if id := batch[i].JournalID; id != 0 {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		l.onStored(ids)
	}
	l.storedIDs = ids
}

// stored reports whether the store's chain head is the batch's last event.
func (l *Log) stored(ctx context.Context, batch []Event) bool {
	h, err := l.cs.ChainHead(ctx, l.next.Node)
	last := batch[len(batch)-1]
	return err == nil && h.NodeSeq == last.NodeSeq && bytes.Equal(h.Hash, last.Hash)
}

// checkpoint signs the stored head when it has moved since the last
// checkpoint. A failure is logged and counted; the next tick retries.
func (l *Log) checkpoint() {
	if l.key == nil {
		return
	}
	h := l.Head()
	if h.NodeSeq == 0 || h.NodeSeq <= l.signed {
		return
	}
	c := chain.Sign(l.key, h.Node, h.NodeSeq, h.Hash, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := l.cs.AppendCheckpoint(ctx, &c)
	cancel()
	if err != nil {
		l.failures.Add(1)
		msg := "audit checkpoint: " + err.Error()
		l.lastErr.Store(&msg)
		l.log.Error("audit checkpoint failed; retrying at the next interval", "node", h.Node, "node_seq", h.NodeSeq, "err", err)
		return
	}
	l.signed = h.NodeSeq
	if c.ID != 0 { // 0: this head was already signed (by an earlier run)
		l.checkpoints.Add(1)
	}
	if l.stateFile != "" {
		l.state.Nodes[h.Node] = stateEntry{NodeSeq: h.NodeSeq, Hash: h.Hash, KeyID: c.KeyID, Time: c.Time}
		if err := writeState(l.stateFile, l.state); err != nil {
			// The checkpoint is stored; only the local cross-check lags.
			l.failures.Add(1)
			l.log.Error("audit: writing the chain state file failed; the next start checks against the older state", "path", l.stateFile, "err", err)
		}
	}
}
