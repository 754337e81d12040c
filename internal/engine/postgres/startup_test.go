package postgres_test

// Protocol edge cases of the startup phase and the relay, driven with real
// clients (pgx, psql) or raw frames (pgproto3.Frontend) against the shared
// PostgreSQL server.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine/enginetest"
	"github.com/gatehouse/gatehouse/internal/engine/postgres"
	"github.com/gatehouse/gatehouse/internal/pgtest"
)

func init() {
	// The internal fuzz targets (fuzz_test.go, package postgres) reach the
	// server this package's TestMain starts through this hook.
	postgres.SharedServer = func() *pgtest.Server { return shared }
}

// serve runs an engine with cfg on a fresh loopback listener and returns its
// address. wrap, when set, wraps each accepted connection (to fake a remote
// address).
func serve(t *testing.T, cfg postgres.Config, wrap func(net.Conn) net.Conn) string {
	t.Helper()
	eng := postgres.New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if wrap != nil {
				c = wrap(c)
			}
			go eng.Serve(ctx, c)
		}
	}()
	return l.Addr().String()
}

// remoteConn reports a non-loopback peer address; the bytes still travel
// over loopback.
type remoteConn struct {
	net.Conn
	addr net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.addr }

func asRemote(c net.Conn) net.Conn {
	return remoteConn{Conn: c, addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 40000}}
}

// selfSigned returns a server TLS config for 127.0.0.1 / localhost.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gatehouse-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// raw is a client speaking frames directly.
type raw struct {
	t    *testing.T
	conn net.Conn
	fe   *pgproto3.Frontend
	pid  uint32
	key  []byte
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &raw{t: t, conn: c, fe: pgproto3.NewFrontend(c, c)}
}

// startup sends a StartupMessage and returns the responses up to the
// password request (or the error that ends the attempt).
func (r *raw) startup(version uint32, params map[string]string) []string {
	r.t.Helper()
	r.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: version, Parameters: params})
	r.flush()
	var got []string
	for {
		m := r.recv()
		got = append(got, m)
		if strings.HasPrefix(m, "AuthenticationCleartextPassword") || strings.HasPrefix(m, "ErrorResponse") || m == "EOF" || m == "RESET" {
			return got
		}
	}
}

// login completes authentication with tok and reads up to ReadyForQuery.
func (r *raw) login(tok string) []string {
	r.t.Helper()
	r.fe.Send(&pgproto3.PasswordMessage{Password: tok})
	r.flush()
	return r.untilReady()
}

// open is startup + login for database "orders" as a normal client.
func (r *raw) open() {
	r.t.Helper()
	if got := r.startup(pgproto3.ProtocolVersion30, map[string]string{"user": "agent", "database": "orders"}); !strings.HasPrefix(last(got), "AuthenticationCleartextPassword") {
		r.t.Fatalf("startup: %q", got)
	}
	if got := r.login(token); last(got) != "ReadyForQuery I" {
		r.t.Fatalf("login: %q", got)
	}
}

