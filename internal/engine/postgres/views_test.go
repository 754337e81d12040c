package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/engine/enginetest"
	"github.com/gatehouse/gatehouse/internal/engine/postgres"
	"github.com/gatehouse/gatehouse/internal/pgtest"
)

const viewSchema = `
create table customers (id int primary key, name text, email text, card_number text);
create schema sales;
create table sales.orders (id int, customer_id int, total numeric);
create table audit_log (id int, msg text);
create view v_cards as select id, card_number as cc, email as contact from customers;
create view v_nested as select c.cc as card, upper(c.contact) as shout, c.id from v_cards c where c.id > 0;
create view v_union as select card_number as x from customers union all select 'a';
create view v_sub as select s.x, s.id from (select card_number as x, id from customers) s;
create view v_rows as select row_to_json(c) as j, c.id from customers c;
create view sales.v_orders as select o.id, o.total, c.email from sales.orders o join customers c on c.id = o.customer_id;
create view v_audit as select * from audit_log;
create materialized view mv_cards as select id, card_number from customers;
create view "Odd.View" as select name from customers;
`

// testPlan masks like the bypass suite: card numbers last4, e-mails redact.
func testPlan() *access.MaskPlan {
	rules := map[string]string{"customers.card_number": "last4", "*.email": "redact"}
	return &access.MaskPlan{Columns: []access.ColumnMask{{Column: "customers.card_number", Method: "last4"}, {Column: "*.email", Method: "redact"}},
		MethodFor: func(schema, table, column string) (string, bool) {
			for p, m := range rules {
				parts := strings.Split(p, ".")
				names := []string{schema, table, column}[3-len(parts):]
				ok := true
				for i := range parts {
					if m, _ := path.Match(parts[i], names[i]); !m {
						ok = false
					}
				}
				if ok {
					return m, true
				}
			}
			return "", false
		}}
}

