package postgres_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine/enginetest"
	"github.com/gatehouse/gatehouse/internal/engine/postgres"
)

// TestSyntaxErrorsAreTheServers: text the gateway cannot parse is refused
// with the error PostgreSQL itself gives for it (message, position, DETAIL,
// HINT), over the simple and the extended protocol, leaving the session and
// any transaction block as the server would (the regression suite compares
// these errors byte for byte).
func TestSyntaxErrorsAreTheServers(t *testing.T) {
	f := startWith(t, &enginetest.Checkpoint{Parse: true})
	c := f.connect(t)
	ctx := context.Background()
	pgErr := func(err error) *pgconn.PgError {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Fatalf("want a server error, got %v", err)
		}
		return pe
	}
	for _, tc := range []struct {
		sql, msg, detail, hint string
		pos                    int32
	}{
		// The gateway's own parse (of "delete from", the statement alone)
		// said "at end of input".
		{sql: "delete from;", msg: `syntax error at or near ";"`, pos: 12},
		{sql: "select 1; delete from;", msg: `syntax error at or near ";"`, pos: 22},
		{sql: "SELECT U&'wrong: \\061'", msg: "invalid Unicode escape", hint: `Unicode escapes must be \XXXX or \+XXXXXX.`, pos: 18},
		{sql: "CREATE POLICY p ON items AS ugly USING (true)", msg: `unrecognized row security option "ugly"`,
			hint: "Only PERMISSIVE or RESTRICTIVE policies are supported currently.", pos: 29},
		{sql: "CREATE PUBLICATION p FOR items", msg: "invalid publication object list",
			detail: "One of TABLE or TABLES IN SCHEMA must be specified before a standalone table or schema name.", pos: 26},
	} {
		_, err := c.Exec(ctx, tc.sql, pgx.QueryExecModeSimpleProtocol)
		pe := pgErr(err)
		if pe.Code != "42601" || pe.Message != tc.msg || pe.Detail != tc.detail || pe.Hint != tc.hint || pe.Position != tc.pos {
			t.Errorf("%s: got %s %q detail %q hint %q position %d", tc.sql, pe.Code, pe.Message, pe.Detail, pe.Hint, pe.Position)
		}
		// The extended protocol: the client's Parse is answered the same way.
		_, err = c.PgConn().Prepare(ctx, "", tc.sql, nil)
		if pe := pgErr(err); pe.Message != tc.msg || pe.Hint != tc.hint || pe.Position != tc.pos {
			t.Errorf("%s (Parse): got %q hint %q position %d", tc.sql, pe.Message, pe.Hint, pe.Position)
		}
		var one int
		if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("%s: session unusable afterwards: %v", tc.sql, err)
		}
	}
	// Inside a transaction block the error aborts it, as the server would.
	if _, err := c.Exec(ctx, "begin; insert into items values (1, 'a')", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "drop table;", pgx.QueryExecModeSimpleProtocol); pgErr(err).Message != `syntax error at or near ";"` {
		t.Fatalf("in block: %v", err)
	}
	if _, err := c.Exec(ctx, "select 1", pgx.QueryExecModeSimpleProtocol); pgErr(err).Code != "25P02" {
		t.Fatalf("after the error in a block, want 25P02, got %v", err)
	}
	if _, err := c.Exec(ctx, "rollback", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.QueryRow(ctx, "select count(*) from items").Scan(&n); err != nil || n != 0 {
		t.Fatalf("count = %d, %v", n, err)
	}
	// Every refusal was the checkpoint's (nothing reached the server to run).
	_, recs := f.cp.Snapshot()
	parseDenied := 0
	for _, r := range recs {
		if r.Decision.Rule == "gatehouse/parse" {
			parseDenied++
		}
	}
	if parseDenied != 11 {
		t.Errorf("%d parse refusals recorded, want 11", parseDenied)
	}
}