func (r *raw) flush() {
	r.t.Helper()
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads one message and describes it in a line; "EOF" when the server
// closed the connection.
func (r *raw) recv() string {
	r.t.Helper()
	m, err := r.fe.Receive()
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "EOF"
	}
	if errors.Is(err, syscall.ECONNRESET) {
		// The gateway closed with client bytes unread (after a FATAL).
		return "RESET"
	}
	if err != nil {
		r.t.Fatalf("receive: %v", err)
	}
	switch m := m.(type) {
	case *pgproto3.ErrorResponse:
		return fmt.Sprintf("ErrorResponse %s %s %s hint=%q", m.Severity, m.Code, m.Message, m.Hint)
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery " + string(m.TxStatus)
	case *pgproto3.CommandComplete:
		return "CommandComplete " + string(m.CommandTag)
	case *pgproto3.DataRow:
		var vals []string
		for _, v := range m.Values {
			vals = append(vals, string(v))
		}
		return "DataRow " + strings.Join(vals, ",")
	case *pgproto3.BackendKeyData:
		r.pid, r.key = m.ProcessID, append([]byte(nil), m.SecretKey...)
		return "BackendKeyData"
	case *pgproto3.ParameterStatus:
		return "ParameterStatus"
	case *pgproto3.NegotiateProtocolVersion:
		return fmt.Sprintf("NegotiateProtocolVersion %d %s", m.NewestMinorProtocol, strings.Join(m.UnrecognizedOptions, ","))
	case *pgproto3.RowDescription:
		var names []string
		for _, f := range m.Fields {
			names = append(names, string(f.Name))
		}
		return "RowDescription " + strings.Join(names, ",")
	case *pgproto3.ParameterDescription:
		return fmt.Sprintf("ParameterDescription %v", m.ParameterOIDs)
	case *pgproto3.FunctionCallResponse:
		return fmt.Sprintf("FunctionCallResponse %d", len(m.Result))
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3.")
}

// untilReady reads messages up to and including ReadyForQuery (or EOF).
func (r *raw) untilReady() []string {
	r.t.Helper()
	var got []string
	for {
		m := r.recv()
		if m == "ParameterStatus" {
			continue
		}
		got = append(got, m)
		if strings.HasPrefix(m, "ReadyForQuery") || m == "EOF" || m == "RESET" {
			return got
		}
	}
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// sendRaw writes bytes as they are.
func (r *raw) sendRaw(b []byte) {
	r.t.Helper()
	if _, err := r.conn.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func untyped(code uint32, extra ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(extra)))
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, extra...)
}

const (
	sslRequestCode    = 80877103
	gssencRequestCode = 80877104
	cancelRequestCode = 80877102
)

// cleanEnv is the environment for psql: no PG* variables of the host.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// psql runs psql against addr with conninfo options and returns its output.
func psql(t *testing.T, addr, opts, command string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("psql")
	if err != nil {
		pgtest.SkipOrFail(t, "psql not installed")
	}
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-X", "-A", "-t", "-w",
		fmt.Sprintf("host=%s port=%s user=agent dbname=orders sslrootcert=/nonexistent %s", host, port, opts), "-c", command)
	cmd.Env = cleanEnv("PGPASSWORD=" + token)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestGSSENCRequestAnsweredN(t *testing.T) {
	f := start(t)
	r := dialRaw(t, f.addr)
	r.sendRaw(untyped(gssencRequestCode))
	var b [1]byte
	if _, err := io.ReadFull(r.conn, b[:]); err != nil || b[0] != 'N' {
		t.Fatalf("GSSENCRequest answer %q, %v", b[0], err)
	}
	// libpq falls back to SSLRequest after a refused GSSENCRequest.
	r.sendRaw(untyped(sslRequestCode))
	if _, err := io.ReadFull(r.conn, b[:]); err != nil || b[0] != 'N' {
		t.Fatalf("SSLRequest answer %q, %v", b[0], err)
	}
	r.open()
	r.fe.Send(&pgproto3.Query{String: "select 41+1"})
	r.flush()
	if got := r.untilReady(); strings.Join(got, "|") != "RowDescription ?column?|DataRow 42|CommandComplete SELECT 1|ReadyForQuery I" {
		t.Fatalf("query after GSSENC refusal: %q", got)
	}

	out, err := psql(t, f.addr, "gssencmode=prefer sslmode=prefer", "select 'via-psql'")
	if err != nil || strings.TrimSpace(out) != "via-psql" {
		t.Fatalf("psql gssencmode=prefer: %v: %s", err, out)
	}
}

