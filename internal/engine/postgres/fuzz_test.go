package postgres

// Fuzz targets for everything that parses bytes from a client or an
// upstream. The seed corpus (f.Add plus testdata/fuzz, recorded from pgx and
// psql by TestCaptureFuzzSeeds) runs in every `go test`; run a target with
// e.g. `go test -run '^$' -fuzz FuzzStartupPacket ./internal/engine/postgres`.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/engine/enginetest"
	"github.com/gatehouse/gatehouse/internal/pgtest"
)

// SharedServer returns the PostgreSQL server shared by the test binary (nil
// when none runs). The external test package, which owns TestMain, sets it.
var SharedServer = func() *pgtest.Server { return nil }

const fuzzToken = "test-token-123" // the token in the recorded seeds

func FuzzCstring(f *testing.F) {
	for _, s := range []string{"", "\x00", "abc\x00rest", "abc", "\x00\x00", "user\x00agent\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, rest, ok := cstring(b)
		i := bytes.IndexByte(b, 0)
		if !ok {
			if i >= 0 || s != "" || rest != nil {
				t.Fatalf("cstring(%q) = %q, %q, false", b, s, rest)
			}
			return
		}
		if i != len(s) || s != string(b[:i]) || !bytes.Equal(rest, b[i+1:]) {
			t.Fatalf("cstring(%q) = %q, %q", b, s, rest)
		}
	})
}

func FuzzErrorField(f *testing.F) {
	f.Add(errorResponse("FATAL", codeProtocolViolation, "bad", "hint")[5:], byte('C'))
	f.Add(denyError(access.Decision{Verdict: access.Deny, Reason: "no", Policy: "p", Rule: "r"}), byte('M'))
	f.Add([]byte("SERROR\x00C42501\x00Mdenied\x00\x00"), byte('M'))
	f.Add([]byte("SERROR\x00C42501"), byte('C'))
	f.Add([]byte{}, byte('C'))
	f.Add([]byte("\x00C12345\x00"), byte('C'))
	f.Fuzz(func(t *testing.T, body []byte, field byte) {
		v := errorField(body, field)
		if strings.IndexByte(v, 0) >= 0 {
			t.Fatalf("field value %q contains NUL", v)
		}
		_ = errorSummary(body)
		// Differential check against pgx's decoder where both are defined:
		// a well-formed body in which each field appears once.
		var er pgproto3.ErrorResponse
		if er.Decode(body) != nil || hasDuplicateFields(body) {
			return
		}
		want, known := map[byte]string{'S': er.Severity, 'V': er.SeverityUnlocalized, 'C': er.Code, 'M': er.Message,
			'D': er.Detail, 'H': er.Hint, 'W': er.Where, 'R': er.Routine}[field]
		if known && v != want {
			t.Fatalf("errorField(%q, %q) = %q, pgproto3 decodes %q", body, field, v, want)
		}
	})
}

func hasDuplicateFields(body []byte) bool {
	seen := map[byte]bool{}
	for len(body) > 0 && body[0] != 0 {
		if seen[body[0]] {
			return true
		}
		seen[body[0]] = true
		_, rest, ok := cstring(body[1:])
		if !ok {
			return false
		}
		body = rest
	}
	return false
}

