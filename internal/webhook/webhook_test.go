package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/prometheus/client_golang/prometheus"
)

const testKey = "test-hmac-key-0123456789"

// request is one POST as the receiver saw it.
type request struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a real HTTP server on loopback that records every request
// and answers with respond (200 when nil).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request
	arrived chan struct{} // one value per request, never blocks the handler
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{respond: respond, arrived: make(chan struct{}, 1000)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, request{header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		rc.arrived <- struct{}{}
		if rc.respond != nil {
			rc.respond(n, w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

// wait blocks until n requests arrived, failing after a generous bound.
func (rc *receiver) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-rc.arrived:
		case <-time.After(20 * time.Second):
			t.Fatalf("receiver got %d requests, want %d", len(rc.requests()), n)
		}
	}
}

// testConfig is a JSON webhook to url with the test key from the environment.
func testConfig(t *testing.T, url string) Config {
	t.Setenv("TEST_HOOK_KEY", testKey)
	c := config.DefaultWebhook()
	c.Name = "test"
	c.URL = config.Secret(url)
	c.Secret = "env:TEST_HOOK_KEY"
	return c
}

// fast makes retries immediate so tests wait for nothing.
var fast = Options{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}

func newNotifier(t *testing.T, c Config, o Options) *Notifier {
	t.Helper()
	n, err := New(c, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

func closeNotifier(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func counters(n *Notifier) [4]int64 { return [4]int64{n.Sent(), n.Failed(), n.Dropped(), n.Retried()} }

func TestSignatureVerifies(t *testing.T) {
	rc := newReceiver(t, nil)
	n := newNotifier(t, testConfig(t, rc.srv.URL), fast)
	ev := Event{Type: "review.created", ID: "r_1", Summary: "alice wants to run an UPDATE",
		Fields: []Field{{"Approve", "gatehouse reviews approve r_1"}}, Data: map[string]any{"review": "r_1"}}
	if !n.Send(ev) {
		t.Fatal("Send refused")
	}
	closeNotifier(t, n)
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	sig, ts := r.header.Get(HeaderSignature), r.header.Get(HeaderTimestamp)
	if err := Verify([]byte(testKey), sig, ts, r.body); err != nil {
		t.Fatalf("Verify: %v (sig %q ts %q)", err, sig, ts)
	}
	if got := r.header.Get(HeaderEvent); got != "review.created" {
		t.Errorf("%s = %q", HeaderEvent, got)
	}
	if r.header.Get(HeaderDelivery) == "" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v", r.header)
	}
	var got Event
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != ev.Type || got.ID != "r_1" || got.Summary != ev.Summary || len(got.Fields) != 1 ||
		got.Time.IsZero() || got.Data.(map[string]any)["review"] != "r_1" {
		t.Errorf("body = %s", r.body)
	}

	// What a receiver must refuse.
	now := time.Now()
	tampered := bytes.Replace(r.body, []byte("r_1"), []byte("r_2"), 1)
	for name, err := range map[string]error{
		"tampered body":   VerifyAt([]byte(testKey), sig, ts, tampered, now, DefaultMaxAge),
		"wrong key":       VerifyAt([]byte("other"), sig, ts, r.body, now, DefaultMaxAge),
		"moved timestamp": VerifyAt([]byte(testKey), sig, strconv.FormatInt(now.Unix()+1, 10), r.body, now, DefaultMaxAge),
		"replayed later":  VerifyAt([]byte(testKey), sig, ts, r.body, now.Add(DefaultMaxAge+time.Minute), DefaultMaxAge),
		"no signature":    VerifyAt([]byte(testKey), "", ts, r.body, now, DefaultMaxAge),
	} {
		if err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if c := counters(n); c != [4]int64{1, 0, 0, 0} {
		t.Errorf("sent, failed, dropped, retried = %v", c)
	}
}

func TestRetryOn500ThenSuccess(t *testing.T) {
	rc := newReceiver(t, func(i int, w http.ResponseWriter, _ *http.Request) {
		if i < 2 {
			http.Error(w, "down", http.StatusInternalServerError)
		}
	})
	n := newNotifier(t, testConfig(t, rc.srv.URL), fast)
	n.Send(Event{Type: "review.decided"})
	closeNotifier(t, n)
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	id := reqs[0].header.Get(HeaderDelivery)
	for i, r := range reqs {
		if got := r.header.Get(HeaderDelivery); got != id {
			t.Errorf("attempt %d delivery id %q, want %q (stable across retries)", i, got, id)
		}
		if err := Verify([]byte(testKey), r.header.Get(HeaderSignature), r.header.Get(HeaderTimestamp), r.body); err != nil {
			t.Errorf("attempt %d: %v", i, err)
		}
		if !bytes.Equal(r.body, reqs[0].body) {
			t.Errorf("attempt %d body differs", i)
		}
	}
	if c := counters(n); c != [4]int64{1, 0, 0, 2} {
		t.Errorf("sent, failed, dropped, retried = %v", c)
	}
}

func TestNoRetryOn4xx(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusFound} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Location", "/elsewhere") // a redirect is not followed
				w.WriteHeader(code)
			})
			n := newNotifier(t, testConfig(t, rc.srv.URL), fast)
			n.Send(Event{Type: "review.expired"})
			closeNotifier(t, n)
			if got := len(rc.requests()); got != 1 {
				t.Errorf("%d requests, want 1", got)
			}
			if c := counters(n); c != [4]int64{0, 1, 0, 0} {
				t.Errorf("sent, failed, dropped, retried = %v", c)
			}
		})
	}
}

