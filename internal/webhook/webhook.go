// Package webhook delivers gatehouse events to HTTP receivers: review and
// grant notifications (JSON or a Slack message) and batched audit sinks.
//
// A Notifier never slows its caller down: Send only puts the event in a
// bounded queue, and when the queue is full the event is dropped and
// counted. A worker goroutine POSTs queued events, signed with HMAC-SHA256,
// and retries network errors, 5xx and 429 with exponential backoff and
// jitter, keeping the delivery id so receivers can dedupe. Whoever needs
// every event keeps its own durable copy (the audit store is the source of
// truth; a webhook is a notification).
//
// The URL is treated as a secret (Slack's and most chat webhooks' URLs are
// credentials): it never appears in logs, errors or metrics.
//
// See docs/webhooks.md for the configuration keys, headers, signature scheme
// and retry policy.
package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/config"
)

// Config is one webhook's configuration; the schema lives in package config
// (key `url`, `secret`, `format`, `events`, `timeout`, `max_retries`,
// `queue_size`, `batch`). Start from config.DefaultWebhook().
type Config = config.Webhook

// Event is what callers send. It is delivered as JSON
// {"type","id","time","summary","fields","data"}; the Slack format renders
// Summary and Fields instead. Data must marshal with encoding/json and must
// hold no token, password or unmasked value.
type Event struct {
	Type    string    `json:"type"`              // e.g. "review.created"; matched against the events globs
	ID      string    `json:"id"`                // the event's own id; "" = a random one is assigned by Send
	Time    time.Time `json:"time"`              // zero = the time of Send
	Summary string    `json:"summary,omitempty"` // one human sentence: what happened, what to do
	Fields  []Field   `json:"fields,omitempty"`  // short labelled values, e.g. {"Approve", "gatehouse reviews approve r_1"}
	Data    any       `json:"data,omitempty"`    // the machine-readable event
}

// Field is one labelled value of an Event.
type Field struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// batchType is the X-Gatehouse-Event of a batched delivery.
const batchType = "batch"

// Options are the knobs that are not configuration: collaborators and the
// backoff bounds (tests shorten them).
type Options struct {
	Client     *http.Client  // nil = a new client; redirects are never followed
	Logger     *slog.Logger  // nil = slog.Default()
	MinBackoff time.Duration // delay before the first retry, doubled per retry; 0 = 1s
	MaxBackoff time.Duration // cap of the doubled delay; 0 = 1m
}

// maxRetryAfter caps how long a receiver's Retry-After may hold the worker;
// a longer request is shortened to it rather than obeyed.
const maxRetryAfter = 5 * time.Minute

// maxResponse bounds how much of a response body is read (and discarded) so
// the connection can be reused without a hostile receiver streaming forever.
const maxResponse = 64 << 10

// Notifier delivers events to one webhook. Its methods are safe for
// concurrent use.
type Notifier struct {
	name    string // for logs and metrics; never the URL
	url     string
	secret  []byte
	format  string
	events  []string
	timeout time.Duration
	retries int
	batch   int
	linger  time.Duration
	client  *http.Client
	log     *slog.Logger
	minBack time.Duration
	maxBack time.Duration

	mu     sync.RWMutex // Send holds it shared; Close exclusively, to close queue once
	closed bool
	queue  chan Event

	// abort is cancelled when Close gives up waiting: in-flight requests
	// and backoff sleeps stop, and the rest of the queue is dropped.
	abort     context.Context
	abortFunc context.CancelFunc
	done      chan struct{}

	sent, failed, dropped, retried atomic.Int64
}

