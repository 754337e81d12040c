package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
)

// Limits enforced by Validate.
const (
	// MinMaxMessageSize keeps max_message_size above what ordinary startup
	// and short queries need.
	MinMaxMessageSize = 1 * KiB
	// MaxMaxMessageSize is the largest length a PostgreSQL message header
	// can carry (an Int32, see "Message Formats" in the protocol docs).
	MaxMaxMessageSize = ByteSize(math.MaxInt32)
	// MaxAuditQueueSize bounds memory held by buffered audit events.
	MaxAuditQueueSize = 1 << 24
)

// A connection name is what clients pass as the PostgreSQL database name, so
// it must fit NAMEDATALEN-1 and survive every client's connection-string
// parser unquoted.
var connNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "text"}
	connTypes  = []string{TypePostgres}
	tlsModes   = []string{TLSDisable, TLSRequire, TLSVerifyFull}
)

// Validate fills in the defaults that depend on other keys (a connection's
// type, port, database and TLS mode; an issuer's groups claim) and then
// checks the whole configuration, returning every problem found. It is what
// Load runs, and can be run again after editing a Config in code; start such
// a Config from Default(), since zero values are not replaced by defaults.
func (c *Config) Validate() error {
	return joinProblems(c.Path, c.check())
}

// checker collects problems, looking up lines for key paths.
type checker struct {
	lines map[string]int
	probs []problem
}

func (ck *checker) add(key, format string, args ...any) {
	ck.probs = append(ck.probs, problem{line: lineOf(ck.lines, key), key: key, msg: fmt.Sprintf(format, args...)})
}

func (ck *checker) oneOf(key, got string, allowed []string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	ck.add(key, "must be one of %s (got %q)", strings.Join(allowed, ", "), got)
}

func (c *Config) fillDefaults() {
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	// Lists are never nil, so JSON consumers always see [] rather than null.
	nonNil(&c.Admins)
	nonNil(&c.Approvals.Webhooks)
	nonNil(&c.Audit.Sinks)
	nonNil(&c.Connections)
	nonNil(&c.Identity.DevClients)
	nonNil(&c.Identity.Issuers)
	for i := range c.Identity.DevClients {
		nonNil(&c.Identity.DevClients[i].Groups)
	}
	for i := range c.Identity.Issuers {
		if c.Identity.Issuers[i].GroupsClaim == "" {
			c.Identity.Issuers[i].GroupsClaim = DefaultGroupsClaim
		}
	}
	for i := range c.Connections {
		conn := &c.Connections[i]
		if conn.Type == "" {
			conn.Type = TypePostgres
		}
		nonNil(&conn.Access)
		conn.Address = withDefaultPort(conn.Address, DefaultPostgresPort)
		if conn.Database == "" {
			conn.Database = conn.Name
		}
		if conn.TLS == "" && conn.Address != "" {
			conn.TLS = DefaultTLSMode(conn.Address)
		}
	}
}

func nonNil[T any](s *[]T) {
	if *s == nil {
		*s = []T{}
	}
}

// withDefaultPort adds port to an address that has none: "db", "[::1]" and
// "::1" become "db:5432", "[::1]:5432".
func withDefaultPort(addr, port string) string {
	if addr == "" {
		return addr
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	host := addr
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return addr // "host:port:junk" — leave it for the check to report
	}
	return net.JoinHostPort(host, port)
}