func FuzzTagRows(f *testing.F) {
	for _, tag := range []string{"SELECT 5\x00", "INSERT 0 5\x00", "UPDATE 0\x00", "COPY 5000\x00", "CREATE TABLE\x00",
		"BEGIN\x00", "", "SELECT 99999999999999999999\x00", "FETCH 3", "MOVE 1\x00\x00"} {
		f.Add(byte('C'), []byte(tag))
	}
	f.Add(byte('s'), []byte{})
	f.Add(byte('I'), []byte{})
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		n, text := tagRows(typ, body), tagText(typ, body)
		if typ != 'C' {
			if n != 0 || text != "" {
				t.Fatalf("tagRows(%q) = %d, %q for a non-CommandComplete", typ, n, text)
			}
			return
		}
		if strings.HasSuffix(text, "\x00") {
			t.Fatalf("tag text %q keeps its terminator", text)
		}
		last := text[strings.LastIndexByte(text, ' ')+1:]
		digits := last != "" && strings.Trim(last, "0123456789") == ""
		if v, err := strconv.ParseInt(last, 10, 64); digits && err == nil && strings.Contains(text, " ") {
			// pgx's own parser agrees on every tag PostgreSQL sends.
			if n != v || n != pgconn.NewCommandTag(text).RowsAffected() {
				t.Fatalf("tagRows(%q) = %d, want %d", text, n, v)
			}
			return
		}
		if digits && strings.Contains(text, " ") {
			return // overflows int64: any answer is a guess
		}
		if n != -1 && !(strings.HasPrefix(last, "+") || strings.HasPrefix(last, "-")) {
			t.Fatalf("tagRows(%q) = %d for a tag without a row count", text, n)
		}
	})
}

func FuzzParseStartup(f *testing.F) {
	f.Add([]byte("\x00\x03\x00\x00user\x00agent\x00database\x00orders\x00\x00"))
	f.Add([]byte("\x00\x03\x00\x02user\x00u\x00_pq_.x\x00y\x00\x00"))
	f.Add([]byte("\x00\x03\x00\x00user\x00\x00\x00"))
	f.Add([]byte("\x00\x03\x00\x00user\x00a"))
	f.Add([]byte("\x00\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) < 4 {
			return // handshake guarantees the 4-byte version
		}
		st, err := parseStartup(body)
		if err != nil {
			return
		}
		if st.params["user"] == "" {
			t.Fatal("accepted a startup without user")
		}
		for k, v := range st.params {
			if strings.HasPrefix(k, "_pq_.") || strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) || k == "" {
				t.Fatalf("bad parameter %q=%q", k, v)
			}
		}
		for _, o := range st.unsupported {
			if !strings.HasPrefix(o, "_pq_.") {
				t.Fatalf("unsupported option %q", o)
			}
		}
		if binary.BigEndian.Uint32(body) != pgproto3.ProtocolVersion30 {
			return
		}
		var sm pgproto3.StartupMessage
		if sm.Decode(body) != nil {
			return
		}
		for k, v := range sm.Parameters {
			if !strings.HasPrefix(k, "_pq_.") && st.params[k] != v {
				t.Fatalf("parameter %q = %q, pgproto3 decodes %q", k, st.params[k], v)
			}
		}
	})
}

// loopbackPair returns a function making connected loopback TCP pairs.
func loopbackPair(f *testing.F) func(t *testing.T) (client, server net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	return func(t *testing.T) (net.Conn, net.Conn) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	}
}

// serveOne runs e.Serve on server and returns a channel closed when it
// returns.
func serveOne(e *Engine, server net.Conn) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Serve(context.Background(), server)
	}()
	return done
}

func waitServe(t *testing.T, done chan struct{}, input []byte) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Serve did not return after the client closed; input %q", input)
	}
}

