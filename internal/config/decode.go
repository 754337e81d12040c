package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The configuration is decoded by walking yaml.Node trees rather than with
// yaml.Unmarshal into tagged structs: only the tree knows the line of every
// key, and walking it lets us report every unknown key and every bad value
// in one pass instead of stopping at the first.

// nodeBudget caps how many nodes one document may expand to. Aliases are
// followed on every use, so without a cap a few lines of nested aliases
// ("billion laughs") would take unbounded time.
const nodeBudget = 100_000

type decoder struct {
	file    string
	baseDir string // relative file: references and data_dir resolve against it
	probs   []problem
	lines   map[string]int
	budget  int
}

func newDecoder(file, baseDir string) *decoder {
	return &decoder{file: file, baseDir: baseDir, lines: map[string]int{}, budget: nodeBudget}
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError converts a yaml.v3 parser error into an *Error with the line
// pulled out of yaml's own "yaml: line N: ..." text.
func (d *decoder) syntaxError(err error) error {
	msg := err.Error()
	line := 0
	if m := yamlLineErr.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{File: d.file, Line: line, Problem: "invalid YAML: " + msg}
}

// decodeDocument decodes data into c. A returned error is fatal (the file is
// not YAML); problems with individual keys are collected in d.probs.
func (d *decoder) decodeDocument(data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file is the default configuration
		}
		return d.syntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return d.syntaxError(err)
		}
		return &Error{File: d.file, Line: extra.Line, Problem: "only one YAML document is allowed"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	d.config(root, c)
	return nil
}

func (d *decoder) add(line int, key, format string, args ...any) {
	d.probs = append(d.probs, problem{line: line, key: key, msg: fmt.Sprintf(format, args...)})
}

// resolve follows aliases and charges the node budget. It returns nil once
// the budget is spent, which stops the walk.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
		d.budget--
	}
	d.budget--
	if d.budget == 0 {
		d.add(0, "", "document is too large or expands too far through aliases")
	}
	if d.budget <= 0 || n == nil {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func child(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a scalar"
}

type fieldFunc func(v *yaml.Node, key string)

// mapping decodes a mapping whose keys must all be in fields. A null value
// (an empty section) leaves everything at its default.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]fieldFunc) {
	if n = d.resolve(n); n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.add(n.Line, path, "must be a mapping (got %s)", kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i])
		if k == nil {
			return
		}
		if k.Kind != yaml.ScalarNode {
			d.add(k.Line, path, "keys must be strings (got %s)", kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			d.add(k.Line, path, "merge keys (<<) are not supported; repeat the keys or use an alias for the whole value")
			continue
		}
		key := child(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.add(k.Line, key, "duplicate key (first set on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			d.add(k.Line, key, "unknown key%s", suggest(k.Value, fields))
			continue
		}
		d.lines[key] = k.Line
		f(n.Content[i+1], key)
	}
}