func TestTLS(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	withTLS := serve(t, postgres.Config{Opener: f.op, TLS: selfSigned(t)}, nil)
	plain := serve(t, postgres.Config{Opener: f.op}, nil)

	t.Run("pgx require", func(t *testing.T) {
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://agent:%s@%s/orders?sslmode=require", token, withTLS))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
			t.Fatalf("client connection is %T, want *tls.Conn", c.PgConn().Conn())
		}
		if _, err := c.Exec(ctx, "select 'tls-marker'"); err != nil {
			t.Fatal(err)
		}
		checked, _ := f.cp.Snapshot()
		if a := findAction(checked, "select 'tls-marker'"); a == nil || !a.Session.TLS {
			t.Fatalf("session of the TLS client not marked TLS: %+v", a)
		}
	})
	t.Run("psql require", func(t *testing.T) {
		out, err := psql(t, withTLS, "sslmode=require", `\conninfo`)
		if err != nil || !strings.Contains(out, "SSL connection") {
			t.Fatalf("psql sslmode=require: %v: %s", err, out)
		}
	})
	t.Run("pgx require without TLS config", func(t *testing.T) {
		_, err := pgx.Connect(ctx, fmt.Sprintf("postgres://agent:%s@%s/orders?sslmode=require", token, plain))
		if err == nil || !strings.Contains(err.Error(), "refused TLS") {
			t.Fatalf("want a TLS refusal, got %v", err)
		}
	})
	t.Run("psql require without TLS config", func(t *testing.T) {
		out, err := psql(t, plain, "sslmode=require", "select 1")
		if err == nil || !strings.Contains(out, "does not support SSL") {
			t.Fatalf("want libpq's SSL refusal, got %v: %s", err, out)
		}
	})
	t.Run("prefer without TLS config", func(t *testing.T) {
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://agent:%s@%s/orders?sslmode=prefer", token, plain))
		if err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		out, err := psql(t, plain, "sslmode=prefer", "select 'plain'")
		if err != nil || strings.TrimSpace(out) != "plain" {
			t.Fatalf("psql sslmode=prefer: %v: %s", err, out)
		}
	})
}

func findAction(as []access.Action, stmt string) *access.Action {
	for i := range as {
		if as[i].Statement == stmt {
			return &as[i]
		}
	}
	return nil
}

func TestPlaintextFromRemoteRefused(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	strict := serve(t, postgres.Config{Opener: f.op, TLS: selfSigned(t)}, asRemote)
	_, err := pgx.Connect(ctx, fmt.Sprintf("postgres://agent:%s@%s/orders?sslmode=disable", token, strict))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Hint, "sslmode=require") {
		t.Fatalf("plaintext token from 10.1.2.3: want 28000 with an sslmode=require hint, got %v", err)
	}
	if len(f.op.Params) != 0 {
		t.Fatalf("opener was called (token would have been checked) for a refused plaintext client")
	}
	// The same remote client over TLS is accepted.
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://agent:%s@%s/orders?sslmode=require", token, strict))
	if err != nil {
		t.Fatalf("TLS from remote: %v", err)
	}
	c.Close(ctx)

	lax := serve(t, postgres.Config{Opener: f.op, AllowPlaintextRemote: true}, asRemote)
	c, err = pgx.Connect(ctx, fmt.Sprintf("postgres://agent:%s@%s/orders?sslmode=disable", token, lax))
	if err != nil {
		t.Fatalf("AllowPlaintextRemote: %v", err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "select 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("query: %d %v", n, err)
	}
}

func TestNegotiateProtocolVersion(t *testing.T) {
	f := start(t)
	cases := []struct {
		name    string
		version uint32
		params  map[string]string
		want    string
	}{
		{"protocol 3.2", pgproto3.ProtocolVersion32, map[string]string{}, "NegotiateProtocolVersion 0 "},
		{"_pq_ option", pgproto3.ProtocolVersion30, map[string]string{"_pq_.something": "on"}, "NegotiateProtocolVersion 0 _pq_.something"},
		{"both", 3<<16 | 9, map[string]string{"_pq_.a": "1"}, "NegotiateProtocolVersion 0 _pq_.a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, f.addr)
			tc.params["user"], tc.params["database"] = "agent", "orders"
			got := r.startup(tc.version, tc.params)
			if len(got) != 2 || got[0] != tc.want || got[1] != "AuthenticationCleartextPassword" {
				t.Fatalf("startup answer %q, want [%q AuthenticationCleartextPassword]", got, tc.want)
			}
			if got := r.login(token); last(got) != "ReadyForQuery I" {
				t.Fatalf("login: %q", got)
			}
			r.fe.Send(&pgproto3.Query{String: "select 'negotiated'"})
			r.flush()
			if got := r.untilReady(); !strings.Contains(strings.Join(got, "|"), "DataRow negotiated") {
				t.Fatalf("query: %q", got)
			}
		})
	}
	for _, p := range f.op.Params {
		for k := range p {
			if strings.HasPrefix(k, "_pq_.") {
				t.Errorf("protocol option %q reached the opener as a session parameter", k)
			}
		}
	}
}