func fuzzTLS(f *testing.F) *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// FuzzStartupPacket writes arbitrary bytes to a fresh connection, half-closes
// it and checks that the engine answers with well-formed startup-phase
// responses (or nothing) and then closes. The upstream is a closed port, so a
// valid startup ends in 08001 without leaving the host.
func FuzzStartupPacket(f *testing.F) {
	startupMsg := func(version uint32, kv ...string) []byte {
		b := binary.BigEndian.AppendUint32(nil, version)
		for _, s := range kv {
			b = append(append(b, s...), 0)
		}
		b = append(b, 0)
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(b)+4)), b...)
	}
	untypedReq := func(code uint32) []byte {
		return binary.BigEndian.AppendUint32([]byte{0, 0, 0, 8}, code)
	}
	password := append([]byte{'p', 0, 0, 0, byte(4 + len(fuzzToken) + 1)}, fuzzToken+"\x00"...)
	valid := startupMsg(3<<16, "user", "agent", "database", "orders")
	f.Add(append(append([]byte{}, valid...), password...))
	f.Add(append(untypedReq(codeSSLRequest), valid...))
	f.Add(append(untypedReq(codeGSSENCRequest), append(untypedReq(codeSSLRequest), valid...)...))
	f.Add(untypedReq(codeSSLRequest))
	f.Add(append(untypedReq(codeSSLRequest), 0x16, 0x03, 0x01, 0x00, 0x05)) // a TLS record header after 'S'
	f.Add(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte{0, 0, 0, 16}, codeCancelRequest), 1234)[:12])
	f.Add(append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte{0, 0, 0, 16}, codeCancelRequest), 1234), 1, 2, 3, 4))
	f.Add(append(startupMsg(3<<16|2, "user", "u", "_pq_.compression", "on"), password...))
	f.Add(startupMsg(3<<16, "user", "u", "replication", "database"))
	f.Add(startupMsg(3<<16, "database", "orders"))
	f.Add(startupMsg(2 << 16))
	f.Add(append(startupMsg(3<<16, "user", "u"), 'p', 0, 0, 0, 5, 0))        // empty token
	f.Add(append(startupMsg(3<<16, "user", "u"), 'p', 0, 0, 0, 4))           // password without body
	f.Add(append(startupMsg(3<<16, "user", "u"), 'p', 0, 1, 0, 4, 'x', 'y')) // password longer than sent
	f.Add(append(startupMsg(3<<16, "user", "u"), 'Q', 0, 0, 0, 5, 0))        // not a password
	f.Add(valid[:len(valid)-3])                                              // truncated
	f.Add([]byte{0, 0, 0, 3})
	f.Add([]byte{0, 0, 0x27, 0x11, 0, 3, 0, 0}) // longer than MAX_STARTUP_PACKET_LENGTH
	f.Add([]byte{})

	pair := loopbackPair(f)
	// Port of a listener that is closed again: connecting is refused.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	closed.Close()
	op := &enginetest.Opener{Token: fuzzToken, Target: "orders", Checkpoint: &enginetest.Checkpoint{},
		Upstream: engine.Upstream{Address: closed.Addr().String(), Database: "x", Username: "x", Password: "x", TLSMode: "disable"}}
	e := New(Config{Opener: op, TLS: fuzzTLS(f), Logger: quietLogger()})

	f.Fuzz(func(t *testing.T, in []byte) {
		c, s := pair(t)
		defer c.Close()
		done := serveOne(e, s)
		c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(c)
		reset := errors.Is(err, syscall.ECONNRESET)
		if err != nil && !reset {
			t.Fatalf("reading the engine's answer: %v (input %q, got %q)", err, in, out)
		}
		if err := checkStartupOutput(out, reset); err != nil {
			t.Fatalf("%v\ninput  %q\noutput %q", err, in, out)
		}
		waitServe(t, done, in)
	})
}

