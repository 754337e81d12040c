// Package rawconn wraps the data path's TCP connections so that their reads
// and writes are raw non-blocking system calls.
//
// A Go net.Conn enters the runtime's system-call bookkeeping on every Read
// and Write (entersyscall/exitsyscall). When every P is idle — at one
// statement at a time, between a request and its reply — that bookkeeping
// wakes the runtime's sysmon thread on the next call, which then sleeps and
// wakes again in short steps; on a relay that is a thread wake-up, a few
// nanosleeps and futex calls per round trip, each a context switch. The
// sockets are non-blocking, so a read or write never blocks in the kernel
// and needs none of that: Conn issues them with syscall.RawSyscall and
// waits for readiness through the same netpoller (syscall.RawConn), so
// deadlines, Close and TLS on top behave as with the plain connection.
// docs/performance.md has the measurements (gateway CPU per transaction
// and context switches per round trip).
package rawconn
