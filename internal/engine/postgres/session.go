package postgres

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

const (
	bufSize = 32 << 10
	// Messages larger than this that the gateway does not need to inspect
	// (DataRow, CopyData) are streamed through instead of buffered whole.
	streamThreshold = 256 << 10
)

// portalsHook, when set (tests only), is told the session's portal count
// after each Bind.
var portalsHook atomic.Pointer[func(n int)]

var (
	errTerminated = errors.New("client sent Terminate")
	errClientGone = errors.New("client disconnected")
)

// session relays one client connection to its upstream backend.
type session struct {
	e      *Engine
	log    *slog.Logger
	client net.Conn
	up     *pgconn.HijackedConn
	opened *engine.Opened
	cp     engine.Checkpoint
	sess   *access.Session
	ct     *cancelTarget // this session's cancel key (a cancel withdraws a hold)
	// history holds the last statements checked (client goroutine only),
	// for approvers of a held one.
	history history

	cr   *frameReader  // from client
	ur   *frameReader  // from upstream
	uw   *bufio.Writer // to upstream; client goroutine only
	cw   *bufio.Writer // to client; guarded by cwMu
	cwMu sync.Mutex

	t       tracker
	catalog *catalog // column names for masking
	// ctx ends with the session (set by run): the upstream goroutine's
	// catalog lookups wait with it.
	ctx     context.Context
	maskBuf []byte // reused DataRow buffer (upstream goroutine)
	// emits are outcomes settled but not yet emitted to the audit: the
	// upstream goroutine emits them once the reply that carries them is
	// flushed to the client (emitSettled), so the client's round trip does
	// not wait for the audit events being built.
	emits []settled
	qplan queryPlan // last simple-query masking plan (upstream goroutine)
	// Client-goroutine state for the extended protocol.
	stmts   map[string]*prepared // prepared statement name → statement
	portals map[string]*portal   // portal name → portal
	skip    bool                 // discarding client messages until Sync after a gateway-raised error
	// idleSeq is the seq (pending.seq) of the latest ReadyForQuery that
	// reported an idle session ('I'), set by the upstream goroutine: every
	// portal bound before that message was sent is gone upstream.
	// prunedAt is the idleSeq the client goroutine last pruned portals at.
	idleSeq  atomic.Uint64
	prunedAt uint64
	// scsOff mirrors the upstream's standard_conforming_strings (from
	// ParameterStatus): when off, backslashes in '…' strings escape, which
	// the gateway's lexer and libpg_query do not model.
	scsOff atomic.Bool
	// Session recording (config audit.recording): on when values may be
	// recorded; each goroutine decodes binary values with its own type map
	// (pgtype.Map caches plans and is not safe for concurrent use).
	recOn    bool
	upTypes  *pgtype.Map // upstream goroutine
	cliTypes *pgtype.Map // client goroutine
}

func newSession(e *Engine, client net.Conn, up *pgconn.HijackedConn, opened *engine.Opened, cat *catalog) *session {
	return &session{
		e: e, client: client, up: up, opened: opened, cp: opened.Checkpoint, sess: opened.Session,
		log:     e.log.With("session", opened.Session.ID),
		cr:      newFrameReader(client, bufSize, e.cfg.MaxMessageSize),
		ur:      newFrameReader(up.Conn, bufSize, 1<<30),
		uw:      bufio.NewWriterSize(up.Conn, bufSize),
		cw:      bufio.NewWriterSize(client, bufSize),
		stmts:   map[string]*prepared{},
		catalog: cat,
		portals: map[string]*portal{},
		recOn:   e.cfg.Recording.Bytes > 0,
	}
}

// greet completes the client's startup: AuthenticationOk, the upstream's
// ParameterStatus values, the gateway's own BackendKeyData, ReadyForQuery.
func (s *session) greet(pid uint32, secret [4]byte) error {
	s.scsOff.Store(s.up.ParameterStatuses["standard_conforming_strings"] == "off")
	var buf []byte
	buf, _ = (&pgproto3.AuthenticationOk{}).Encode(buf)
	keys := make([]string, 0, len(s.up.ParameterStatuses))
	for k := range s.up.ParameterStatuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		buf, _ = (&pgproto3.ParameterStatus{Name: k, Value: s.up.ParameterStatuses[k]}).Encode(buf)
	}
	buf, _ = (&pgproto3.BackendKeyData{ProcessID: pid, SecretKey: secret[:]}).Encode(buf)
	tx := s.up.TxStatus
	if tx == 0 {
		tx = 'I'
	}
	buf, _ = (&pgproto3.ReadyForQuery{TxStatus: tx}).Encode(buf)
	_, err := s.client.Write(buf)
	return err
}

