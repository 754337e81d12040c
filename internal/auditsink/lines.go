package auditsink

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/gatehouse/gatehouse/internal/audit"
)

// DefaultQueue is how many batches a line sink buffers before dropping.
const DefaultQueue = 256

// lineSink writes events as JSON lines from one goroutine, fed by a bounded
// queue of batches.
type lineSink struct {
	counters
	name  string
	ch    chan []audit.Event
	done  chan struct{}
	close sync.Once
	log   *slog.Logger
	out   lineWriter
}

// lineWriter is where a line sink writes: a rotating file or stdout.
type lineWriter interface {
	// write appends one line (without its newline); flush ends a batch.
	write(line []byte) error
	flush() error
	close() error
}

func startLineSink(name string, queue int, out lineWriter, log *slog.Logger) *lineSink {
	if queue <= 0 {
		queue = DefaultQueue
	}
	if log == nil {
		log = slog.Default()
	}
	s := &lineSink{name: name, ch: make(chan []audit.Event, queue), done: make(chan struct{}), log: log, out: out}
	go s.run()
	return s
}

func (s *lineSink) Name() string { return s.name }

// Send queues events, or drops and counts them when the queue is full.
func (s *lineSink) Send(events []audit.Event) {
	select {
	case s.ch <- events:
	default:
		s.dropped.Add(int64(len(events)))
	}
}

func (s *lineSink) run() {
	defer close(s.done)
	failing := false
	for batch := range s.ch {
		err := s.writeBatch(batch)
		switch {
		case err != nil:
			s.dropped.Add(int64(len(batch)))
			if !failing {
				s.log.Error("audit sink write failed; dropping events until it recovers (the store has them)", "sink", s.name, "err", err)
			}
			failing = true
		case failing:
			s.log.Info("audit sink recovered", "sink", s.name)
			failing = false
		}
	}
	if err := s.out.close(); err != nil {
		s.log.Error("closing audit sink", "sink", s.name, "err", err)
	}
}

func (s *lineSink) writeBatch(batch []audit.Event) error {
	for i := range batch {
		b, err := json.Marshal(&batch[i])
		if err != nil {
			return fmt.Errorf("encode event %d: %w", batch[i].Seq, err)
		}
		if err := s.out.write(b); err != nil {
			return err
		}
	}
	if err := s.out.flush(); err != nil {
		return err
	}
	s.written.Add(int64(len(batch)))
	return nil
}

// Close stops the sink after writing what is queued, or when ctx ends.
func (s *lineSink) Close(ctx context.Context) error {
	s.close.Do(func() { close(s.ch) })
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit sink %s: events still queued at shutdown: %w", s.name, ctx.Err())
	}
}

// NewStdout returns a sink writing one JSON line per event to w (stdout).
func NewStdout(w io.Writer, queue int, log *slog.Logger) Sink {
	return startLineSink("stdout", queue, &streamWriter{w: bufio.NewWriter(w)}, log)
}

type streamWriter struct{ w *bufio.Writer }

func (s *streamWriter) write(line []byte) error {
	s.w.Write(line)
	return s.w.WriteByte('\n')
}
func (s *streamWriter) flush() error { return s.w.Flush() }
func (s *streamWriter) close() error { return s.w.Flush() }

// FileConfig configures a JSON-lines file sink.
type FileConfig struct {
	Path     string // the current file; rotated files are Path.1 (newest) … Path.N
	MaxSize  int64  // rotate when the file would grow past this many bytes (0 = 100 MiB)
	MaxFiles int    // rotated files kept (0 = 10)
	Queue    int    // batches buffered (0 = DefaultQueue)
}

// NewFile opens (appending) a JSON-lines file sink with size rotation.
func NewFile(cfg FileConfig, log *slog.Logger) (Sink, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("audit file sink: path is empty")
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 100 << 20
	}
	if cfg.MaxFiles <= 0 {
		cfg.MaxFiles = 10
	}
	rf := &rotatingFile{cfg: cfg}
	if err := rf.open(); err != nil {
		return nil, err
	}
	return startLineSink("file:"+filepath.Base(cfg.Path), cfg.Queue, rf, log), nil
}

// rotatingFile appends lines to cfg.Path, moving it to Path.1 (and older
// ones up) when the next line would pass MaxSize. A line is never split
// across files.
type rotatingFile struct {
	cfg  FileConfig
	f    *os.File
	w    *bufio.Writer
	size int64
}

func (r *rotatingFile) open() error {
	if err := os.MkdirAll(filepath.Dir(r.cfg.Path), 0o700); err != nil {
		return fmt.Errorf("audit file sink: %w", err)
	}
	f, err := os.OpenFile(r.cfg.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit file sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit file sink: %w", err)
	}
	r.f, r.w, r.size = f, bufio.NewWriterSize(f, 64<<10), st.Size()
	return nil
}

func (r *rotatingFile) write(line []byte) error {
	if r.f == nil {
		// An earlier rotation failed to reopen: try again.
		if err := r.open(); err != nil {
			return err
		}
	}
	n := int64(len(line)) + 1
	if r.size > 0 && r.size+n > r.cfg.MaxSize {
		if err := r.rotate(); err != nil {
			return err
		}
	}
	r.w.Write(line)
	if err := r.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("audit file sink: %w", err)
	}
	r.size += n
	return nil
}

func (r *rotatingFile) flush() error {
	if r.w == nil {
		return nil
	}
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("audit file sink: %w", err)
	}
	return nil
}

func (r *rotatingFile) rotate() error {
	if err := r.close(); err != nil {
		return err
	}
	r.f, r.w = nil, nil
	p := r.cfg.Path
	os.Remove(fmt.Sprintf("%s.%d", p, r.cfg.MaxFiles))
	for i := r.cfg.MaxFiles - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1)) // missing ones are fine
	}
	if err := os.Rename(p, p+".1"); err != nil {
		return fmt.Errorf("audit file sink: rotate: %w", err)
	}
	return r.open()
}

func (r *rotatingFile) close() error {
	if r.f == nil {
		return nil
	}
	ferr := r.w.Flush()
	cerr := r.f.Close()
	if ferr != nil {
		return fmt.Errorf("audit file sink: %w", ferr)
	}
	if cerr != nil {
		return fmt.Errorf("audit file sink: %w", cerr)
	}
	return nil
}