func TestRetriesRunOut(t *testing.T) {
	// A server that is gone: connection refused on every attempt.
	rc := newReceiver(t, nil)
	url := rc.srv.URL
	rc.srv.Close()
	c := testConfig(t, url)
	c.MaxRetries = 3
	n := newNotifier(t, c, fast)
	n.Send(Event{Type: "grant.approved"})
	closeNotifier(t, n)
	if c := counters(n); c != [4]int64{0, 1, 0, 3} {
		t.Errorf("sent, failed, dropped, retried = %v", c)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	rc := newReceiver(t, func(i int, w http.ResponseWriter, _ *http.Request) {
		if i == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	// Backoff alone would retry after a millisecond.
	n := newNotifier(t, testConfig(t, rc.srv.URL), fast)
	n.Send(Event{Type: "review.created"})
	closeNotifier(t, n)
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 900*time.Millisecond {
		t.Errorf("retried after %v, Retry-After asked for 1s", gap)
	}
	if c := counters(n); c != [4]int64{1, 0, 0, 1} {
		t.Errorf("sent, failed, dropped, retried = %v", c)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"7":                             7 * time.Second,
		"99999999999":                   maxRetryAfter,
		"Sat, 28 Nov 2026 12:00:30 GMT": 30 * time.Second,
		"Sat, 28 Nov 2026 11:00:00 GMT": 0,
		"Sun, 29 Nov 2026 12:00:00 GMT": maxRetryAfter,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestHangingReceiverNeverBlocksSend: a receiver that never answers fills
// the queue; further events are dropped and counted, and Send returns at
// once throughout.
func TestHangingReceiverNeverBlocksSend(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) { <-release })
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	c := testConfig(t, rc.srv.URL)
	c.QueueSize = 4
	c.Timeout = config.Duration(time.Minute)
	n := newNotifier(t, c, fast)

	n.Send(Event{Type: "audit.event"})
	rc.wait(t, 1) // the worker is now stuck in the first POST
	start := time.Now()
	queued := 0
	for range 1000 {
		if n.Send(Event{Type: "audit.event", Data: strings.Repeat("x", 100)}) {
			queued++
		}
	}
	// Generous: 1000 non-blocking Sends take well under a millisecond;
	// one blocked Send would take the one-minute timeout.
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("1000 Sends took %v", d)
	}
	if queued != 4 || n.Dropped() != 996 || n.QueueDepth() != 4 {
		t.Errorf("queued %d, dropped %d, depth %d; want 4, 996, 4", queued, n.Dropped(), n.QueueDepth())
	}

	// Close cannot drain a receiver that never answers: it gives up at its
	// deadline, abandoning the POST in flight and dropping the queue.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want deadline exceeded", err)
	}
	if c := counters(n); c != [4]int64{0, 1, 1000, 0} {
		t.Errorf("sent, failed, dropped, retried = %v", c)
	}
	if n.Send(Event{Type: "audit.event"}) || n.Dropped() != 1001 {
		t.Error("Send after Close was not dropped")
	}
}

func TestBatching(t *testing.T) {
	rc := newReceiver(t, nil)
	c := testConfig(t, rc.srv.URL)
	c.Batch = config.WebhookBatch{MaxEvents: 10, Linger: config.Duration(time.Minute)}
	n := newNotifier(t, c, fast)
	for i := range 25 {
		n.Send(Event{Type: "statement", ID: strconv.Itoa(i)})
	}
	rc.wait(t, 2) // two full batches go at once; the third lingers
	closeNotifier(t, n)
	reqs := rc.requests()
	var sizes []int
	next := 0
	for _, r := range reqs {
		if got := r.header.Get(HeaderEvent); got != "batch" {
			t.Errorf("%s = %q", HeaderEvent, got)
		}
		if err := Verify([]byte(testKey), r.header.Get(HeaderSignature), r.header.Get(HeaderTimestamp), r.body); err != nil {
			t.Error(err)
		}
		var env struct{ Events []Event }
		if err := json.Unmarshal(r.body, &env); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(env.Events))
		for _, e := range env.Events {
			if e.ID != strconv.Itoa(next) {
				t.Errorf("event %q, want %d (in order)", e.ID, next)
			}
			next++
		}
	}
	if len(sizes) != 3 || sizes[0] != 10 || sizes[1] != 10 || sizes[2] != 5 {
		t.Errorf("batch sizes %v, want [10 10 5] (Close flushes the lingering batch)", sizes)
	}
	if c := counters(n); c != [4]int64{25, 0, 0, 0} {
		t.Errorf("sent, failed, dropped, retried = %v", c)
	}
}