// New validates cfg, resolves its url and secret references and starts the
// delivery worker. Errors name the key and never contain a secret or the
// URL.
func New(cfg Config, opts Options) (*Notifier, error) {
	prefix := "webhook"
	if cfg.Name != "" {
		prefix += " " + cfg.Name
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	rawURL, err := cfg.URL.Resolve()
	if err != nil {
		return nil, fmt.Errorf("%s: url: %w", prefix, err)
	}
	if msg := config.WebhookURLProblem(rawURL); msg != "" {
		return nil, fmt.Errorf("%s: url: %s", prefix, msg)
	}
	n := &Notifier{
		name:    cfg.Name,
		url:     rawURL,
		format:  cfg.Format,
		events:  slices.Clone(cfg.Events),
		timeout: time.Duration(cfg.Timeout),
		retries: cfg.MaxRetries,
		batch:   cfg.Batch.MaxEvents,
		linger:  time.Duration(cfg.Batch.Linger),
		log:     opts.Logger,
		minBack: opts.MinBackoff,
		maxBack: opts.MaxBackoff,
		queue:   make(chan Event, cfg.QueueSize),
		done:    make(chan struct{}),
	}
	if n.name == "" {
		u, _ := url.Parse(rawURL) // checked by WebhookURLProblem
		n.name = u.Host
	}
	if cfg.Secret != "" {
		s, err := cfg.Secret.Resolve()
		if err != nil {
			return nil, fmt.Errorf("%s: secret: %w", prefix, err)
		}
		n.secret = []byte(s)
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.log = n.log.With("webhook", n.name)
	if n.minBack <= 0 {
		n.minBack = time.Second
	}
	if n.maxBack <= 0 {
		n.maxBack = time.Minute
	}
	client := &http.Client{}
	if opts.Client != nil {
		c := *opts.Client
		client = &c
	}
	// A redirect would resend the signed body to wherever the receiver
	// points, and turn a POST into a GET; treat it as a failure instead.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	n.client = client
	n.abort, n.abortFunc = context.WithCancel(context.Background())
	go n.run()
	return n, nil
}

// Name is the webhook's name in logs and metrics.
func (n *Notifier) Name() string { return n.name }

// Wants reports whether the events filter selects eventType.
func (n *Notifier) Wants(eventType string) bool {
	if len(n.events) == 0 {
		return true
	}
	for _, g := range n.events {
		if ok, _ := path.Match(g, eventType); ok {
			return true
		}
	}
	return false
}

// Send queues e for delivery and returns at once. It reports whether e was
// queued: false when the filter does not select it, or when the queue is
// full or the Notifier closed (then e is counted as dropped).
func (n *Notifier) Send(e Event) bool {
	if !n.Wants(e.Type) {
		return false
	}
	if e.ID == "" {
		e.ID = rand.Text()
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if !n.closed {
		select {
		case n.queue <- e:
			return true
		default:
		}
	}
	n.dropped.Add(1)
	return false
}

// Close stops accepting events and delivers what is queued, retries
// included. If ctx ends first, the delivery in flight is abandoned (counted
// failed), the rest of the queue is dropped, and ctx's error is returned.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.queue)
	}
	n.mu.Unlock()
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		n.abortFunc()
		<-n.done // quick now: the POST is cancelled and the rest dropped
		return ctx.Err()
	}
}

// Counters, in events (a batch of 10 delivered counts 10 sent). Retried
// counts retry attempts, whatever their size.
func (n *Notifier) Sent() int64    { return n.sent.Load() }    // delivered (2xx)
func (n *Notifier) Failed() int64  { return n.failed.Load() }  // given up on after trying
func (n *Notifier) Dropped() int64 { return n.dropped.Load() } // never tried: queue full, or closed
func (n *Notifier) Retried() int64 { return n.retried.Load() } // retry attempts
func (n *Notifier) QueueDepth() int {
	return len(n.queue) // events waiting
}

// run is the worker: it takes events off the queue, gathers batches, and
// delivers one batch at a time so a receiver sees events in order.
func (n *Notifier) run() {
	defer close(n.done)
	defer n.abortFunc() // releases the context's resources
	for e := range n.queue {
		batch := []Event{e}
		if n.batch > 1 {
			batch = n.gather(batch)
		}
		if n.abort.Err() != nil {
			n.dropped.Add(int64(len(batch)))
			continue
		}
		n.deliver(batch)
	}
}

