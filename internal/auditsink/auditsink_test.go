package auditsink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/webhook"
)

func events(from, n int) []audit.Event {
	out := make([]audit.Event, n)
	for i := range out {
		out[i] = audit.Event{Seq: int64(from + i), Type: audit.TypeStatement, Subject: "agent-1",
			Statement: fmt.Sprintf("select %d -- %s", from+i, strings.Repeat("x", 40)), Time: time.Unix(0, 0).UTC()}
	}
	return out
}

func closeSink(t *testing.T, s interface{ Close(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestFileRotation: events land in order, one complete JSON object per line,
// across rotated files; old files beyond max_files are removed.
func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	s, err := NewFile(FileConfig{Path: path, MaxSize: 2000, MaxFiles: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		s.Send(events(1+i*5, 5))
	}
	closeSink(t, s)
	if s.Written() != 100 || s.Dropped() != 0 {
		t.Fatalf("written %d dropped %d", s.Written(), s.Dropped())
	}
	names, _ := filepath.Glob(path + "*")
	sort.Strings(names)
	if len(names) != 4 { // audit.jsonl, .1, .2, .3
		t.Fatalf("files: %v", names)
	}
	// Newest events are in the current file, then .1, .2, .3: read oldest first.
	var seqs []int64
	for _, name := range []string{path + ".3", path + ".2", path + ".1", path} {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		if st.Size() > 2000 {
			t.Errorf("%s is %d bytes, over max_size", name, st.Size())
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e audit.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: a line is not one JSON event: %v", name, err)
			}
			seqs = append(seqs, e.Seq)
		}
		f.Close()
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("events out of order or missing within the kept files: %v", seqs)
		}
	}
	if seqs[len(seqs)-1] != 100 || len(seqs) >= 100 {
		t.Fatalf("kept %d events ending at %d; want the newest, with the oldest rotated away", len(seqs), seqs[len(seqs)-1])
	}
	// Reopening appends to the current file.
	s2, err := NewFile(FileConfig{Path: path, MaxSize: 1 << 20, MaxFiles: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2.Send(events(101, 1))
	closeSink(t, s2)
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"seq":101`) || !strings.Contains(string(b), `"seq":100`) {
		t.Fatalf("reopen did not append: %s", b)
	}
}

// blockingWriter blocks every write until released.
type blockingWriter struct{ release chan struct{} }

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

// TestFullQueueDrops: a sink that cannot keep up never blocks Send; it drops
// and counts, and the counter is exported.
func TestFullQueueDrops(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	s := NewStdout(w, 2, nil)
	f := NewFanout(s)
	start := time.Now()
	for i := 0; i < 100; i++ {
		f.Send(events(i, 1))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Send blocked for %s", d)
	}
	if s.Dropped() < 90 {
		t.Fatalf("dropped %d, want most of 100", s.Dropped())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(f.Collector())
	mfs, err := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "gatehouse_audit_sink_dropped_total" && mf.GetMetric()[0].GetCounter().GetValue() == float64(s.Dropped()) {
			found = true
		}
	}
	if err != nil || !found {
		t.Fatalf("dropped metric not exported: %v", err)
	}
	close(w.release)
	closeSink(t, f)
	if s.Written()+s.Dropped() != 100 {
		t.Fatalf("written %d + dropped %d != 100", s.Written(), s.Dropped())
	}
}

// TestFanoutCopies: the audit writer reuses its batch buffer after Send.
func TestFanoutCopies(t *testing.T) {
	var buf syncBuf
	s := NewStdout(&buf, 0, nil)
	f := NewFanout(s)
	batch := events(1, 3)
	f.Send(batch)
	for i := range batch {
		batch[i].Statement = "overwritten"
	}
	closeSink(t, f)
	if strings.Contains(buf.String(), "overwritten") || strings.Count(buf.String(), "\n") != 3 {
		t.Fatalf("stdout sink output: %s", buf.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWebhookSink: events reach a receiver, batched and signed.
func TestWebhookSink(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte("k"), r.Header.Get(webhook.HeaderSignature), r.Header.Get(webhook.HeaderTimestamp), body); err != nil {
			t.Errorf("signature: %v", err)
		}
		mu.Lock()
		got = append(got, string(body))
		mu.Unlock()
	}))
	defer srv.Close()
	t.Setenv("SINK_KEY", "k")
	cfg := config.DefaultWebhook()
	cfg.Name, cfg.URL, cfg.Secret = "siem", config.Secret(srv.URL), "env:SINK_KEY"
	cfg.Batch.MaxEvents, cfg.Batch.Linger = 10, config.Duration(50*time.Millisecond)
	n, err := webhook.New(cfg, webhook.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewWebhook(n)
	s.Send(events(1, 5))
	closeSink(t, s)
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(got, "\n")
	for i := 1; i <= 5; i++ {
		if !strings.Contains(all, fmt.Sprintf(`"seq":%d`, i)) {
			t.Fatalf("event %d not delivered: %s", i, all)
		}
	}
	if len(got) > 2 {
		t.Errorf("5 events in %d POSTs; want batching", len(got))
	}
}
