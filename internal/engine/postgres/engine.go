package postgres

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
)

// Protocol codes of the untyped startup-phase packets.
// https://www.postgresql.org/docs/15/protocol-message-formats.html
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102
	protocolV3        = 3 << 16

	maxStartupPacket = 10000 // PostgreSQL's MAX_STARTUP_PACKET_LENGTH
	handshakeTimeout = 30 * time.Second
)

// Config configures the PostgreSQL engine.
type Config struct {
	Opener engine.Opener // authenticates clients and resolves targets; required
	// TLS is offered to clients that send SSLRequest; nil means the gateway
	// answers 'N' and clients must use sslmode=disable/prefer.
	TLS *tls.Config
	// AllowPlaintextRemote allows token authentication without TLS from
	// non-loopback clients. Off by default: a token is a bearer credential.
	AllowPlaintextRemote bool
	// MaxMessageSize is the largest client message the gateway buffers to
	// inspect, in bytes; 0 means 256 MiB.
	MaxMessageSize int
	Logger         *slog.Logger // nil = slog.Default()
	// MaskKey keys the "hash" masking method (stable pseudonyms); at least
	// 16 bytes. Nil disables that method (such fields are nulled instead).
	MaskKey []byte
	// Recording bounds what each statement's audit event records of its
	// data (sample rows, parameters); the zero value records none of it.
	Recording Recording
}

// Engine is the PostgreSQL protocol engine.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	cancels *cancelRegistry

	catMu    sync.Mutex
	catalogs map[string]*catalog // per connection name: column names for masking, views
}

var _ engine.Engine = (*Engine)(nil)

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 256 << 20
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Engine{cfg: cfg, log: log.With("engine", "postgres"), cancels: newCancelRegistry()}
}

// Protocol implements engine.Engine.
func (e *Engine) Protocol() string { return "postgres" }

// startup is what the client sent before authentication.
type startup struct {
	params      map[string]string
	minor       uint16
	unsupported []string // _pq_.* protocol options we do not understand
}