func TestStartupRefusals(t *testing.T) {
	f := start(t)
	t.Run("replication", func(t *testing.T) {
		r := dialRaw(t, f.addr)
		got := r.startup(pgproto3.ProtocolVersion30, map[string]string{"user": "agent", "database": "orders", "replication": "database"})
		if !strings.HasPrefix(last(got), "ErrorResponse FATAL 0A000") {
			t.Fatalf("replication=database: %q", got)
		}
	})
	t.Run("missing user", func(t *testing.T) {
		r := dialRaw(t, f.addr)
		got := r.startup(pgproto3.ProtocolVersion30, map[string]string{"database": "orders"})
		if !strings.HasPrefix(last(got), "ErrorResponse FATAL 08P01") || !strings.Contains(last(got), "user") {
			t.Fatalf("no user: %q", got)
		}
	})
	t.Run("empty token", func(t *testing.T) {
		_, err := pgx.Connect(context.Background(), f.dsn("orders", ""))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" || !strings.Contains(pe.Hint, "PGPASSWORD") {
			t.Fatalf("empty token: want 28P01 with a hint, got %v", err)
		}
	})
	t.Run("bad protocol", func(t *testing.T) {
		r := dialRaw(t, f.addr)
		r.sendRaw(untyped(2 << 16))
		if got := r.recv(); !strings.HasPrefix(got, "ErrorResponse FATAL 08P01") {
			t.Fatalf("protocol 2.0: %q", got)
		}
	})
}

func TestMessageTooLarge(t *testing.T) {
	f := start(t)
	addr := serve(t, postgres.Config{Opener: f.op, MaxMessageSize: 64 << 10}, nil)

	t.Run("header only", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.open()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		// Claim a 1 GiB Query and send none of it: the gateway must refuse
		// on the length alone, without reading or allocating the body.
		r.sendRaw([]byte{'Q', 0x40, 0, 0, 0})
		if got := r.recv(); !strings.HasPrefix(got, "ErrorResponse FATAL 54000") {
			t.Fatalf("oversized message: %q", got)
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
			t.Fatalf("gateway allocated %d bytes for a refused message", d)
		}
		if got := r.recv(); got != "EOF" {
			t.Fatalf("after FATAL: %q", got)
		}
	})
	t.Run("whole message", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.open()
		r.fe.Send(&pgproto3.Query{String: "select '" + strings.Repeat("x", 100<<10) + "'"})
		r.flush()
		if got := r.recv(); !strings.HasPrefix(got, "ErrorResponse FATAL 54000") {
			t.Fatalf("oversized query: %q", got)
		}
	})
	t.Run("copy data between limit and stream threshold", func(t *testing.T) {
		// CopyData is never inspected: above 256 KiB the gateway streams it,
		// so rows between MaxMessageSize and 256 KiB must stream too.
		r := dialRaw(t, addr)
		r.open()
		r.fe.Send(&pgproto3.Query{String: "COPY items FROM STDIN"})
		r.flush()
		if got := r.recv(); got != "CopyInResponse" {
			t.Fatalf("copy: %q", got)
		}
		r.fe.Send(&pgproto3.CopyData{Data: []byte("1\t" + strings.Repeat("c", 100<<10) + "\n")})
		r.fe.Send(&pgproto3.CopyDone{})
		r.flush()
		got := r.untilReady()
		if strings.HasPrefix(got[0], "ErrorResponse FATAL 54000") || got[0] == "RESET" {
			t.Fatalf("CopyData larger than MaxMessageSize but below the 256 KiB stream threshold is refused (%s); "+
				"session.go clientLoop streams 'd' only when n > streamThreshold", got[0])
		}
		if strings.Join(got, "|") != "CommandComplete COPY 1|ReadyForQuery I" {
			t.Fatalf("100 KiB CopyData with a 64 KiB limit: %q", got)
		}
	})
}