func (c *Config) check() []problem {
	c.fillDefaults()
	ck := &checker{lines: c.lines}

	if c.Listen.API == "" {
		ck.add("listen.api", "required (the admin API and token endpoint listen here)")
	} else {
		checkHostPort(ck, "listen.api", c.Listen.API, true)
	}
	if c.Listen.Postgres != "" {
		checkHostPort(ck, "listen.postgres", c.Listen.Postgres, true)
		if sameListener(c.Listen.API, c.Listen.Postgres) {
			ck.add("listen.postgres", "conflicts with listen.api (%s)", c.Listen.API)
		}
	}
	if c.PublicURL != "" {
		checkPublicURL(ck, c.PublicURL)
	}
	if c.DataDir == "" {
		ck.add("data_dir", "must not be empty")
	}
	checkStore(ck, c.Store)
	if c.SecretKey == "" {
		ck.add("secret_key", "must not be empty (default %s)", DefaultSecretKey)
	} else {
		checkRefOnly(ck, "secret_key", c.SecretKey)
	}
	switch {
	case c.TLS.Cert != "" && c.TLS.Key == "":
		ck.add("tls.key", "required when tls.cert is set")
	case c.TLS.Cert == "" && c.TLS.Key != "":
		ck.add("tls.cert", "required when tls.key is set")
	}
	checkRefOnly(ck, "tls.cert", c.TLS.Cert)
	checkRefOnly(ck, "tls.key", c.TLS.Key)
	ck.oneOf("log.level", c.Log.Level, logLevels)
	ck.oneOf("log.format", c.Log.Format, logFormats)
	c.checkIdentity(ck)
	checkSelectors(ck, "admins", c.Admins)
	if s := c.Postgres.MaxMessageSize; s < MinMaxMessageSize || s > MaxMaxMessageSize {
		ck.add("postgres.max_message_size", "must be between %s and %d bytes (got %s)", MinMaxMessageSize, int64(MaxMaxMessageSize), s)
	}
	if r := c.Audit.Recording.Rows; r < 0 || r > MaxRecordingRows {
		ck.add("audit.recording.rows", "must be between 0 and %d (got %d)", MaxRecordingRows, r)
	}
	if b := c.Audit.Recording.Bytes; b < 0 || b > MaxRecordingBytes {
		ck.add("audit.recording.bytes", "must be between 0 and %s (got %s)", MaxRecordingBytes, b)
	}
	if q := c.Audit.QueueSize; q < 1 || q > MaxAuditQueueSize {
		ck.add("audit.queue_size", "must be between 1 and %d (got %d)", MaxAuditQueueSize, q)
	}
	if t := time.Duration(c.Approvals.Timeout); t <= 0 || t > 24*time.Hour {
		ck.add("approvals.timeout", "must be a positive duration of at most 24h (got %s)", t)
	}
	checkSelectors(ck, "approvals.approvers", c.Approvals.Approvers)
	checkWebhooks(ck, "approvals.webhooks", c.Approvals.Webhooks)
	if n := c.Audit.Node; n != "" && !printableToken(n, 255) {
		ck.add("audit.node", "must be 1-255 printable characters without spaces (got %q)", n)
	}
	checkRefOnly(ck, "audit.signing_key", c.Audit.SigningKey)
	if e := c.Audit.CheckpointEvery; e < 1 || e > MaxAuditQueueSize {
		ck.add("audit.checkpoint_every", "must be between 1 and %d (got %d)", MaxAuditQueueSize, e)
	}
	if d := time.Duration(c.Audit.CheckpointInterval); d < 100*time.Millisecond || d > 24*time.Hour {
		ck.add("audit.checkpoint_interval", "must be between 100ms and 24h (got %s)", d)
	}
	ck.oneOf("audit.durability", c.Audit.Durability, []string{DurabilityJournal, DurabilityOff})
	if n := c.Audit.JournalMaxPending; n < 1 || n > MaxAuditQueueSize {
		ck.add("audit.journal_max_pending", "must be between 1 and %d (got %d)", MaxAuditQueueSize, n)
	}
	checkAuditSinks(ck, "audit.sinks", c.Audit.Sinks)
	if r := c.Audit.Retention; r != 0 && (r < MinAuditRetention || r > MaxAuditRetention) {
		ck.add("audit.retention", "must be 0 (keep forever) or between %s and %s (got %s)", MinAuditRetention, MaxAuditRetention, r)
	}
	c.checkConnections(ck)
	return ck.probs
}

