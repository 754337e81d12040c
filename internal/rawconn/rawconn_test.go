package rawconn_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/rawconn"
)

func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// pair returns a wrapped client conn and the plain server end of a loopback
// TCP connection.
func pair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	w := rawconn.Wrap(c)
	t.Cleanup(func() { w.Close(); s.Close() })
	return w, s
}

func TestWrapOnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if rawconn.Wrap(a) != a {
		t.Fatal("a pipe was wrapped")
	}
	c, _ := pair(t)
	if runtime.GOOS == "linux" {
		if _, ok := c.(*rawconn.Conn); !ok {
			t.Fatalf("a TCP conn was not wrapped: %T", c)
		}
		if rawconn.Wrap(c) != c {
			t.Fatal("a wrapped conn was wrapped again")
		}
	}
}

// TestBulkBothWays sends 16 MiB each way at once through a wrapped conn in
// odd-sized writes and reads: every byte arrives, in order (partial writes
// and EAGAIN on a full socket buffer are retried, not lost).
func TestBulkBothWays(t *testing.T) {
	c, s := pair(t)
	const size = 16 << 20
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	var wg sync.WaitGroup
	check := func(name string, r io.Reader) {
		defer wg.Done()
		h := sha256.New()
		buf := make([]byte, 7777)
		n, err := io.CopyBuffer(h, io.LimitReader(struct{ io.Reader }{r}, size), buf)
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Errorf("%s: %d bytes, err %v, hash match %v", name, n, err, bytes.Equal(h.Sum(nil), want[:]))
		}
	}
	send := func(w io.Writer) {
		defer wg.Done()
		for off := 0; off < size; {
			n := min(size-off, 100003)
			if _, err := w.Write(data[off : off+n]); err != nil {
				t.Error(err)
				return
			}
			off += n
		}
	}
	wg.Add(4)
	go send(c)
	go send(s)
	go check("server got", s)
	go check("client got", c)
	wg.Wait()
}

func TestEOFAndClose(t *testing.T) {
	c, s := pair(t)
	s.Write([]byte("bye"))
	s.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("got %q, %v", got, err)
	}
	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}

// TestCloseUnblocksRead: a Read parked in the netpoller returns when another
// goroutine closes the conn (how a session ends its other direction).
func TestCloseUnblocksRead(t *testing.T) {
	c, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		var oe *net.OpError
		if !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("%v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

// TestDeadline: a deadline set while a Read waits ends it with
// os.ErrDeadlineExceeded (the held-statement path interrupts reads so).
func TestDeadline(t *testing.T) {
	c, s := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.SetReadDeadline(time.Now())
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%v", err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("not a timeout: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after its deadline")
	}
	// The conn is usable after the deadline is cleared.
	c.SetReadDeadline(time.Time{})
	s.Write([]byte("ok"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("%q %v", buf, err)
	}
}

func TestResetIsAnError(t *testing.T) {
	c, s := pair(t)
	s.(*net.TCPConn).SetLinger(0)
	s.Close() // RST
	var err error
	for range 100 {
		if _, err = c.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		_, err = c.Read(make([]byte, 1))
	}
	var oe *net.OpError
	if err == nil || errors.Is(err, io.EOF) || !errors.As(err, &oe) {
		t.Fatalf("after a reset: %v", err)
	}
}

// TestTLSOverWrapped: TLS on top of a wrapped conn works both ways (the
// client side of the gateway wraps before its TLS handshake).
func TestTLSOverWrapped(t *testing.T) {
	c, s := pair(t)
	cert := selfSigned(t)
	srv := tls.Server(rawconn.Wrap(s), &tls.Config{Certificates: []tls.Certificate{cert}})
	cli := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	go func() {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(srv, buf); err == nil {
			srv.Write(bytes.ToUpper(buf))
		}
	}()
	cli.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(cli, buf); err != nil || string(buf) != "HELLO" {
		t.Fatalf("%q %v", buf, err)
	}
}

// BenchmarkRoundTrip is one small request and reply per iteration over
// loopback, plain TCPConn against the wrapped one.
func BenchmarkRoundTrip(b *testing.B) {
	for _, wrap := range []bool{false, true} {
		name := "plain"
		if wrap {
			name = "raw"
		}
		b.Run(name, func(b *testing.B) {
			c, s := pair(b)
			if !wrap {
				c = c.(*rawconn.Conn).TCPConn
			}
			go func() {
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(s, buf); err != nil {
						return
					}
					if _, err := s.Write(buf); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c.Write(buf)
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