// run relays until either side ends or ctx is cancelled. It returns nil for
// a clean Terminate.
func (s *session) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.ctx = ctx
	errc := make(chan error, 2)
	go func() { errc <- s.upstreamLoop() }()
	go func() { errc <- s.clientLoop(ctx) }()
	var err error
	running := 2
	select {
	case err = <-errc:
		running--
	case <-ctx.Done():
		s.cwMu.Lock()
		s.cw.Write(errorResponse("FATAL", codeAdminShutdown, "gatehouse is shutting down; reconnect in a moment", ""))
		s.cw.Flush()
		s.cwMu.Unlock()
		err = errors.New("gateway shutdown")
	}
	cancel() // a lookup the other loop waits for is abandoned
	s.client.Close()
	s.up.Conn.Close()
	// Wait for both loops (closing the connections ends them): what
	// follows owns the session's state, the outcomes not yet emitted
	// among it.
	for ; running > 0; running-- {
		if err2 := <-errc; err == nil {
			err = err2
		}
	}
	for {
		p, ok := s.t.pop()
		if !ok {
			break
		}
		s.settleAs(&p, sessionEnded)
	}
	s.emitSettled() // both loops are done: this goroutine owns emits now
	if errors.Is(err, errTerminated) {
		return nil
	}
	return err
}

// clientLoop reads client messages, turns statements into Actions for the
// checkpoint and forwards what is allowed. Messages it does not need to
// inspect are forwarded as raw bytes.
func (s *session) clientLoop(ctx context.Context) error {
	for {
		// Coalesce: only flush when the client has nothing more buffered, so
		// a pipelined batch goes upstream in one write.
		if s.cr.r.Buffered() == 0 {
			if err := s.uw.Flush(); err != nil {
				return fmt.Errorf("write upstream: %w", err)
			}
		}
		typ, n, err := s.cr.header()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
				s.uw.Write([]byte{'X', 0, 0, 0, 4})
				s.uw.Flush()
				return errClientGone
			}
			return s.protocolError(err.Error())
		}
		if s.skip && typ != 'S' && typ != 'X' && typ != 'H' {
			if err := s.cr.copyBody(io.Discard, n); err != nil {
				return err
			}
			continue
		}
		if typ == 'd' && n > min(streamThreshold, s.cr.max) {
			// CopyData is never inspected: stream it, whatever its size.
			writeHeader(s.uw, typ, n)
			if err := s.cr.copyBody(s.uw, n); err != nil {
				return err
			}
			continue
		}
		body, err := s.cr.body(n)
		if err != nil {
			if n > s.cr.max {
				return s.fatal(codeProgramLimit, err.Error())
			}
			return err
		}
		switch typ {
		case 'Q':
			err = s.simpleQuery(ctx, body)
		case 'P':
			err = s.parse(ctx, body)
		case 'B':
			err = s.bind(body)
		case 'E':
			err = s.execute(ctx, body)
		case 'D':
			p := pending{kind: rDescribe}
			if len(body) >= 2 {
				name, _, _ := cstring(body[1:])
				if body[0] == 'S' {
					p.dstmt = s.stmts[name]
				} else {
					p.dportal = s.portals[name]
				}
			}
			s.t.push(p)
			writeMsg(s.uw, typ, body)
		case 'C':
			err = s.close(body)
		case 'S':
			s.skip = false
			s.t.push(pending{kind: rSync})
			writeMsg(s.uw, typ, body)
		case 'H':
			writeMsg(s.uw, typ, body)
		case 'F':
			err = s.functionCall(ctx, body)
		case 'd', 'c', 'f': // CopyData, CopyDone, CopyFail during COPY FROM STDIN
			writeMsg(s.uw, typ, body)
		case 'X':
			writeMsg(s.uw, typ, body)
			s.uw.Flush()
			return errTerminated
		default:
			return s.protocolError(fmt.Sprintf("unexpected message type %q", typ))
		}
		if err != nil {
			return err
		}
	}
}

