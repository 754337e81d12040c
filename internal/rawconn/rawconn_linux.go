package rawconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write are raw system calls. Every
// other method (deadlines, Close, CloseWrite, addresses, options) is the
// TCPConn's own.
type Conn struct {
	*net.TCPConn
	rd, wr half
}

// half is one direction's state: the callback handed to the RawConn is
// built once, so a Read or Write allocates nothing.
type half struct {
	mu    sync.Mutex // one Read (or one Write) at a time, as the fd's own lock would order them
	rc    syscall.RawConn
	buf   []byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

// Wrap returns c as a *Conn when it is a *net.TCPConn, and c itself
// otherwise (a conn already wrapped, TLS, a pipe in a test).
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{TCPConn: tc}
	w.rd.rc, w.wr.rc = rc, rc
	w.rd.fn, w.wr.fn = w.rd.read, w.wr.write
	return w
}

// read is the RawConn.Read callback: false (not ready; the netpoller waits
// for readability and calls it again) only on EAGAIN.
func (h *half) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&h.buf[0])), uintptr(len(h.buf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		h.n, h.errno = int(n), e
		return true
	}
}

// write is the RawConn.Write callback: it writes until the buffer is empty
// or the socket is full (false: wait for writability).
func (h *half) write(fd uintptr) bool {
	for len(h.buf) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&h.buf[0])), uintptr(len(h.buf)))
		switch e {
		case 0:
			h.n += int(n)
			h.buf = h.buf[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			h.errno = e
			return true
		}
	}
	return true
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	h := &c.rd
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := c.do("read", h, p); err != nil {
		return 0, err
	}
	if h.n == 0 {
		return 0, io.EOF
	}
	return h.n, nil
}

// Write implements net.Conn.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	h := &c.wr
	h.mu.Lock()
	defer h.mu.Unlock()
	err := c.do("write", h, p)
	return h.n, err
}

// do runs h's callback over p until the RawConn reports it done, waiting
// for readiness in between, and shapes the error.
func (c *Conn) do(op string, h *half, p []byte) error {
	h.buf, h.n, h.errno = p, 0, 0
	var err error
	if op == "read" {
		err = h.rc.Read(h.fn)
	} else {
		err = h.rc.Write(h.fn)
	}
	h.buf = nil
	switch {
	case err != nil:
		return c.opError(op, err)
	case h.errno != 0:
		return c.opError(op, os.NewSyscallError(op, h.errno))
	}
	return nil
}

// opError shapes errors as net.TCPConn's own: a *net.OpError naming the
// operation, so errors.Is(err, net.ErrClosed), os.ErrDeadlineExceeded and
// syscall errnos match as callers expect.
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) { // from the RawConn ("raw-read"): name the real operation
		e := *oe
		e.Op = op
		return &e
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
