package postgres_test

// Tests for the intermittent relay hang seen under load: a session's first
// upstream reply never reached the client while both relay loops sat in
// frameReader.header(). The cause is pgconn's background reader: when a write
// during connect takes over 15 ms, pgconn starts a goroutine that reads the
// socket; if that goroutine has already received everything up to
// ReadyForQuery when the write returns, it loops into another Read and is
// still blocked there after Hijack. The next bytes PostgreSQL sends (the reply
// to the client's first statement) go to that goroutine's buffer, which nobody
// reads any more. pgconn.SyncConn before Hijack settles it.
//
// TestUpstreamBackgroundReaderHandover forces that interleaving
// deterministically; TestStressShortSessions runs the regression suite's
// connection pattern (connect, one statement, disconnect) many times, heavier
// with GATEHOUSE_STRESS=1.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/engine/enginetest"
	"github.com/gatehouse/gatehouse/internal/engine/postgres"
	"github.com/gatehouse/gatehouse/internal/pgtest"
)

// hangTimeout is how long a statement may take before the test calls the
// session hung and dumps goroutines. It is a hang detector, not a latency
// bound: statements here take milliseconds.
const hangTimeout = 10 * time.Second

// stressServe runs an engine on a loopback listener and returns its address.
func stressServe(t *testing.T, cfg postgres.Config) string {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	eng := postgres.New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); l.Close(); wg.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); eng.Serve(ctx, c) }()
		}
	}()
	return l.Addr().String()
}

// goroutines returns the stacks of all goroutines.
func goroutines() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// bgReaderWaiting reports whether a pgconn background reader goroutine is
// blocked reading its socket.
func bgReaderWaiting() bool {
	for _, g := range strings.Split(goroutines(), "\n\n") {
		if strings.Contains(g, "bgreader.(*BGReader).bgRead") && strings.Contains(g, "[IO wait") {
			return true
		}
	}
	return false
}

// unreadBytes is the receive queue of the loopback TCP socket local→remote
// (bytes the kernel holds that its owner has not read), from /proc/net/tcp.
func unreadBytes(local, remote net.Addr) (int, bool) {
	hexAddr := func(a net.Addr) string {
		ta := a.(*net.TCPAddr)
		ip := ta.IP.To4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ta.Port)
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, false
	}
	l, r := hexAddr(local), hexAddr(remote)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == l && f[2] == r {
			_, rx, _ := strings.Cut(f[4], ":")
			n, err := strconv.ParseUint(rx, 16, 32)
			return int(n), err == nil
		}
	}
	return 0, false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(hangTimeout); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// readFrame reads one backend message (type, length, body) and returns it raw.
func readFrame(r *bufio.Reader) ([]byte, error) {
	h := make([]byte, 5)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n < 4 || n > 1<<20 {
		return nil, fmt.Errorf("bad frame length %d", n)
	}
	msg := make([]byte, 1+n)
	copy(msg, h)
	_, err := io.ReadFull(r, msg[5:])
	return msg, err
}

// TestUpstreamBackgroundReaderHandover puts a proxy between the engine and a
// real PostgreSQL (trust auth) that reproduces, without depending on the
// scheduler, the interleaving a loaded machine produces by chance. The proxy
// forwards the engine's StartupMessage to PostgreSQL and keeps PostgreSQL's
// genuine greeting (AuthenticationOk … ReadyForQuery). To the engine it asks
// for a cleartext password that is too large for the socket buffers, so
// pgconn's write blocks, its 15 ms slow-write timer fires and the background
// reader starts. While the write is still blocked, the proxy delivers the
// greeting, waits until the background reader has consumed it and is blocked
// in its next Read, and only then takes the password; from there on it is a
// plain pipe. The first statement through the engine must get its answer.
func TestUpstreamBackgroundReaderHandover(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{Auth: "trust"})

	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.Close() })
	proxyErr := make(chan error, 1)
	go func() { proxyErr <- stallingProxy(pl, pg.Addr()) }()

	op := &enginetest.Opener{Token: token, Target: "orders", Checkpoint: &enginetest.Checkpoint{},
		Upstream: engine.Upstream{Address: pl.Addr().String(), Database: "postgres", Username: pg.User,
			Password: strings.Repeat("p", 16<<20), TLSMode: "disable"}}
	addr := stressServe(t, postgres.Config{Opener: op})

	ctx, cancel := context.WithTimeout(context.Background(), 2*hangTimeout)
	defer cancel()
	c, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://agent:%s@%s/orders?sslmode=disable", token, addr))
	if err != nil {
		select {
		case perr := <-proxyErr:
			t.Fatalf("connect: %v (proxy: %v)", err, perr)
		default:
			t.Fatalf("connect: %v", err)
		}
	}
	defer c.Close(context.Background())
	qctx, qcancel := context.WithTimeout(ctx, hangTimeout)
	defer qcancel()
	res, err := c.Exec(qctx, "SELECT 'first statement'").ReadAll()
	if err != nil {
		t.Fatalf("first statement through the engine got no answer (%v): pgconn's background reader "+
			"swallowed the upstream reply\n%s", err, goroutines())
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "first statement" {
		t.Fatalf("unexpected result %+v", res)
	}
}