// check asks the checkpoint; a checkpoint failure denies (fail closed).
func (s *session) check(ctx context.Context, a *access.Action) access.Decision {
	d, err := s.cp.Check(ctx, a)
	// Approvers of a later held statement see this one as the audit
	// records it: literals replaced when they may be masked values.
	text := a.Statement
	if d.RecordText != "" {
		text = d.RecordText
	}
	defer s.history.add(text)
	if err != nil {
		s.log.Error("checkpoint failed; denying", "err", err)
		return access.Decision{Verdict: access.Deny,
			Reason: "gatehouse could not decide or record this statement, so it was not run (fail closed); try again or ask the operator to check the gateway"}
	}
	return d
}

func (s *session) simpleQuery(ctx context.Context, body []byte) error {
	sql, _, ok := cstring(body)
	if !ok {
		return s.protocolError("malformed Query message")
	}
	if s.lexDiverges(sql) {
		// Where statements end depends on standard_conforming_strings, which
		// the session may have changed: refuse rather than guess (fail closed).
		a := &access.Action{Session: s.sess, Kind: access.ActionStatement, Statement: sql, Protocol: "simple"}
		d := access.Decision{Verdict: access.Deny, Rule: ruleLexer,
			Reason: "this text reads differently depending on standard_conforming_strings (backslashes in '…' strings); keep standard_conforming_strings on or use E'…' strings"}
		s.cp.Record(a, d, access.Outcome{Rows: -1, Error: "refused: ambiguous statement boundaries"})
		// Text the server refuses too gets the server's error (e.g. its
		// "unsafe use of string constant with Unicode escapes").
		s.probeSyntax(sql, &d, true)
		return nil
	}
	parts := sqlinspect.Split(sql)
	stmts := make([]*prepared, len(parts))
	for i, p := range parts {
		a := &access.Action{Session: s.sess, Kind: access.ActionStatement, Statement: p, Protocol: "simple"}
		d := s.check(ctx, a)
		if d.Verdict == access.Hold {
			// Nothing of the message runs until every held statement in it
			// is approved, one review each, in order.
			d = s.hold(ctx, a, d, nil)
		}
		if !d.Allowed() {
			if d.Position > 0 {
				// Positions count from the start of the client's whole query.
				d.Position += strings.Index(sql, p)
			}
			// One denied statement denies the whole message: nothing of it
			// runs. Those already allowed are recorded as not executed.
			for _, ps := range stmts[:i] {
				s.cp.Record(ps.action, ps.decision, access.Outcome{Rows: -1, Error: "not executed: another statement in the same query was denied"})
			}
			if d.Rule == ruleParse {
				// PostgreSQL's own syntax error, for the whole text.
				s.probeSyntax(sql, &d, true)
				return nil
			}
			s.t.push(pending{kind: rQuery, deny: &d})
			writeQuery(s.uw, raiseSQL(d))
			return nil
		}
		stmts[i] = &prepared{action: a, decision: d}
	}
	for i, ps := range stmts {
		if err := s.cp.Commit(ps.action, &ps.decision); err != nil {
			// Nothing of the message runs; Commit recorded the refusal.
			for j, o := range stmts {
				if j != i {
					s.cp.Record(o.action, o.decision, access.Outcome{Rows: -1, Error: "not executed: the audit record of another statement in the same query could not be written"})
				}
			}
			d := auditRefusal(err)
			s.t.push(pending{kind: rQuery, deny: &d})
			writeQuery(s.uw, raiseSQL(d))
			return nil
		}
	}
	s.t.push(pending{kind: rQuery, stmts: stmts, start: time.Now()})
	writeMsg(s.uw, 'Q', body)
	return nil
}

// lexDiverges reports whether the server may read sql differently from the
// gateway: statement boundaries that depend on standard_conforming_strings,
// or backslashes in plain strings while (or as soon as) it is off.
func (s *session) lexDiverges(sql string) bool {
	// With the setting on (the default), the server lexes as the gateway
	// does. It may be off, or turned off by this very message (SET or
	// set_config), only when the upstream said so or the text names it.
	if strings.IndexByte(sql, '\\') < 0 {
		return false // both readings agree without a backslash: the common, allocation-free path
	}
	mayBeOff := s.scsOff.Load() || strings.Contains(strings.ToLower(sql), "standard_conforming_strings")
	return mayBeOff && (sqlinspect.SplitAmbiguous(sql) || sqlinspect.PlainBackslash(sql))
}

