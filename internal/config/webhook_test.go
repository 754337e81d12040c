package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// decodeWebhooks decodes a `webhooks:` list the way a section of the file
// would, and runs the list checks.
func decodeWebhooks(t *testing.T, src string) ([]Webhook, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	d := newDecoder("hooks.yaml", "/etc/gatehouse")
	var ws []Webhook
	d.mapping(doc.Content[0], "", map[string]fieldFunc{"webhooks": d.webhooks(&ws)})
	ck := &checker{lines: d.lines}
	checkWebhooks(ck, "webhooks", ws)
	return ws, joinProblems("hooks.yaml", append(d.probs, ck.probs...))
}

func TestWebhookDecode(t *testing.T) {
	ws, err := decodeWebhooks(t, `
webhooks:
  - name: reviews
    url: https://hooks.example.org/gatehouse
    secret: file:hook.key
    events: ["review.*", grant.approved]
    timeout: 3s
    max_retries: 0
  - url: env:SLACK_URL
    format: slack
  - name: sink
    url: http://127.0.0.1:9000/audit
    secret: env:SINK_KEY
    queue_size: 10000
    batch: {max_events: 100, linger: 250ms}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 {
		t.Fatalf("got %d webhooks", len(ws))
	}
	r := ws[0]
	if r.Secret != "file:/etc/gatehouse/hook.key" || r.Timeout != Duration(3*time.Second) || r.MaxRetries != 0 ||
		r.Format != "json" || len(r.Events) != 2 || r.Batched() || r.QueueSize != DefaultWebhookQueueSize {
		t.Errorf("reviews = %+v", r)
	}
	if s := ws[1]; s.Format != "slack" || s.Secret != "" || s.MaxRetries != DefaultWebhookMaxRetries || s.Timeout != DefaultWebhookTimeout {
		t.Errorf("slack = %+v", s)
	}
	if s := ws[2]; !s.Batched() || s.Batch.MaxEvents != 100 || s.Batch.Linger != Duration(250*time.Millisecond) || s.QueueSize != 10000 {
		t.Errorf("sink = %+v", s)
	}
	// The JSON form reads like the file: durations as text, and a literal
	// URL is redacted like every literal Secret.
	b, _ := json.Marshal(ws[0])
	if !strings.Contains(string(b), `"timeout":"3s"`) || !strings.Contains(string(b), `"url":"[redacted]"`) {
		t.Errorf("json = %s", b)
	}
}

func TestWebhookProblems(t *testing.T) {
	_, err := decodeWebhooks(t, `
webhooks:
  - name: a
    url: http://hooks.example.org/x
    format: teams
    events: ["review.[", ""]
    timeout: 30
    max_retries: -1
    queue_size: 0
    batch: {max_events: 0, linger: -1s}
    retries: 3
  - name: a
    url: https://user:pw@hooks.example.org/T0/B0/SECRETPATH
    secret: literal-key
  - url: env:SLACK_URL
    format: slack
    batch: {max_events: 10}
  - url: env:BAD-NAME
`)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"hooks.yaml:4: webhooks[0].url: must use https",
		"webhooks[0].format: must be one of json, slack",
		"webhooks[0].secret: required for format \"teams\"",
		"webhooks[0].events[0]: must be an event type or a glob",
		"webhooks[0].events[1]: must be an event type or a glob",
		"webhooks[0].timeout: must be a duration",
		"webhooks[0].max_retries: must be between 0 and 100",
		"webhooks[0].queue_size: must be between 1",
		"webhooks[0].batch.max_events: must be between 1",
		"webhooks[0].batch.linger: must be between 0s and 1m0s",
		"webhooks[0].retries: unknown key",
		"webhooks[1].name: duplicate webhook name \"a\"",
		"webhooks[1].url: literal URL contains user info",
		"webhooks[1].secret: must be an env:NAME or file:/path reference",
		"webhooks[2].batch.max_events: must be 1 for format slack",
		"webhooks[3].url: env: reference needs a variable name",
		"webhooks[3].secret: required",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	// A URL may be the credential (Slack's are); errors never repeat it.
	for _, leak := range []string{"SECRETPATH", "pw@", "literal-key"} {
		if strings.Contains(msg, leak) {
			t.Errorf("error leaks %q:\n%s", leak, msg)
		}
	}
}

func TestWebhookValidateDefault(t *testing.T) {
	w := DefaultWebhook()
	if err := w.Validate(); err == nil || !strings.Contains(err.Error(), "url: required") {
		t.Errorf("Validate without url = %v", err)
	}
	w.URL, w.Secret = "https://hooks.example.org/x", "env:HOOK_KEY"
	if err := w.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

func TestResolveWebhooks(t *testing.T) {
	t.Setenv("HOOK_URL", "http://hooks.example.org/T0/B0/SECRETPATH")
	t.Setenv("HOOK_KEY", "k")
	ck := &checker{}
	resolveWebhooks(ck, "webhooks", []Webhook{
		{URL: "env:HOOK_URL", Secret: "env:HOOK_KEY"},
		{URL: "https://hooks.example.org/ok", Secret: "env:HOOK_MISSING"},
	})
	msg := joinProblems("", ck.probs).Error()
	for _, want := range []string{"webhooks[0].url: the referenced URL must use https", "webhooks[1].secret: env var HOOK_MISSING is not set"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "SECRETPATH") {
		t.Errorf("error leaks the URL:\n%s", msg)
	}
}