// stallingProxy serves one connection as described on
// TestUpstreamBackgroundReaderHandover.
func stallingProxy(l net.Listener, pgAddr string) error {
	g, err := l.Accept()
	if err != nil {
		return err
	}
	defer g.Close()
	gr := bufio.NewReader(g)
	var hdr [4]byte
	if _, err := io.ReadFull(gr, hdr[:]); err != nil {
		return err
	}
	startup := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	copy(startup, hdr[:])
	if _, err := io.ReadFull(gr, startup[4:]); err != nil {
		return err
	}
	b, err := net.Dial("tcp", pgAddr)
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.Write(startup); err != nil {
		return err
	}
	br := bufio.NewReader(b)
	var greeting []byte
	for {
		m, err := readFrame(br)
		if err != nil {
			return fmt.Errorf("greeting: %w", err)
		}
		if m[0] == 'E' || m[0] == 'R' && binary.BigEndian.Uint32(m[5:]) != 0 {
			return fmt.Errorf("upstream did not accept trust auth: %q", m)
		}
		greeting = append(greeting, m...)
		if m[0] == 'Z' {
			break
		}
	}
	// AuthenticationCleartextPassword.
	if _, err := g.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3}); err != nil {
		return err
	}
	var ph [5]byte
	if _, err := io.ReadFull(gr, ph[:]); err != nil {
		return err
	}
	if ph[0] != 'p' {
		return fmt.Errorf("expected a password message, got %q", ph[0])
	}
	// The engine is now blocked writing the rest of the password.
	deadline := time.Now().Add(hangTimeout)
	for !bgReaderWaiting() {
		if time.Now().After(deadline) {
			return fmt.Errorf("pgconn's background reader never started")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := g.Write(greeting); err != nil {
		return err
	}
	// Consumed by the background reader, which is blocked in Read again.
	for {
		n, ok := unreadBytes(g.RemoteAddr(), g.LocalAddr())
		if !ok {
			time.Sleep(200 * time.Millisecond) // no /proc: give it time
			break
		}
		if n == 0 && bgReaderWaiting() {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("greeting never read")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := io.CopyN(io.Discard, gr, int64(binary.BigEndian.Uint32(ph[1:]))-4); err != nil {
		return err
	}
	done := make(chan error, 2)
	go func() { _, err := io.Copy(b, gr); done <- err }()
	go func() { _, err := io.Copy(g, br); done <- err }()
	return <-done
}

// stressTLS is a self-signed server certificate for 127.0.0.1.
func stressTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gatehouse-stress"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
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

// TestStressShortSessions runs pg_regress's pattern (new connection, a
// statement or two, disconnect) many times concurrently, with and without
// TLS, with CPU-burning goroutines competing for the processors. Every
// statement must be answered. GATEHOUSE_STRESS=1 runs many more sessions.
func TestStressShortSessions(t *testing.T) {
	pgtest.Need(t, shared)
	sessions, workers := 100, 8
	if os.Getenv("GATEHOUSE_STRESS") == "1" {
		sessions, workers = 3000, 32
		if n, err := strconv.Atoi(os.Getenv("GATEHOUSE_STRESS_SESSIONS")); err == nil {
			sessions = n
		}
	}
	db := shared.CreateDB(t)
	op := &enginetest.Opener{Token: token, Target: "orders", Checkpoint: &enginetest.Checkpoint{},
		Upstream: engine.Upstream{Address: shared.Addr(), Database: db, Username: shared.User, Password: shared.Password, TLSMode: "disable"}}
	addr := stressServe(t, postgres.Config{Opener: op, TLS: stressTLS(t)})

	stop := make(chan struct{})
	var burners sync.WaitGroup
	for range runtime.GOMAXPROCS(0) * 2 {
		burners.Add(1)
		go func() {
			defer burners.Done()
			x := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := range 1 << 16 {
					x += i
				}
			}
		}()
	}
	defer func() { close(stop); burners.Wait() }()

	var next, failed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(sessions) || failed.Load() > 0 {
					return
				}
				mode := "disable"
				if (int(i)+w)%2 == 0 {
					mode = "require"
				}
				if err := shortSession(addr, mode, i); err != nil {
					if failed.Add(1) == 1 {
						errs <- fmt.Errorf("session %d (sslmode=%s): %w", i, mode, err)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("%v\n%s", err, goroutines())
	}
}

// shortSession connects, runs a statement and disconnects.
func shortSession(addr, sslmode string, i int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	c, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://agent:%s@%s/orders?sslmode=%s", token, addr, sslmode))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close(context.Background())
	want := strconv.FormatInt(i, 10)
	res, err := c.Exec(ctx, "SELECT '"+want+"'").ReadAll()
	if err != nil {
		return fmt.Errorf("statement got no answer: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != want {
		return fmt.Errorf("unexpected result %+v", res)
	}
	return nil
}