// checkStartupOutput validates what the engine sent during the startup
// phase: single-byte 'N' answers to SSL/GSSENC requests, an 'S' after which
// the stream is TLS, then NegotiateProtocolVersion, the cleartext password
// request and at most one FATAL ErrorResponse, which ends the output.
// truncated allows the last message to be cut short (connection reset).
func checkStartupOutput(out []byte, truncated bool) error {
	for len(out) > 0 && out[0] == 'N' {
		out = out[1:]
	}
	if len(out) > 0 && out[0] == 'S' {
		return nil // the rest is a TLS handshake
	}
	sawAuth, sawNegotiate := false, false
	for len(out) > 0 {
		if len(out) < 5 {
			if truncated {
				return nil
			}
			return fmt.Errorf("trailing %d bytes are not a message", len(out))
		}
		typ, n := out[0], int(binary.BigEndian.Uint32(out[1:]))
		if n < 4 {
			return fmt.Errorf("message %q with length %d", typ, n)
		}
		if len(out) < 1+n {
			if truncated {
				return nil
			}
			return fmt.Errorf("message %q of length %d truncated at %d", typ, n, len(out)-1)
		}
		body := out[5 : 1+n]
		out = out[1+n:]
		switch typ {
		case 'v':
			var m pgproto3.NegotiateProtocolVersion
			if err := m.Decode(body); err != nil || sawNegotiate || sawAuth || m.NewestMinorProtocol != 0 {
				return fmt.Errorf("bad NegotiateProtocolVersion %+v (%v)", m, err)
			}
			for _, o := range m.UnrecognizedOptions {
				if !strings.HasPrefix(o, "_pq_.") {
					return fmt.Errorf("NegotiateProtocolVersion lists %q", o)
				}
			}
			sawNegotiate = true
		case 'R':
			if !bytes.Equal(body, []byte{0, 0, 0, 3}) || sawAuth {
				return fmt.Errorf("unexpected authentication request %q", body)
			}
			sawAuth = true
		case 'E':
			var m pgproto3.ErrorResponse
			if err := m.Decode(body); err != nil {
				return fmt.Errorf("malformed ErrorResponse: %v", err)
			}
			if m.Severity != "FATAL" || m.Message == "" {
				return fmt.Errorf("ErrorResponse %+v is not a FATAL with a message", m)
			}
			switch m.Code {
			case codeProtocolViolation, codeInvalidPassword, codeInvalidAuthSpec, codeInvalidCatalog, codeCannotConnect, codeFeatureNotSupported:
			default:
				return fmt.Errorf("unexpected SQLSTATE %s: %s", m.Code, m.Message)
			}
			if len(out) > 0 {
				return fmt.Errorf("%d bytes after a FATAL error", len(out))
			}
		default:
			return fmt.Errorf("unexpected message type %q in the startup phase", typ)
		}
	}
	return nil
}

