package config

import (
	"fmt"
	"net/url"
	"path"
	"time"

	"gopkg.in/yaml.v3"
)

// The webhook schema lives here rather than in package webhook so that the
// sections using it (approval notifications, audit sinks) can hold
// []Webhook without an import cycle: package webhook imports config for
// Secret and Duration, and uses this type as webhook.Config.

// Webhook defaults; docs/webhooks.md repeats them.
const (
	WebhookFormatJSON  = "json"
	WebhookFormatSlack = "slack"

	DefaultWebhookTimeout    = Duration(10 * time.Second)
	DefaultWebhookMaxRetries = 5
	DefaultWebhookQueueSize  = 1024
	DefaultWebhookLinger     = Duration(time.Second)

	// Limits: large enough for any sane receiver, small enough that a typo
	// cannot hold a worker for hours or buffer gigabytes.
	MaxWebhookTimeout    = Duration(5 * time.Minute)
	MaxWebhookRetries    = 100
	MaxWebhookQueueSize  = 1 << 20
	MaxWebhookBatch      = 10_000
	MaxWebhookLinger     = Duration(time.Minute)
	maxWebhookNameLength = 64
)

var webhookFormats = []string{WebhookFormatJSON, WebhookFormatSlack}

// Webhook is one outbound webhook, delivered by package webhook: review and
// grant notifications, or an audit sink. Start from DefaultWebhook(): zero
// values are not replaced by defaults (max_retries: 0 means no retries).
type Webhook struct {
	Name       string       `json:"name"`        // label in logs and metrics; "" = the URL's host
	URL        Secret       `json:"url"`         // http(s) URL, literal or an env:/file: reference (Slack URLs are secrets)
	Secret     Secret       `json:"secret"`      // HMAC-SHA256 key, env:/file: reference; required for format json
	Format     string       `json:"format"`      // json | slack
	Events     []string     `json:"events"`      // event type globs ("review.*"); empty = every event
	Timeout    Duration     `json:"timeout"`     // per attempt, including reading the response status
	MaxRetries int          `json:"max_retries"` // attempts after the first; 0 = none
	QueueSize  int          `json:"queue_size"`  // events buffered; when full, new events are dropped and counted
	Batch      WebhookBatch `json:"batch"`       // audit sinks: several events per POST
}

// WebhookBatch groups events into one POST (format json only).
type WebhookBatch struct {
	MaxEvents int      `json:"max_events"` // events per POST; 1 = one event per POST, no envelope
	Linger    Duration `json:"linger"`     // how long a partial batch waits for more events
}

// DefaultWebhook returns a webhook with every default filled in and no URL.
func DefaultWebhook() Webhook {
	return Webhook{
		Format:     WebhookFormatJSON,
		Events:     []string{},
		Timeout:    DefaultWebhookTimeout,
		MaxRetries: DefaultWebhookMaxRetries,
		QueueSize:  DefaultWebhookQueueSize,
		Batch:      WebhookBatch{MaxEvents: 1, Linger: DefaultWebhookLinger},
	}
}

// Batched reports whether events are sent in batches (an envelope holding
// a list) rather than one per POST.
func (w *Webhook) Batched() bool { return w.Batch.MaxEvents > 1 }

// webhooks decodes a list of webhook mappings (for a key such as
// `approvals.webhooks` or `audit.webhooks`).
func (d *decoder) webhooks(dst *[]Webhook) fieldFunc {
	return func(n *yaml.Node, key string) {
		*dst = []Webhook{}
		d.seq(n, key, func(item *yaml.Node, key string) {
			w := DefaultWebhook()
			d.webhook(item, key, &w)
			*dst = append(*dst, w)
		})
	}
}

func (d *decoder) webhook(n *yaml.Node, key string, w *Webhook) {
	d.mapping(n, key, d.webhookFields(w))
}

// webhookFields are the keys of a webhook mapping (also written inline in
// an audit sink).
func (d *decoder) webhookFields(w *Webhook) map[string]fieldFunc {
	return map[string]fieldFunc{
		"name":        d.str(&w.Name),
		"url":         d.secret(&w.URL),
		"secret":      d.secret(&w.Secret),
		"format":      d.str(&w.Format),
		"events":      d.strings(&w.Events),
		"timeout":     d.duration(&w.Timeout),
		"max_retries": d.integer(&w.MaxRetries),
		"queue_size":  d.integer(&w.QueueSize),
		"batch": func(v *yaml.Node, key string) {
			d.mapping(v, key, map[string]fieldFunc{
				"max_events": d.integer(&w.Batch.MaxEvents),
				"linger":     d.duration(&w.Batch.Linger),
			})
		},
	}
}

// Validate checks one webhook on its own (package webhook runs it in New);
// problems carry key paths relative to the webhook ("url", "batch.linger").
func (w *Webhook) Validate() error {
	ck := &checker{}
	checkWebhook(ck, "", w)
	return joinProblems("", ck.probs)
}

