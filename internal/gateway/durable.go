package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/journal"
	"github.com/gatehouse/gatehouse/internal/checkpoint"
)

// journalDir is where the decision journal lives in data_dir.
const journalDir = "audit-journal"

// openJournal opens the decision journal (audit.durability journal),
// reading what an earlier run left.
func (g *Gateway) openJournal() (*journal.Journal, journal.Recovery, error) {
	dir := filepath.Join(g.cfg.DataDir, journalDir)
	j, rec, err := journal.Open(journal.Options{Dir: dir, Fsync: g.cfg.Audit.JournalFsync,
		Logger: g.log.With("component", "audit")})
	if err != nil {
		return nil, rec, fmt.Errorf("audit.durability journal: %w", err)
	}
	for _, p := range rec.Problems {
		// A torn record is what a write cut short leaves; its statement was
		// never forwarded (the write had not returned).
		g.log.Warn("audit journal: damaged record skipped", "problem", p)
	}
	return j, rec, nil
}

// ackJournal is the audit writer's acknowledgement of stored events.
func (g *Gateway) ackJournal(ids []uint64) {
	if err := g.journal.Ack(ids); err != nil {
		g.log.Error("audit journal: acknowledging stored events failed; they may be stored again after a crash", "err", err)
	}
}

// recoverJournal stores, before any client connects, a statement event for
// every journaled decision of an earlier run whose statement event is not
// in the store: the statement may have run, its outcome is unknown.
func (g *Gateway) recoverJournal(ctx context.Context, node string, rec journal.Recovery) error {
	if len(rec.Unstored) == 0 {
		return nil
	}
	// The event may be stored with its ack lost (killed between the commit
	// and the ack): look for the ids in the store first, so no statement
	// is recorded twice.
	stored, err := g.storedDecisions(ctx, node, rec.Unstored)
	if err != nil {
		return fmt.Errorf("audit journal recovery: %w", err)
	}
	var acks []uint64
	n := 0
	for i := range rec.Unstored {
		e := &rec.Unstored[i]
		if stored[e.ID] {
			acks = append(acks, e.ID)
			continue
		}
		g.audit.Append(checkpoint.RecoveredEvent(e))
		n++
	}
	if len(acks) > 0 {
		if err := g.journal.Ack(acks); err != nil {
			return fmt.Errorf("audit journal recovery: %w", err)
		}
	}
	g.log.Warn("audit journal: recorded statements of an earlier run whose outcome is unknown (the gateway stopped before recording it)",
		"statements", n, "already_stored", len(acks))
	return nil
}

// maxRecoveryScan bounds how many stored events recovery reads to find
// decisions that were stored but not acknowledged.
const maxRecoveryScan = 1 << 20

// storedDecisions returns which of the entries' ids the node's stored
// statement events carry, reading the events since the oldest entry.
func (g *Gateway) storedDecisions(ctx context.Context, node string, es []journal.Entry) (map[uint64]bool, error) {
	want := map[uint64]bool{}
	oldest := es[0].Time
	for _, e := range es {
		want[e.ID] = true
		oldest = min(oldest, e.Time)
	}
	found := map[uint64]bool{}
	// Events carry the time they were queued, after the decision; a minute
	// of slack covers clock steps.
	f := audit.Filter{Node: node, Type: audit.TypeStatement, Since: time.Unix(0, oldest).Add(-time.Minute), Ascending: true, Limit: 1000}
	for scanned := 0; scanned < maxRecoveryScan; {
		evs, err := g.store.ListEvents(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			var d struct {
				DecisionID string `json:"decision_id"`
			}
			if json.Unmarshal(ev.Detail, &d) == nil && d.DecisionID != "" {
				if id, err := strconv.ParseUint(d.DecisionID, 10, 64); err == nil && want[id] {
					found[id] = true
				}
			}
		}
		scanned += len(evs)
		if len(evs) < f.Limit {
			return found, nil
		}
		f.AfterSeq = evs[len(evs)-1].Seq
	}
	g.log.Warn("audit journal recovery: too many events to look through; some statements may be recorded twice", "scanned", maxRecoveryScan)
	return found, nil
}
