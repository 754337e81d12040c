package postgres_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatehouse/gatehouse/internal/engine/postgres"
)

// TestPortalsFreedAtTransactionEnd: PostgreSQL destroys every portal when
// its transaction ends; the engine's bookkeeping follows ReadyForQuery 'I'
// instead of waiting for a Close, so a client that never closes its named
// portals does not grow the session's memory. Portals bound after a Sync
// that is still in flight (pipelining) stay.
func TestPortalsFreedAtTransactionEnd(t *testing.T) {
	f := start(t)
	c := f.connect(t)
	var most atomic.Int64
	postgres.SetPortalsHookForTest(func(n int) {
		for {
			m := most.Load()
			if int64(n) <= m || most.CompareAndSwap(m, int64(n)) {
				return
			}
		}
	})
	t.Cleanup(func() { postgres.SetPortalsHookForTest(nil) })
	pc := c.PgConn()
	fe := pc.Frontend()
	recvUntilReady := func() (status byte, errs []string) {
		t.Helper()
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				errs = append(errs, m.Code+": "+m.Message)
			case *pgproto3.ReadyForQuery:
				return m.TxStatus, errs
			}
		}
	}
	fe.Send(&pgproto3.Parse{Name: "s1", Query: "select $1::int"})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, errs := recvUntilReady(); errs != nil {
		t.Fatal(errs)
	}
	const rounds = 200
	n := 0
	bind := func() {
		fe.Send(&pgproto3.Bind{DestinationPortal: fmt.Sprintf("p%d", n), PreparedStatement: "s1", Parameters: [][]byte{[]byte("1")}})
		fe.Send(&pgproto3.Execute{Portal: fmt.Sprintf("p%d", n)})
		n++
	}
	for i := 0; i < rounds; i++ {
		if i%2 == 0 {
			// Implicit transactions: each Sync ends one. Two pipelined.
			bind()
			fe.Send(&pgproto3.Sync{})
			bind()
			fe.Send(&pgproto3.Sync{})
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			for j := 0; j < 2; j++ {
				if st, errs := recvUntilReady(); st != 'I' || errs != nil {
					t.Fatalf("round %d: status %c, %v", i, st, errs)
				}
			}
			continue
		}
		// An explicit block over several Syncs, ended by COMMIT.
		fe.Send(&pgproto3.Query{String: "begin"})
		for j := 0; j < 3; j++ {
			bind()
			fe.Send(&pgproto3.Sync{})
		}
		fe.Send(&pgproto3.Query{String: "commit"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 5; j++ {
			if _, errs := recvUntilReady(); errs != nil {
				t.Fatalf("round %d: %v", i, errs)
			}
		}
	}
	if m := most.Load(); m > 10 {
		t.Fatalf("the session held up to %d portals after %d binds; PostgreSQL frees them at transaction end", m, n)
	}
	// A portal bound in an open block is still usable after earlier Syncs.
	fe.Send(&pgproto3.Query{String: "begin"})
	fe.Send(&pgproto3.Bind{DestinationPortal: "live", PreparedStatement: "s1", Parameters: [][]byte{[]byte("5")}})
	fe.Send(&pgproto3.Sync{})
	fe.Send(&pgproto3.Execute{Portal: "live"})
	fe.Send(&pgproto3.Sync{})
	fe.Send(&pgproto3.Query{String: "commit"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for j := 0; j < 4; j++ {
		if _, errs := recvUntilReady(); errs != nil {
			t.Fatalf("live portal: %v", errs)
		}
	}
}
