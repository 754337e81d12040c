package postgres

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/masking"

	"github.com/gatehouse/gatehouse/internal/access"
)

// respKind names which client message an expected response belongs to.
type respKind uint8

const (
	rParse    respKind = iota // ParseComplete or ErrorResponse
	rBind                     // BindComplete
	rDescribe                 // [ParameterDescription] RowDescription|NoData
	rExecute                  // CommandComplete|EmptyQueryResponse|PortalSuspended
	rClose                    // CloseComplete
	rSync                     // ReadyForQuery
	rQuery                    // simple query: per statement completion, then ReadyForQuery
	rFunc                     // FunctionCallResponse, then ReadyForQuery
)

// prepared is a statement the client parsed (or one statement of a simple
// query) together with the checkpoint's decision about it.
type prepared struct {
	action   *access.Action
	decision access.Decision
	fields   atomic.Pointer[[]field]   // result fields, once a Describe told them (text formats)
	plan     atomic.Pointer[planCache] // masking plan of the last Execute (see planCache)
	rec      atomic.Pointer[recShape]  // recorded result shape of the last Execute (see recShape)
	// paramOIDs are the parameter types of a held statement (from Parse or
	// ParameterDescription), to show binary parameters to approvers.
	paramOIDs atomic.Pointer[[]uint32]
}

// pending is one response the upstream owes the client, in order.
type pending struct {
	kind  respKind
	drop  bool             // injected by the gateway: the client must not see its success response
	deny  *access.Decision // this entry carries a denial raised upstream
	probe bool             // rParse: a syntax probe (syntax.go); its error is the upstream's own
	stmt  *prepared        // rExecute, rFunc: what runs
	stmts []*prepared      // rQuery: statements of the message, in order
	idx   int              // rQuery: statements completed so far
	start time.Time        // when the current statement started
	rows  int64            // rows reported so far (PortalSuspended accumulates)
	// seq numbers the entries answered by ReadyForQuery (rSync, rQuery,
	// rFunc) in the order they were sent, from 1; 0 for the others.
	seq uint64
	// auditID is the journaled decision of this execution (rExecute: the
	// prepared statement's decision is shared by its executions).
	auditID uint64

	portal  *portal             // rExecute: the portal run
	dstmt   *prepared           // rDescribe of a statement: where to keep its fields
	dportal *portal             // rDescribe of a portal
	plan    []masking.FieldPlan // masking for the current result; nil = none
	planned bool                // plan is decided for the current result
	rec     *stmtRec            // session recording of the current result; nil = none yet
}

// tracker is the FIFO of responses the upstream owes, shared by the client
// reader (push) and the upstream reader (pop). The PostgreSQL protocol answers
// messages strictly in order, which is what makes per-statement outcomes and
// gateway-injected messages possible with pipelining.
// https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-PIPELINING
type tracker struct {
	mu   sync.Mutex
	q    []pending
	head int
	// readies counts the entries pushed that ReadyForQuery answers; the
	// client goroutine (the only pusher) reads it without the lock.
	readies uint64
}

func (t *tracker) push(p pending) {
	t.mu.Lock()
	if p.kind == rSync || p.kind == rQuery || p.kind == rFunc {
		t.readies++
		p.seq = t.readies
	}
	if t.head > 0 && t.head == len(t.q) {
		t.q, t.head = t.q[:0], 0
	}
	t.q = append(t.q, p)
	t.mu.Unlock()
}

// pop removes and returns the oldest entry; ok is false when none is owed.
func (t *tracker) pop() (p pending, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.head == len(t.q) {
		return pending{}, false
	}
	p = t.q[t.head]
	t.q[t.head] = pending{}
	t.head++
	return p, true
}
