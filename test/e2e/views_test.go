package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestMaskingThroughViews: with derived: mask, a query on a view gets the
// base columns' masking: renamed pass-through columns keep their method
// (nested and materialized views too), computed view columns over a masked
// column are nulled, and predicates on view columns that carry a masked
// column are refused.
func TestMaskingThroughViews(t *testing.T) {
	e := startEnv(t, envOpts{policies: maskPolicies, access: `["group:analysts", "group:admins"]`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `
create table customers (id int primary key, name text, email text, card_number text, ssn text, customer_key text, notes text);
insert into customers values (1, 'Ann', 'ann@example.com', '4111111111111111', '078-05-1120', 'k-1', 'nothing');
create view v_cards as select id, card_number as cc, email as contact, upper(email) as shout from customers;
create view v_nested as select cc as card, shout, id from v_cards;
create materialized view mv_cards as select id, card_number as cc, name from customers;`)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", e.token("ana", "analysts")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		var cc, contact string
		var shout *string
		if err := c.QueryRow(ctx, "select cc, contact, shout from v_cards where id = 1", mode).Scan(&cc, &contact, &shout); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(cc, "1111") || strings.Contains(cc, "41111111") || strings.Contains(contact, "ann@") || shout != nil {
			t.Errorf("v_cards (%v): cc=%q contact=%q shout=%v", mode, cc, contact, shout)
		}
		var card string
		if err := c.QueryRow(ctx, "select card, shout from v_nested", mode).Scan(&card, &shout); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(card, "1111") || strings.Contains(card, "41111111") || shout != nil {
			t.Errorf("v_nested (%v): card=%q shout=%v", mode, card, shout)
		}
		var name string
		if err := c.QueryRow(ctx, "select * from mv_cards", mode).Scan(new(int), &cc, &name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(cc, "1111") || strings.Contains(cc, "41111111") || name != "Ann" {
			t.Errorf("mv_cards (%v): cc=%q name=%q", mode, cc, name)
		}
	}
	for _, q := range []string{
		"select id from v_cards where cc like '4%'",
		"select id from v_nested order by card",
		"select id from mv_cards where cc > '5'",
		"select id from v_cards where shout like 'A%'",
	} {
		_, err := c.Exec(ctx, q)
		if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "customers.") {
			t.Errorf("%s: %v", q, err)
		}
	}
}