// gather adds queued events to batch until it is full or linger has passed
// since the first; a closed queue sends what there is at once.
func (n *Notifier) gather(batch []Event) []Event {
	timer := time.NewTimer(n.linger)
	defer timer.Stop()
	for len(batch) < n.batch {
		select {
		case e, ok := <-n.queue:
			if !ok {
				return batch
			}
			batch = append(batch, e)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// deliver POSTs one batch until it succeeds, fails for good, or retries
// run out. The delivery id stays the same across attempts; the timestamp
// and signature are renewed per attempt so they stay fresh.
func (n *Notifier) deliver(batch []Event) {
	body, eventType, err := n.encode(batch)
	if err != nil {
		// The caller's Data does not marshal: a bug, not a receiver problem.
		n.failed.Add(int64(len(batch)))
		n.log.Error("webhook event cannot be encoded", "event", batch[0].Type, "error", err)
		return
	}
	delivery := rand.Text()
	for attempt := 0; ; attempt++ {
		retryAfter, retry, err := n.post(body, eventType, delivery)
		if err == nil {
			n.sent.Add(int64(len(batch)))
			return
		}
		if !retry || attempt >= n.retries || n.abort.Err() != nil {
			n.failed.Add(int64(len(batch)))
			n.log.Warn("webhook delivery failed", "event", eventType, "delivery", delivery,
				"events", len(batch), "attempts", attempt+1, "error", err)
			return
		}
		wait := max(n.backoff(attempt), retryAfter)
		n.log.Debug("webhook delivery will be retried", "event", eventType, "delivery", delivery,
			"attempt", attempt+1, "wait", wait, "error", err)
		n.retried.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-n.abort.Done():
			t.Stop()
			n.failed.Add(int64(len(batch)))
			return
		}
	}
}

// backoff is the delay before retry number attempt+1: MinBackoff doubled
// per attempt up to MaxBackoff, of which a random half is taken off
// ("equal jitter") so that many gateways retrying a receiver that came
// back do not all arrive in the same instant.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.maxBack
	if attempt < 32 {
		d = min(n.minBack<<attempt, n.maxBack)
	}
	half := d / 2
	return half + mrand.N(half+1)
}

func (n *Notifier) encode(batch []Event) (body []byte, eventType string, err error) {
	switch {
	case n.format == config.WebhookFormatSlack:
		body, err = slackPayload(&batch[0])
		return body, batch[0].Type, err
	case n.batch > 1:
		// Always the envelope when batching is configured, even for one
		// event, so receivers parse one shape.
		body, err = json.Marshal(struct {
			Events []Event `json:"events"`
		}{batch})
		return body, batchType, err
	}
	body, err = json.Marshal(&batch[0])
	return body, batch[0].Type, err
}

// post makes one attempt. retry says whether a later attempt may succeed;
// retryAfter is the receiver's Retry-After, if any.
func (n *Notifier) post(body []byte, eventType, delivery string) (retryAfter time.Duration, retry bool, err error) {
	ctx, cancel := context.WithTimeout(n.abort, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return 0, false, errors.New("cannot build request") // the error would quote the URL
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gatehouse-webhook")
	req.Header.Set(HeaderEvent, eventType)
	req.Header.Set(HeaderDelivery, delivery)
	req.Header.Set(HeaderTimestamp, ts)
	if n.secret != nil {
		req.Header.Set(HeaderSignature, Sign(n.secret, ts, body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, true, redact(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return 0, false, nil
	case code == http.StatusTooManyRequests || code >= 500:
		return parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), true, fmt.Errorf("receiver answered %s", resp.Status)
	default:
		// Other 4xx (and 3xx, since redirects are not followed) will
		// not change by sending the same request again.
		return 0, false, fmt.Errorf("receiver answered %s", resp.Status)
	}
}

// parseRetryAfter reads a Retry-After header (RFC 9110 §10.2.3): delay
// seconds or an HTTP date. It returns 0 when absent or unreadable, and at
// most maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

// redact drops the URL from a client error: net/http quotes the whole URL
// ("Post \"https://hooks.slack.com/services/T/B/SECRET\": ..."), and the URL
// may be the credential. What remains (dial errors name host:port, or a
// timeout) says what went wrong without it.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s request: %w", ue.Op, ue.Err)
	}
	return err
}