func (s *session) parse(ctx context.Context, body []byte) error {
	name, rest, ok := cstring(body)
	if !ok {
		return s.protocolError("malformed Parse message")
	}
	query, _, ok := cstring(rest)
	if !ok {
		return s.protocolError("malformed Parse message")
	}
	a := &access.Action{Session: s.sess, Kind: access.ActionStatement, Statement: query, Prepared: name, Protocol: "extended"}
	var d access.Decision
	if s.lexDiverges(query) {
		d = access.Decision{Verdict: access.Deny, Rule: ruleLexer,
			Reason: "this text reads differently depending on standard_conforming_strings (backslashes in '…' strings); keep standard_conforming_strings on or use E'…' strings"}
		s.cp.Record(a, d, access.Outcome{Rows: -1, Error: "refused: ambiguous lexing"})
	} else {
		d = s.check(ctx, a)
	}
	if !d.Allowed() && d.Verdict != access.Hold {
		if d.Rule == ruleParse || d.Rule == ruleLexer {
			s.probeSyntax(query, &d, false)
			return nil
		}
		s.denyExtended(d)
		return nil
	}
	// A held statement is prepared now and held at Execute, where its
	// parameters are known.
	ps := &prepared{action: a, decision: d}
	if d.Verdict == access.Hold || s.recOn {
		if oids, ok := parseParamTypes(rest); ok {
			ps.paramOIDs.Store(&oids)
		}
	}
	s.stmts[name] = ps
	s.t.push(pending{kind: rParse})
	writeMsg(s.uw, 'P', body)
	return nil
}

// deniedStatement is a prepared statement name no client can create (it holds
// a control character), so describing it always fails.
const deniedStatement = "gatehouse\x01denied"

// denyExtended refuses a Parse by making the upstream fail in its place: it
// describes a statement that cannot exist. The upstream then is in exactly
// the state PostgreSQL would be in after a failed Parse — an open transaction
// block is aborted, messages up to Sync are discarded — without creating or
// replacing any statement or portal; the client gets the gateway's error in
// place of the upstream's.
func (s *session) denyExtended(d access.Decision) {
	s.t.push(pending{kind: rDescribe, deny: &d})
	writeHeader(s.uw, 'D', 1+len(deniedStatement)+1)
	s.uw.WriteByte('S')
	s.uw.WriteString(deniedStatement)
	s.uw.WriteByte(0)
	s.skip = true
}

func (s *session) bind(body []byte) error {
	name, rest, ok := cstring(body)
	if !ok {
		return s.protocolError("malformed Bind message")
	}
	stmt, _, ok := cstring(rest)
	if !ok {
		return s.protocolError("malformed Bind message")
	}
	formats, err := bindResultFormats(body)
	if err != nil {
		return s.protocolError(err.Error())
	}
	s.prunePortals()
	pt := &portal{stmt: s.stmts[stmt], formats: formats, epoch: s.t.readies}
	if s.recOn && pt.stmt != nil {
		pt.recParams, pt.recTrunc = s.recordParams(body, pt.stmt)
	}
	if pt.stmt != nil && pt.stmt.decision.Verdict == access.Hold {
		var oids []uint32
		if p := pt.stmt.paramOIDs.Load(); p != nil {
			oids = *p
		}
		if pt.params, err = bindParams(body, oids); err != nil {
			return s.protocolError(err.Error())
		}
	}
	s.portals[name] = pt
	if h := portalsHook.Load(); h != nil {
		(*h)(len(s.portals))
	}
	s.t.push(pending{kind: rBind})
	writeMsg(s.uw, 'B', body)
	return nil
}