func TestBatchLinger(t *testing.T) {
	rc := newReceiver(t, nil)
	c := testConfig(t, rc.srv.URL)
	c.Batch = config.WebhookBatch{MaxEvents: 100, Linger: config.Duration(20 * time.Millisecond)}
	n := newNotifier(t, c, fast)
	for range 3 {
		n.Send(Event{Type: "statement"})
	}
	rc.wait(t, 1) // sent when linger ends, without Close
	var env struct{ Events []Event }
	if err := json.Unmarshal(rc.requests()[0].body, &env); err != nil || len(env.Events) != 3 {
		t.Errorf("first batch %d events (%v), want 3", len(env.Events), err)
	}
}

func TestSlackPayload(t *testing.T) {
	rc := newReceiver(t, nil)
	c := config.DefaultWebhook()
	c.URL = config.Secret(rc.srv.URL + "/services/T0/B0/XYZ")
	c.Format = config.WebhookFormatSlack
	n := newNotifier(t, c, fast)
	ev := Event{Type: "review.created", ID: "r_7", Time: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
		Summary: "<!channel> alice & bob: UPDATE orders held", Data: map[string]any{"not": "rendered"}}
	for i := range 12 {
		ev.Fields = append(ev.Fields, Field{"F" + strconv.Itoa(i), "v<" + strconv.Itoa(i) + ">"})
	}
	n.Send(ev)
	closeNotifier(t, n)
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	if reqs[0].header.Get(HeaderSignature) != "" {
		t.Error("signed without a secret")
	}
	var msg struct {
		Text   string
		Blocks []struct {
			Type     string
			Text     struct{ Type, Text string }
			Fields   []struct{ Type, Text string }
			Elements []struct{ Type, Text string }
		}
	}
	if err := json.Unmarshal(reqs[0].body, &msg); err != nil {
		t.Fatal(err)
	}
	const escaped = "&lt;!channel&gt; alice &amp; bob: UPDATE orders held"
	if msg.Text != escaped || len(msg.Blocks) != 4 {
		t.Fatalf("message = %s", reqs[0].body)
	}
	b := msg.Blocks
	if b[0].Type != "section" || b[0].Text.Type != "mrkdwn" || b[0].Text.Text != escaped {
		t.Errorf("summary block = %+v", b[0])
	}
	if len(b[1].Fields) != 10 || len(b[2].Fields) != 2 || b[1].Fields[0].Text != "*F0*\nv&lt;0&gt;" || b[2].Fields[1].Text != "*F11*\nv&lt;11&gt;" {
		t.Errorf("field blocks = %+v %+v", b[1], b[2])
	}
	if b[3].Type != "context" || b[3].Elements[0].Text != "`review.created` · r_7 · 2026-11-28T12:00:00Z" {
		t.Errorf("context block = %+v", b[3])
	}
	if bytes.Contains(reqs[0].body, []byte("rendered")) {
		t.Error("Data rendered into the Slack message")
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("abcdef", 4); got != "abc…" {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("ab&amp;cd", 5); got != "ab…" {
		t.Errorf("truncate cut an escape: %q", got)
	}
	if got := truncate("äöü", 3); got != "äöü" {
		t.Errorf("truncate counted bytes: %q", got)
	}
}

func TestCloseDrains(t *testing.T) {
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) { time.Sleep(time.Millisecond) })
	n := newNotifier(t, testConfig(t, rc.srv.URL), fast)
	for i := range 50 {
		if !n.Send(Event{Type: "review.created", ID: strconv.Itoa(i)}) {
			t.Fatal("Send refused")
		}
	}
	closeNotifier(t, n) // returns only when all 50 are delivered
	reqs := rc.requests()
	if len(reqs) != 50 {
		t.Fatalf("%d requests after Close, want 50", len(reqs))
	}
	for i, r := range reqs {
		var e Event
		if json.Unmarshal(r.body, &e); e.ID != strconv.Itoa(i) {
			t.Errorf("request %d is event %q (out of order)", i, e.ID)
		}
	}
	if c := counters(n); c != [4]int64{50, 0, 0, 0} {
		t.Errorf("sent, failed, dropped, retried = %v", c)
	}
}