// TestCatalogTracesViews: the catalog traces views (nested, renamed,
// computed, set operations, subqueries, materialized, other schemas) to
// the base-table columns they carry, for RowDescription fields and for the
// checkpoint's Views.
func TestCatalogTracesViews(t *testing.T) {
	pgtest.Need(t, shared)
	db := shared.CreateDB(t)
	shared.Exec(t, db, viewSchema)
	ctx := context.Background()
	up, err := pgx.Connect(ctx, shared.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close(ctx)
	oid := func(rel string) uint32 {
		var o uint32
		if err := up.QueryRow(ctx, "select $1::regclass::oid", rel).Scan(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	cat := postgres.NewCatalogForTest(engine.Upstream{Address: shared.Addr(), Database: db, Username: shared.User, Password: shared.Password, TLSMode: "disable"})
	plan := testPlan()
	fields := []struct {
		rel    string
		attnum int16
		want   string
	}{
		{"customers", 4, "last4"},
		{"customers", 2, ""},
		{"v_cards", 1, ""},
		{"v_cards", 2, "last4"},  // cc = card_number
		{"v_cards", 3, "redact"}, // contact = email
		{"v_nested", 1, "last4"}, // card = v_cards.cc = card_number
		{"v_nested", 2, "null"},  // upper(email): computed from a masked column
		{"v_nested", 3, ""},
		{"v_union", 1, "null"}, // set operation: any column read
		{"v_sub", 1, "null"},   // subquery column: any column of customers
		{"v_sub", 2, "null"},
		{"v_rows", 1, "null"}, // row_to_json(c) carries every column
		{"v_rows", 2, ""},
		{"sales.v_orders", 2, ""},
		{"sales.v_orders", 3, "redact"},
		{"mv_cards", 2, "last4"},
		{`"Odd.View"`, 1, ""},
	}
	for _, f := range fields {
		got, err := cat.Method(oid(f.rel), f.attnum, plan)
		if err != nil || got != f.want {
			t.Errorf("%s attnum %d: method %q (%v), want %q", f.rel, f.attnum, got, err, f.want)
		}
	}

	names := []engine.Relation{{Name: "v_audit"}, {Name: "customers"}, {Schema: "sales", Name: "v_orders"}, {Name: "v_nested"}, {Name: "nope"}, {Name: "Odd.View"}}
	views, err := cat.Views(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	show := func(v engine.View) string {
		var b []string
		for _, r := range v.Behind {
			b = append(b, r.Schema+"."+r.Name)
		}
		var cs []string
		for _, c := range v.Columns {
			s := c.Name + "="
			if c.Source != nil {
				s += "src:" + c.Source.Table + "." + c.Source.Column
			} else {
				var fs []string
				for _, f := range c.From {
					fs = append(fs, f.Table+"."+f.Column)
				}
				s += "from:" + strings.Join(fs, "+")
			}
			cs = append(cs, s)
		}
		return fmt.Sprintf("%s.%s behind[%s] cols[%s]", v.Schema, v.Name, strings.Join(b, " "), strings.Join(cs, " "))
	}
	want := map[engine.Relation]string{
		{Name: "v_audit"}:                   "public.v_audit behind[public.audit_log] cols[id=src:audit_log.id msg=src:audit_log.msg]",
		{Schema: "sales", Name: "v_orders"}: "sales.v_orders behind[sales.orders public.customers] cols[id=src:orders.id total=src:orders.total email=src:customers.email]",
		{Name: "v_nested"}:                  "public.v_nested behind[public.v_cards public.customers] cols[card=src:customers.card_number shout=from:customers.email id=src:customers.id]",
		{Name: "Odd.View"}:                  "public.Odd.View behind[public.customers] cols[name=src:customers.name]",
	}
	if len(views) != len(want) {
		t.Errorf("views for %d names, want %d: %v", len(views), len(want), views)
	}
	for n, w := range want {
		if len(views[n]) != 1 || show(views[n][0]) != w {
			t.Errorf("%v:\n got %v\nwant %s", n, views[n], w)
		}
	}

	// A redefined view is seen after invalidation (DDL through the gateway).
	shared.Exec(t, db, "create or replace view v_cards as select id, name as cc, email as contact from customers")
	cat.Invalidate()
	if got, _ := cat.Method(oid("v_cards"), 2, plan); got != "" {
		t.Errorf("after redefinition: v_cards.cc method %q", got)
	}
}

// TestCatalogUnreachableFailsClosed: an unreachable catalog is an error
// (callers deny or null), never an empty answer.
func TestCatalogUnreachableFailsClosed(t *testing.T) {
	cat := postgres.NewCatalogForTest(engine.Upstream{Address: fmt.Sprintf("127.0.0.1:%d", pgtest.FreePort(t)), Database: "x", Username: "x", TLSMode: "disable"})
	if v, err := cat.Views(context.Background(), []engine.Relation{{Name: "v_cards"}}); err == nil {
		t.Errorf("views from an unreachable catalog: %v", v)
	}
	if m, err := cat.Method(16384, 1, testPlan()); err == nil {
		t.Errorf("method from an unreachable catalog: %q", m)
	}
}

// BenchmarkCatalogViewsCached is the per-statement cost of asking the
// catalog about a statement's relations once the answers are cached.
func BenchmarkCatalogViewsCached(b *testing.B) {
	pgtest.Need(b, shared)
	db := shared.CreateDB(b)
	shared.Exec(b, db, viewSchema)
	cat := postgres.NewCatalogForTest(engine.Upstream{Address: shared.Addr(), Database: db, Username: shared.User, Password: shared.Password, TLSMode: "disable"})
	ctx := context.Background()
	for _, names := range [][]engine.Relation{{{Name: "customers"}}, {{Name: "v_nested"}, {Schema: "sales", Name: "orders"}}} {
		b.Run(names[0].Name, func(b *testing.B) {
			if _, err := cat.Views(ctx, names); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				cat.Views(ctx, names)
			}
		})
	}
}

// lockedBuffer is a log sink safe for concurrent sessions.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSuperuserWarning: connecting upstream as a superuser is logged, once
// per target.
func TestSuperuserWarning(t *testing.T) {
	pgtest.Need(t, shared)
	db := shared.CreateDB(t)
	var logs lockedBuffer
	op := &enginetest.Opener{Token: token, Target: "orders", Checkpoint: &enginetest.Checkpoint{},
		Upstream: engine.Upstream{Address: shared.Addr(), Database: db, Username: shared.User, Password: shared.Password, TLSMode: "disable"}}
	eng := postgres.New(postgres.Config{Opener: op, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
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
	for i := 0; i < 2; i++ {
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://agent:%s@%s/orders?sslmode=disable", token, l.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	}
	if n := strings.Count(logs.String(), "upstream role is a superuser"); n != 1 {
		t.Errorf("%d superuser warnings, want 1:\n%s", n, logs.String())
	}
}

// TestCatalogLookupLeavesWithCaller: a lookup blocked by a client's lock
// gives up at the catalog's lock_timeout, and a caller whose context ends
// first stops waiting at once; lookups of other relations go on meanwhile.
func TestCatalogLookupLeavesWithCaller(t *testing.T) {
	pgtest.Need(t, shared)
	db := shared.CreateDB(t)
	shared.Exec(t, db, viewSchema)
	ctx := context.Background()
	locker, err := pgx.Connect(ctx, shared.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "lock table customers in access exclusive mode"); err != nil {
		t.Fatal(err)
	}
	cat := postgres.NewCatalogForTest(engine.Upstream{Address: shared.Addr(), Database: db, Username: shared.User, Password: shared.Password, TLSMode: "disable"})
	// Its caller leaves after 200 ms: it stops waiting then.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if v, err := cat.Views(short, []engine.Relation{{Name: "v_cards"}}); err == nil {
		t.Fatalf("a view over a locked table traced: %v", v)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the caller waited %v after its context ended", d)
	}
	// A patient caller gets the lock-timeout error (fail closed), not a hang.
	start = time.Now()
	_, err = cat.Views(ctx, []engine.Relation{{Name: "v_cards"}})
	if err == nil || !strings.Contains(err.Error(), "lock") {
		t.Errorf("view over a locked table: %v, want a lock timeout", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("the lookup took %v, beyond the catalog's lock_timeout", d)
	}
	// Another relation resolves meanwhile.
	if v, err := cat.Views(ctx, []engine.Relation{{Name: "v_audit"}}); err != nil || len(v) != 1 {
		t.Errorf("v_audit while customers is locked: %v, %v", v, err)
	}
}
