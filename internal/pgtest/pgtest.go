// Package pgtest starts throwaway PostgreSQL servers on loopback ports for
// tests, using the machine's PostgreSQL binaries (initdb, pg_ctl). Each server
// has its own data directory and is stopped when the test ends.
//
// When the binaries are missing the test is skipped, unless the environment
// sets GATEHOUSE_TEST_REQUIRE=1 (CI does), in which case it fails.
package pgtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where PostgreSQL's server binaries live; PG_BINDIR overrides it.
func BinDir() string {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d
	}
	return "/usr/lib/postgresql/15/bin"
}

// Required reports whether tests must fail (not skip) when a real server
// cannot be started.
func Required() bool { return os.Getenv("GATEHOUSE_TEST_REQUIRE") == "1" }

// SkipOrFail skips the test, or fails it when servers are required.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("GATEHOUSE_TEST_REQUIRE=1: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Options configure a server.
type Options struct {
	// Auth is the pg_hba method for TCP connections: "scram-sha-256"
	// (default), "md5" or "trust".
	Auth string
	// Password of the superuser "postgres"; default "pgtest-secret".
	Password string
	// Conf lines appended to postgresql.conf.
	Conf []string
	// TLS turns on ssl with a certificate for 127.0.0.1 signed by a fresh
	// CA (Server.CAPEM), so clients can test require and verify-full.
	TLS bool
}

// Server is a running throwaway PostgreSQL.
type Server struct {
	Host     string
	Port     int
	User     string // superuser name
	Password string
	Dir      string // data directory
	CAPEM    []byte // CA certificate (PEM) when Options.TLS
	sockDir  string
	run      func(args ...string) *exec.Cmd
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DSN returns a URL connecting as the superuser to db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", s.User, s.Password, s.Addr(), db)
}

// Exec runs SQL as the superuser against db.
func (s *Server) Exec(t testing.TB, db, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		t.Fatalf("pgtest: connect %s: %v", db, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start initialises and starts a server; it is stopped by t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := os.Stat(filepath.Join(BinDir(), "initdb")); err != nil {
		SkipOrFail(t, "PostgreSQL binaries not found in %s (set PG_BINDIR)", BinDir())
	}
	s, stop, err := StartServer(opts)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(stop)
	return s
}

// Shared starts one server for a whole test binary: call it from TestMain.
// It returns the exit code of m.Run. When the binaries are missing, *srv
// stays nil and tests that need it call Need.
func Shared(m *testing.M, srv **Server, opts Options) int {
	if _, err := os.Stat(filepath.Join(BinDir(), "initdb")); err != nil {
		return m.Run()
	}
	s, stop, err := StartServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	*srv = s
	defer stop()
	return m.Run()
}

// Need skips or fails t when the shared server is not running.
func Need(t testing.TB, s *Server) {
	t.Helper()
	if s == nil {
		SkipOrFail(t, "PostgreSQL binaries not found in %s (set PG_BINDIR)", BinDir())
	}
}

var dbSeq struct {
	sync.Mutex
	n int
}

// CreateDB creates a fresh database with a unique name and returns it.
func (s *Server) CreateDB(t testing.TB) string {
	t.Helper()
	dbSeq.Lock()
	dbSeq.n++
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.n)
	dbSeq.Unlock()
	s.Exec(t, "postgres", "CREATE DATABASE "+name)
	return name
}

// StartServer initialises and starts a server; stop removes it.
func StartServer(opts Options) (_ *Server, stop func(), err error) {
	if opts.Auth == "" {
		opts.Auth = "scram-sha-256"
	}
	if opts.Password == "" {
		opts.Password = "pgtest-secret"
	}
	base, err := os.MkdirTemp("", "gatehouse-pgtest-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := []func(){func() { os.RemoveAll(base) }}
	stop = func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	s := &Server{Host: "127.0.0.1", User: "postgres", Password: opts.Password,
		Dir: filepath.Join(base, "data"), sockDir: filepath.Join(base, "sock")}
	s.run = func(args ...string) *exec.Cmd { return exec.Command(args[0], args[1:]...) }
	// initdb refuses to run as root: run the binaries as the postgres user.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, nil, fmt.Errorf("running as root and no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			return nil, nil, err
		}
		s.run = func(args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return nil, nil, err
	}
	pwfile := filepath.Join(base, "pw")
	mk := s.run("sh", "-c", fmt.Sprintf("mkdir -p %s && umask 077 && printf '%%s' %q > %s", s.sockDir, opts.Password, pwfile))
	if out, err := mk.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("prepare: %v: %s", err, out)
	}
	// Local (socket) connections trust, so the harness can set things up
	// whatever the TCP auth method is.
	initdb := s.run(filepath.Join(BinDir(), "initdb"), "-D", s.Dir, "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host="+opts.Auth, "--no-sync", "-E", "UTF8", "--locale", "C.UTF-8")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	conf := append([]string{"fsync = off", "synchronous_commit = off", "full_page_writes = off",
		"max_connections = 200", "log_min_messages = warning"}, opts.Conf...)
	if opts.Auth == "scram-sha-256" {
		conf = append(conf, "password_encryption = 'scram-sha-256'")
	} else if opts.Auth == "md5" {
		conf = append(conf, "password_encryption = 'md5'")
	}
	if opts.TLS {
		ca, cert, key, err := testCerts()
		if err != nil {
			return nil, nil, err
		}
		s.CAPEM = ca
		for name, data := range map[string][]byte{"server.crt": cert, "server.key": key} {
			w := s.run("sh", "-c", fmt.Sprintf("umask 077 && cat > %s/%s", s.Dir, name))
			w.Stdin = strings.NewReader(string(data))
			if out, err := w.CombinedOutput(); err != nil {
				return nil, nil, fmt.Errorf("writing %s: %v: %s", name, err, out)
			}
		}
		conf = append(conf, "ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'")
	}
	app := s.run("sh", "-c", fmt.Sprintf("cat >> %s/postgresql.conf", s.Dir))
	app.Stdin = strings.NewReader(strings.Join(conf, "\n") + "\n")
	if out, err := app.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("conf: %v: %s", err, out)
	}
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		s.Port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		start := s.run(filepath.Join(BinDir(), "pg_ctl"), "-D", s.Dir, "-w", "-t", "60", "-l", filepath.Join(base, "log"),
			"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", s.Port, s.sockDir), "start")
		out, err := start.CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 2 {
			logb, _ := os.ReadFile(filepath.Join(base, "log"))
			return nil, nil, fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, logb)
		}
	}
	cleanup = append(cleanup, func() {
		s.run(filepath.Join(BinDir(), "pg_ctl"), "-D", s.Dir, "-m", "immediate", "-w", "stop").Run()
	})
	if opts.Auth == "md5" {
		// initdb stored the password with the default SCRAM verifier, with
		// which md5 auth silently upgrades to SCRAM; store an md5 hash so
		// md5 is really exercised.
		psql := s.run(filepath.Join(BinDir(), "psql"), "-h", s.sockDir, "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", "postgres",
			"-v", "ON_ERROR_STOP=1", "-c", "SET password_encryption = 'md5'", "-c", fmt.Sprintf("ALTER ROLE postgres PASSWORD '%s'", strings.ReplaceAll(opts.Password, "'", "''")))
		if out, err := psql.CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("setting md5 password: %v: %s", err, out)
		}
	}
	return s, stop, nil
}

// testCerts makes a CA and a server certificate for 127.0.0.1/localhost.
func testCerts() (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
