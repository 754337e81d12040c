package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// catalogPolicies masks for every connection (the API-made ones too).
const catalogPolicies = `
policies:
  - name: analysts-pii
    connections: ["*"]
    principals: ["group:analysts"]
    rules:
      - allow: "true"
    default: allow
    masking:
      columns:
        - { column: "*.card_number", method: last4 }
        - { column: "*.email", method: redact }
      derived: mask
      predicates: deny
`

const catalogSchema = `
create table customers (id int primary key, name text, email text, card_number text);
insert into customers values (1, 'Ann', 'ann@example.com', '4111111111111111');
create table orders (id int, email text, total numeric);
insert into orders values (10, 'bob@corp.test', 9.5);
create view v_cust as select id, card_number as cc from customers;`

// TestCatalogLockedTable: a client holding an ACCESS EXCLUSIVE lock on a
// table in an open transaction must not stall the catalog for every other
// session of the target. A statement whose view the catalog cannot trace
// because of the lock is refused (fail closed) within the catalog's
// lock_timeout; another session's query on another table answers meanwhile.
func TestCatalogLockedTable(t *testing.T) {
	e := startEnv(t, envOpts{policies: catalogPolicies, access: `["group:analysts", "group:admins"]`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", catalogSchema)
	ctx := context.Background()
	// Session A, straight to the upstream: holds the lock.
	a, err := pgx.Connect(ctx, shared.DSN(e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	txA, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback(ctx)
	if _, err := txA.Exec(ctx, "lock table customers in access exclusive mode"); err != nil {
		t.Fatal(err)
	}
	analyst := e.token("ana", "analysts")
	b, err := pgx.Connect(ctx, e.dsn("orders", analyst))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	c, err := pgx.Connect(ctx, e.dsn("orders", analyst))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	// Session B reads the view over the locked table: tracing it needs the
	// lock (pg_get_viewdef locks the relations behind the view).
	bDone := make(chan error, 1)
	bStart := time.Now()
	go func() {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var id int
		var cc string
		bDone <- b.QueryRow(qctx, "select id, cc from v_cust").Scan(&id, &cc)
	}()
	time.Sleep(300 * time.Millisecond) // let B's lookup start

	// Session C reads another table through the same target meanwhile.
	cStart := time.Now()
	var email string
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = c.QueryRow(qctx, "select email from orders where id = 10").Scan(&email)
	cancel()
	cTook := time.Since(cStart)
	if err != nil {
		t.Fatalf("session C on another table: %v", err)
	}
	if strings.Contains(email, "bob@") {
		t.Fatalf("session C: email not masked: %q", email)
	}
	if cTook > 5*time.Second {
		t.Errorf("session C waited %v for the catalog while session B's lookup was blocked by the lock", cTook)
	}

	// B is refused (fail closed) with a clear message, well before the
	// 30 s client timeout.
	err = <-bDone
	bTook := time.Since(bStart)
	if err == nil {
		t.Fatal("session B read the view over the locked table unrefused")
	}
	if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "catalog") {
		t.Errorf("session B: want a 42501 catalog refusal, got %v", err)
	}
	t.Logf("session C answered in %v; session B refused after %v", cTook, bTook)
	if bTook > 8*time.Second {
		t.Errorf("session B waited %v: the catalog lookup should give up at its lock_timeout", bTook)
	}

	// Once the lock is gone the view reads (masked) again.
	txA.Rollback(ctx)
	var cc string
	if err := b.QueryRow(ctx, "select cc from v_cust where id = $1", 1).Scan(&cc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(cc, "1111") || strings.Contains(cc, "41111111") {
		t.Fatalf("v_cust after the lock: %q", cc)
	}
}

// TestCatalogFollowsConnectionChanges: when an API-managed connection's
// upstream password is rotated (in PostgreSQL and through the API), the
// catalog drops its connections made with the old password and reconnects
// with the new one; masking keeps working.
func TestCatalogFollowsConnectionChanges(t *testing.T) {
	e := startEnv(t, envOpts{policies: catalogPolicies, access: `["group:analysts", "group:admins"]`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", catalogSchema+`;
create role rotor login password 'old-secret-1';
grant select on customers, orders, v_cust to rotor;`)
	t.Cleanup(func() {
		// The role is cluster-wide: drop it (errors ignored, the database goes anyway).
		if c, err := pgx.Connect(context.Background(), shared.DSN(e.db)); err == nil {
			c.Exec(context.Background(), "drop owned by rotor")
			c.Exec(context.Background(), "drop role if exists rotor")
			c.Close(context.Background())
		}
	})
	admin := e.token("root", "platform-admins")
	setPassword := func(pw string) {
		t.Helper()
		f := filepath.Join(e.dir, "pw")
		os.WriteFile(f, []byte(pw+"\n"), 0o600)
		e.runCLI(admin, "connections", "create", "--name", "rot", "--address", shared.Addr(), "--database", e.db,
			"--username", "rotor", "--password-file", f, "--tls", "disable", "--access", "group:analysts")
	}
	setPassword("old-secret-1")
	ctx := context.Background()
	analyst := e.token("ana", "analysts")
	readCard := func(step string) {
		t.Helper()
		c, err := pgx.Connect(ctx, e.dsn("rot", analyst))
		if err != nil {
			t.Fatalf("%s: connect: %v", step, err)
		}
		defer c.Close(ctx)
		var card *string
		if err := c.QueryRow(ctx, "select card_number from customers where id = $1", 1).Scan(&card); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if card == nil || !strings.HasSuffix(*card, "1111") || strings.Contains(*card, "41111111") {
			t.Fatalf("%s: card_number = %v, want last4 (a nulled field means the catalog could not connect)", step, deref(card))
		}
	}
	readCard("before rotation")

	up, err := pgx.Connect(ctx, shared.DSN(e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close(ctx)
	catalogBackends := func() (n int, oldest time.Time) {
		t.Helper()
		err := up.QueryRow(ctx, `select count(*), coalesce(min(backend_start), now()) from pg_stat_activity
			where usename = 'rotor' and application_name = 'gatehouse-catalog'`).Scan(&n, &oldest)
		if err != nil {
			t.Fatal(err)
		}
		return n, oldest
	}
	if n, _ := catalogBackends(); n == 0 {
		t.Fatal("no catalog connection as rotor before the rotation")
	}
	time.Sleep(50 * time.Millisecond)
	var rotated time.Time
	if _, err := up.Exec(ctx, "alter role rotor password 'new-secret-2'"); err != nil {
		t.Fatal(err)
	}
	if err := up.QueryRow(ctx, "select now()").Scan(&rotated); err != nil {
		t.Fatal(err)
	}
	setPassword("new-secret-2")
	readCard("after rotation")
	if n, oldest := catalogBackends(); n > 0 && oldest.Before(rotated) {
		t.Errorf("the catalog still holds %d connection(s), the oldest made with the old password at %v (rotated at %v)", n, oldest, rotated)
	}
	// The catalog's connections drop (a restart, an idle timeout): it
	// reconnects with the current password.
	if _, err := up.Exec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity
		where usename = 'rotor' and application_name = 'gatehouse-catalog'`); err != nil {
		t.Fatal(err)
	}
	shared.Exec(t, e.db, "create table customers2 (id int, card_number text); insert into customers2 values (2, '5500005555555559'); grant select on customers2 to rotor")
	c, err := pgx.Connect(ctx, e.dsn("rot", analyst))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var card *string
	if err := c.QueryRow(ctx, "select card_number from customers2").Scan(&card); err != nil {
		t.Fatal(err)
	}
	if card == nil || !strings.HasSuffix(*card, "5559") || strings.Contains(*card, "55000055") {
		t.Fatalf("after the catalog reconnected: card_number = %v, want last4", deref(card))
	}
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

// TestCatalogMissesAreRetried: a relation the catalog could not see (it was
// created in the client's still-open transaction, or did not exist yet) is
// looked up again soon, not treated as unknown for the whole catalog TTL.
func TestCatalogMissesAreRetried(t *testing.T) {
	e := startEnv(t, envOpts{policies: catalogPolicies, access: `["group:analysts", "group:admins"]`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", catalogSchema)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", e.token("ana", "analysts")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	// A table created and read in one transaction is invisible to the
	// catalog until the commit (its fields are nulled meanwhile); right
	// after the commit it is masked by its columns, not nulled.
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"create table t_new (id int, email text)", "insert into t_new values (7, 'new@example.com')"} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var id *int
	var email *string
	if err := tx.QueryRow(ctx, "select id, email from t_new").Scan(&id, &email); err != nil {
		t.Fatal(err)
	}
	if email != nil && strings.Contains(*email, "new@") {
		t.Fatalf("uncommitted table passed the e-mail: %q", *email)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "select id, email from t_new").Scan(&id, &email); err != nil {
		t.Fatal(err)
	}
	if id == nil || *id != 7 || email == nil || strings.Contains(*email, "new@") {
		t.Fatalf("after commit: id=%v email=%v, want 7 and a redacted e-mail", id, deref(email))
	}

	// A view name that did not exist when first named, then created behind
	// the gateway's back: seen as a view (predicates on its masked column
	// refused) once the short negative TTL has passed.
	if _, err := c.Exec(ctx, "select id from v_late where cc like '4%'"); err == nil {
		t.Fatal("v_late does not exist yet")
	}
	shared.Exec(t, e.db, "create view v_late as select id, card_number as cc from customers")
	time.Sleep(2500 * time.Millisecond)
	_, err = c.Exec(ctx, "select id from v_late where cc like '4%'")
	if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "card_number") {
		t.Fatalf("predicate on a masked column through a new view: %v", err)
	}
}
