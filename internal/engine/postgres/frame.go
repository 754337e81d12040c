package postgres

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// frameReader reads PostgreSQL v3 protocol messages (1-byte type, 4-byte
// big-endian length including itself, body) without decoding them, so the
// relay can forward most messages as raw bytes.
// https://www.postgresql.org/docs/15/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
type frameReader struct {
	r   *bufio.Reader
	buf []byte // reused body buffer
	max int    // largest body accepted into memory
}

func newFrameReader(r io.Reader, size, max int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, size), max: max}
}

// header reads the next message's type and body length.
func (f *frameReader) header() (typ byte, n int, err error) {
	var h [5]byte
	if _, err := io.ReadFull(f.r, h[:]); err != nil {
		return 0, 0, err
	}
	l := binary.BigEndian.Uint32(h[1:])
	if l < 4 || l > 1<<30+4 {
		return 0, 0, fmt.Errorf("invalid message length %d for message type %q", l, h[0])
	}
	return h[0], int(l) - 4, nil
}

// body reads an n-byte body into the reused buffer. The returned slice is
// valid until the next call.
func (f *frameReader) body(n int) ([]byte, error) {
	if n > f.max {
		return nil, fmt.Errorf("message of %d bytes exceeds the gateway's limit of %d bytes", n, f.max)
	}
	if cap(f.buf) < n {
		f.buf = make([]byte, n)
	}
	b := f.buf[:n]
	_, err := io.ReadFull(f.r, b)
	// Do not keep a huge buffer alive after a one-off large message.
	if cap(f.buf) > 1<<20 {
		f.buf = nil
	}
	return b, err
}

// copyBody streams an n-byte body to w without buffering it whole.
func (f *frameReader) copyBody(w io.Writer, n int) error {
	_, err := io.CopyN(w, f.r, int64(n))
	return err
}

// writeHeader writes a message header to w.
func writeHeader(w *bufio.Writer, typ byte, n int) {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(n+4))
	w.Write(h[:])
}

// writeMsg writes a whole message.
func writeMsg(w *bufio.Writer, typ byte, body []byte) {
	writeHeader(w, typ, len(body))
	w.Write(body)
}

// cstring returns the NUL-terminated string at the start of b and the rest.
func cstring(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}
