package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gatehouse/gatehouse/internal/access"
)

// hold waits for the human decision on a held action while the client's
// connection stays open. Before waiting it sends everything already allowed
// upstream (so earlier pipelined messages complete) and tells the client,
// with a NoticeResponse, which review it waits for. A CancelRequest for this
// session or the client going away withdraws the review.
func (s *session) hold(ctx context.Context, a *access.Action, d access.Decision, params []string) access.Decision {
	if err := s.uw.Flush(); err != nil {
		return access.Decision{Verdict: access.Deny, Reason: "upstream connection failed while holding the statement"}
	}
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if s.ct != nil {
		s.ct.hold.Store(&cancel)
		defer s.ct.hold.Store(nil)
	}
	stop := s.watchClient(cancel)
	out := s.cp.Hold(hctx, a, d, access.HoldContext{Params: params, History: s.history.earlier()}, s.notice)
	stop()
	return out
}

// notice sends msg to the client as a NoticeResponse (psql prints it; a
// driver logs or hands it to a notice handler).
func (s *session) notice(msg string) {
	b, _ := (&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: msg}).Encode(nil)
	s.cwMu.Lock()
	s.cw.Write(b)
	s.cw.Flush()
	s.cwMu.Unlock()
}

// watchClient notices the client disconnecting while the client goroutine
// waits (it reads nothing then): it peeks at the client's stream without
// consuming it, so pipelined messages stay queued in order. stop ends the
// watch and leaves the reader as it was.
func (s *session) watchClient(cancel context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	var quit atomic.Bool
	go func() {
		defer close(done)
		r := s.cr.r
		for n := r.Buffered() + 1; n <= r.Size(); n = r.Buffered() + 1 {
			if _, err := r.Peek(n); err != nil {
				if !quit.Load() && !errors.Is(err, os.ErrDeadlineExceeded) {
					cancel(access.ErrClientGone)
				}
				return
			}
		}
	}()
	return func() {
		quit.Store(true)
		s.client.SetReadDeadline(time.Now())
		<-done
		s.client.SetReadDeadline(time.Time{})
	}
}

// bindParams renders a Bind message's parameter values for approvers: text
// values as sent (invalid UTF-8 escaped), binary ones decoded by their type
// (oids, from the statement) or else shown by size, NULL as NULL.
func bindParams(body []byte, oids []uint32) ([]string, error) {
	bad := errors.New("malformed Bind message")
	_, rest, ok := cstring(body)
	if ok {
		_, rest, ok = cstring(rest)
	}
	if !ok || len(rest) < 2 {
		return nil, bad
	}
	nf := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < 2*nf+2 {
		return nil, bad
	}
	formats := make([]int16, nf)
	for i := range formats {
		formats[i] = int16(binary.BigEndian.Uint16(rest[2*i:]))
	}
	rest = rest[2*nf:]
	np := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	out := make([]string, np)
	for i := range out {
		if len(rest) < 4 {
			return nil, bad
		}
		l := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if l < 0 {
			out[i] = "NULL"
			continue
		}
		if int(l) > len(rest) {
			return nil, bad
		}
		v := rest[:l]
		rest = rest[l:]
		f := int16(0)
		if nf == 1 {
			f = formats[0]
		} else if i < nf {
			f = formats[i]
		}
		switch {
		case f != 0:
			out[i] = binaryParam(v, i, oids)
		case utf8.Valid(v):
			out[i] = string(v)
		default:
			out[i] = strconv.Quote(string(v))
		}
	}
	return out, nil
}

// binaryParam renders a binary parameter as text when its type is known.
func binaryParam(v []byte, i int, oids []uint32) string {
	if i < len(oids) && oids[i] != 0 {
		typeMap := pgtype.NewMap() // not safe for concurrent use; holds are rare
		if t, ok := typeMap.TypeForOID(oids[i]); ok {
			if val, err := t.Codec.DecodeValue(typeMap, oids[i], pgtype.BinaryFormatCode, v); err == nil {
				if b, ok := val.([]byte); ok {
					return fmt.Sprintf("<binary value, %d bytes>", len(b))
				}
				return fmt.Sprint(val)
			}
		}
	}
	return fmt.Sprintf("<binary value, %d bytes>", len(v))
}

// parseParamTypes reads the parameter type OIDs at the end of a Parse
// message (after the query string); rest starts just after the name.
func parseParamTypes(rest []byte) ([]uint32, bool) {
	_, rest, ok := cstring(rest)
	if !ok || len(rest) < 2 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < 4*n {
		return nil, false
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(rest[4*i:])
	}
	return out, true
}

// parseParameterDescription reads a ParameterDescription's type OIDs.
func parseParameterDescription(body []byte) ([]uint32, bool) {
	if len(body) < 2 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+4*n {
		return nil, false
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(body[2+4*i:])
	}
	return out, true
}

// historyLen is how many earlier statements approvers see.
const historyLen = 10

// history is a ring of the session's last statements (client goroutine
// only): approvers see what the session did before the held statement.
type history struct {
	ring [historyLen]string
	n    int
}

func (h *history) add(stmt string) {
	h.ring[h.n%historyLen] = stmt
	h.n++
}

// earlier returns the statements before the newest (the held one, just
// checked), oldest first.
func (h *history) earlier() []string {
	var out []string
	for i := max(0, h.n-historyLen); i < h.n-1; i++ {
		out = append(out, h.ring[i%historyLen])
	}
	return out
}
