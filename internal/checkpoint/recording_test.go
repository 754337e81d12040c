package checkpoint

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/metrics"
)

// The recording reaches the statement event with every value through the
// entity detectors, even where the engine's sample came unmasked (a column
// the policy leaves alone).
func TestRecordMasksRecordingValues(t *testing.T) {
	sink := &memSink{}
	log := audit.NewLog(sink, 16, nil)
	cp := New(log, func(string) ([]string, bool) { return []string{"*"}, true }, metrics.New(nil))
	sess := &access.Session{ID: "s1", Principal: &access.Principal{Subject: "bob"}, Target: access.Target{Name: "orders", Type: "postgres"}}
	a := &access.Action{Session: sess, Kind: access.ActionStatement, Statement: "select * from t where email = $1"}
	str := func(s string) *string { return &s }
	cp.Record(a, access.Decision{Verdict: access.Allow, ReviewID: "rv_1", Approvers: []string{"alice"}}, access.Outcome{Rows: 2,
		Columns: []access.Column{{Name: "id", Type: "int4"}, {Name: "note", Type: "text"}},
		Params:  []string{"bob@example.com"},
		Sample:  [][]*string{{str("1"), str("card 4111111111111111")}, {str("2"), nil}},
		Notices: []string{"NOTICE 00000: mail jane@example.org"}, SampleTruncated: true,
	})
	log.Close(context.Background())
	if len(sink.events) != 1 {
		t.Fatalf("events: %d", len(sink.events))
	}
	raw := string(sink.events[0].Detail)
	for _, leak := range []string{"4111111111111111", "bob@example.com", "jane@example.org"} {
		if strings.Contains(raw, leak) {
			t.Errorf("detail holds %q: %s", leak, raw)
		}
	}
	var det statementDetail
	if err := json.Unmarshal(sink.events[0].Detail, &det); err != nil {
		t.Fatal(err)
	}
	if len(det.Columns) != 2 || det.Columns[1].Type != "text" || len(det.Params) != 1 || len(det.Sample) != 2 ||
		*det.Sample[0][0] != "1" || det.Sample[1][1] != nil || !det.SampleTruncated || len(det.Notices) != 1 ||
		det.ReviewID != "rv_1" || det.Approvers[0] != "alice" {
		t.Errorf("detail: %s", raw)
	}
}

// A plan that scans results for e-mail addresses only still gets every
// detector on the recording: the narrower list governs what the client
// sees, not what the audit keeps.
func TestRecordingIgnoresNarrowEntityList(t *testing.T) {
	sink := &memSink{}
	log := audit.NewLog(sink, 16, nil)
	cp := New(log, func(string) ([]string, bool) { return []string{"*"}, true }, metrics.New(nil))
	sess := &access.Session{ID: "s1", Principal: &access.Principal{Subject: "bob"}, Target: access.Target{Name: "orders", Type: "postgres"}}
	a := &access.Action{Session: sess, Kind: access.ActionStatement, Statement: "update cards set number = $1"}
	cp.Record(a, access.Decision{Verdict: access.Allow, Mask: &access.MaskPlan{Entities: []string{"email"}}},
		access.Outcome{Rows: 1, Params: []string{"4111111111111111"}})
	log.Close(context.Background())
	if raw := string(sink.events[0].Detail); strings.Contains(raw, "4111111111111111") {
		t.Fatalf("card number recorded: %s", raw)
	}
}