func (c *Config) checkIdentity(ck *checker) {
	id := &c.Identity
	if id.Audience == "" {
		ck.add("identity.audience", "must not be empty (default %q)", DefaultAudience)
	}
	clients := map[string]string{}
	for i, dc := range id.DevClients {
		key := fmt.Sprintf("identity.dev_clients[%d]", i)
		switch {
		case dc.ID == "":
			ck.add(key+".id", "required")
		case !printableToken(dc.ID, 128):
			ck.add(key+".id", "must be 1-128 printable characters without spaces (got %q)", dc.ID)
		case clients[dc.ID] != "":
			ck.add(key+".id", "duplicate client id %q (also %s)", dc.ID, clients[dc.ID])
		default:
			clients[dc.ID] = key
		}
		if dc.Secret == "" {
			ck.add(key+".secret", "required (an env: or file: reference)")
		} else {
			checkRefOnly(ck, key+".secret", dc.Secret)
		}
		for j, g := range dc.Groups {
			if !printableToken(g, 256) {
				ck.add(fmt.Sprintf("%s.groups[%d]", key, j), "must be 1-256 printable characters without spaces (got %q)", g)
			}
		}
	}
	issuers := map[string]string{}
	for i, is := range id.Issuers {
		key := fmt.Sprintf("identity.issuers[%d]", i)
		if is.URL == "" {
			ck.add(key+".url", "required")
		} else if msg := checkIssuerURL(is.URL); msg != "" {
			ck.add(key+".url", "%s", msg)
		} else if prev := issuers[is.URL]; prev != "" {
			ck.add(key+".url", "duplicate issuer %q (also %s)", is.URL, prev)
		} else {
			issuers[is.URL] = key
		}
		if is.Audience == "" {
			ck.add(key+".audience", "required (the \"aud\" value tokens for gatehouse carry)")
		}
		if !printableToken(is.GroupsClaim, 256) {
			ck.add(key+".groups_claim", "must be a claim name (got %q)", is.GroupsClaim)
		}
		if is.ClientIDClaim != "" && !printableToken(is.ClientIDClaim, 256) {
			ck.add(key+".client_id_claim", "must be a claim name (got %q)", is.ClientIDClaim)
		}
	}
}

func (c *Config) checkConnections(ck *checker) {
	names := map[string]string{}
	for i := range c.Connections {
		conn := &c.Connections[i]
		key := fmt.Sprintf("connections[%d]", i)
		switch {
		case conn.Name == "":
			ck.add(key+".name", "required")
		case !connNameRE.MatchString(conn.Name):
			ck.add(key+".name", "must be 1-63 characters of A-Z, a-z, 0-9, _ and - (clients use it as the database name; got %q)", conn.Name)
		case names[strings.ToLower(conn.Name)] != "":
			// Names differing only in case would be told apart by some
			// clients and folded by others; refuse the ambiguity.
			ck.add(key+".name", "duplicate connection name %q (also %s)", conn.Name, names[strings.ToLower(conn.Name)])
		default:
			names[strings.ToLower(conn.Name)] = key
		}
		ck.oneOf(key+".type", conn.Type, connTypes)
		if conn.Address == "" {
			ck.add(key+".address", "required (host:port of the upstream server)")
		} else {
			checkHostPort(ck, key+".address", conn.Address, false)
		}
		if conn.Database == "" || len(conn.Database) > 63 || strings.ContainsRune(conn.Database, 0) {
			ck.add(key+".database", "must be 1-63 bytes (got %q)", conn.Database)
		}
		if conn.Username == "" {
			ck.add(key+".username", "required")
		} else if len(conn.Username) > 63 || strings.ContainsRune(conn.Username, 0) {
			ck.add(key+".username", "must be 1-63 bytes (got %q)", conn.Username)
		}
		checkRefOnly(ck, key+".password", conn.Password)
		if conn.TLS != "" {
			ck.oneOf(key+".tls", conn.TLS, tlsModes)
		}
		checkRefOnly(ck, key+".tls_ca", conn.TLSCA)
		if conn.TLSCA != "" && conn.TLS != TLSVerifyFull {
			ck.add(key+".tls_ca", "only used with tls: verify-full (tls is %q)", conn.TLS)
		}
		checkSelectors(ck, key+".access", conn.Access)
	}
}

// printableToken reports whether s is 1..max bytes of printable, non-space
// characters: safe to put in a token claim, a log line and an error message.
func printableToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

func checkSelectors(ck *checker, key string, sels []string) {
	for i, s := range sels {
		if !access.ValidSelector(s) {
			ck.add(fmt.Sprintf("%s[%d]", key, i), `must be "group:NAME", "sub:SUBJECT", "client:CLIENT_ID" or "*" (got %q)`, s)
		}
	}
}

// checkRefOnly checks an optional secret that must be a reference: literal
// secrets in the file would end up in backups, diffs and support tickets.
func checkRefOnly(ck *checker, key string, s Secret) {
	if s == "" {
		return
	}
	if !s.IsRef() {
		ck.add(key, "must be an env:NAME or file:/path reference; literal secrets are not allowed")
		return
	}
	if err := s.checkRef(); err != nil {
		ck.add(key, "%v", err)
	}
}

