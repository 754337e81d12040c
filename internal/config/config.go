// Package config is gatehouse's single YAML configuration: its schema, the
// defaults, loading with line-numbered errors, validation, and env:/file:
// secret references.
//
// Loading never resolves secrets: a missing environment variable should fail
// where the value is used (or at server startup through ResolveSecrets) with
// a message naming the key, not make `gatehouse policy test` or `--help`
// unusable on a laptop that lacks production secrets.
//
// See docs/configuration.md for every key and its default.
package config

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Default values; docs/configuration.md repeats them.
const (
	DefaultAPIListen          = "127.0.0.1:8080"
	DefaultPostgresListen     = "127.0.0.1:15432"
	DefaultDataDir            = "gatehouse-data"
	DefaultSecretKey          = Secret("env:GATEHOUSE_SECRET_KEY")
	DefaultAudience           = "gatehouse"
	DefaultGroupsClaim        = "groups"
	DefaultMaxMessageSize     = 256 * MiB
	DefaultAuditQueueSize     = 65536
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = Duration(10 * time.Second)
	DefaultJournalMaxPending  = 100000
	DefaultPostgresPort       = "5432"
)

// Config is the whole gatehouse configuration. JSON field names match the
// YAML keys; secrets marshal as their references, never their values.
type Config struct {
	Listen      Listen       `json:"listen"`
	PublicURL   string       `json:"public_url"`  // "" = derived from listen.api, see BaseURL
	DataDir     string       `json:"data_dir"`    // relative paths are relative to the config file's directory
	Store       Secret       `json:"store"`       // "" = SQLite in DataDir; else a postgres:// URL or a reference to one
	SecretKey   Secret       `json:"secret_key"`  // reference to the AES-256 key (see credential.LoadKey for its format)
	TLS         TLS          `json:"tls"`         // API and PostgreSQL listener certificate; zero = none
	Log         Log          `json:"log"`         //
	Identity    Identity     `json:"identity"`    //
	Admins      []string     `json:"admins"`      // principal selectors allowed to use /api/v1; empty = nobody
	Postgres    Postgres     `json:"postgres"`    // PostgreSQL listener settings
	Audit       Audit        `json:"audit"`       //
	Approvals   Approvals    `json:"approvals"`   // statement holds (policy review rules)
	Connections []Connection `json:"connections"` // upstream targets

	// Policies is the raw `policies:` node (compiled by package policy so
	// its errors carry file:line); nil when absent.
	Policies *yaml.Node `json:"-"`
	// PoliciesFile is a separate policies file (reloadable on SIGHUP and via
	// the API); "" = none. Relative paths resolve against the config file.
	PoliciesFile string `json:"policies_file,omitempty"`

	// Path is the file the configuration came from ("" for Default).
	Path string `json:"-"`

	// lines maps key paths ("connections[0].tls") to the line they were
	// written on, so errors found after parsing can still point at the file.
	lines map[string]int
}

// Listen holds listener addresses (host:port). "" disables a listener; the
// API listener is required.
type Listen struct {
	API      string `json:"api"`
	Postgres string `json:"postgres"`
}

// TLS names a PEM certificate chain and private key. Both or neither are set.
type TLS struct {
	Cert Secret `json:"cert"`
	Key  Secret `json:"key"`
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.Cert != "" && t.Key != "" }

// Log configures the process log.
type Log struct {
	Level  string `json:"level"`  // debug | info | warn | error
	Format string `json:"format"` // json | text
}

// Identity configures who may present tokens.
type Identity struct {
	DevIssuer  bool        `json:"dev_issuer"`  // run the built-in OIDC issuer (forced on by --dev)
	DevClients []DevClient `json:"dev_clients"` // clients the dev issuer mints tokens for
	Audience   string      `json:"audience"`    // "aud" of dev issuer tokens
	Issuers    []Issuer    `json:"issuers"`     // external OIDC issuers whose tokens are accepted
}

// DevClient is a client_credentials client of the built-in dev issuer.
type DevClient struct {
	ID     string   `json:"id"`     // becomes the token's sub and client_id
	Secret Secret   `json:"secret"` // env: or file: reference
	Groups []string `json:"groups"` // groups claim of its tokens
}

