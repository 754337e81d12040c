package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestExecuteUnboundPortalRefused: a protocol Execute of a portal the
// gateway did not see bound with a statement it decided — a cursor declared
// in SQL, or a Bind of a statement prepared with SQL PREPARE — would return
// rows without the masking of any decision; it is refused (fail closed),
// and FETCH stays the way to read an SQL cursor.
func TestExecuteUnboundPortalRefused(t *testing.T) {
	e := startEnv(t, envOpts{policies: catalogPolicies, access: `["group:analysts", "group:admins"]`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", catalogSchema)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", e.token("ana", "analysts")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	fe := c.PgConn().Frontend()
	// exchange sends msgs and reads until readies ReadyForQuery messages,
	// returning the text of the DataRows and errors seen.
	exchange := func(readies int, msgs ...pgproto3.FrontendMessage) (rows, errs []string) {
		t.Helper()
		for _, m := range msgs {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for readies > 0 {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *pgproto3.DataRow:
				for _, v := range m.Values {
					rows = append(rows, string(v))
				}
			case *pgproto3.ErrorResponse:
				errs = append(errs, m.Code+": "+m.Message)
			case *pgproto3.ReadyForQuery:
				readies--
			}
		}
		return rows, errs
	}
	leaked := func(rows []string) bool {
		for _, r := range rows {
			if strings.Contains(r, "41111111") {
				return true
			}
		}
		return false
	}
	// A cursor declared in SQL, fetched with a protocol Execute.
	rows, errs := exchange(2,
		&pgproto3.Query{String: "begin; declare k cursor for select card_number from customers"},
		&pgproto3.Execute{Portal: "k"}, &pgproto3.Sync{})
	if leaked(rows) || len(errs) != 1 || !strings.HasPrefix(errs[0], "42501") {
		t.Errorf("Execute of an SQL cursor: rows %q, errors %q; want it refused", rows, errs)
	}
	exchange(1, &pgproto3.Query{String: "rollback"})
	// FETCH reads it, masked.
	rows, errs = exchange(1, &pgproto3.Query{String: "begin; declare k cursor for select card_number from customers; fetch all from k; commit"})
	if errs != nil || len(rows) != 1 || leaked(rows) || !strings.HasSuffix(rows[0], "1111") {
		t.Errorf("FETCH: rows %q, errors %q", rows, errs)
	}
	// A statement prepared in SQL, bound and executed through the protocol.
	rows, errs = exchange(2,
		&pgproto3.Query{String: "prepare p as select card_number from customers"},
		&pgproto3.Bind{PreparedStatement: "p"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if leaked(rows) || len(errs) != 1 || !strings.HasPrefix(errs[0], "42501") {
		t.Errorf("Bind of an SQL-prepared statement: rows %q, errors %q; want it refused", rows, errs)
	}
	// The session goes on; EXECUTE in SQL is decided and masked.
	rows, errs = exchange(1, &pgproto3.Query{String: "execute p"})
	if errs != nil || len(rows) != 1 || leaked(rows) {
		t.Errorf("EXECUTE p: rows %q, errors %q", rows, errs)
	}
}