// checkStore allows a literal postgres:// URL as long as it carries no
// password (the URL then is not a secret).
func checkStore(ck *checker, s Secret) {
	switch s.Kind() {
	case "":
		return
	case "env", "file":
		checkRefOnly(ck, "store", s)
		return
	}
	u, err := url.Parse(string(s))
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Not echoed: it might be a secret in the wrong place.
		ck.add("store", "must be empty (SQLite in data_dir), a postgres:// URL, or an env:/file: reference to one")
		return
	}
	if _, hasPass := u.User.Password(); hasPass || u.Query().Has("password") {
		ck.add("store", "literal URL contains a password; put the URL in an env: or file: reference")
	}
}

// checkHostPort checks a host:port address. listen allows an empty host
// (all interfaces) and port 0 (any free port, handy in tests).
func checkHostPort(ck *checker, key, addr string, listen bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		ck.add(key, "must be host:port (got %q)", addr)
		return
	}
	p, err := strconv.ParseUint(port, 10, 16)
	switch {
	case err != nil:
		ck.add(key, "port must be a number from 0 to 65535 (got %q)", port)
	case p == 0 && !listen:
		ck.add(key, "port must not be 0")
	}
	if host == "" {
		if !listen {
			ck.add(key, "host must not be empty (got %q)", addr)
		}
		return
	}
	if net.ParseIP(host) == nil && !validHostname(host) {
		ck.add(key, "host %q is not an IP address or host name", host)
	}
}

// validHostname accepts DNS names (RFC 1123 labels, underscores tolerated
// as many internal resolvers do).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// sameListener reports whether two listen addresses would collide: same
// non-zero port, and the same host or one of them on all interfaces.
func sameListener(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || (ip != nil && ip.IsUnspecified())
	}
	return ha == hb || wild(ha) || wild(hb)
}

func checkPublicURL(ck *checker, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		ck.add("public_url", "must be an absolute http:// or https:// URL (got %q)", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		ck.add("public_url", "must not contain user info, a query or a fragment (got %q)", raw)
	}
}

// checkIssuerURL returns a problem with an issuer URL, or "". Plain http is
// only for a local test issuer: over a network, discovery and JWKS fetched
// without TLS would let anyone on the path mint accepted tokens.
func checkIssuerURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Sprintf("must be an absolute https:// URL (got %q)", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("must not contain user info, a query or a fragment (got %q)", raw)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return fmt.Sprintf("must use https (http is allowed only for localhost and loopback addresses; got %q)", raw)
	}
	return ""
}

// ResolveSecrets resolves every configured secret and reports every failure
// as an *Error with its key path and line, without ever including a value.
// It also checks that tls.cert and tls.key form a pair and that tls_ca
// files hold PEM certificates. The server calls it at startup so a missing
// env var fails there, not at the first client connection. (A --dev server
// that generates a missing secret_key may ignore the Error whose Key is
// "secret_key".)
func (c *Config) ResolveSecrets() error {
	ck := &checker{lines: c.lines}
	try := func(key string, s Secret) (string, bool) {
		if s == "" {
			return "", false
		}
		v, err := s.Resolve()
		if err != nil {
			ck.add(key, "%v", err)
			return "", false
		}
		return v, true
	}
	try("store", c.Store)
	try("secret_key", c.SecretKey)
	try("audit.signing_key", c.Audit.SigningKey)
	cert, okCert := try("tls.cert", c.TLS.Cert)
	key, okKey := try("tls.key", c.TLS.Key)
	if okCert && okKey {
		if _, err := tls.X509KeyPair([]byte(cert), []byte(key)); err != nil {
			ck.add("tls", "cert and key do not load as a PEM certificate and matching key: %v", err)
		}
	}
	for i, dc := range c.Identity.DevClients {
		try(fmt.Sprintf("identity.dev_clients[%d].secret", i), dc.Secret)
	}
	resolveWebhooks(ck, "approvals.webhooks", c.Approvals.Webhooks)
	for i, s := range c.Audit.Sinks {
		if s.Webhook != nil {
			resolveWebhook(ck, fmt.Sprintf("audit.sinks[%d]", i), s.Webhook)
		}
	}
	for i, conn := range c.Connections {
		key := fmt.Sprintf("connections[%d]", i)
		try(key+".password", conn.Password)
		if ca, ok := try(key+".tls_ca", conn.TLSCA); ok {
			if !x509.NewCertPool().AppendCertsFromPEM([]byte(ca)) {
				ck.add(key+".tls_ca", "no PEM certificates found")
			}
		}
	}
	return joinProblems(c.Path, ck.probs)
}
