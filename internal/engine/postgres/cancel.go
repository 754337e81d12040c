package postgres

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelTarget is where a client's CancelRequest must go upstream.
type cancelTarget struct {
	secret [4]byte // the gateway's own secret handed to the client
	addr   string  // upstream host:port
	pid    uint32  // upstream backend pid
	key    []byte  // upstream secret key
	// hold withdraws the session's statement held for approval, if any:
	// a cancel then ends the wait instead of (harmlessly) reaching an idle
	// upstream backend.
	hold atomic.Pointer[context.CancelCauseFunc]
}

var errHoldCancelled = errors.New("client sent CancelRequest")

// cancelRegistry maps the BackendKeyData the gateway hands out to the
// upstream backend behind it. Clients never see upstream pids or keys, so a
// client can only cancel its own session's queries.
// https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.5.7.9
type cancelRegistry struct {
	mu sync.Mutex
	m  map[uint32]*cancelTarget
}

func newCancelRegistry() *cancelRegistry { return &cancelRegistry{m: map[uint32]*cancelTarget{}} }

// register allocates a fresh (pid, secret) pair for t.
func (r *cancelRegistry) register(t *cancelTarget) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b [8]byte
	for {
		rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:4]) & 0x7fffffff // positive, like a real pid
		if pid == 0 || r.m[pid] != nil {
			continue
		}
		copy(t.secret[:], b[4:])
		r.m[pid] = t
		return pid
	}
}

func (r *cancelRegistry) unregister(pid uint32) {
	r.mu.Lock()
	delete(r.m, pid)
	r.mu.Unlock()
}

// cancel forwards a cancel request when pid and secret match a live
// session. Mismatches are ignored silently, as PostgreSQL does.
func (r *cancelRegistry) cancel(ctx context.Context, pid uint32, secret []byte) bool {
	r.mu.Lock()
	t := r.m[pid]
	r.mu.Unlock()
	if t == nil || len(secret) != 4 || subtle.ConstantTimeCompare(t.secret[:], secret) != 1 {
		return false
	}
	if h := t.hold.Load(); h != nil {
		(*h)(errHoldCancelled)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg, err := (&pgproto3.CancelRequest{ProcessID: t.pid, SecretKey: t.key}).Encode(nil)
	if err != nil {
		return false
	}
	if _, err := c.Write(msg); err != nil {
		return false
	}
	// The server closes the connection when done; wait for it so the cancel
	// has been delivered before we return.
	var one [1]byte
	c.Read(one[:])
	return true
}