// suggest returns a "did you mean" hint for a mistyped key.
func suggest(got string, fields map[string]fieldFunc) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	best, bestDist := "", 3 // more than two edits away is not a typo
	for _, name := range names {
		if dist := editDistance(strings.ToLower(got), name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return " (expected one of " + strings.Join(names, ", ") + ")"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64 // not a typo; avoids quadratic work on hostile keys
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// seq calls item for every element of a list; null means an empty list.
func (d *decoder) seq(n *yaml.Node, path string, item func(v *yaml.Node, key string)) {
	if n = d.resolve(n); n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.add(n.Line, path, "must be a list (got %s)", kindName(n))
		return
	}
	for i, v := range n.Content {
		key := fmt.Sprintf("%s[%d]", path, i)
		d.lines[key] = v.Line
		item(v, key)
	}
}

// scalar returns the text of a scalar; null is "". ok is false (and a
// problem recorded) for mappings and lists.
func (d *decoder) scalar(n *yaml.Node, path string) (s string, line int, ok bool) {
	if n = d.resolve(n); n == nil {
		return "", 0, false
	}
	if n.Kind != yaml.ScalarNode {
		d.add(n.Line, path, "must be a single value (got %s)", kindName(n))
		return "", n.Line, false
	}
	if isNull(n) {
		return "", n.Line, true
	}
	return n.Value, n.Line, true
}

func (d *decoder) str(dst *string) fieldFunc {
	return func(n *yaml.Node, path string) {
		if s, _, ok := d.scalar(n, path); ok {
			*dst = s
		}
	}
}

func (d *decoder) boolean(dst *bool) fieldFunc {
	return func(n *yaml.Node, path string) {
		s, line, ok := d.scalar(n, path)
		if !ok {
			return
		}
		switch s {
		case "true", "True", "TRUE":
			*dst = true
		case "false", "False", "FALSE":
			*dst = false
		default:
			d.add(line, path, "must be true or false (got %q)", s)
		}
	}
}

func (d *decoder) integer(dst *int) fieldFunc {
	return func(n *yaml.Node, path string) {
		s, line, ok := d.scalar(n, path)
		if !ok {
			return
		}
		v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 0)
		if err != nil {
			d.add(line, path, "must be an integer (got %q)", s)
			return
		}
		*dst = int(v)
	}
}

// duration decodes a Go duration ("90s", "5m", "1h30m").

func (d *decoder) duration(dst *Duration) fieldFunc {
	return func(n *yaml.Node, path string) {
		s, line, ok := d.scalar(n, path)
		if !ok {
			return
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			d.add(line, path, "must be a duration such as 30s, 5m or 1h (got %q)", s)

			return
		}
		*dst = Duration(v)
	}
}

func (d *decoder) size(dst *ByteSize) fieldFunc {
	return func(n *yaml.Node, path string) {
		s, line, ok := d.scalar(n, path)
		if !ok {
			return
		}
		v, err := ParseByteSize(s)
		if err != nil {
			d.add(line, path, "%v", err)
			return
		}
		*dst = v
	}
}

// secret decodes a reference, resolving a relative file: path against the
// configuration file's directory.
func (d *decoder) secret(dst *Secret) fieldFunc {
	return func(n *yaml.Node, path string) {
		s, _, ok := d.scalar(n, path)
		if !ok {
			return
		}
		if p, isFile := strings.CutPrefix(s, "file:"); isFile && p != "" {
			s = "file:" + resolvePath(d.baseDir, p)
		}
		*dst = Secret(s)
	}
}

func (d *decoder) strings(dst *[]string) fieldFunc {
	return func(n *yaml.Node, path string) {
		out := []string{}
		d.seq(n, path, func(v *yaml.Node, key string) {
			if s, _, ok := d.scalar(v, key); ok {
				out = append(out, s)
			}
		})
		*dst = out
	}
}

