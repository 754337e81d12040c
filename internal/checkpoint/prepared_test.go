package checkpoint

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/access"
)

// TestPreparedFollowsOutcomes: what the checkpoint believes a SQL-level
// prepared statement runs changes with outcomes, not with decisions: a
// PREPARE or DEALLOCATE that did not run leaves it as it was, one pending
// adds a candidate, and EXECUTE of a name it does not know is refused
// while masking applies.
func TestPreparedFollowsOutcomes(t *testing.T) {
	cp := testCheckpoint(t)
	decide := func(sql string) (*access.Action, access.Decision) {
		a := action("agents", sql)
		return a, cp.Decide(a)
	}
	allowed := func(sql string, want bool) {
		t.Helper()
		if _, d := decide(sql); d.Allowed() != want {
			t.Errorf("%s: allowed=%v, want %v (%s)", sql, d.Allowed(), want, d.Reason)
		}
	}
	a, d := decide("prepare q as select 1")
	if !d.Allowed() {
		t.Fatal(d.Reason)
	}
	cp.prepared.settle(a, true)
	allowed("execute q", true)

	// Refused at PREPARE: the server keeps the first q.
	a, d = decide("prepare q(text) as select id from customers where card_number = $1")
	if d.Allowed() {
		t.Fatal("a masked column in WHERE was allowed")
	}
	cp.prepared.settle(a, false)
	allowed("execute q", true)

	// The masking checks run on the statement behind EXECUTE: a second,
	// pending PREPARE (allowed but not yet run) is a candidate too.
	a, _ = decide("prepare r as select card_number from customers")
	cp.prepared.settle(a, true)
	if _, d := decide("execute r"); !d.Allowed() || d.Mask == nil {
		t.Errorf("execute r: %+v", d)
	}
	decide("prepare r as select 2")
	if _, raws, ok := cp.prepared.lookup("s-agents", "R"); !ok || len(raws) != 2 {
		t.Errorf("r with a pending PREPARE: %d candidates, want 2", len(raws))
	}

	// A DEALLOCATE that was not executed changes nothing; one that ran
	// forgets the name, and its EXECUTE is refused under masking.
	a, _ = decide("deallocate q")
	cp.prepared.settle(a, false)
	allowed("execute q", true)
	a, _ = decide("deallocate all")
	cp.prepared.settle(a, true)
	if _, d := decide("execute q"); d.Allowed() || d.Rule != "gatehouse/masking" {
		t.Errorf("execute of an unknown statement: %+v", d)
	}
	allowed("explain analyze execute r", false)

	cp.EndSession("s-agents")
	if _, _, ok := cp.prepared.lookup("s-agents", "r"); ok {
		t.Error("EndSession kept the session's statements")
	}
}

// TestRecordText: statements whose values may meet a masked column carry
// the text the audit records, literals replaced; others carry none.
func TestRecordText(t *testing.T) {
	cp := testCheckpoint(t)
	for sql, want := range map[string]string{
		"insert into customers (id, card_number) values (3, '4111111111111112')": "insert into customers (id, card_number) values (?, ?)",
		"insert into customers values (3, 'Cy', 'cy@example.com')":               "insert into customers values (?, ?, ?)",
		"update customers set email = $1 where id = 2":                           "update customers set email = $1 where id = ?",
		"select id from customers where card_number = '4111' -- secret":          "select id from customers where card_number = ? --",
		"update customers set name = 'Zed' where id = 1":                         "",
		"select card_number, email from customers where id = 1":                  "",
		"insert into probe (id, note) values (1, 'x')":                           "",
		"delete from customers where id = 1":                                     "",
	} {
		a := action("agents", sql)
		d := cp.Decide(a)
		if d.RecordText != want {
			t.Errorf("%s: RecordText %q, want %q", sql, d.RecordText, want)
		}
		if text, redact := cp.recordText(a, d); redact != (want != "") || (redact && text != want) {
			t.Errorf("%s: recordText = %q, %v", sql, text, redact)
		}
	}
	if got := redactQuoted(`23505: duplicate key value violates unique constraint "customers_pkey" (Key (ssn)=(987-65-4328) already exists)`); strings.Contains(got, "987") {
		t.Errorf("redactQuoted kept the value: %s", got)
	}
}
