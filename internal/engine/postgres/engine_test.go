package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/engine/enginetest"
	"github.com/gatehouse/gatehouse/internal/engine/postgres"
	"github.com/gatehouse/gatehouse/internal/pgtest"
)

const token = "test-token-123"

type fixture struct {
	pg   *pgtest.Server
	addr string
	cp   *enginetest.Checkpoint
	op   *enginetest.Opener
}

var shared *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Shared(m, &shared, pgtest.Options{})) }

// start runs an engine in front of a fresh database on the shared server;
// the test's connection name is "orders".
func start(t *testing.T) *fixture {
	t.Helper()
	return startWith(t, &enginetest.Checkpoint{})
}

// startWith is start with cp as the checkpoint (its Deny is set to start's).
func startWith(t *testing.T, cp *enginetest.Checkpoint) *fixture {
	t.Helper()
	pgtest.Need(t, shared)
	pg := shared
	db := pg.CreateDB(t)
	pg.Exec(t, db, "CREATE TABLE items (id int primary key, name text)")
	cp.Deny = func(s string) string {
		if strings.Contains(strings.ToLower(s), "drop table") {
			return "DROP TABLE is not allowed for agents"
		}
		return ""
	}
	op := &enginetest.Opener{Token: token, Target: "orders", Checkpoint: cp,
		Upstream: engine.Upstream{Address: pg.Addr(), Database: db, Username: "postgres", Password: pg.Password, TLSMode: "disable"}}
	eng := postgres.New(postgres.Config{Opener: op})
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
	return &fixture{pg: pg, addr: l.Addr().String(), cp: cp, op: op}
}

func (f *fixture) dsn(db, tok string) string {
	return fmt.Sprintf("postgres://agent:%s@%s/%s?sslmode=disable&application_name=enginetest", tok, f.addr, db)
}

func (f *fixture) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), f.dsn("orders", token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestStartupErrors(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	_, err := pgx.Connect(ctx, f.dsn("orders", "wrong"))
	if pgCode(err) != "28P01" || !strings.Contains(err.Error(), "signature") {
		t.Errorf("bad token: got %v", err)
	}
	_, err = pgx.Connect(ctx, f.dsn("nope", token))
	if pgCode(err) != "3D000" {
		t.Errorf("unknown db: got %v", err)
	}
}

func TestSimpleAndExtended(t *testing.T) {
	f := start(t)
	c := f.connect(t)
	ctx := context.Background()
	if _, err := c.Exec(ctx, "insert into items values (1, 'a'); insert into items values (2, 'b')", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.QueryRow(ctx, "select count(*) from items where id > $1", 0).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}
	// application_name survives to the upstream.
	var app string
	if err := c.QueryRow(ctx, "select current_setting('application_name')").Scan(&app); err != nil || app != "enginetest" {
		t.Fatalf("application_name = %q, %v", app, err)
	}
	checked, recs := f.cp.Snapshot()
	var stmts []string
	for _, a := range checked {
		stmts = append(stmts, a.Statement)
	}
	if len(checked) < 4 || checked[0].Statement != "insert into items values (1, 'a')" || checked[1].Statement != "insert into items values (2, 'b')" {
		t.Fatalf("checked = %q", stmts)
	}
	time.Sleep(50 * time.Millisecond)
	_, recs = f.cp.Snapshot()
	found := false
	for _, r := range recs {
		if r.Outcome != nil && r.Action.Statement == "select count(*) from items where id > $1" && r.Outcome.Rows == 1 && r.Outcome.Command == "SELECT 1" {
			found = true
		}
	}
	if !found {
		t.Errorf("no outcome recorded for the count query: %+v", recs)
	}
}

func TestDenySimpleKeepsSessionAndTransaction(t *testing.T) {
	f := start(t)
	c := f.connect(t)
	ctx := context.Background()
	// Denied statement in a multi-statement message: nothing of it runs.
	_, err := c.Exec(ctx, "insert into items values (10, 'x'); drop table items", pgx.QueryExecModeSimpleProtocol)
	if pgCode(err) != "42501" || !strings.Contains(err.Error(), "DROP TABLE is not allowed") {
		t.Fatalf("got %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "select count(*) from items where id = 10").Scan(&n); err != nil || n != 0 {
		t.Fatalf("partial execution: count=%d err=%v", n, err)
	}
	// Inside a transaction block the client sees PostgreSQL's behaviour:
	// the block is aborted until ROLLBACK.
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "insert into items values (11, 'y')"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "drop table items"); pgCode(err) != "42501" {
		t.Fatalf("extended deny: %v", err)
	}
	if _, err := tx.Exec(ctx, "select 1"); pgCode(err) != "25P02" {
		t.Fatalf("after deny in tx, want 25P02, got %v", err)
	}
	tx.Rollback(ctx)
	if err := c.QueryRow(ctx, "select count(*) from items").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after rollback count=%d err=%v", n, err)
	}
}

