package e2e

import (
	"strings"
	"testing"
)

// TestMaskingPrepareExecute: a statement run by SQL-level EXECUTE gets the
// same masking checks as the statement itself — a masked column in WHERE is
// refused, a field computed from a masked column is nulled (derived: mask),
// plain masked columns come back masked — including when the gateway's
// knowledge of the prepared statement could have drifted from the server's
// (a DEALLOCATE or PREPARE that did not run, or failed), and under CREATE
// TABLE AS EXECUTE and EXPLAIN ANALYZE EXECUTE. Each case is one psql
// session; each -c is its own Query message.
func TestMaskingPrepareExecute(t *testing.T) {
	e := startEnv(t, envOpts{policies: maskPolicies, access: `["group:analysts", "group:admins"]`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `
create table customers (id int primary key, name text, email text, card_number text, ssn text, customer_key text, notes text);
insert into customers values
 (1, 'Ann', 'ann@example.com', '4111111111111111', '078-05-1120', 'k-1', 'x'),
 (2, 'Bob', 'bob@corp.test', '5500005555555559', '219-09-9999', 'k-2', 'y');`)
	analyst := e.token("ana", "analysts")
	secrets := []string{"4111111111111111", "5500005555555559", "078-05-1120", "219-09-9999", "ann@example.com", "bob@corp.test"}

	cases := []struct {
		name  string
		steps []string
		// deny: some step must be refused with 42501 (else: nothing secret
		// in the output, and want appears in it).
		deny bool
		want string
	}{
		{name: "predicate on masked column", deny: true, steps: []string{
			"prepare p(text) as select name from customers where ssn = $1",
			"execute p('078-05-1120')",
		}},
		{name: "derived field is nulled", want: "(2 rows)", steps: []string{
			"prepare q as select upper(ssn) as s, id from customers",
			"execute q",
		}},
		{name: "plain masked columns", want: "************1111", steps: []string{
			"prepare r as select ssn, card_number, email from customers order by id",
			"execute r",
		}},
		{name: "deallocate that did not run", steps: []string{
			"prepare d as select upper(ssn) as u from customers",
			// Denied as a whole (a masked column in WHERE): the DEALLOCATE
			// never reaches the server, d is still prepared there.
			"deallocate d; select id from customers where card_number = 'x'",
			"execute d",
		}},
		{name: "deallocate all that did not run", steps: []string{
			"prepare d as select upper(ssn) as u from customers",
			"deallocate all; select id from customers where card_number = 'x'",
			"execute d",
		}},
		{name: "re-prepare that failed", steps: []string{
			"prepare z as select upper(ssn) as u from customers",
			// The server refuses: z already exists, and still runs the
			// first statement.
			"prepare z as select 1 as u",
			"execute z",
		}},
		{name: "prepare in a failed transaction", steps: []string{
			"begin",
			"select 1/0",
			"prepare w as select 1 as u",
			"rollback",
			"prepare w as select upper(ssn) as u from customers",
			"execute w",
		}},
		{name: "explain analyze execute", steps: []string{
			"prepare r as select card_number from customers",
			"explain (analyze, verbose, costs off, timing off) execute r",
		}},
		{name: "explain analyze execute with predicate", deny: true, steps: []string{
			"prepare r as select 1",
			"deallocate r",
			"prepare r(text) as select id from customers where card_number = $1",
			"explain analyze execute r('4111111111111111')",
		}},
		{name: "create table as execute derived", steps: []string{
			"prepare q as select upper(ssn) as u from customers",
			"create temp table copied as execute q",
			"select * from copied",
		}},
		{name: "create table as select derived (direct form)", steps: []string{
			"create temp table copied as select upper(ssn) as u from customers",
			"select * from copied",
		}},
		{name: "create table as execute plain", steps: []string{
			"prepare q as select ssn from customers",
			"create temp table copied as execute q",
			"select * from copied",
		}},
		{name: "insert select copies masked", steps: []string{
			"create temp table probe (note text)",
			"insert into probe select upper(ssn) from customers",
			"insert into probe (note) values ((select ssn from customers limit 1))",
			"prepare c as insert into probe select ssn from customers",
			"execute c",
			"select * from probe",
		}},
		{name: "create table as select plain (direct form)", steps: []string{
			"create temp table copied as select ssn from customers",
			"select * from copied",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-X", "-v", "VERBOSITY=verbose"}
			for _, s := range tc.steps {
				args = append(args, "-c", s)
			}
			out, _ := e.runErr(analyst, "psql", args...)
			t.Logf("%s", out)
			if tc.deny && !strings.Contains(out, "42501") {
				t.Errorf("not refused with 42501:\n%s", out)
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("LEAK %q through %q:\n%s", s, tc.steps, out)
				}
			}
			if tc.want != "" && !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}