// Serve implements engine.Engine.
func (e *Engine) Serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	conn, st, err := e.handshake(ctx, conn)
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, errCancelHandled) {
			e.log.Debug("handshake failed", "client", conn.RemoteAddr().String(), "err", err)
		}
		return
	}
	_, isTLS := conn.(*tls.Conn)
	fatal := func(code, msg, hint string) {
		conn.Write(errorResponse("FATAL", code, msg, hint))
	}
	if v := st.params["replication"]; v != "" && !strings.EqualFold(v, "false") && v != "0" && !strings.EqualFold(v, "off") {
		fatal(codeFeatureNotSupported, "gatehouse does not relay replication connections", "connect without the replication parameter")
		return
	}
	if !isTLS && !e.cfg.AllowPlaintextRemote && !isLoopback(conn.RemoteAddr()) {
		fatal(codeInvalidAuthSpec, "gatehouse refuses token authentication over an unencrypted connection from a non-loopback address",
			"connect with sslmode=require (or verify-full with the gateway's CA)")
		return
	}
	db := st.params["database"]
	if db == "" {
		db = st.params["user"] // PostgreSQL's default, kept for familiarity
	}
	if st.minor > 0 || len(st.unsupported) > 0 {
		// We speak 3.0 and no protocol extensions; say so, as PostgreSQL does.
		nv, _ := (&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: st.unsupported}).Encode(nil)
		conn.Write(nv)
	}
	token, err := askPassword(conn)
	if err != nil {
		return // the client hung up, e.g. psql before prompting for a password
	}
	if token == "" {
		fatal(codeInvalidPassword, "no token given: send your OIDC access token as the password",
			"set PGPASSWORD to a token, e.g. PGPASSWORD=$(gatehouse token --subject me)")
		return
	}
	opened, err := e.cfg.Opener.Open(ctx, engine.OpenRequest{
		Protocol:   "postgres",
		Target:     db,
		Token:      token,
		ClientAddr: conn.RemoteAddr(),
		ClientUser: st.params["user"],
		TLS:        isTLS,
		Params:     st.params,
	})
	if err != nil {
		fatal(openErrorCode(err), engine.MessageOf(err), openErrorHint(err))
		return
	}
	// Startup parameters act like SET (options=-c role=…, search_path…):
	// each is an action, so a policy can refuse one before it reaches the
	// upstream. application_name and client_encoding are just labels.
	for _, k := range sortedKeys(st.params) {
		if reservedParams[k] || k == "application_name" || k == "client_encoding" {
			continue
		}
		a := &access.Action{Session: opened.Session, Kind: access.ActionStartupParameter, Statement: k + "=" + st.params[k], Protocol: "startup"}
		d, err := opened.Checkpoint.Check(ctx, a)
		if err != nil || !d.Allowed() {
			if err != nil {
				d.Reason = "gatehouse could not decide the startup parameter " + k + " (fail closed)"
			}
			fatal(codeInsufficientPriv, denyMessage(d), "connect without the startup parameter "+k)
			opened.Close(fmt.Errorf("startup parameter %s denied", k))
			return
		}
		if err := opened.Checkpoint.Commit(a, &d); err != nil {
			fatal(engine.AuditUnavailableSQLState, err.Error(), "")
			opened.Close(fmt.Errorf("startup parameter %s: %w", k, err))
			return
		}
		opened.Checkpoint.Record(a, d, access.Outcome{Rows: -1})
	}
	up, err := dialUpstream(ctx, opened.Upstream, st.params)
	if err != nil {
		e.log.Warn("upstream connect failed", "session", opened.Session.ID, "connection", opened.Session.Target.Name, "err", err)
		fatal(codeCannotConnect, fmt.Sprintf("gatehouse could not connect to the upstream database of connection %q", opened.Session.Target.Name),
			"the gateway log has the details; check the connection's address and credentials")
		opened.Close(err)
		return
	}
	defer up.Conn.Close()
	cat := e.catalogFor(opened.Session.Target.Name, opened.Upstream)
	if up.ParameterStatuses["is_superuser"] == "on" && cat.warnedSuperuser.CompareAndSwap(false, true) {
		// A superuser reads server files and raw table storage
		// (pg_read_binary_file, lo_import, COPY … PROGRAM): what policies
		// and masking cannot see. Said once per target.
		e.log.Warn("the upstream role is a superuser: it can read server files and raw table data around policies and masking; connect upstream with an ordinary role",
			"connection", opened.Session.Target.Name, "user", opened.Upstream.Username)
	}
	if b, ok := opened.Checkpoint.(engine.CatalogBinder); ok {
		// Policies and masking see through views with the target's catalog.
		opened.Checkpoint = b.WithCatalog(cat)
	}
	ct := &cancelTarget{addr: opened.Upstream.Address, pid: up.PID, key: up.SecretKey}
	pid := e.cancels.register(ct)
	defer e.cancels.unregister(pid)
	conn.SetDeadline(time.Time{})
	s := newSession(e, conn, up, opened, cat)
	s.ct = ct
	if err := s.greet(pid, ct.secret); err != nil {
		opened.Close(err)
		return
	}
	err = s.run(ctx)
	opened.Close(err)
}

var errCancelHandled = errors.New("cancel request handled")