// FuzzClientMessages opens a real session through the engine to the shared
// PostgreSQL server and sends arbitrary bytes as the client's messages. The
// engine must never panic or hang; everything the client gets back must be
// well-formed, and a FATAL may only be a protocol violation (08P01, from the
// gateway or from PostgreSQL about a forwarded body) or a size limit (54000).
// Outcomes may only be recorded for actions the checkpoint allowed.
//
// A full session per input costs a SCRAM login and a backend fork (a few
// milliseconds); that keeps the target honest about the tracker, which only
// a real upstream exercises. Inputs run as a non-superuser role with
// statement and lock timeouts, so fuzzed SQL cannot harm the host or stall.
func FuzzClientMessages(f *testing.F) {
	query := func(q string) []byte { return appendMsg(nil, 'Q', append([]byte(q), 0)) }
	f.Add(query("select 1"))
	f.Add(query("select 1; select 'deny' ; select 2"))
	f.Add(query("copy (select 1) to stdout"))
	f.Add(append(query("copy fz from stdin"), appendMsg(appendMsg(nil, 'd', []byte("1\n")), 'c', nil)...))
	ext := appendMsg(nil, 'P', []byte("s\x00select $1::int\x00\x00\x00"))
	ext = appendMsg(ext, 'B', []byte("p\x00s\x00\x00\x00\x00\x01\x00\x00\x00\x017\x00\x00"))
	ext = appendMsg(ext, 'D', []byte("Pp\x00"))
	ext = appendMsg(ext, 'E', []byte("p\x00\x00\x00\x00\x01"))
	ext = appendMsg(ext, 'E', []byte("p\x00\x00\x00\x00\x00"))
	ext = appendMsg(ext, 'C', []byte("Pp\x00"))
	ext = appendMsg(ext, 'S', nil)
	f.Add(ext)
	f.Add(append(appendMsg(nil, 'P', []byte("\x00select 'deny'\x00\x00\x00")), appendMsg(appendMsg(nil, 'B', make([]byte, 8)), 'S', nil)...))
	f.Add(appendMsg(nil, 'F', []byte{0, 0, 0x03, 0xbd, 0, 1, 0, 1, 0, 1, 0, 0, 0, 4, 0, 6, 0, 0, 0, 1}))
	f.Add([]byte{'B', 0, 0, 0, 5, 0, 'S', 0, 0, 0, 4})
	f.Add([]byte{'C', 0, 0, 0, 4})
	f.Add([]byte{'z', 0, 0, 0, 4})
	f.Add([]byte{'Q', 0, 0, 0, 3})
	f.Add([]byte{'Q', 0, 0, 0, 9, 's'})
	f.Add([]byte{'X', 0, 0, 0, 4})

	srv := SharedServer()
	if srv == nil {
		pgtest.SkipOrFail(f, "PostgreSQL binaries not found in %s (set PG_BINDIR)", pgtest.BinDir())
	}
	const role, pass = "gh_fuzz", "gh-fuzz-secret"
	srv.Exec(f, "postgres", `DO $$BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gh_fuzz') THEN
			CREATE ROLE gh_fuzz LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '`+pass+`';
		END IF; END$$`)
	srv.Exec(f, "postgres", "ALTER ROLE "+role+" SET statement_timeout = '2s'")
	srv.Exec(f, "postgres", "ALTER ROLE "+role+" SET lock_timeout = '1s'")
	db := srv.CreateDB(f)
	srv.Exec(f, "postgres", "ALTER DATABASE "+db+" OWNER TO "+role)
	srv.Exec(f, db, "CREATE TABLE fz (id int); ALTER TABLE fz OWNER TO "+role)
	// The recorded seeds use the engine tests' items table.
	srv.Exec(f, db, "CREATE TABLE items (id int primary key, name text); ALTER TABLE items OWNER TO "+role)
	upstream := engine.Upstream{Address: srv.Addr(), Database: db, Username: role, Password: pass, TLSMode: "disable"}
	pair := loopbackPair(f)

	f.Fuzz(func(t *testing.T, in []byte) {
		cp := &enginetest.Checkpoint{Deny: func(s string) string {
			if strings.Contains(strings.ToLower(s), "deny") {
				return "denied by the fuzz policy"
			}
			return ""
		}}
		op := &enginetest.Opener{Token: fuzzToken, Target: "orders", Checkpoint: cp, Upstream: upstream}
		e := New(Config{Opener: op, MaxMessageSize: 1 << 20, Logger: quietLogger()})
		c, s := pair(t)
		defer c.Close()
		done := serveOne(e, s)
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "agent", "database": "orders"}})
		fe.Send(&pgproto3.PasswordMessage{Password: fuzzToken})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("startup: %v", err)
			}
			if e, ok := m.(*pgproto3.ErrorResponse); ok {
				t.Fatalf("startup: %s %s", e.Code, e.Message)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}

		// Complete frames get a trailer whose answer marks the end: two
		// Syncs (the first may be eaten by COPY IN or an error state) and
		// a marker query. A partial last frame is followed by EOF instead.
		const marker = "fuzz-end-marker"
		trailer := appendMsg(appendMsg(query("select '"+marker+"'"), 'S', nil), 'S', nil)
		trailer = append(trailer[len(trailer)-10:], trailer[:len(trailer)-10]...) // Sync, Sync, Query
		complete := framesComplete(in)
		go func() {
			c.Write(in)
			if complete {
				c.Write(trailer)
			} else {
				c.(*net.TCPConn).CloseWrite()
			}
		}()
		fatal, sawMarker := false, false
		for {
			m, err := fe.Receive()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("no answer within 20s (complete=%v) to %q", complete, in)
				}
				break // EOF or reset: the session ended
			}
			if fatal {
				t.Fatalf("message %T after a FATAL error; input %q", m, in)
			}
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				if m.Severity == "FATAL" {
					fatal = true
					if m.Code != codeProtocolViolation && m.Code != codeProgramLimit {
						t.Fatalf("FATAL %s %s; input %q", m.Code, m.Message, in)
					}
				}
			case *pgproto3.DataRow:
				if len(m.Values) == 1 && string(m.Values[0]) == marker {
					sawMarker = true
				}
			case *pgproto3.ReadyForQuery:
				if sawMarker {
					c.Close()
				}
			}
		}
		c.Close()
		if complete && !fatal && !sawMarker && !hasFrame(in, 'X') {
			// Nothing ended the session, so the marker query must have
			// been answered: its absence means the relay lost track.
			t.Fatalf("session ended without answering the trailer; input %q", in)
		}
		waitServe(t, done, in)
		checkRecords(t, cp, in)
	})
}