func TestEventsFilter(t *testing.T) {
	rc := newReceiver(t, nil)
	c := testConfig(t, rc.srv.URL)
	c.Events = []string{"review.*", "grant.approved"}
	n := newNotifier(t, c, fast)
	for typ, want := range map[string]bool{"review.created": true, "grant.approved": true, "grant.denied": false, "statement": false} {
		if got := n.Send(Event{Type: typ}); got != want {
			t.Errorf("Send(%s) = %v, want %v", typ, got, want)
		}
	}
	closeNotifier(t, n)
	if c := counters(n); c != [4]int64{2, 0, 0, 0} {
		t.Errorf("sent, failed, dropped, retried = %v (filtered events are not drops)", c)
	}
}

// TestNoSecretsInLogsOrErrors: the URL (a Slack URL is the credential) and
// the key never reach a log line or an error.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) {})
	url := rc.srv.URL
	rc.srv.Close() // connection refused: client errors quote the URL
	t.Setenv("TEST_HOOK_URL", url+"/services/T0/B0/SECRETPATH?token=SECRETQUERY")
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := testConfig(t, "env:TEST_HOOK_URL")
	c.Name = ""
	c.MaxRetries = 1
	n := newNotifier(t, c, Options{Logger: log, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	n.Send(Event{Type: "review.created"})
	closeNotifier(t, n)
	if n.Failed() != 1 || !strings.Contains(logs.String(), "webhook delivery failed") {
		t.Fatalf("failed %d, logs:\n%s", n.Failed(), logs.String())
	}

	t.Setenv("TEST_HOOK_URL", "http://hooks.example.org/services/T0/B0/SECRETPATH")
	_, err := New(c, Options{})
	if err == nil {
		t.Fatal("New accepted plain http to a remote host")
	}
	for _, leak := range []string{"SECRETPATH", "SECRETQUERY", testKey} {
		if strings.Contains(logs.String(), leak) || strings.Contains(err.Error(), leak) {
			t.Errorf("%q leaked:\nlogs: %s\nerror: %v", leak, logs.String(), err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	c := testConfig(t, "https://hooks.example.org/x")
	c.Secret = "env:TEST_HOOK_KEY_UNSET"
	if _, err := New(c, Options{}); err == nil || !strings.Contains(err.Error(), "TEST_HOOK_KEY_UNSET is not set") {
		t.Errorf("New with unset secret = %v", err)
	}
	c.Secret = ""
	if _, err := New(c, Options{}); err == nil || !strings.Contains(err.Error(), "secret: required") {
		t.Errorf("New without secret = %v", err)
	}
}

func TestCollector(t *testing.T) {
	rc := newReceiver(t, nil)
	reg := prometheus.NewRegistry()
	for _, name := range []string{"reviews", "sink"} {
		c := testConfig(t, rc.srv.URL)
		c.Name = name
		n := newNotifier(t, c, fast)
		reg.MustRegister(n.Collector())
		if name == "sink" {
			n.Send(Event{Type: "statement"})
			closeNotifier(t, n)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "gatehouse_webhook_events_sent_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == "sink" && m.GetCounter().GetValue() == 1 {
				found = true
			}
		}
		if len(mf.GetMetric()) != 2 {
			t.Errorf("%d series, want one per webhook", len(mf.GetMetric()))
		}
	}
	if !found {
		t.Error("no gatehouse_webhook_events_sent_total{webhook=\"sink\"} 1")
	}
}

// BenchmarkSend measures what Send costs the data path, with the worker
// stuck in a POST to a receiver that never answers: "queued" takes each
// event back off the queue (the enqueue path), "full" is the drop path a
// stalled receiver puts every caller on.
func BenchmarkSend(b *testing.B) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	b.Setenv("TEST_HOOK_KEY", testKey)
	c := config.DefaultWebhook()
	c.URL, c.Secret, c.QueueSize, c.MaxRetries = config.Secret(srv.URL), "env:TEST_HOOK_KEY", 1, 0
	n, err := New(c, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_ = n.Close(ctx)
	}()
	e := Event{Type: "statement", ID: "s_1", Time: time.Now(), Data: map[string]string{"statement": "SELECT 1"}}
	n.Send(e)
	for len(n.queue) > 0 { // wait until the worker holds it in the hanging POST
		time.Sleep(time.Millisecond)
	}
	b.Run("queued", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n.Send(e)
			<-n.queue
		}
	})
	b.Run("full", func(b *testing.B) {
		n.Send(e)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n.Send(e)
			}
		})
	})
}

func BenchmarkSign(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		Sign([]byte(testKey), "1795000000", body)
	}
}