func TestUnknownMessageType(t *testing.T) {
	f := start(t)
	r := dialRaw(t, f.addr)
	r.open()
	r.sendRaw([]byte{'z', 0, 0, 0, 4})
	if got := r.recv(); !strings.HasPrefix(got, "ErrorResponse FATAL 08P01") {
		t.Fatalf("unknown message type: %q", got)
	}
	if got := r.recv(); got != "EOF" {
		t.Fatalf("after FATAL: %q", got)
	}
}

// waitActive waits until a backend of db runs a statement containing marker.
func waitActive(t *testing.T, db, marker string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, shared.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for i := 0; i < 500; i++ {
		var n int
		err := c.QueryRow(ctx, "select count(*) from pg_stat_activity where datname = $1 and state = 'active' and query like '%'||$2||'%' and pid <> pg_backend_pid()", db, marker).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("statement %q never became active", marker)
}

func sendCancel(t *testing.T, addr string, pid uint32, key []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg, _ := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: key}).Encode(nil)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	// The gateway closes the connection once the request is handled.
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("cancel connection: read %d bytes, %v", n, err)
	}
}

func TestCancelRequestKeys(t *testing.T) {
	f := start(t)
	db := f.op.Upstream.Database
	r := dialRaw(t, f.addr)
	r.open()
	if len(r.key) != 4 || r.pid == 0 {
		t.Fatalf("BackendKeyData pid=%d key=%x", r.pid, r.key)
	}

	r.fe.Send(&pgproto3.Query{String: "select pg_sleep(2), 'wrongkey'"})
	r.flush()
	waitActive(t, db, "wrongkey")
	bad := append([]byte(nil), r.key...)
	bad[0] ^= 0xff
	sendCancel(t, f.addr, r.pid, bad)
	sendCancel(t, f.addr, r.pid^1, r.key)
	if got := r.untilReady(); strings.Join(got, "|") != "RowDescription pg_sleep,?column?|DataRow ,wrongkey|CommandComplete SELECT 1|ReadyForQuery I" {
		t.Fatalf("a cancel with a wrong key or pid cancelled the query: %q", got)
	}

	r.fe.Send(&pgproto3.Query{String: "select pg_sleep(60), 'rightkey'"})
	r.flush()
	waitActive(t, db, "rightkey")
	sendCancel(t, f.addr, r.pid, r.key)
	got := r.untilReady()
	if !strings.Contains(strings.Join(got, "|"), "ErrorResponse ERROR 57014") || last(got) != "ReadyForQuery I" {
		t.Fatalf("the right key did not cancel: %q", got)
	}
}

func TestPipelinedSimpleQueriesOneWrite(t *testing.T) {
	f := start(t)
	r := dialRaw(t, f.addr)
	r.open()
	for i := 1; i <= 3; i++ {
		r.fe.Send(&pgproto3.Query{String: fmt.Sprintf("select %d as n", i)})
	}
	r.flush() // one write
	for i := 1; i <= 3; i++ {
		got := strings.Join(r.untilReady(), "|")
		if want := fmt.Sprintf("RowDescription n|DataRow %d|CommandComplete SELECT 1|ReadyForQuery I", i); got != want {
			t.Fatalf("query %d: %q, want %q", i, got, want)
		}
	}
	_, recs := f.cp.Snapshot()
	for i := 1; i <= 3; i++ {
		if !hasOutcome(recs, fmt.Sprintf("select %d as n", i), 1) {
			t.Errorf("no outcome with 1 row for query %d: %+v", i, recs)
		}
	}
}