func TestDenyExtendedPipeline(t *testing.T) {
	f := start(t)
	c := f.connect(t)
	ctx := context.Background()
	b := &pgx.Batch{}
	b.Queue("insert into items values ($1, 'p')", 20)
	b.Queue("drop table items")
	b.Queue("insert into items values ($1, 'q')", 21)
	err := c.SendBatch(ctx, b).Close()
	if pgCode(err) != "42501" {
		t.Fatalf("batch: %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "select count(*) from items").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("batch is one implicit transaction; want 0 rows, got %d", n)
	}
	// Session still usable for prepared statements.
	for i := 0; i < 3; i++ {
		if _, err := c.Exec(ctx, "insert into items values ($1, 'z')", 100+i); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.QueryRow(ctx, "select count(*) from items").Scan(&n); err != nil || n != 3 {
		t.Fatalf("count=%d err=%v", n, err)
	}
}

func TestCopyBothWays(t *testing.T) {
	f := start(t)
	c := f.connect(t)
	ctx := context.Background()
	rows := [][]any{}
	for i := 0; i < 5000; i++ {
		rows = append(rows, []any{i, strings.Repeat("v", i%300)})
	}
	n, err := c.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "name"}, pgx.CopyFromRows(rows))
	if err != nil || n != 5000 {
		t.Fatalf("copy from: %d %v", n, err)
	}
	var sb strings.Builder
	tag, err := c.PgConn().CopyTo(ctx, &sb, "COPY items TO STDOUT")
	if err != nil || tag.RowsAffected() != 5000 || strings.Count(sb.String(), "\n") != 5000 {
		t.Fatalf("copy to: %v %v", tag, err)
	}
	// COPY FROM STDIN over the simple protocol.
	_, err = c.PgConn().CopyFrom(ctx, strings.NewReader("9001\tx\n9002\ty\n"), "COPY items FROM STDIN")
	if err != nil {
		t.Fatal(err)
	}
}

func TestListenNotify(t *testing.T) {
	f := start(t)
	l := f.connect(t)
	ctx := context.Background()
	if _, err := l.Exec(ctx, "listen events"); err != nil {
		t.Fatal(err)
	}
	s := f.connect(t)
	if _, err := s.Exec(ctx, "select pg_notify('events', 'hello')"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := l.WaitForNotification(wctx)
	if err != nil || n.Payload != "hello" || n.Channel != "events" {
		t.Fatalf("notification %+v %v", n, err)
	}
}

func TestCancel(t *testing.T) {
	f := start(t)
	c := f.connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.Exec(ctx, "select pg_sleep(30)")
	if err == nil {
		t.Fatal("pg_sleep was not cancelled")
	}
	// pgx cancels via CancelRequest on context timeout; the query must have
	// been cancelled upstream (57014) rather than the connection killed.
	if !strings.Contains(err.Error(), "57014") && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if c.IsClosed() {
		// pgx closes the connection after a timeout; open a new one to check
		// the upstream backend is idle again.
		c = f.connect(t)
	}
	var n int
	if err := c.QueryRow(context.Background(), "select count(*) from pg_stat_activity where query like 'select pg_sleep%' and state = 'active'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("sleep still running: %d %v", n, err)
	}
}

func TestLargeMessages(t *testing.T) {
	f := start(t)
	c := f.connect(t)
	ctx := context.Background()
	big := strings.Repeat("x", 3<<20)
	var got string
	if err := c.QueryRow(ctx, "select $1::text", big).Scan(&got); err != nil || got != big {
		t.Fatalf("large round trip: len=%d err=%v", len(got), err)
	}
	if err := c.QueryRow(ctx, "select repeat('y', 5000000)").Scan(&got); err != nil || len(got) != 5000000 {
		t.Fatalf("large row: len=%d err=%v", len(got), err)
	}
}

// TestStartupParametersAreActions: session settings sent at connect time act
// like SET, so each is decided; a denied one refuses the connection.
func TestStartupParametersAreActions(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	prev := f.cp.Deny
	f.cp.Deny = func(s string) string {
		if strings.Contains(s, "role=") {
			return "changing role at connect time is not allowed"
		}
		return prev(s)
	}
	_, err := pgx.Connect(ctx, f.dsn("orders", token)+"&options=-c%20role%3Dpg_monitor")
	if pgCode(err) != "42501" || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("denied startup option: %v", err)
	}
	c, err := pgx.Connect(ctx, f.dsn("orders", token)+"&search_path=public,pg_catalog")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var sp string
	if err := c.QueryRow(ctx, "show search_path").Scan(&sp); err != nil || sp != "public,pg_catalog" {
		t.Fatalf("search_path = %q, %v", sp, err)
	}
	checked, _ := f.cp.Snapshot()
	found := false
	for _, a := range checked {
		if a.Kind == "startup_parameter" && a.Statement == "search_path=public,pg_catalog" {
			found = true
		}
	}
	if !found {
		t.Fatalf("search_path was not checked as an action: %+v", checked)
	}
}