// checkRecords verifies that outcomes were recorded only for allowed actions
// the checkpoint saw, and never as executed for a denied one.
func checkRecords(t *testing.T, cp *enginetest.Checkpoint, in []byte) {
	t.Helper()
	checked, recs := cp.Snapshot()
	seen := map[string]bool{}
	for _, a := range checked {
		seen[string(a.Kind)+"\x00"+a.Statement] = true
	}
	for _, r := range recs {
		if !seen[string(r.Action.Kind)+"\x00"+r.Action.Statement] {
			t.Fatalf("outcome recorded for an unchecked action %+v; input %q", r.Action, in)
		}
		if r.Outcome != nil && !r.Decision.Allowed() {
			t.Fatalf("outcome recorded for a denied action %+v; input %q", r.Action, in)
		}
	}
}

func appendMsg(b []byte, typ byte, body []byte) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)+4))
	return append(b, body...)
}

// hasFrame reports whether the whole messages in b include one of type typ.
func hasFrame(b []byte, typ byte) bool {
	for len(b) >= 5 {
		n := binary.BigEndian.Uint32(b[1:])
		if b[0] == typ {
			return true
		}
		if n < 4 || uint64(n)+1 > uint64(len(b)) {
			return false
		}
		b = b[1+n:]
	}
	return false
}

// framesComplete reports whether b is a sequence of whole messages.
func framesComplete(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 5 {
			return false
		}
		n := binary.BigEndian.Uint32(b[1:])
		if n < 4 || uint64(n)+1 > uint64(len(b)) {
			return false
		}
		b = b[1+n:]
	}
	return true
}

// recordingConn keeps every byte the server reads from the client.
type recordingConn struct {
	net.Conn
	buf *[]byte
}

func (c recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	*c.buf = append(*c.buf, p[:n]...)
	return n, err
}