func (d *decoder) config(n *yaml.Node, c *Config) {
	d.mapping(n, "", map[string]fieldFunc{
		"listen": func(v *yaml.Node, key string) {
			d.mapping(v, key, map[string]fieldFunc{
				"api":      d.str(&c.Listen.API),
				"postgres": d.str(&c.Listen.Postgres),
			})
		},
		"public_url": d.str(&c.PublicURL),
		"data_dir":   d.str(&c.DataDir),
		"store":      d.secret(&c.Store),
		"secret_key": d.secret(&c.SecretKey),
		"tls": func(v *yaml.Node, key string) {
			d.mapping(v, key, map[string]fieldFunc{
				"cert": d.secret(&c.TLS.Cert),
				"key":  d.secret(&c.TLS.Key),
			})
		},
		"log": func(v *yaml.Node, key string) {
			d.mapping(v, key, map[string]fieldFunc{
				"level":  d.str(&c.Log.Level),
				"format": d.str(&c.Log.Format),
			})
		},
		"identity": func(v *yaml.Node, key string) { d.identity(v, key, &c.Identity) },
		"admins":   d.strings(&c.Admins),
		"postgres": func(v *yaml.Node, key string) {
			d.mapping(v, key, map[string]fieldFunc{
				"allow_plaintext_remote": d.boolean(&c.Postgres.AllowPlaintextRemote),
				"max_message_size":       d.size(&c.Postgres.MaxMessageSize),
			})
		},
		"approvals": func(v *yaml.Node, key string) {
			d.mapping(v, key, map[string]fieldFunc{
				"timeout":   d.duration(&c.Approvals.Timeout),
				"approvers": d.strings(&c.Approvals.Approvers),
				"webhooks":  d.webhooks(&c.Approvals.Webhooks),
			})
		},
		"audit": func(v *yaml.Node, key string) {
			d.mapping(v, key, map[string]fieldFunc{
				"queue_size":          d.integer(&c.Audit.QueueSize),
				"node":                d.str(&c.Audit.Node),
				"signing_key":         d.secret(&c.Audit.SigningKey),
				"checkpoint_every":    d.integer(&c.Audit.CheckpointEvery),
				"checkpoint_interval": d.duration(&c.Audit.CheckpointInterval),
				"recording": func(v *yaml.Node, key string) {
					d.mapping(v, key, map[string]fieldFunc{
						"rows":  d.integer(&c.Audit.Recording.Rows),
						"bytes": d.size(&c.Audit.Recording.Bytes),
					})
				},
				"durability":          d.str(&c.Audit.Durability),
				"journal_fsync":       d.boolean(&c.Audit.JournalFsync),
				"journal_max_pending": d.integer(&c.Audit.JournalMaxPending),
				"sinks":               d.auditSinks(&c.Audit.Sinks),
				"retention":           d.days(&c.Audit.Retention),
			})
		},
		// Policies are compiled by package policy (CEL), which needs the
		// node itself to report file:line positions; keep it raw here.
		"policies":      func(v *yaml.Node, key string) { c.Policies = v },
		"policies_file": d.str(&c.PoliciesFile),
		"connections": func(v *yaml.Node, key string) {
			c.Connections = []Connection{}
			d.seq(v, key, func(item *yaml.Node, key string) {
				var conn Connection
				d.mapping(item, key, map[string]fieldFunc{
					"name":     d.str(&conn.Name),
					"type":     d.str(&conn.Type),
					"address":  d.str(&conn.Address),
					"database": d.str(&conn.Database),
					"username": d.str(&conn.Username),
					"password": d.secret(&conn.Password),
					"tls":      d.str(&conn.TLS),
					"tls_ca":   d.secret(&conn.TLSCA),
					"access":   d.strings(&conn.Access),
				})
				c.Connections = append(c.Connections, conn)
			})
		},
	})
}

func (d *decoder) identity(n *yaml.Node, path string, id *Identity) {
	d.mapping(n, path, map[string]fieldFunc{
		"dev_issuer": d.boolean(&id.DevIssuer),
		"audience":   d.str(&id.Audience),
		"dev_clients": func(v *yaml.Node, key string) {
			id.DevClients = []DevClient{}
			d.seq(v, key, func(item *yaml.Node, key string) {
				var dc DevClient
				d.mapping(item, key, map[string]fieldFunc{
					"id":     d.str(&dc.ID),
					"secret": d.secret(&dc.Secret),
					"groups": d.strings(&dc.Groups),
				})
				id.DevClients = append(id.DevClients, dc)
			})
		},
		"issuers": func(v *yaml.Node, key string) {
			id.Issuers = []Issuer{}
			d.seq(v, key, func(item *yaml.Node, key string) {
				var is Issuer
				d.mapping(item, key, map[string]fieldFunc{
					"url":             d.str(&is.URL),
					"audience":        d.str(&is.Audience),
					"groups_claim":    d.str(&is.GroupsClaim),
					"client_id_claim": d.str(&is.ClientIDClaim),
				})
				id.Issuers = append(id.Issuers, is)
			})
		},
	})
}