func hasOutcome(recs []enginetest.Record, stmt string, rows int64) bool {
	for _, r := range recs {
		if r.Action.Statement == stmt && r.Outcome != nil && r.Outcome.Rows == rows && r.Outcome.Error == "" {
			return true
		}
	}
	return false
}

func TestExtendedWithFlush(t *testing.T) {
	f := start(t)
	r := dialRaw(t, f.addr)
	r.open()
	r.fe.SendParse(&pgproto3.Parse{Name: "s", Query: "select $1::int + 1 as m"})
	r.fe.SendDescribe(&pgproto3.Describe{ObjectType: 'S', Name: "s"})
	r.fe.Send(&pgproto3.Flush{})
	r.flush()
	// No Sync: these must arrive because of the Flush alone.
	for _, want := range []string{"ParseComplete", "ParameterDescription [23]", "RowDescription m"} {
		if got := r.recv(); got != want {
			t.Fatalf("after Flush: %q, want %q", got, want)
		}
	}
	r.fe.SendBind(&pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("41")}})
	r.fe.SendExecute(&pgproto3.Execute{})
	r.fe.SendSync(&pgproto3.Sync{})
	r.flush()
	if got := strings.Join(r.untilReady(), "|"); got != "BindComplete|DataRow 42|CommandComplete SELECT 1|ReadyForQuery I" {
		t.Fatalf("bind/execute: %q", got)
	}
	_, recs := f.cp.Snapshot()
	if !hasOutcome(recs, "select $1::int + 1 as m", 1) {
		t.Fatalf("outcome not recorded: %+v", recs)
	}
}