// TestProbeErrorWhenTheServerParses: should the server parse what the
// gateway's grammar cannot, the probe's "multiple commands" error is
// replaced by the gateway's refusal; otherwise the server's error passes
// with its position moved back over the prefix.
func TestProbeErrorWhenTheServerParses(t *testing.T) {
	d := access.Decision{Verdict: access.Deny, Rule: "gatehouse/parse", Code: "42601", Reason: "syntax error at or near \"x\"", Position: 3}
	enc := func(e *pgproto3.ErrorResponse) []byte {
		b, _ := e.Encode(nil)
		return b[5:]
	}
	accepted := enc(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "cannot insert multiple commands into a prepared statement", Routine: "exec_parse_message"})
	var got pgproto3.ErrorResponse
	if err := got.Decode(postgres.ProbeError(accepted, d)); err != nil {
		t.Fatal(err)
	}
	if got.Message != d.Reason || got.Position != 3 || got.Code != "42601" {
		t.Errorf("accepted: %+v", got)
	}
	syntax := enc(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error at or near \";\"", Position: 21, Hint: "h", Routine: "scanner_yyerror"})
	got = pgproto3.ErrorResponse{}
	if err := got.Decode(postgres.ProbeError(syntax, d)); err != nil {
		t.Fatal(err)
	}
	if got.Message != "syntax error at or near \";\"" || got.Position != 12 || got.Hint != "h" || got.Routine != "scanner_yyerror" {
		t.Errorf("syntax: %+v", got)
	}
	inPrefix := enc(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "m", Position: 4})
	got = pgproto3.ErrorResponse{}
	if err := got.Decode(postgres.ProbeError(inPrefix, d)); err != nil || got.Position != 0 || got.Message != "m" {
		t.Errorf("position in the prefix kept: %+v %v", got, err)
	}
}

// FuzzProbeError: rewriting an upstream ErrorResponse never panics, and a
// well-formed one stays well-formed with its other fields unchanged.
func FuzzProbeError(f *testing.F) {
	f.Add([]byte("SERROR\x00C42601\x00Msyntax error\x00P21\x00Rscanner_yyerror\x00\x00"))
	f.Add([]byte("P\x00\x00"))
	f.Add([]byte("P-5\x00"))
	d := access.Decision{Verdict: access.Deny, Rule: "gatehouse/parse", Reason: "refused"}
	f.Fuzz(func(t *testing.T, body []byte) {
		out := postgres.ProbeError(body, d)
		var in, got pgproto3.ErrorResponse
		if in.Decode(body) != nil || in.Routine == "exec_parse_message" {
			return
		}
		if err := got.Decode(out); err != nil {
			t.Fatalf("decodable %q became undecodable %q: %v", body, out, err)
		}
		if got.Message != in.Message || got.Code != in.Code || got.Hint != in.Hint || got.Detail != in.Detail {
			t.Fatalf("fields changed: %+v -> %+v", in, got)
		}
	})
}

// TestProbeWarningsAtClientPositions: warnings the server's parser raises
// on the probe (nonstandard use of \\ with standard_conforming_strings off)
// reach the client at positions in its own text, as they would direct.
func TestProbeWarningsAtClientPositions(t *testing.T) {
	f := startWith(t, &enginetest.Checkpoint{Parse: true})
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(f.dsn("orders", token))
	if err != nil {
		t.Fatal(err)
	}
	var notices []*pgconn.Notice
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n) }
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "set standard_conforming_strings = off", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	// Refused by the gateway (the server would run it), after the server's
	// warnings about it.
	_, err = c.Exec(ctx, `select 'a\\b' as f1, 'c\\d' as f2`, pgx.QueryExecModeSimpleProtocol)
	if pgCode(err) != "42501" {
		t.Fatalf("want the gateway's refusal, got %v", err)
	}
	var pos []int32
	for _, n := range notices {
		if n.Severity == "WARNING" && strings.Contains(n.Message, "nonstandard use of \\\\") {
			pos = append(pos, n.Position)
		}
	}
	if !reflect.DeepEqual(pos, []int32{8, 22}) {
		t.Errorf("warning positions %v, want [8 22]", pos)
	}
}