// handshake processes SSLRequest / GSSENCRequest / CancelRequest packets until
// the StartupMessage, upgrading conn to TLS when asked and configured.
// https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-SSL
func (e *Engine) handshake(ctx context.Context, conn net.Conn) (net.Conn, *startup, error) {
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return conn, nil, err
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n < 8 || n > maxStartupPacket {
			conn.Write(errorResponse("FATAL", codeProtocolViolation, fmt.Sprintf("invalid startup packet length %d", n), ""))
			return conn, nil, fmt.Errorf("invalid startup packet length %d", n)
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(conn, body); err != nil {
			return conn, nil, err
		}
		code := binary.BigEndian.Uint32(body)
		switch {
		case code == codeSSLRequest:
			_, already := conn.(*tls.Conn)
			if e.cfg.TLS == nil || already {
				conn.Write([]byte{'N'})
				continue
			}
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return conn, nil, err
			}
			// We read exactly the packet above and nothing more, so no
			// plaintext bytes can be smuggled in ahead of the TLS handshake
			// (CVE-2021-23214).
			tc := tls.Server(conn, e.cfg.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return conn, nil, fmt.Errorf("tls handshake: %w", err)
			}
			conn = tc
		case code == codeGSSENCRequest:
			// GSSAPI encryption is not offered; 'N' lets libpq fall back to
			// SSL or plaintext as its gssencmode allows.
			conn.Write([]byte{'N'})
		case code == codeCancelRequest:
			if len(body) >= 12 {
				e.cancels.cancel(ctx, binary.BigEndian.Uint32(body[4:8]), body[8:])
			}
			return conn, nil, errCancelHandled
		case code>>16 == 3:
			st, err := parseStartup(body)
			if err != nil {
				conn.Write(errorResponse("FATAL", codeProtocolViolation, err.Error(), ""))
				return conn, nil, err
			}
			return conn, st, nil
		default:
			msg := fmt.Sprintf("unsupported frontend protocol %d.%d: gatehouse speaks protocol 3.0", code>>16, code&0xffff)
			conn.Write(errorResponse("FATAL", codeProtocolViolation, msg, ""))
			return conn, nil, errors.New(msg)
		}
	}
}

// parseStartup decodes a StartupMessage body (after the length).
func parseStartup(body []byte) (*startup, error) {
	st := &startup{params: map[string]string{}, minor: uint16(binary.BigEndian.Uint32(body) & 0xffff)}
	rest := body[4:]
	for len(rest) > 0 && rest[0] != 0 {
		k, r, ok := cstring(rest)
		if !ok {
			return nil, errors.New("invalid startup packet layout: expected terminator as last byte")
		}
		v, r, ok := cstring(r)
		if !ok {
			return nil, fmt.Errorf("invalid startup packet: missing value for parameter %q", k)
		}
		if strings.HasPrefix(k, "_pq_.") {
			st.unsupported = append(st.unsupported, k)
		} else {
			st.params[k] = v
		}
		rest = r
	}
	if len(rest) != 1 {
		return nil, errors.New("invalid startup packet layout: expected terminator as last byte")
	}
	if st.params["user"] == "" {
		return nil, errors.New("no PostgreSQL user name specified in startup packet")
	}
	return st, nil
}

// askPassword requests a cleartext password (the token) and reads it.
// https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-START-UP
func askPassword(conn net.Conn) (string, error) {
	req, _ := (&pgproto3.AuthenticationCleartextPassword{}).Encode(nil)
	if _, err := conn.Write(req); err != nil {
		return "", err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return "", err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
	if hdr[0] != 'p' || n < 1 || n > 64<<10 {
		conn.Write(errorResponse("FATAL", codeProtocolViolation, "expected a password message carrying the token", ""))
		return "", errors.New("expected password message")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		return "", err
	}
	tok, _, ok := cstring(body)
	if !ok {
		conn.Write(errorResponse("FATAL", codeProtocolViolation, "malformed password message", ""))
		return "", errors.New("malformed password message")
	}
	return strings.TrimSpace(tok), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func openErrorHint(err error) string {
	switch engine.CodeOf(err) {
	case engine.CodeBadToken:
		return "obtain a fresh token from your identity provider (or `gatehouse token` in dev mode) and pass it as the password"
	case engine.CodeNoAccess:
		return "ask a gatehouse admin to add you to the connection's access list"
	case engine.CodeUnknownTarget:
		return "use a connection name as the database name; `gatehouse connections list` shows them"
	}
	return ""
}

func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	_, isUnix := a.(*net.UnixAddr)
	return isUnix
}