// TestStandardConformingStrings: with the setting on, backslashes in '…'
// strings are plain characters; once the session turns it off, text whose
// meaning depends on it is refused, since the gateway's reading of statement
// boundaries and literals could differ from the server's.
func TestStandardConformingStrings(t *testing.T) {
	f := start(t)
	c := f.connect(t)
	ctx := context.Background()
	var v string
	if err := c.QueryRow(ctx, `select 'C:\path'`, pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil || v != `C:\path` {
		t.Fatalf("plain backslash with the setting on: %q %v", v, err)
	}
	if _, err := c.Exec(ctx, "set standard_conforming_strings = off"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Exec(ctx, `select 'x\'' ; drop table items; -- '`, pgx.QueryExecModeSimpleProtocol)
	if pgCode(err) != "42501" || !strings.Contains(err.Error(), "standard_conforming_strings") {
		t.Fatalf("ambiguous text after turning it off: %v", err)
	}
	if _, err := c.Exec(ctx, `select 'a\'b', 1`, pgx.QueryExecModeSimpleProtocol); pgCode(err) != "42501" {
		t.Fatalf("plain backslash with the setting off: %v", err)
	}
	// Text the server refuses as well gets the server's own error (the
	// gateway asks it to parse the text; syntax.go).
	_, err = c.Exec(ctx, `select U&'d\0061t'`, pgx.QueryExecModeSimpleProtocol)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Message != "unsafe use of string constant with Unicode escapes" || pe.Position != 8 {
		t.Fatalf("server-refused text with the setting off: %#v", err)
	}
	if _, err := c.PgConn().Prepare(ctx, "u", `select U&'d\0061t'`, nil); err == nil || !strings.Contains(err.Error(), "unsafe use of string constant") {
		t.Fatalf("server-refused text with the setting off (Parse): %v", err)
	}
	// (pgx refuses its own simple protocol once the setting is off; the
	// extended protocol carries the text as a Parse.)
	if err := c.QueryRow(ctx, `select E'a\\b'`).Scan(&v); err != nil || v != `a\b` {
		t.Fatalf("E'' strings stay usable: %q %v", v, err)
	}
	var n int
	if err := c.QueryRow(ctx, "select count(*) from items").Scan(&n); err != nil {
		t.Fatalf("the table must still exist: %v", err)
	}
}

// TestEveryOutcomeEmitted: outcomes are settled as their replies pass and
// emitted to the audit after the reply is flushed; none is lost, not for a
// pipelined batch with a failing statement, a denial, or statements still
// running when the session ends.
func TestEveryOutcomeEmitted(t *testing.T) {
	f := start(t)
	c := f.connect(t)
	ctx := context.Background()
	if _, err := c.Exec(ctx, "select 1; select 2", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("select $1::int", 1)
	b.Queue("select 1/0")
	b.Queue("select $1::int", 3)
	c.SendBatch(ctx, b).Close() // the division fails; the rest is skipped
	if _, err := c.Exec(ctx, "drop table items"); err == nil {
		t.Fatal("denied statement ran")
	}
	// A statement still running when the client goes away.
	nc := c.PgConn().Conn()
	done := make(chan struct{})
	go func() { c.Exec(context.Background(), "select pg_sleep(30)"); close(done) }()
	time.Sleep(200 * time.Millisecond)
	nc.Close()
	<-done

	outcomes := func() (settled, emitted int) {
		_, recs := f.cp.Snapshot()
		for _, r := range recs {
			if r.Outcome != nil {
				settled++
			}
		}
		return settled, f.cp.Emitted()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, e := outcomes()
		if s >= 6 && s == e {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("settled %d outcomes, emitted %d", s, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