// TestCaptureFuzzSeeds records what real clients (pgx, psql) send and
// writes it as seed corpus for FuzzStartupPacket (up to and including the
// password message) and FuzzClientMessages (everything after it). It only
// runs with GATEHOUSE_CAPTURE_SEEDS=1, to regenerate testdata/fuzz.
func TestCaptureFuzzSeeds(t *testing.T) {
	if os.Getenv("GATEHOUSE_CAPTURE_SEEDS") != "1" {
		t.Skip("set GATEHOUSE_CAPTURE_SEEDS=1 to regenerate the fuzz seed corpus")
	}
	srv := SharedServer()
	if srv == nil {
		pgtest.SkipOrFail(t, "no PostgreSQL server")
	}
	psqlBin, err := exec.LookPath("psql")
	if err != nil {
		pgtest.SkipOrFail(t, "psql not installed")
	}
	db := srv.CreateDB(t)
	srv.Exec(t, db, "CREATE TABLE items (id int primary key, name text)")
	op := &enginetest.Opener{Token: fuzzToken, Target: "orders", Checkpoint: &enginetest.Checkpoint{Deny: func(s string) string {
		if strings.Contains(strings.ToLower(s), "drop table") {
			return "DROP TABLE is not allowed for agents"
		}
		return ""
	}}, Upstream: engine.Upstream{Address: srv.Addr(), Database: db, Username: srv.User, Password: srv.Password, TLSMode: "disable"}}
	eng := New(Config{Opener: op, Logger: quietLogger()})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	// capture serves exactly one connection made by client and returns the
	// bytes the client sent.
	capture := func(client func()) []byte {
		var buf []byte
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := l.Accept()
			if err != nil {
				return
			}
			eng.Serve(context.Background(), recordingConn{Conn: c, buf: &buf})
		}()
		client()
		<-done
		return buf
	}
	ctx := context.Background()
	pgxSession := func(dsnOpts string, work func(c *pgx.Conn)) func() {
		return func() {
			c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://agent:%s@%s/orders?%s", fuzzToken, addr, dsnOpts))
			if err != nil {
				t.Fatal(err)
			}
			work(c)
			c.Close(ctx)
		}
	}
	psqlSession := func(command string) func() {
		return func() {
			host, port, _ := net.SplitHostPort(addr)
			cmd := exec.Command(psqlBin, "-X", "-w", "-c", command,
				fmt.Sprintf("host=%s port=%s user=agent dbname=orders sslmode=prefer gssencmode=prefer", host, port))
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "PG") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, "PGPASSWORD="+fuzzToken)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("psql %q: %v: %s", command, err, out)
			}
		}
	}
	lo := filepath.Join(t.TempDir(), "lo.txt")
	os.WriteFile(lo, []byte("large object contents"), 0o600)
	sessions := map[string]func(){
		"pgx_simple": pgxSession("sslmode=disable&application_name=seed", func(c *pgx.Conn) {
			c.Exec(ctx, "insert into items values (1, 'a'); select * from items", pgx.QueryExecModeSimpleProtocol)
			c.Exec(ctx, "drop table items", pgx.QueryExecModeSimpleProtocol)
		}),
		"pgx_extended": pgxSession("sslmode=disable", func(c *pgx.Conn) {
			var s string
			c.QueryRow(ctx, "select name from items where id = $1", 1).Scan(&s)
			c.Exec(ctx, "insert into items values ($1, $2)", 2, "b")
			c.Exec(ctx, "drop table items")
		}),
		"pgx_batch_tx": pgxSession("sslmode=disable", func(c *pgx.Conn) {
			tx, _ := c.Begin(ctx)
			b := &pgx.Batch{}
			b.Queue("insert into items values ($1, 'p')", 20)
			b.Queue("select count(*) from items")
			tx.SendBatch(ctx, b).Close()
			tx.Commit(ctx)
		}),
		"pgx_copy": pgxSession("sslmode=disable", func(c *pgx.Conn) {
			c.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "name"}, pgx.CopyFromRows([][]any{{30, "x"}, {31, "y"}}))
			var sb strings.Builder
			c.PgConn().CopyTo(ctx, &sb, "COPY items TO STDOUT")
			c.PgConn().CopyFrom(ctx, strings.NewReader("40\tz\n"), "COPY items FROM STDIN")
		}),
		"psql_query":     psqlSession("select 1; select 2"),
		"psql_lo_import": psqlSession(`\lo_import ` + lo),
	}
	dir := filepath.Join("testdata", "fuzz")
	for name, client := range sessions {
		b := capture(client)
		startup, rest, ok := splitStartup(b)
		if !ok {
			t.Fatalf("%s: no password message in %q", name, b)
		}
		writeSeed(t, filepath.Join(dir, "FuzzStartupPacket"), name, startup)
		writeSeed(t, filepath.Join(dir, "FuzzClientMessages"), name, rest)
	}
}

// splitStartup splits a client's byte stream after its password message.
func splitStartup(b []byte) (startup, rest []byte, ok bool) {
	i := 0
	for i+8 <= len(b) { // untyped packets up to the StartupMessage
		n := int(binary.BigEndian.Uint32(b[i:]))
		code := binary.BigEndian.Uint32(b[i+4:])
		i += n
		if code>>16 == 3 {
			break
		}
	}
	for i+5 <= len(b) {
		typ, n := b[i], int(binary.BigEndian.Uint32(b[i+1:]))
		i += 1 + n
		if typ == 'p' && i <= len(b) {
			return b[:i], b[i:], true
		}
	}
	return nil, nil, false
}

func writeSeed(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
