package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Audit sink types.
const (
	AuditSinkFile    = "file"
	AuditSinkStdout  = "stdout"
	AuditSinkWebhook = "webhook"
)

var auditSinkTypes = []string{AuditSinkFile, AuditSinkStdout, AuditSinkWebhook}

// Audit sink defaults; docs/configuration.md repeats them.
const (
	DefaultAuditSinkQueue    = 256       // batches a file or stdout sink buffers
	DefaultAuditSinkMaxSize  = 100 << 20 // bytes before a file sink rotates
	DefaultAuditSinkMaxFiles = 10
	DefaultAuditSinkBatch    = 100 // events per webhook POST
	MaxAuditSinkMaxFiles     = 1000
	MaxAuditSinks            = 16
	// MaxAuditRetention bounds audit.retention at about 100 years, far
	// below where a day count would overflow a time.Duration.
	MaxAuditRetention = Duration(100 * 365 * 24 * time.Hour)
	// MinAuditRetention keeps a typo ("90s" for "90d") from pruning the
	// whole audit trail.
	MinAuditRetention = Duration(time.Hour)
)

// AuditSink is one place besides the store that audit events are copied to
// after the store has accepted them (package auditsink).
type AuditSink struct {
	Type      string   `json:"type"`                // file | stdout | webhook
	Path      string   `json:"path,omitempty"`      // file: the current file; rotated ones are path.1 … path.N
	MaxSize   ByteSize `json:"max_size,omitempty"`  // file: rotate at this size
	MaxFiles  int      `json:"max_files,omitempty"` // file: rotated files kept
	QueueSize int      `json:"queue_size"`          // file, stdout: batches buffered; webhook: events buffered
	// Webhook holds the delivery settings of a webhook sink (the keys of
	// approvals.webhooks, written inline in the sink); nil for other types.
	*Webhook

	strayKeys []string // webhook keys given to a file or stdout sink
}

// auditSinks decodes audit.sinks.
func (d *decoder) auditSinks(dst *[]AuditSink) fieldFunc {
	return func(n *yaml.Node, key string) {
		*dst = []AuditSink{}
		d.seq(n, key, func(item *yaml.Node, key string) {
			var s AuditSink
			w := DefaultWebhook()
			w.Batch.MaxEvents = DefaultAuditSinkBatch
			fields := map[string]fieldFunc{
				"type":       d.str(&s.Type),
				"path":       d.str(&s.Path),
				"max_size":   d.size(&s.MaxSize),
				"max_files":  d.integer(&s.MaxFiles),
				"queue_size": d.integer(&s.QueueSize),
			}
			for k, f := range d.webhookFields(&w) {
				if _, ok := fields[k]; ok {
					continue
				}
				fields[k] = func(v *yaml.Node, path string) {
					s.strayKeys = append(s.strayKeys, k)
					f(v, path)
				}
			}
			d.mapping(item, key, fields)
			switch s.Type {
			case AuditSinkWebhook:
				if s.QueueSize == 0 {
					s.QueueSize = DefaultWebhookQueueSize
				}
				w.QueueSize = s.QueueSize
				s.Webhook, s.strayKeys = &w, nil
			case AuditSinkFile:
				if s.MaxSize == 0 {
					s.MaxSize = DefaultAuditSinkMaxSize
				}
				if s.MaxFiles == 0 {
					s.MaxFiles = DefaultAuditSinkMaxFiles
				}
				fallthrough
			default:
				if s.QueueSize == 0 {
					s.QueueSize = DefaultAuditSinkQueue
				}
			}
			*dst = append(*dst, s)
		})
	}
}

// checkAuditSinks validates audit.sinks.
func checkAuditSinks(ck *checker, key string, sinks []AuditSink) {
	if len(sinks) > MaxAuditSinks {
		ck.add(key, "at most %d sinks (got %d)", MaxAuditSinks, len(sinks))
	}
	paths := map[string]string{}
	names := map[string]string{}
	for i := range sinks {
		s := &sinks[i]
		k := fmt.Sprintf("%s[%d]", key, i)
		if s.Type == "" {
			ck.add(child(k, "type"), "required: one of %s", strings.Join(auditSinkTypes, ", "))
			continue
		}
		ck.oneOf(child(k, "type"), s.Type, auditSinkTypes)
		for _, sk := range s.strayKeys {
			ck.add(child(k, sk), "only for type webhook (this sink is type %q)", s.Type)
		}
		if s.Type != AuditSinkFile {
			if s.Path != "" {
				ck.add(child(k, "path"), "only for type file (this sink is type %q)", s.Type)
			}
			if s.MaxSize != 0 {
				ck.add(child(k, "max_size"), "only for type file (this sink is type %q)", s.Type)
			}
			if s.MaxFiles != 0 {
				ck.add(child(k, "max_files"), "only for type file (this sink is type %q)", s.Type)
			}
		}
		switch s.Type {
		case AuditSinkFile:
			if s.Path == "" {
				ck.add(child(k, "path"), "required for a file sink")
			} else if prev := paths[s.Path]; prev != "" {
				ck.add(child(k, "path"), "the same file as %s: two writers would interleave and rotate each other's lines", prev)
			} else {
				paths[s.Path] = k
			}
			if s.MaxSize < 4<<10 {
				ck.add(child(k, "max_size"), "must be at least 4KiB (got %s)", s.MaxSize)
			}
			if s.MaxFiles < 1 || s.MaxFiles > MaxAuditSinkMaxFiles {
				ck.add(child(k, "max_files"), "must be between 1 and %d (got %d)", MaxAuditSinkMaxFiles, s.MaxFiles)
			}
			fallthrough
		case AuditSinkStdout:
			if s.QueueSize < 1 || s.QueueSize > MaxWebhookQueueSize {
				ck.add(child(k, "queue_size"), "must be between 1 and %d (got %d)", MaxWebhookQueueSize, s.QueueSize)
			}
		case AuditSinkWebhook:
			if s.Webhook == nil {
				continue
			}
			checkWebhook(ck, k, s.Webhook)
			if s.Format == WebhookFormatSlack {
				ck.add(child(k, "format"), "must be json for an audit sink (a receiver needs the signed event, not a chat message)")
			}
			if n := s.Name; n != "" {
				if prev := names[n]; prev != "" {
					ck.add(child(k, "name"), "duplicate webhook name %q (also %s)", n, prev)
				}
				names[n] = k
			}
		}
	}
}

// days decodes a duration that may also be given in days ("90d"), as
// retention periods are; "0" or an empty value means none.
func (d *decoder) days(dst *Duration) fieldFunc {
	return func(n *yaml.Node, path string) {
		s, line, ok := d.scalar(n, path)
		if !ok {
			return
		}
		v, err := ParseDays(s)
		if err != nil {
			d.add(line, path, "%v", err)
			return
		}
		*dst = v
	}
}

// ParseDays parses "90d", "36h", "1h30m" or "0"/"" (none). A day is 24
// hours.
func ParseDays(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if num, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n < 0 || n > int64(MaxAuditRetention/Duration(24*time.Hour)) {
			return 0, fmt.Errorf("must be a number of days such as 90d, or a duration such as 36h (got %q)", s)
		}
		return Duration(time.Duration(n) * 24 * time.Hour), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("must be a number of days such as 90d, or a duration such as 36h (got %q)", s)
	}
	return Duration(v), nil
}