func (s *session) execute(ctx context.Context, body []byte) error {
	name, _, ok := cstring(body)
	if !ok {
		return s.protocolError("malformed Execute message")
	}
	p := pending{kind: rExecute}
	pt := s.portals[name]
	if pt == nil || pt.stmt == nil {
		// Not a portal bound here with a statement the gateway decided:
		// a cursor declared in SQL (DECLARE), or a Bind of a statement
		// prepared in SQL (PREPARE). Its rows would pass without any
		// decision's masking, so it is refused (fail closed); FETCH and
		// EXECUTE in SQL are decided as statements. (A portal that does
		// not exist at all PostgreSQL would refuse anyway.)
		a := &access.Action{Session: s.sess, Kind: access.ActionStatement, Protocol: "extended",
			Statement: "-- protocol Execute of portal " + strconv.Quote(name) + ", not bound with a statement parsed through the protocol"}
		d := access.Decision{Verdict: access.Deny, Rule: rulePortal,
			Reason: "gatehouse runs a protocol Execute only on portals bound with statements parsed through the protocol; read an SQL cursor with FETCH and run an SQL-prepared statement with EXECUTE"}
		s.cp.Record(a, d, access.Outcome{Rows: -1, Error: "refused: unknown portal"})
		s.denyExtended(d)
		return nil
	}
	if pt.stmt != nil && pt.approved == nil && !s.current(pt.stmt) {
		// Decided under policies, access lists or grants no longer in
		// force: decide again before it runs.
		if !s.redecide(ctx, pt) {
			return nil
		}
	}
	p.stmt, p.portal = pt.stmt, pt
	if pt.stmt != nil && pt.stmt.decision.Verdict == access.Hold {
		if pt.approved == nil {
			d := s.hold(ctx, pt.stmt.action, pt.stmt.decision, pt.params)
			if d.Allowed() && !s.current(pt.stmt) {
				// Policies, access lists or grants changed while it
				// waited: the approval was for a decision no longer
				// in force.
				d = access.Decision{Verdict: access.Deny, Policy: d.Policy, Rule: d.Rule, ReviewID: d.ReviewID,
					Reason: "approved, but the policies, access lists or grants changed while it waited, so it was not run; run it again"}
				s.cp.Record(pt.stmt.action, d, access.Outcome{Rows: -1, Error: "refused: decision stale after approval"})
			}
			if !d.Allowed() {
				s.denyExtended(d)
				return nil
			}
			pt.approved = &d
		}
		// Run with the approved decision (it names the review), keeping
		// what Describe learnt of the statement's result.
		ap := &prepared{action: pt.stmt.action, decision: *pt.approved}
		ap.fields.Store(pt.stmt.fields.Load())
		p.stmt = ap
	}
	if p.stmt != nil {
		// Each execution is a statement run: its decision is made durable
		// before the Execute goes upstream.
		d := p.stmt.decision
		if err := s.cp.Commit(p.stmt.action, &d); err != nil {
			s.denyExtended(auditRefusal(err))
			return nil
		}
		p.auditID = d.AuditID
	}
	p.start = time.Now()
	s.t.push(p)
	writeMsg(s.uw, 'E', body)
	return nil
}

// prunePortals forgets the portals PostgreSQL has destroyed: every portal
// (named or not) dies when its transaction ends, committed or rolled back,
// whether or not the client closes it. A ReadyForQuery with status 'I'
// means the transaction of every message before it has ended, so portals
// bound before the message it answers are gone; portals bound after it
// (pipelined behind it) are not. Pruned at Bind, the only place the map
// grows, so a client that never sends Close keeps it bounded by the
// portals of one transaction.
func (s *session) prunePortals() {
	idle := s.idleSeq.Load()
	if idle == s.prunedAt {
		return
	}
	s.prunedAt = idle
	for name, pt := range s.portals {
		if pt.epoch < idle {
			delete(s.portals, name)
		}
	}
}

// rulePortal names refusals of an Execute on a portal the gateway did not
// see bound (see execute).
const rulePortal = "gatehouse/portal"

// current reports whether ps's decision still stands (engine.Revalidator);
// a checkpoint that cannot tell is trusted, as before.
func (s *session) current(ps *prepared) bool {
	r, ok := s.cp.(engine.Revalidator)
	return !ok || r.Current(&ps.decision)
}

// redecide decides pt's statement again and makes the new decision the
// statement's, for this and later executions (the old one stays with the
// executions already in flight, which the relay reads concurrently). A
// denial refuses this Execute and reports false.
func (s *session) redecide(ctx context.Context, pt *portal) bool {
	old := pt.stmt
	d := s.check(ctx, old.action)
	if !d.Allowed() && d.Verdict != access.Hold {
		s.denyExtended(d)
		return false
	}
	ps := &prepared{action: old.action, decision: d}
	ps.fields.Store(old.fields.Load())
	ps.paramOIDs.Store(old.paramOIDs.Load())
	if s.stmts[old.action.Prepared] == old {
		s.stmts[old.action.Prepared] = ps
	}
	if d.Verdict == access.Hold && old.decision.Verdict != access.Hold {
		// Approvers must see the parameters, which Bind keeps only for
		// statements already held then. Refuse this once; the statement
		// now needs review, so its next Bind keeps them and its Execute
		// is held.
		dd := access.Decision{Verdict: access.Deny, Policy: d.Policy, Rule: d.Rule,
			Reason: "this prepared statement now needs approval (the policies changed since it was bound), so it was not run; run it again to request the review"}
		s.cp.Record(old.action, dd, access.Outcome{Rows: -1, Error: "refused: needs review; bound before it did"})
		s.denyExtended(dd)
		return false
	}
	pt.stmt = ps
	return true
}

