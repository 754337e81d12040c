package webhook

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Slack Block Kit limits (https://api.slack.com/reference/block-kit/blocks):
// a section's text is at most 3000 characters, a field's 2000, a section
// holds at most 10 fields and a message at most 50 blocks.
const (
	slackTextMax       = 3000
	slackFieldMax      = 2000
	slackFieldsPerSect = 10
	slackMaxFieldSects = 40 // leaves room for the summary and context blocks
)

type slackMessage struct {
	Text   string       `json:"text"` // notification and fallback text
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// slackPayload renders e as a Slack incoming-webhook message: the summary,
// then the fields (title in bold above the value), then a context line with
// the event type, id and time. Data is not rendered: it is for machines,
// and may be large.
func slackPayload(e *Event) ([]byte, error) {
	summary := e.Summary
	if summary == "" {
		summary = "gatehouse event " + e.Type
	}
	msg := slackMessage{
		Text:   truncate(slackEscape(summary), slackTextMax),
		Blocks: []slackBlock{{Type: "section", Text: &slackText{Type: "mrkdwn", Text: truncate(slackEscape(summary), slackTextMax)}}},
	}
	fields := e.Fields
	if len(fields) > slackFieldsPerSect*slackMaxFieldSects {
		fields = fields[:slackFieldsPerSect*slackMaxFieldSects]
	}
	for len(fields) > 0 {
		n := min(len(fields), slackFieldsPerSect)
		sect := make([]slackText, n)
		for i, f := range fields[:n] {
			sect[i] = slackText{Type: "mrkdwn", Text: truncate("*"+slackEscape(f.Title)+"*\n"+slackEscape(f.Value), slackFieldMax)}
		}
		msg.Blocks = append(msg.Blocks, slackBlock{Type: "section", Fields: sect})
		fields = fields[n:]
	}
	ctx := "`" + slackEscape(e.Type) + "` · " + slackEscape(e.ID) + " · " + e.Time.UTC().Format(time.RFC3339)
	msg.Blocks = append(msg.Blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: truncate(ctx, slackFieldMax)}}})
	return json.Marshal(msg)
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to
// (https://api.slack.com/reference/surfaces/formatting#escaping), so a
// statement or a reason cannot inject a link or a mention such as
// <!channel>.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// truncate cuts s to at most max characters, marking the cut with "…".
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max-1 {
			// Do not leave half an escape like "&am" at the end.
			if j := strings.LastIndexByte(s[:i], '&'); j >= 0 && !strings.Contains(s[j:i], ";") {
				i = j
			}
			return s[:i] + "…"
		}
		n++
	}
	return s
}
