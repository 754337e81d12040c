package checkpoint

import (
	"strings"
	"sync"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/policy"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// preparedStatements remembers, per session, what each SQL-level PREPAREd
// statement runs, so that EXECUTE is decided — rules and masking checks —
// as the statement behind it.
//
// The gateway decides a statement before the server runs it, and a PREPARE
// or DEALLOCATE may then not run (another statement of its message was
// denied, the transaction is aborted) or fail (the name already exists).
// So that what the gateway believes never drifts from what the server
// holds, the state changes only with outcomes (Record): a PREPARE that was
// decided adds a candidate for its name, and only when it has run does it
// become the name's one statement; a DEALLOCATE forgets the name only when
// it has run. Until then EXECUTE is decided as every candidate (fail
// closed: the strictest wins).
type preparedStatements struct {
	mu sync.Mutex
	m  map[string]*preparedSession // session id → its statements
}

type preparedSession struct {
	names map[string][]*preparedCand // name (lower case) → what it may run
	// ops are the PREPAREs and DEALLOCATEs of actions decided but whose
	// outcome is not known yet; an extended-protocol action may run again
	// (each Execute of the portal), so its ops are kept.
	ops map[*access.Action][]preparedOp
}

// preparedCand is one statement a name may run.
type preparedCand struct {
	action *access.Action // the PREPARE that created it
	stmts  []policy.Statement
	raws   []*sqlinspect.Statement // the statement and those it wraps, views expanded
	// ran is set once the PREPARE has run: a later failed run of the same
	// (extended-protocol) action does not undo it.
	ran bool
}

// preparedOp is a PREPARE (cand set) or DEALLOCATE (cand nil; name "" =
// ALL) within one action.
type preparedOp struct {
	name string
	cand *preparedCand
}

func (p *preparedStatements) session(id string) *preparedSession {
	if p.m == nil {
		p.m = map[string]*preparedSession{}
	}
	s := p.m[id]
	if s == nil {
		s = &preparedSession{names: map[string][]*preparedCand{}, ops: map[*access.Action][]preparedOp{}}
		p.m[id] = s
	}
	return s
}

// prepare notes that a, once it runs, makes name run st (a PREPARE with
// its wrapped statement st).
func (p *preparedStatements) prepare(a *access.Action, name string, st *sqlinspect.Statement) {
	if a.Session == nil || st == nil {
		return
	}
	cand := &preparedCand{action: a, stmts: appendPolicy(nil, st)}
	cand.raws = append(cand.raws, st)
	for w := st.Wraps; w != nil; w = w.Wraps {
		cand.raws = append(cand.raws, w)
	}
	name = strings.ToLower(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.session(a.Session.ID)
	s.addOp(a, preparedOp{name: name, cand: cand})
	s.names[name] = append(withoutAction(s.names[name], a), cand)
}

// deallocate notes that a, once it runs, forgets name ("" = all).
func (p *preparedStatements) deallocate(a *access.Action, name string) {
	if a.Session == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.session(a.Session.ID).addOp(a, preparedOp{name: strings.ToLower(name)})
}

// addOp records op for a, replacing what an earlier decision of the same
// action (a redecided Execute) noted for the same name.
func (s *preparedSession) addOp(a *access.Action, op preparedOp) {
	ops := s.ops[a]
	for i, o := range ops {
		if o.name == op.name && (o.cand == nil) == (op.cand == nil) {
			ops[i] = op
			return
		}
	}
	s.ops[a] = append(ops, op)
}

// lookup returns what name may run in the session: every candidate's
// statements. ok is false when the gateway knows of no such statement.
func (p *preparedStatements) lookup(session, name string) (stmts []policy.Statement, raws []*sqlinspect.Statement, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.m[session]
	if s == nil {
		return nil, nil, false
	}
	cands := s.names[strings.ToLower(name)]
	for _, c := range cands {
		stmts = append(stmts, c.stmts...)
		raws = append(raws, c.raws...)
	}
	return stmts, raws, len(cands) > 0
}

// settle applies the outcome of a: ran reports whether it ran to
// completion upstream (false: denied, not executed or failed).
func (p *preparedStatements) settle(a *access.Action, ran bool) {
	if a.Session == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.m[a.Session.ID]
	if s == nil {
		return
	}
	ops, ok := s.ops[a]
	if !ok {
		return
	}
	if a.Protocol != "extended" {
		// A simple query's action runs once; an extended one's Parse may be
		// executed again, and its ops are needed then.
		delete(s.ops, a)
	}
	for _, op := range ops {
		switch {
		case op.cand != nil && ran:
			// The server now holds exactly this statement under the name.
			op.cand.ran = true
			s.names[op.name] = []*preparedCand{op.cand}
		case op.cand != nil:
			if rest := withoutPending(s.names[op.name], a); len(rest) > 0 {
				s.names[op.name] = rest
			} else {
				delete(s.names, op.name)
			}
		case ran && op.name == "":
			clear(s.names)
		case ran:
			delete(s.names, op.name)
		}
	}
}

// withoutPending drops a's candidates that have not run.
func withoutPending(cands []*preparedCand, a *access.Action) []*preparedCand {
	out := cands[:0:0]
	for _, c := range cands {
		if c.action != a || c.ran {
			out = append(out, c)
		}
	}
	return out
}

func withoutAction(cands []*preparedCand, a *access.Action) []*preparedCand {
	out := cands[:0:0]
	for _, c := range cands {
		if c.action != a {
			out = append(out, c)
		}
	}
	return out
}

// EndSession forgets a session's state; call it when the session closes.
func (c *Checkpoint) EndSession(id string) {
	c.prepared.mu.Lock()
	delete(c.prepared.m, id)
	c.prepared.mu.Unlock()
	c.redact.endSession(id)
}