func TestPortalSuspendedDescribeClose(t *testing.T) {
	f := start(t)
	r := dialRaw(t, f.addr)
	r.open()
	const q = "select generate_series(1, 10) as g"
	r.fe.SendParse(&pgproto3.Parse{Name: "s1", Query: q})
	r.fe.SendBind(&pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1"})
	r.fe.SendDescribe(&pgproto3.Describe{ObjectType: 'P', Name: "p1"})
	for i := 0; i < 4; i++ {
		r.fe.SendExecute(&pgproto3.Execute{Portal: "p1", MaxRows: 3})
	}
	r.fe.SendClose(&pgproto3.Close{ObjectType: 'P', Name: "p1"})
	r.fe.SendClose(&pgproto3.Close{ObjectType: 'S', Name: "s1"})
	r.fe.SendSync(&pgproto3.Sync{})
	r.flush()
	got := strings.Join(r.untilReady(), "|")
	want := "ParseComplete|BindComplete|RowDescription g|" +
		"DataRow 1|DataRow 2|DataRow 3|PortalSuspended|" +
		"DataRow 4|DataRow 5|DataRow 6|PortalSuspended|" +
		"DataRow 7|DataRow 8|DataRow 9|PortalSuspended|" +
		"DataRow 10|CommandComplete SELECT 1|CloseComplete|CloseComplete|ReadyForQuery I"
	if got != want {
		t.Fatalf("transcript\n got %s\nwant %s", got, want)
	}
	// The closed statement is gone upstream too.
	r.fe.SendBind(&pgproto3.Bind{PreparedStatement: "s1"})
	r.fe.SendExecute(&pgproto3.Execute{})
	r.fe.SendSync(&pgproto3.Sync{})
	r.flush()
	if got := r.untilReady(); !strings.HasPrefix(got[0], "ErrorResponse ERROR 26000") {
		t.Fatalf("bind to closed statement: %q", got)
	}

	_, recs := f.cp.Snapshot()
	var sum int64
	n := 0
	for _, rec := range recs {
		if rec.Action.Statement == q && rec.Outcome != nil {
			sum += rec.Outcome.Rows
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no outcome recorded for the suspended portal: %+v", recs)
	}
	if sum != 10 {
		t.Fatalf("rows of a portal run with Execute max-rows are not summed: recorded %d over %d outcome(s), want 10 "+
			"(relay.go counts only the final CommandComplete tag, which reports the last batch)", sum, n)
	}
}

func TestFunctionCall(t *testing.T) {
	f := start(t)
	r := dialRaw(t, f.addr)
	r.open()
	oid := func(fn string) uint32 {
		r.fe.Send(&pgproto3.Query{String: "select '" + fn + "'::regproc::oid"})
		r.flush()
		got := r.untilReady()
		var n uint32
		if _, err := fmt.Sscanf(got[1], "DataRow %d", &n); err != nil {
			t.Fatalf("oid of %s: %q", fn, got)
		}
		return n
	}
	loCreat := oid("lo_creat")
	r.fe.Send(&pgproto3.FunctionCall{Function: loCreat, ArgFormatCodes: []uint16{1},
		Arguments: [][]byte{{0xff, 0xff, 0xff, 0xff}}, ResultFormatCode: 1})
	r.flush()
	if got := strings.Join(r.untilReady(), "|"); got != "FunctionCallResponse 4|ReadyForQuery I" {
		t.Fatalf("lo_creat fast-path: %q", got)
	}
	checkFunc := func(fnOid uint32) {
		t.Helper()
		stmt := fmt.Sprintf("-- fast-path function call, function oid %d", fnOid)
		_, recs := f.cp.Snapshot()
		for _, rec := range recs {
			if rec.Action.Kind == access.ActionFunctionCall && rec.Action.Statement == stmt && rec.Outcome != nil {
				if rec.Outcome.Error != "" {
					t.Fatalf("fast-path call of oid %d recorded as failed (%q) although it returned a result "+
						"(relay.go streams messages over 256 KiB, so a large FunctionCallResponse never settles the call)", fnOid, rec.Outcome.Error)
				}
				return
			}
		}
		t.Fatalf("no function_call outcome for oid %d: %+v", fnOid, recs)
	}
	checkFunc(loCreat)

	// A result larger than the relay's stream threshold.
	repeat := oid("repeat")
	r.fe.Send(&pgproto3.FunctionCall{Function: repeat, ArgFormatCodes: []uint16{0},
		Arguments: [][]byte{[]byte("y"), []byte("300000")}, ResultFormatCode: 0})
	r.flush()
	if got := strings.Join(r.untilReady(), "|"); got != "FunctionCallResponse 300000|ReadyForQuery I" {
		t.Fatalf("repeat fast-path: %q", got)
	}
	checkFunc(repeat)
}

func TestDenyKeepsUnnamedStatement(t *testing.T) {
	f := start(t)
	r := dialRaw(t, f.addr)
	r.open()
	r.fe.SendParse(&pgproto3.Parse{Query: "select 'kept' as k"})
	r.fe.SendSync(&pgproto3.Sync{})
	r.flush()
	if got := strings.Join(r.untilReady(), "|"); got != "ParseComplete|ReadyForQuery I" {
		t.Fatalf("parse: %q", got)
	}
	// A denied Parse of a named statement must leave the client's unnamed
	// statement alone, as a failed Parse does in PostgreSQL.
	r.fe.SendParse(&pgproto3.Parse{Name: "x", Query: "drop table items"})
	r.fe.SendSync(&pgproto3.Sync{})
	r.flush()
	if got := r.untilReady(); !strings.HasPrefix(got[0], "ErrorResponse ERROR 42501") || len(got) != 2 {
		t.Fatalf("denied parse: %q", got)
	}
	r.fe.SendBind(&pgproto3.Bind{})
	r.fe.SendExecute(&pgproto3.Execute{})
	r.fe.SendSync(&pgproto3.Sync{})
	r.flush()
	got := strings.Join(r.untilReady(), "|")
	if strings.Contains(got, "42501") {
		t.Fatalf("a denied Parse replaced the client's unnamed statement (session.go denyExtended injects an unnamed Parse/Bind); got %q", got)
	}
	if got != "BindComplete|DataRow kept|CommandComplete SELECT 1|ReadyForQuery I" {
		t.Fatalf("bind unnamed after a denial: %q", got)
	}
}