// Issuer is an external OIDC issuer (discovery document + JWKS).
type Issuer struct {
	URL           string `json:"url"`             // must equal the tokens' "iss" exactly
	Audience      string `json:"audience"`        // required "aud" value
	GroupsClaim   string `json:"groups_claim"`    // claim holding group names
	ClientIDClaim string `json:"client_id_claim"` // "" = client_id, then azp
}

// Postgres configures the PostgreSQL listener.
type Postgres struct {
	// AllowPlaintextRemote permits token authentication without TLS from
	// non-loopback clients. Off by default: the token is a bearer credential.
	AllowPlaintextRemote bool `json:"allow_plaintext_remote"`
	// MaxMessageSize is the largest client message the gateway inspects.
	MaxMessageSize ByteSize `json:"max_message_size"`
}

// Audit configures the audit pipeline and its hash chain (docs/audit.md).
type Audit struct {
	QueueSize int       `json:"queue_size"` // events buffered before the data path waits
	Recording Recording `json:"recording"`  // what each statement event records of its data
	// Node names this gateway's hash chain; "" = the host name. Every node
	// sharing a store needs its own name.
	Node string `json:"node"`
	// SigningKey is a reference to the Ed25519 key that signs checkpoints
	// (PEM PKCS #8 or a base64 32-byte seed); "" = no checkpoints, except
	// that --dev generates one in data_dir.
	SigningKey         Secret   `json:"signing_key"`
	CheckpointEvery    int      `json:"checkpoint_every"`    // sign after this many new events
	CheckpointInterval Duration `json:"checkpoint_interval"` // sign at this interval when new events exist
	// Durability is when a statement's decision is durable: "journal"
	// (before the statement runs, in data_dir/audit-journal) or "off"
	// (only once the batched store write commits; for benchmark
	// comparison only).
	Durability string `json:"durability"`
	// JournalFsync makes each journal write wait for fsync (survives power
	// loss, not only a killed gateway).
	JournalFsync bool `json:"journal_fsync"`
	// JournalMaxPending refuses statements while more journaled decisions
	// than this wait for the store.
	JournalMaxPending int `json:"journal_max_pending"`
	// Sinks receive a copy of every event after the store has it.
	Sinks []AuditSink `json:"sinks"`
	// Retention prunes events older than this (behind a signed prune
	// marker); 0 = keep forever.
	Retention Duration `json:"retention"`
}

// Recording bounds the session recording kept in each statement's audit
// event: a sample of the (masked) result rows and the bound parameters.
// Bytes 0 turns recording off; Rows 0 keeps parameters, columns and
// notices but no rows.
type Recording struct {
	Rows  int      `json:"rows"`  // result rows sampled per statement
	Bytes ByteSize `json:"bytes"` // bytes of values (sample cells and parameters) per statement
}

// Recording defaults and bounds: small, so the audit store stays small.
const (
	DefaultRecordingRows  = 5
	DefaultRecordingBytes = ByteSize(4096)
	MaxRecordingRows      = 1000
	MaxRecordingBytes     = ByteSize(1 << 20)
)

// Audit durability modes.
const (
	DurabilityJournal = "journal"
	DurabilityOff     = "off"
)

// Approvals configures holds for review rules.
type Approvals struct {
	// Timeout is how long a held statement waits when its rule names no
	// timeout.
	Timeout Duration `json:"timeout"`
	// Approvers approve for review rules that name none; empty = admins.
	Approvers []string `json:"approvers"`
	// Webhooks are told of review events (review.created, review.approved…).
	Webhooks []Webhook `json:"webhooks"`
}

// DefaultApprovalTimeout is approvals.timeout when unset.
const DefaultApprovalTimeout = Duration(5 * time.Minute)

// Duration is a time.Duration that reads and prints as "5m0s".
type Duration time.Duration

// MarshalJSON prints the duration as Go writes it.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Connection is one upstream target.
type Connection struct {
	Name     string   `json:"name"`     // clients select it as the PostgreSQL database name
	Type     string   `json:"type"`     // "postgres"
	Address  string   `json:"address"`  // host:port; the port defaults to 5432
	Database string   `json:"database"` // upstream database; defaults to Name
	Username string   `json:"username"` // upstream user
	Password Secret   `json:"password"` // env: or file: reference; "" = none (e.g. trust auth)
	TLS      string   `json:"tls"`      // disable | require | verify-full; default by address, see DefaultTLSMode
	TLSCA    Secret   `json:"tls_ca"`   // PEM roots for verify-full; "" = system roots
	Access   []string `json:"access"`   // principal selectors allowed to connect; empty = nobody
}