func (s *session) close(body []byte) error {
	if len(body) < 2 {
		return s.protocolError("malformed Close message")
	}
	name, _, ok := cstring(body[1:])
	if !ok {
		return s.protocolError("malformed Close message")
	}
	if body[0] == 'S' {
		delete(s.stmts, name)
	} else {
		delete(s.portals, name)
	}
	s.t.push(pending{kind: rClose})
	writeMsg(s.uw, 'C', body)
	return nil
}

// functionCall handles the legacy fast-path FunctionCall message (used by
// libpq's large-object API). It is an action like any statement.
func (s *session) functionCall(ctx context.Context, body []byte) error {
	if len(body) < 4 {
		return s.protocolError("malformed FunctionCall message")
	}
	oid := binary.BigEndian.Uint32(body)
	a := &access.Action{Session: s.sess, Kind: access.ActionFunctionCall, Protocol: "fastpath",
		Statement: "-- fast-path function call, function oid " + strconv.FormatUint(uint64(oid), 10)}
	d := s.check(ctx, a)
	if d.Verdict == access.Hold {
		d = s.hold(ctx, a, d, nil)
	}
	if !d.Allowed() {
		// A FunctionCall is answered by a result or an error, then
		// ReadyForQuery: the same shape as a simple query that fails.
		s.t.push(pending{kind: rFunc, deny: &d})
		writeQuery(s.uw, raiseSQL(d))
		return nil
	}
	if err := s.cp.Commit(a, &d); err != nil {
		d := auditRefusal(err)
		s.t.push(pending{kind: rFunc, deny: &d})
		writeQuery(s.uw, raiseSQL(d))
		return nil
	}
	s.t.push(pending{kind: rFunc, stmt: &prepared{action: a, decision: d}, start: time.Now()})
	writeMsg(s.uw, 'F', body)
	return nil
}

func (s *session) protocolError(msg string) error {
	return s.fatal(codeProtocolViolation, msg)
}

// fatal sends a FATAL error to the client and ends the session.
func (s *session) fatal(code, msg string) error {
	s.cwMu.Lock()
	s.cw.Write(errorResponse("FATAL", code, msg, ""))
	s.cw.Flush()
	s.cwMu.Unlock()
	return errors.New(msg)
}

func writeQuery(w *bufio.Writer, q string) {
	writeHeader(w, 'Q', len(q)+1)
	w.WriteString(q)
	w.WriteByte(0)
}

// raiseSQL is a statement that makes the upstream raise the denial as an
// ERROR with SQLSTATE 42501. Dollar-quote tags are chosen so that no text
// from the reason can end a quote early.
func raiseSQL(d access.Decision) string {
	msg := denyMessage(d)
	outer, inner := "$gh$", "$ghm$"
	for i := 0; strings.Contains(msg, outer) || strings.Contains(msg, inner); i++ {
		outer, inner = "$gh"+strconv.Itoa(i)+"$", "$ghm"+strconv.Itoa(i)+"$"
	}
	return "DO " + outer + "BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = " + inner + msg + inner + "; END" + outer
}

// auditRefusal is the denial of a statement whose audit record could not be
// written (the checkpoint's Commit failed).
func auditRefusal(err error) access.Decision {
	return access.Decision{Verdict: access.Deny, Rule: "gatehouse/audit", Code: engine.AuditUnavailableSQLState, Reason: err.Error()}
}

func denyMessage(d access.Decision) string {
	if d.Reason != "" {
		return d.Reason
	}
	return "statement denied by gatehouse"
}

// denyError is the ErrorResponse body the client sees for a denial.
func denyError(d access.Decision) []byte {
	detail := ""
	if d.Policy != "" {
		detail = fmt.Sprintf("gatehouse policy %q, rule %q", d.Policy, d.Rule)
	}
	code := codeInsufficientPriv
	if d.Code != "" {
		code = d.Code
	}
	b, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code,
		Message: denyMessage(d), Detail: detail, Position: int32(d.Position)}).Encode(nil)
	return b[5:]
}