// checkWebhooks checks a list of webhooks under key, including that their
// names (which label metrics) are distinct.
func checkWebhooks(ck *checker, key string, ws []Webhook) {
	names := map[string]string{}
	for i := range ws {
		k := fmt.Sprintf("%s[%d]", key, i)
		checkWebhook(ck, k, &ws[i])
		if n := ws[i].Name; n != "" {
			if prev := names[n]; prev != "" {
				ck.add(child(k, "name"), "duplicate webhook name %q (also %s)", n, prev)
			}
			names[n] = k
		}
	}
}

func checkWebhook(ck *checker, key string, w *Webhook) {
	if w.Name != "" && !printableToken(w.Name, maxWebhookNameLength) {
		ck.add(child(key, "name"), "must be 1-%d printable characters without spaces (got %q)", maxWebhookNameLength, w.Name)
	}
	switch w.URL.Kind() {
	case "":
		ck.add(child(key, "url"), "required")
	case "env", "file":
		if err := w.URL.checkRef(); err != nil {
			ck.add(child(key, "url"), "%v", err)
		}
	default:
		if msg := WebhookURLProblem(string(w.URL)); msg != "" {
			ck.add(child(key, "url"), "%s", msg)
		} else if u, _ := url.Parse(string(w.URL)); u.User != nil {
			ck.add(child(key, "url"), "literal URL contains user info; put the URL in an env: or file: reference")
		}
	}
	ck.oneOf(child(key, "format"), w.Format, webhookFormats)
	if w.Secret == "" {
		if w.Format != WebhookFormatSlack {
			// Receivers must be able to tell gatehouse's events from
			// anyone else's POSTs; Slack authenticates by its URL instead.
			ck.add(child(key, "secret"), "required for format %q (an env: or file: reference to the HMAC key)", w.Format)
		}
	} else {
		checkRefOnly(ck, child(key, "secret"), w.Secret)
	}
	for i, e := range w.Events {
		k := fmt.Sprintf("%s[%d]", child(key, "events"), i)
		if _, err := path.Match(e, ""); err != nil || !printableToken(e, 256) {
			ck.add(k, "must be an event type or a glob such as review.* (got %q)", e)
		}
	}
	if w.Timeout <= 0 || w.Timeout > MaxWebhookTimeout {
		ck.add(child(key, "timeout"), "must be more than 0 and at most %s (got %s)", MaxWebhookTimeout, w.Timeout)
	}
	if w.MaxRetries < 0 || w.MaxRetries > MaxWebhookRetries {
		ck.add(child(key, "max_retries"), "must be between 0 and %d (got %d)", MaxWebhookRetries, w.MaxRetries)
	}
	if w.QueueSize < 1 || w.QueueSize > MaxWebhookQueueSize {
		ck.add(child(key, "queue_size"), "must be between 1 and %d (got %d)", MaxWebhookQueueSize, w.QueueSize)
	}
	if w.Batch.MaxEvents < 1 || w.Batch.MaxEvents > MaxWebhookBatch {
		ck.add(child(key, "batch.max_events"), "must be between 1 and %d (got %d)", MaxWebhookBatch, w.Batch.MaxEvents)
	} else if w.Batched() && w.Format == WebhookFormatSlack {
		ck.add(child(key, "batch.max_events"), "must be 1 for format slack (a Slack message is one event)")
	}
	if w.Batch.Linger < 0 || w.Batch.Linger > MaxWebhookLinger {
		ck.add(child(key, "batch.linger"), "must be between 0s and %s (got %s)", MaxWebhookLinger, w.Batch.Linger)
	}
}

// WebhookURLProblem returns what is wrong with a webhook URL, or "". The
// message never repeats the URL: a Slack or chat webhook URL is itself the
// credential. Plain http is allowed only to loopback addresses, since
// events (masked statements, principals, approve links) would otherwise
// cross the network readable by anyone on the path.
func WebhookURLProblem(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return "must be an absolute https:// URL"
	case u.Fragment != "":
		return "must not contain a fragment"
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return "must use https (http is allowed only for localhost and loopback addresses)"
	}
	return ""
}

// resolveWebhooks resolves the url and secret of each webhook under key for
// ResolveSecrets, and checks a referenced URL once its value is known.
func resolveWebhooks(ck *checker, key string, ws []Webhook) {
	for i := range ws {
		resolveWebhook(ck, fmt.Sprintf("%s[%d]", key, i), &ws[i])
	}
}

// resolveWebhook checks that w's references resolve (key names w).
func resolveWebhook(ck *checker, k string, w *Webhook) {
	if w.URL.IsRef() {
		if u, err := w.URL.Resolve(); err != nil {
			ck.add(child(k, "url"), "%v", err)
		} else if msg := WebhookURLProblem(u); msg != "" {
			ck.add(child(k, "url"), "the referenced URL %s", msg)
		}
	}
	if w.Secret != "" {
		if _, err := w.Secret.Resolve(); err != nil {
			ck.add(child(k, "secret"), "%v", err)
		}
	}
}