// Connection types.
const (
	TypePostgres = "postgres"
)

// Upstream TLS modes.
const (
	TLSDisable    = "disable"
	TLSRequire    = "require"
	TLSVerifyFull = "verify-full"
)

// Default returns the configuration `gatehouse serve --dev` uses when no file
// is given. Relative paths in it are relative to the working directory.
func Default() *Config {
	c := &Config{
		Listen:    Listen{API: DefaultAPIListen, Postgres: DefaultPostgresListen},
		DataDir:   "./" + DefaultDataDir,
		SecretKey: DefaultSecretKey,
		Log:       Log{Level: "info", Format: "json"},
		Identity:  Identity{Audience: DefaultAudience},
		Postgres:  Postgres{MaxMessageSize: DefaultMaxMessageSize},
		Audit: Audit{QueueSize: DefaultAuditQueueSize, CheckpointEvery: DefaultCheckpointEvery,
			CheckpointInterval: DefaultCheckpointInterval, Durability: DurabilityJournal,
			JournalMaxPending: DefaultJournalMaxPending, Sinks: []AuditSink{},
			Recording: Recording{Rows: DefaultRecordingRows, Bytes: DefaultRecordingBytes}},
		Approvals: Approvals{Timeout: DefaultApprovalTimeout},
	}
	c.fillDefaults()
	return c
}

// Load reads, parses and validates the file at path. Relative paths in the
// file are resolved against the file's directory, made absolute so a later
// chdir cannot change their meaning; error messages use path as given.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := parse(path, filepath.Dir(abs), data)
	if c != nil {
		c.Path = abs
	}
	return c, err
}

// Parse parses and validates data as if read from path, which is used in
// error messages and as the base for relative paths (as given, not made
// absolute). On error the returned *Config is nil.
func Parse(path string, data []byte) (*Config, error) {
	return parse(path, filepath.Dir(path), data)
}

func parse(name, baseDir string, data []byte) (*Config, error) {
	c := Default()
	c.Path = name
	// A file's default data directory sits next to the file, like every
	// other relative path in it.
	c.DataDir = DefaultDataDir
	d := newDecoder(name, baseDir)
	if fatal := d.decodeDocument(data, c); fatal != nil {
		return nil, fatal
	}
	c.lines = d.lines
	c.DataDir = resolvePath(baseDir, c.DataDir)
	if c.PoliciesFile != "" {
		c.PoliciesFile = resolvePath(baseDir, c.PoliciesFile)
	}
	probs := append(d.probs, c.check()...)
	if len(probs) > 0 {
		return nil, joinProblems(name, probs)
	}
	return c, nil
}

// resolvePath makes a relative path relative to baseDir.
func resolvePath(baseDir, p string) string {
	if p == "" {
		return ""
	}
	if filepath.IsAbs(p) || baseDir == "" || baseDir == "." {
		return filepath.Clean(p)
	}
	return filepath.Join(baseDir, p)
}

// BaseURL is the URL clients use to reach the API: PublicURL when set,
// otherwise http(s)://<listen.api>, with an unspecified host (":8080",
// "0.0.0.0:8080") replaced by localhost. apiTLS says whether the API listener
// serves TLS, which in --dev mode may be a generated certificate.
func (c *Config) BaseURL(apiTLS bool) string {
	if c.PublicURL != "" {
		return c.PublicURL
	}
	scheme := "http"
	if apiTLS {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(c.Listen.API)
	if err != nil {
		return scheme + "://" + c.Listen.API
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Connection returns the connection named name, or nil.
func (c *Config) Connection(name string) *Connection {
	for i := range c.Connections {
		if c.Connections[i].Name == name {
			return &c.Connections[i]
		}
	}
	return nil
}

// DefaultTLSMode is the upstream TLS mode used when a connection sets none:
// disable for a loopback address (local development databases rarely have
// certificates, and the traffic never leaves the host), require otherwise.
func DefaultTLSMode(address string) string {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	if isLoopbackHost(host) {
		return TLSDisable
	}
	return TLSRequire
}

// isLoopbackHost reports whether host is "localhost" or a loopback IP.
func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
