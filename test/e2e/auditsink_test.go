package e2e

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
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/webhook"
)

// TestAuditSinks: a gateway with a file sink, a webhook sink (a loopback
// receiver checking the HMAC signature) and a webhook whose receiver
// stalls. The statements of a pgx session reach the file and the good
// webhook with their chain fields (and the chain links check out); the
// stalled receiver neither slows nor blocks a statement, and its drop
// counter rises.
func TestAuditSinks(t *testing.T) {
	const secret = "sink-hmac-key"
	t.Setenv("SINK_KEY", secret)

	var mu sync.Mutex
	received := map[string]audit.Event{} // by statement text
	var badSig int
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify([]byte(secret), r.Header.Get(webhook.HeaderSignature), r.Header.Get(webhook.HeaderTimestamp), body); err != nil {
			badSig++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var env struct {
			Events []struct {
				Type string      `json:"type"`
				ID   string      `json:"id"`
				Data audit.Event `json:"data"`
			} `json:"events"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Errorf("webhook body: %v", err)
			return
		}
		for _, e := range env.Events {
			if e.Data.Type == audit.TypeStatement {
				received[e.Data.Statement] = e.Data
			}
		}
	}))
	defer good.Close()
	stall := make(chan struct{})
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer stalled.Close()
	defer close(stall) // before stalled.Close (deferred later runs first)

	dir := t.TempDir()
	sinkFile := filepath.Join(dir, "sink", "audit.jsonl")
	e := startEnv(t, envOpts{policies: fmt.Sprintf(`
audit:
  sinks:
    - type: file
      path: %s
    - type: webhook
      name: siem
      url: %s/ingest
      secret: env:SINK_KEY
      batch: { max_events: 50, linger: 50ms }
    - type: webhook
      name: stalled
      url: %s/ingest
      secret: env:SINK_KEY
      queue_size: 4
      timeout: 1m
      max_retries: 0
      batch: { max_events: 1, linger: 0s }
`, sinkFile, good.URL, stalled.URL)})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, e.dsn("orders", e.token("agent-1", "analysts")))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var slowest time.Duration
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		var v int
		if err := c.QueryRow(ctx, fmt.Sprintf("select %d as sink_probe", i)).Scan(&v); err != nil || v != i {
			t.Fatalf("statement %d: %v (%d)", i, err, v)
		}
		slowest = max(slowest, time.Since(t0))
	}
	total := time.Since(start)
	c.Close(ctx)
	t.Logf("%d statements in %s (slowest %s) with a stalled webhook sink", n, total, slowest)
	// The stalled receiver holds each POST for a minute: had a sink been
	// on the data path, one statement would have waited that long.
	if slowest > 2*time.Second {
		t.Fatalf("a statement took %s: the stalled sink slowed the data path", slowest)
	}

	want := func(i int) string { return fmt.Sprintf("select %d as sink_probe", i) }
	// The good webhook receives every statement, with chain fields.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := 0
		for i := range n {
			if _, ok := received[want(i)]; ok {
				got++
			}
		}
		mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook sink received %d of %d statements", got, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	if badSig > 0 {
		t.Fatalf("%d deliveries with a bad signature", badSig)
	}
	for i := range n {
		ev := received[want(i)]
		if ev.Node == "" || ev.NodeSeq <= 0 || len(ev.Hash) != chain.HashSize || len(ev.PrevHash) != chain.HashSize {
			t.Fatalf("webhook copy lacks chain fields: %+v", ev)
		}
		if got := chain.Hash(ev.ChainFields()); !bytes.Equal(got, ev.Hash) {
			t.Fatalf("webhook copy of node_seq %d does not match its hash", ev.NodeSeq)
		}
	}
	mu.Unlock()

	// The file sink has them too, in chain order, each linking to the one
	// before (the sink sees every batch in the writer's order).
	var fileEvents []audit.Event
	for time.Now().Before(deadline) {
		fileEvents = readSinkFile(t, sinkFile)
		seen := 0
		for _, ev := range fileEvents {
			if ev.Type == audit.TypeStatement && regexp.MustCompile(`^select \d+ as sink_probe$`).MatchString(ev.Statement) {
				seen++
			}
		}
		if seen == n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 1; i < len(fileEvents); i++ {
		p, q := fileEvents[i-1], fileEvents[i]
		if q.NodeSeq != p.NodeSeq+1 || !bytes.Equal(q.PrevHash, p.Hash) {
			t.Fatalf("file sink: event node_seq %d does not follow node_seq %d in the chain", q.NodeSeq, p.NodeSeq)
		}
	}
	if len(fileEvents) < n {
		t.Fatalf("file sink holds %d events, want at least %d", len(fileEvents), n)
	}
	// The copies equal the store's events.
	stored := e.events(t, "type=statement&principal=agent-1&limit=1000")
	byHash := map[string]bool{}
	for _, ev := range fileEvents {
		byHash[chain.Digest(ev.Hash).String()] = true
	}
	for _, ev := range stored {
		if !byHash[chain.Digest(ev.Hash).String()] {
			t.Fatalf("stored event node_seq %d (%q) is not in the file sink", ev.NodeSeq, ev.Statement)
		}
	}

	// The stalled sink dropped and counted, on /metrics.
	dropped := sinkMetric(t, e.api, "gatehouse_audit_sink_dropped_total", "webhook:stalled")
	if dropped < 1 {
		t.Fatalf("stalled sink dropped %v events; want > 0", dropped)
	}
	if d := sinkMetric(t, e.api, "gatehouse_audit_sink_dropped_total", "webhook:siem"); d != 0 {
		t.Fatalf("healthy webhook sink dropped %v events", d)
	}
	t.Logf("stalled sink dropped %v events; healthy sinks dropped none", dropped)
}

func readSinkFile(t *testing.T, path string) []audit.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			// The last line may be half-written while the sink works.
			break
		}
		out = append(out, ev)
	}
	return out
}

// sinkMetric reads one labelled sink counter from /metrics.
func sinkMetric(t *testing.T, api, name, sink string) float64 {
	t.Helper()
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(regexp.QuoteMeta(name+`{sink="`+sink+`"} `) + `(\S+)`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("metric %s{sink=%q} not exported:\n%s", name, sink, body)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
