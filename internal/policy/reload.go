package policy

import "sync/atomic"

// Reloadable holds the current Set and lets the gateway replace it (on
// SIGHUP or through the API) without stopping sessions: each evaluation
// loads the pointer once, so a statement is decided entirely by the old
// set or entirely by the new one, and in-flight sessions see the new set
// from their next statement. The zero value holds no policies.
type Reloadable struct {
	cur atomic.Pointer[Set]
}

// NewReloadable returns a holder starting with s (nil = no policies).
func NewReloadable(s *Set) *Reloadable {
	r := &Reloadable{}
	r.cur.Store(s)
	return r
}

// Load returns the current set (possibly nil, which holds no policies).
func (r *Reloadable) Load() *Set { return r.cur.Load() }

// Store replaces the current set.
func (r *Reloadable) Store(s *Set) { r.cur.Store(s) }

// Evaluate decides with the current set.
func (r *Reloadable) Evaluate(in *Input) Decision { return r.cur.Load().Evaluate(in) }

// ReloadFile parses a policies file, merges it after base (the policies of
// gatehouse.yaml, which a reload keeps; nil for none) and swaps the result
// in. On any error the current set stays in force and the error says why,
// so a bad edit never leaves the gateway without policies.
func (r *Reloadable) ReloadFile(base *Set, path string) (*Set, error) {
	fs, err := ParseFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Merge(base, fs)
	if err != nil {
		return nil, err
	}
	r.cur.Store(s)
	return s, nil
}
