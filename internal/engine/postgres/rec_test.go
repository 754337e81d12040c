package postgres_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/engine/enginetest"
	"github.com/gatehouse/gatehouse/internal/engine/postgres"
	"github.com/gatehouse/gatehouse/internal/pgtest"
)

const card = "4111111111111111"

// startRecording runs an engine with session recording rec whose
// checkpoint masks cards.number with last4.
func startRecording(t *testing.T, rec postgres.Recording) *fixture {
	t.Helper()
	pgtest.Need(t, shared)
	db := shared.CreateDB(t)
	shared.Exec(t, db, "CREATE TABLE cards (id int primary key, holder text, number text, issued date)")
	shared.Exec(t, db, "INSERT INTO cards SELECT g, 'holder '||g, '"+card+"', date '2024-01-01' + g FROM generate_series(1, 20) g")
	cp := &enginetest.Checkpoint{Mask: &access.MaskPlan{MethodFor: func(schema, table, column string) (string, bool) {
		if table == "cards" && column == "number" {
			return "last4", true
		}
		return "", false
	}}}
	op := &enginetest.Opener{Token: token, Target: "orders", Checkpoint: cp,
		Upstream: engine.Upstream{Address: shared.Addr(), Database: db, Username: "postgres", Password: shared.Password, TLSMode: "disable"}}
	eng := postgres.New(postgres.Config{Opener: op, Recording: rec})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go eng.Serve(ctx, c)
		}
	}()
	return &fixture{pg: shared, addr: l.Addr().String(), cp: cp, op: op}
}

// outcomeOf returns the last recorded outcome of a statement containing sub.
func outcomeOf(t *testing.T, cp *enginetest.Checkpoint, sub string) *access.Outcome {
	t.Helper()
	_, recs := cp.Snapshot()
	for i := len(recs) - 1; i >= 0; i-- {
		if strings.Contains(recs[i].Action.Statement, sub) && recs[i].Outcome != nil {
			return recs[i].Outcome
		}
	}
	t.Fatalf("no outcome recorded for %q", sub)
	return nil
}

func cells(o *access.Outcome) [][]string {
	var out [][]string
	for _, r := range o.Sample {
		var row []string
		for _, c := range r {
			if c == nil {
				row = append(row, "NULL")
			} else {
				row = append(row, *c)
			}
		}
		out = append(out, row)
	}
	return out
}

func TestRecordingSimpleQueryMaskedSample(t *testing.T) {
	f := startRecording(t, postgres.Recording{Rows: 3, Bytes: 4096})
	c := f.connect(t)
	ctx := context.Background()
	if _, err := c.Exec(ctx, "SELECT id, number, NULL::text AS nothing FROM cards ORDER BY id", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	o := outcomeOf(t, f.cp, "FROM cards ORDER BY id")
	wantCols := []access.Column{{Name: "id", Type: "int4"}, {Name: "number", Type: "text"}, {Name: "nothing", Type: "text"}}
	if len(o.Columns) != 3 || o.Columns[0] != wantCols[0] || o.Columns[1] != wantCols[1] || o.Columns[2] != wantCols[2] {
		t.Errorf("columns = %+v, want %+v", o.Columns, wantCols)
	}
	got := cells(o)
	if len(got) != 3 || got[0][0] != "1" || got[0][1] != "************1111" || got[0][2] != "NULL" {
		t.Errorf("sample = %q, want 3 rows, the first 1, ************1111, NULL", got)
	}
	if !o.SampleTruncated || o.Rows != 20 {
		t.Errorf("truncated = %v, rows = %d; want true (20 rows, 3 sampled), 20", o.SampleTruncated, o.Rows)
	}
	for _, r := range got {
		if strings.Contains(strings.Join(r, " "), card) {
			t.Fatalf("unmasked card number in the sample: %q", r)
		}
	}
}

func TestRecordingExtendedParamsBinaryAndBytes(t *testing.T) {
	f := startRecording(t, postgres.Recording{Rows: 5, Bytes: 40})
	c := f.connect(t)
	ctx := context.Background()
	// pgx binds int4 and date parameters in binary and asks for binary
	// results of the types it knows.
	rows, err := c.Query(ctx, "SELECT id, issued, holder, number FROM cards WHERE id <= $1 AND issued > $2 ORDER BY id", 2, "2023-12-31")
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	o := outcomeOf(t, f.cp, "WHERE id <= $1")
	if len(o.Params) != 2 || o.Params[0] != "2" || !strings.HasPrefix(o.Params[1], "2023-12-31") {
		t.Errorf("params = %q, want [2 2023-12-31…]", o.Params)
	}
	got := cells(o)
	if len(got) == 0 || got[0][0] != "1" || !strings.HasPrefix(got[0][1], "2024-01-02") || got[0][2] != "holder 1" {
		t.Fatalf("sample = %q, want row 1 decoded from binary", got)
	}
	// 40 bytes of values: the first row fits, then cells are cut.
	total := 0
	for _, r := range got {
		for _, v := range r {
			total += len(strings.TrimSuffix(v, "…"))
		}
	}
	if total > 40+len(strings.Join(o.Params, "")) || !o.SampleTruncated {
		t.Errorf("sample of %d bytes, truncated=%v; want within the 40-byte limit and truncated", total, o.SampleTruncated)
	}
	for _, r := range got {
		if strings.Contains(strings.Join(r, " "), card) {
			t.Fatalf("unmasked card number in the sample: %q", r)
		}
	}
}

func TestRecordingNoticesAndOff(t *testing.T) {
	f := startRecording(t, postgres.Recording{Rows: 0, Bytes: 100})
	c := f.connect(t)
	ctx := context.Background()
	if _, err := c.Exec(ctx, "DO $$BEGIN RAISE NOTICE 'hello from do'; END$$", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SELECT * FROM cards", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	o := outcomeOf(t, f.cp, "RAISE NOTICE")
	if len(o.Notices) != 1 || !strings.Contains(o.Notices[0], "hello from do") || !strings.HasPrefix(o.Notices[0], "NOTICE 00000") {
		t.Errorf("notices = %q", o.Notices)
	}
	if o := outcomeOf(t, f.cp, "SELECT * FROM cards"); o.Sample != nil || o.SampleTruncated || len(o.Columns) != 4 {
		t.Errorf("rows: 0 still sampled: %+v", o)
	}

	off := startRecording(t, postgres.Recording{})
	c = off.connect(t)
	if _, err := c.Exec(ctx, "SELECT * FROM cards WHERE id = $1", 1); err != nil {
		t.Fatal(err)
	}
	if o := outcomeOf(t, off.cp, "SELECT * FROM cards"); o.Sample != nil || o.Params != nil || o.Columns != nil {
		t.Errorf("recording off still recorded: %+v", o)
	}
}
