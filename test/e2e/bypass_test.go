package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// bypassPolicies is the policy every bypass case runs against: agents may
// read and write ordinary tables, but not drop tables, run unfiltered
// UPDATE/DELETE, terminate backends, touch the audit log or run opaque code
// (DO/CALL, which gatehouse cannot see into); card numbers and e-mails are
// masked with the default derived: deny and predicates: deny.
const bypassPolicies = `
policies:
  - name: agents
    connections: [orders]
    principals: ["group:agents"]
    rules:
      - deny: statement.kind == "drop_table"
        message: agents may not drop tables
      - deny: statement.kind in ["update", "delete"] && !statement.has_where
        message: UPDATE/DELETE without WHERE
      - deny: '"pg_terminate_backend" in statement.functions'
        message: agents may not terminate backends
      - deny: statement.tables_written.exists(t, t.lowerAscii() == "audit_log" || t.lowerAscii().endsWith(".audit_log"))
        message: the audit log is not writable by agents
      - deny: statement.kind in ["do", "call"]
        message: opaque code blocks are not allowed for agents
      - allow: statement.kind in ["select", "values", "insert", "update", "delete", "merge", "begin", "commit", "rollback", "set", "show", "prepare", "execute", "deallocate", "explain", "copy_to", "declare_cursor", "fetch", "close", "empty"]
    default: deny
    masking:
      columns:
        - { column: "customers.card_number", method: last4 }
        - { column: "*.email", method: redact }
`

// bypassSetup is run upstream as the superuser before the cases.
const bypassSetup = `
create table customers (id int primary key, name text, email text, card_number text);
insert into customers values (1, 'Ann', 'ann@example.com', '4111111111111111'), (2, 'Bob', 'bob@corp.test', '5500005555555559');
create table audit_log (id int, msg text);
insert into audit_log values (1, 'genesis');
create table probe (id serial, card_number text, note text);
create view v_customers as select * from customers;
create view v_cards as select id, card_number as cc, email as contact from customers;
create view v_audit as select * from audit_log;
create view v_audit2 as select * from v_audit;
create view v_nested as select c.cc as card, upper(c.contact) as shout, c.id from v_cards c where c.id > 0;
create materialized view mv_cards as select id, card_number, email from customers;
create function card_cursor() returns refcursor language plpgsql as $f$
declare r refcursor := 'rc'; begin open r for select card_number, email from customers; return r; end $f$;
create function shout(text) returns int language plpgsql as $f$ begin raise notice 'v=%', $1; return 1; end $f$;
create function first_card() returns text language sql as 'select card_number from customers where id = 1';
create view v_first_card as select first_card() as c;
create unique index customers_card on customers (card_number);
analyze customers;
checkpoint;
`

// leakMarkers are pieces of the secret values (and of common encodings of
// them: reversed, hex) that must never reach an agent. last4 keeps "1111" /
// "5559", so the markers avoid the last four digits.
var leakMarkers = []string{
	"41111111", "55000055", "11111114", "95555555",
	"ann@", "bob@", "example.com", "corp.test", "elpmaxe",
	"34313131", "35353030",
}

type bypassMode int

const (
	modeExtended bypassMode = iota // pgx default: Parse/Bind/Execute, cached statements
	modeSimple                     // simple Query message
	modeBinary                     // extended, every result column in binary
	modeCopy                       // COPY ... TO STDOUT via the copy sub-protocol
	modePsql                       // psql -c
)

func (m bypassMode) String() string {
	return [...]string{"extended", "simple", "binary", "copy", "psql"}[m]
}

type bypassCase struct {
	name string
	mode bypassMode
	// steps run in order on one fresh agent connection; {pid} is replaced by
	// the pid of a bystander backend.
	steps []string
	// deny: a step must be refused with 42501. Otherwise the case is caught
	// when a step is refused or when nothing secret appears in any output.
	deny bool
}

// TestBypass tries to get around statement policies and masking with every
// evasion we could think of. Each case runs on a fresh agent session; after
// it the upstream state is checked (no dropped table, no deleted rows, no
// audit log write, no terminated backend, no secret copied into an unmasked
// table).
func TestBypass(t *testing.T) {
	e := startEnv(t, envOpts{policies: bypassPolicies, access: `["group:agents", "group:admins"]`})
	ctx := context.Background()
	up, err := pgx.Connect(ctx, shared.DSN(e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close(ctx)
	if _, err := up.Exec(ctx, bypassSetup); err != nil {
		t.Fatal(err)
	}
	// A bystander session whose backend the agent tries to terminate.
	victim, err := pgx.Connect(ctx, shared.DSN(e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { victim.Close(ctx) }()
	agent := e.token("agent-7", "agents")

	for _, bc := range bypassCases {
		t.Run(bc.mode.String()+"/"+bc.name, func(t *testing.T) {
			if why := knownBypasses[bc.mode.String()+"/"+bc.name]; why != "" {
				t.Skip("BYPASS: " + why)
			}
			pid := victim.PgConn().PID()
			refused, outs, errs := runBypassSteps(t, e, agent, bc, pid)
			// Upstream state must be untouched whatever the client saw.
			if problems := bypassState(ctx, up, victim); len(problems) > 0 {
				t.Errorf("side effects after %q: %s (client saw refused=%v errs=%v)", bc.steps, strings.Join(problems, "; "), refused, errs)
				restoreBypassState(t, ctx, up)
				if victim.Ping(ctx) != nil {
					victim, _ = pgx.Connect(ctx, shared.DSN(e.db))
				}
			}
			if bc.deny && !refused {
				t.Errorf("not refused with 42501: %q: errors %v, output %q", bc.steps, errs, outs)
				return
			}
			t.Logf("refused=%v errors=%q output=%q", refused, errs, outs)
			if refused {
				return
			}
			for _, o := range outs {
				for _, m := range leakMarkers {
					if strings.Contains(o, m) {
						t.Errorf("LEAK %q in output of %q: %q", m, bc.steps, o)
					}
				}
			}
			for _, err := range errs {
				for _, m := range leakMarkers {
					if strings.Contains(err, m) {
						t.Errorf("LEAK %q in error of %q: %s", m, bc.steps, err)
					}
				}
			}
		})
	}
}

// runBypassSteps runs the steps of a case as the agent and reports whether
// one was refused with 42501, every value/line the client received, and the
// other errors.
func runBypassSteps(t *testing.T, e *env, agent string, bc bypassCase, pid uint32) (refused bool, outs, errs []string) {
	t.Helper()
	ctx := context.Background()
	if bc.mode == modePsql {
		// One psql session; each -c is its own Query message.
		args := []string{"-X", "-At", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"}
		for _, s := range bc.steps {
			args = append(args, "-c", strings.ReplaceAll(s, "{pid}", fmt.Sprint(pid)))
		}
		out, err := e.runErr(agent, "psql", args...)
		if strings.Contains(out, "42501") {
			refused = true
		} else if err != nil {
			errs = append(errs, out)
		}
		return refused, []string{out}, errs
	}
	cfg, err := pgx.ParseConfig(e.dsn("orders", agent))
	if err != nil {
		t.Fatal(err)
	}
	// Notices and notifications reach the client outside result rows: they
	// count as output too.
	var side []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		side = append(side, n.Message+" "+n.Detail+" "+n.Where)
	}
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		side = append(side, n.Channel+" "+n.Payload)
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	defer func() { outs = append(outs, side...) }()
	for _, s := range bc.steps {
		s = strings.ReplaceAll(s, "{pid}", fmt.Sprint(pid))
		var err error
		if fn, ok := strings.CutPrefix(s, "fastpath "); ok {
			// A legacy FunctionCall message for the function named.
			var oid uint32
			if err := c.QueryRow(ctx, "select to_regproc($1)::oid", fn).Scan(&oid); err != nil {
				t.Fatal(err)
			}
			res, ferr := fastPath(ctx, c.PgConn(), oid)
			outs = append(outs, res)
			if ferr != nil {
				if sqlstate(ferr) == "42501" {
					refused = true
				} else {
					errs = append(errs, ferr.Error())
				}
			}
			continue
		}
		switch bc.mode {
		case modeSimple:
			// pgconn sends one Query message as is: several statements
			// in one message, whatever standard_conforming_strings says.
			var res []*pgconn.Result
			res, err = c.PgConn().Exec(ctx, s).ReadAll()
			for _, r := range res {
				for _, row := range r.Rows {
					for _, v := range row {
						outs = append(outs, string(v))
					}
				}
				if r.Err != nil && err == nil {
					err = r.Err
				}
			}
		case modeCopy:
			var buf bytes.Buffer
			_, err = c.PgConn().CopyTo(ctx, &buf, s)
			outs = append(outs, buf.String())
		default:
			var args []any
			if bc.mode == modeBinary {
				args = []any{pgx.QueryResultFormats{pgx.BinaryFormatCode}}
			}
			var rows pgx.Rows
			rows, err = c.Query(ctx, s, args...)
			if err == nil {
				for rows.Next() {
					for _, raw := range rows.RawValues() {
						outs = append(outs, string(raw))
					}
				}
				rows.Close()
				err = rows.Err()
			}
		}
		if err != nil {
			// 42601: the gateway refused text it cannot parse (never forwarded).
			if code := sqlstate(err); code == "42501" || code == "42601" {
				refused = true
			} else {
				msg := err.Error()
				var pe *pgconn.PgError
				if errors.As(err, &pe) {
					msg += " DETAIL: " + pe.Detail + " WHERE: " + pe.Where
				}
				errs = append(errs, msg)
			}
		}
	}
	return
}

// fastPath sends one FunctionCall message with no arguments and returns its
// result, or the error the gateway or server answered with.
func fastPath(ctx context.Context, pc *pgconn.PgConn, oid uint32) (string, error) {
	fe := pc.Frontend()
	fe.Send(&pgproto3.FunctionCall{Function: oid, ResultFormatCode: 0})
	if err := fe.Flush(); err != nil {
		return "", err
	}
	var out string
	var ferr error
	for {
		msg, err := fe.Receive()
		if err != nil {
			return out, err
		}
		switch m := msg.(type) {
		case *pgproto3.FunctionCallResponse:
			out = string(m.Result)
		case *pgproto3.ErrorResponse:
			ferr = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			return out, ferr
		}
	}
}

// bypassState lists what a case changed upstream that it should not have.
func bypassState(ctx context.Context, up, victim *pgx.Conn) []string {
	var problems []string
	var n int
	var card string
	if err := up.QueryRow(ctx, "select count(*), max(card_number) filter (where id = 1) from customers").Scan(&n, &card); err != nil {
		problems = append(problems, "customers: "+err.Error())
	} else if n != 2 || card != "4111111111111111" {
		problems = append(problems, fmt.Sprintf("customers changed: %d rows, card %q", n, card))
	}
	var msg string
	if err := up.QueryRow(ctx, "select count(*), max(msg) from audit_log").Scan(&n, &msg); err != nil {
		problems = append(problems, "audit_log: "+err.Error())
	} else if n != 1 || msg != "genesis" {
		problems = append(problems, fmt.Sprintf("audit_log written: %d rows, msg %q", n, msg))
	}
	var copied string
	if err := up.QueryRow(ctx, "select coalesce(string_agg(coalesce(card_number, '') || ' ' || coalesce(note, ''), ','), '') from probe").Scan(&copied); err != nil {
		problems = append(problems, "probe: "+err.Error())
	} else {
		for _, m := range leakMarkers {
			if strings.Contains(copied, m) {
				problems = append(problems, fmt.Sprintf("secret copied into unmasked table probe: %q", copied))
				break
			}
		}
	}
	if victim.Ping(ctx) != nil {
		problems = append(problems, "bystander backend terminated")
	}
	return problems
}

func restoreBypassState(t *testing.T, ctx context.Context, up *pgx.Conn) {
	t.Helper()
	_, err := up.Exec(ctx, `
drop table if exists customers, audit_log, probe cascade;
`+bypassSetup)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
}

// one is a single-step case.
func one(s string) []string { return []string{s} }

var bypassCases = []bypassCase{
	// --- DROP TABLE: comments, case, quoting, multi-statement -------------
	{name: "plain drop", mode: modeSimple, steps: one("drop table customers"), deny: true},
	{name: "comment inside keyword gap", mode: modeSimple, steps: one("DrOp/**/TABLE customers"), deny: true},
	{name: "nested comment", mode: modeSimple, steps: one("drop /* a /* b */ c */ table customers"), deny: true},
	{name: "line comment newline", mode: modeSimple, steps: one("-- harmless\ndrop table customers"), deny: true},
	{name: "line comment then statement", mode: modeSimple, steps: one("select 1 -- x\n; drop table customers"), deny: true},
	{name: "quoted identifier", mode: modeSimple, steps: one(`drop table "customers"`), deny: true},
	{name: "schema-qualified quoted", mode: modeSimple, steps: one(`drop table "public"."customers"`), deny: true},
	{name: "unicode escaped identifier", mode: modeSimple, steps: one(`drop table U&"cust\006fmers"`), deny: true},
	{name: "if exists cascade", mode: modeSimple, steps: one("drop table if exists customers cascade"), deny: true},
	{name: "multi statement allowed first", mode: modeSimple, steps: one("select 1; drop table customers"), deny: true},
	{name: "multi statement in transaction", mode: modeSimple, steps: one("begin; select 1; drop table customers; commit"), deny: true},
	{name: "dollar quote hides semicolon", mode: modeSimple, steps: one("select $$;$$; drop table customers"), deny: true},
	{name: "tagged dollar quote", mode: modeSimple, steps: one("select $a$ $$ ; $a$; drop table customers"), deny: true},
	{name: "E string escape", mode: modeSimple, steps: one(`select E'\';'; drop table customers`), deny: true},
	{name: "extended drop", mode: modeExtended, steps: one("drop table customers"), deny: true},
	{name: "psql drop", mode: modePsql, steps: one("DROP\tTABLE\n customers"), deny: true},
	{name: "prepare drop", mode: modeSimple, steps: []string{"prepare p as drop table customers", "execute p"}, deny: true},
	{name: "explain drop", mode: modeSimple, steps: one("explain analyze drop table customers"), deny: true},
	// With standard_conforming_strings off the server reads backslash
	// escapes in '...' literals: text the gateway parses as one string
	// literal is two statements to the server.
	{name: "standard_conforming_strings off", mode: modeSimple, steps: []string{
		"set standard_conforming_strings = off",
		`select 'x\'' ; drop table probe; -- '`,
	}, deny: true},
	{name: "backslash_quote via set_config", mode: modeSimple, steps: []string{
		"select set_config('standard_conforming_strings', 'off', false)",
		`select 'x\'' ; drop table probe; -- '`,
	}, deny: true},

	// --- UPDATE/DELETE without WHERE --------------------------------------
	{name: "delete no where", mode: modeSimple, steps: one("delete from customers"), deny: true},
	{name: "update no where", mode: modeExtended, steps: one("UPDATE customers SET card_number = '0'"), deny: true},
	{name: "delete using", mode: modeSimple, steps: one("delete from customers using probe"), deny: true},
	{name: "CTE delete", mode: modeSimple, steps: one("with x as (delete from customers returning *) select count(*) from x"), deny: true},
	{name: "CTE update extended", mode: modeExtended, steps: one("with x as (update customers set card_number = '0' returning id) select id from x"), deny: true},
	{name: "nested CTE delete (PostgreSQL refuses)", mode: modeSimple, steps: one("with a as (select 1), b as (with c as (delete from customers returning id) select * from c) select * from b")},
	{name: "prepare/execute delete", mode: modeSimple, steps: []string{"prepare d as delete from customers", "execute d"}, deny: true},
	{name: "explain analyze delete", mode: modeSimple, steps: one("explain (analyze, format json) delete from customers"), deny: true},
	{name: "where true (has_where)", mode: modeSimple, steps: one("delete from probe where true")}, // allowed by the policy as written: has_where is syntactic
	{name: "DO block delete", mode: modeSimple, steps: one("do $$ begin delete from customers; end $$"), deny: true},
	{name: "DO block mixed case language", mode: modeSimple, steps: one("Do LANGUAGE plpgsql $x$ begin execute 'drop table customers'; end $x$"), deny: true},
	{name: "DO in multi statement", mode: modeSimple, steps: one("select 1; do $$ begin delete from audit_log; end $$"), deny: true},
	{name: "query_to_xml runs a delete (PostgreSQL refuses)", mode: modeSimple, steps: one("select query_to_xml('delete from customers returning id', true, false, '')")},
	{name: "merge delete", mode: modeSimple, steps: one("merge into customers c using (select 1 as id) s on true when matched then delete"), deny: true},
	{name: "merge delete source-only condition", mode: modeExtended, steps: one("merge into customers c using (select 1 as id) s on s.id = 1 when matched then delete"), deny: true},
	{name: "merge update on true", mode: modeSimple, steps: one("merge into customers c using probe p on true when matched then update set card_number = '0'"), deny: true},

	// --- pg_terminate_backend ---------------------------------------------
	{name: "terminate plain", mode: modeSimple, steps: one("select pg_terminate_backend({pid})"), deny: true},
	{name: "terminate upper case", mode: modeSimple, steps: one("SELECT PG_TERMINATE_BACKEND({pid})"), deny: true},
	{name: "terminate schema-qualified", mode: modeSimple, steps: one("select pg_catalog.pg_terminate_backend({pid})"), deny: true},
	{name: "terminate quoted", mode: modeSimple, steps: one(`select "pg_catalog"."pg_terminate_backend"({pid})`), deny: true},
	{name: "terminate in FROM", mode: modeSimple, steps: one("select * from pg_terminate_backend({pid})"), deny: true},
	{name: "terminate in WHERE", mode: modeSimple, steps: one("select 1 from pg_stat_activity where pid = {pid} and pg_terminate_backend(pid)"), deny: true},
	{name: "terminate in VALUES", mode: modeSimple, steps: one("values (pg_terminate_backend({pid}))"), deny: true},
	{name: "terminate extended with parameter", mode: modeExtended, steps: one("select pg_terminate_backend(pid) from pg_stat_activity where pid = {pid}"), deny: true},
	{name: "terminate in CTE", mode: modeExtended, steps: one("with k as (select pg_terminate_backend({pid})) select * from k"), deny: true},
	{name: "terminate in ORDER BY", mode: modeSimple, steps: one("select 1 order by pg_terminate_backend({pid})"), deny: true},
	{name: "terminate via prepare", mode: modeSimple, steps: []string{"prepare k as select pg_terminate_backend({pid})", "execute k"}, deny: true},
	{name: "terminate via query_to_xml", mode: modeSimple, steps: one("select query_to_xml('select pg_terminate_backend({pid})', true, false, '')"), deny: true},
	{name: "terminate via DO", mode: modeSimple, steps: one("do $$ begin perform pg_terminate_backend({pid}); end $$"), deny: true},

	// --- writes to audit_log ----------------------------------------------
	{name: "insert audit_log", mode: modeSimple, steps: one("insert into audit_log values (2, 'x')"), deny: true},
	{name: "insert AUDIT_LOG upper", mode: modeSimple, steps: one("INSERT INTO AUDIT_LOG VALUES (2, 'x')"), deny: true},
	{name: "insert quoted", mode: modeExtended, steps: one(`insert into "audit_log" values (2, 'x')`), deny: true},
	{name: "insert schema-qualified", mode: modeExtended, steps: one(`insert into "public".audit_log values (2, 'x')`), deny: true},
	{name: "insert with alias", mode: modeSimple, steps: one("insert into audit_log as a values (2, 'x')"), deny: true},
	{name: "update audit_log where", mode: modeSimple, steps: one("update audit_log set msg = 'x' where id = 1"), deny: true},
	{name: "delete audit_log where", mode: modeBinary, steps: one("delete from audit_log where id = 1"), deny: true},
	{name: "CTE insert audit_log", mode: modeSimple, steps: one("with x as (insert into audit_log values (2, 'x') returning *) select * from x"), deny: true},
	{name: "insert select from audit_log into itself", mode: modeSimple, steps: one("insert into audit_log select * from audit_log"), deny: true},
	{name: "merge into audit_log", mode: modeSimple, steps: one("merge into audit_log a using (select 2 as id) s on a.id = s.id when not matched then insert values (2, 'x')"), deny: true},
	{name: "prepare insert audit_log", mode: modeSimple, steps: []string{"prepare w as insert into audit_log values (2, 'x')", "execute w"}, deny: true},
	{name: "explain analyze audit_log", mode: modeSimple, steps: one("explain analyze insert into audit_log values (2, 'x')"), deny: true},
	{name: "truncate audit_log", mode: modeSimple, steps: one("truncate audit_log"), deny: true},
	{name: "copy from audit_log", mode: modeSimple, steps: one("copy audit_log from stdin"), deny: true},
	{name: "DO insert audit_log", mode: modeSimple, steps: one("do $$ begin insert into audit_log values (2, 'x'); end $$"), deny: true},
	{name: "select into audit_log", mode: modeSimple, steps: one("select * into audit_log2 from audit_log"), deny: true},
	{name: "search_path then unqualified", mode: modeSimple, steps: []string{"set search_path = pg_catalog, public", "insert into audit_log values (2, 'x')"}, deny: true},
	{name: "write through updatable view", mode: modeSimple, steps: one("delete from v_audit where id = 1"), deny: true},
	{name: "insert through updatable view", mode: modeExtended, steps: one("insert into v_audit values (2, 'x')"), deny: true},
	{name: "write through nested view", mode: modeSimple, steps: one("update v_audit2 set msg = 'x' where id = 1"), deny: true},
	{name: "write through schema-qualified view", mode: modeSimple, steps: one("delete from public.v_audit where id = 1"), deny: true},
	{name: "query_to_xml insert (PostgreSQL refuses)", mode: modeSimple, steps: one("select query_to_xml('insert into audit_log values (2, ''x'') returning 1', true, false, '')")},

	// --- masking: plain reads, every protocol and format ------------------
	{name: "select star", mode: modeExtended, steps: one("select * from customers")},
	{name: "select star", mode: modeSimple, steps: one("select * from customers")},
	{name: "select star", mode: modeBinary, steps: one("select * from customers")},
	{name: "select star", mode: modePsql, steps: one("select * from customers")},
	{name: "TABLE command", mode: modeSimple, steps: one("table customers")},
	{name: "alias star", mode: modeBinary, steps: one("select c.* from customers c")},
	{name: "column aliases", mode: modeExtended, steps: one("select card_number as id, email as name from customers as x(a, b)")},
	{name: "schema qualified quoted", mode: modeSimple, steps: one(`select "card_number", "EMAIL" is null from "public"."customers"`)},
	{name: "only", mode: modeSimple, steps: one("select card_number from only public.customers")},
	{name: "subquery in FROM", mode: modeBinary, steps: one("select x from (select card_number as x from customers) s")},
	{name: "CTE", mode: modeExtended, steps: one("with s as (select email, card_number from customers) select * from s")},
	{name: "lateral", mode: modeSimple, steps: one("select x.* from generate_series(1, 1) g, lateral (select card_number from customers) x")},
	{name: "union", mode: modeSimple, steps: one("select card_number from customers union all select 'x'")},
	{name: "union binary", mode: modeBinary, steps: one("select email from customers union select null")},
	{name: "scalar subquery", mode: modeSimple, steps: one("select (select card_number from customers where id = 1)")},
	{name: "values wrapping subquery", mode: modeExtended, steps: one("select * from (values ((select email from customers limit 1))) v(x)")},
	{name: "prepare/execute select", mode: modeSimple, steps: []string{"prepare s as select * from customers", "execute s"}},
	{name: "cursor", mode: modeSimple, steps: []string{"begin", "declare k cursor for select card_number, email from customers", "fetch all from k", "commit"}},
	{name: "join other table", mode: modeSimple, steps: one("select c.card_number, p.id from customers c left join probe p on p.id = c.id")},
	{name: "parenthesized column", mode: modeSimple, steps: one("select (card_number), ((email)) from customers")},
	{name: "collate", mode: modeSimple, steps: one(`select card_number collate "C" from customers`)},

	// --- masking: derived values (derived: deny) --------------------------
	{name: "cast text", mode: modeSimple, steps: one("select card_number::text from customers"), deny: true},
	{name: "cast varchar", mode: modeBinary, steps: one("select email::varchar from customers"), deny: true},
	{name: "CAST", mode: modeExtended, steps: one("select cast(email as varchar(100)) from customers"), deny: true},
	{name: "cast to bytea", mode: modeSimple, steps: one("select card_number::bytea from customers"), deny: true},
	{name: "cast int error leaks value", mode: modeSimple, steps: one("select email::int from customers"), deny: true},
	{name: "row_to_json", mode: modeSimple, steps: one("select row_to_json(c) from customers c"), deny: true},
	{name: "to_jsonb", mode: modeBinary, steps: one("select to_jsonb(c) from customers c"), deny: true},
	{name: "json_agg", mode: modeSimple, steps: one("select json_agg(c) from customers c"), deny: true},
	{name: "whole-row column", mode: modeSimple, steps: one("select c from customers c"), deny: true},
	{name: "whole-row table name", mode: modeSimple, steps: one("select customers from customers"), deny: true},
	{name: "whole-row text cast", mode: modeSimple, steps: one("select c::text from customers c"), deny: true},
	{name: "row constructor", mode: modeSimple, steps: one("select row(c.*) from customers c"), deny: true},
	{name: "field selection", mode: modeSimple, steps: one("select (c).card_number from customers c"), deny: true},
	{name: "composite star expansion", mode: modeSimple, steps: one("select (c).* from customers c")},
	{name: "string_agg", mode: modeSimple, steps: one("select string_agg(card_number, ',') from customers"), deny: true},
	{name: "array_agg", mode: modeBinary, steps: one("select array_agg(email) from customers"), deny: true},
	{name: "array constructor", mode: modeSimple, steps: one("select array[card_number] from customers"), deny: true},
	{name: "concat", mode: modeSimple, steps: one("select concat(card_number, '') from customers"), deny: true},
	{name: "concat operator", mode: modeExtended, steps: one("select '' || email from customers"), deny: true},
	{name: "format", mode: modeSimple, steps: one("select format('%s', card_number) from customers"), deny: true},
	{name: "coalesce", mode: modeSimple, steps: one("select coalesce(card_number, '') from customers"), deny: true},
	{name: "case", mode: modeSimple, steps: one("select case when true then email end from customers"), deny: true},
	{name: "reverse", mode: modeSimple, steps: one("select reverse(card_number) from customers"), deny: true},
	{name: "encode hex", mode: modeSimple, steps: one("select encode(convert_to(card_number, 'UTF8'), 'hex') from customers"), deny: true},
	{name: "substr", mode: modeBinary, steps: one("select substr(card_number, 1, 12) from customers"), deny: true},
	{name: "comparison in select list", mode: modeSimple, steps: one("select id, card_number like '4%' from customers"), deny: true},
	{name: "xmlelement", mode: modeSimple, steps: one("select xmlelement(name x, email) from customers"), deny: true},
	{name: "jsonb_build_object", mode: modeSimple, steps: one("select jsonb_build_object('c', card_number) from customers"), deny: true},
	{name: "derived through view", mode: modeSimple, steps: one("select upper(email) from v_customers")},
	{name: "derived in CTE", mode: modeSimple, steps: one("with s as (select card_number || '' as x from customers) select x from s"), deny: true},
	{name: "set_config stash", mode: modeSimple, steps: []string{"select set_config('x.y', card_number, false) from customers where id = 1", "select current_setting('x.y')"}},
	{name: "query_to_xml select", mode: modeSimple, steps: one("select query_to_xml('select card_number, email from customers', true, false, '')")},
	{name: "table_to_xml", mode: modeSimple, steps: one("select table_to_xml('customers', true, false, '')")},
	{name: "pg_stats histogram", mode: modeSimple, steps: one("select histogram_bounds::text, most_common_vals::text from pg_stats where tablename = 'customers'")},
	{name: "raw heap file", mode: modeSimple, steps: one("select encode(pg_read_binary_file(pg_relation_filepath('customers')), 'escape')")},
	{name: "pg_stats_ext", mode: modeSimple, steps: one("select * from pg_stats_ext"), deny: true},
	{name: "pg_statistic", mode: modeExtended, steps: one("select stavalues1::text from pg_statistic"), deny: true},
	{name: "pg_read_file", mode: modeSimple, steps: one("select pg_read_file('/etc/hostname')"), deny: true},
	{name: "lo_import heap file", mode: modeSimple, steps: one("select lo_import(current_setting('data_directory') || '/' || pg_relation_filepath('customers'))"), deny: true},
	{name: "copy from program", mode: modeSimple, steps: one("copy probe (note) from program 'echo x'"), deny: true},
	{name: "insert select copies secret", mode: modeSimple, steps: []string{"insert into probe (card_number, note) select card_number, email from customers", "select * from probe"}},
	{name: "CTE insert select copies secret", mode: modeExtended, steps: []string{"with s as (select card_number from customers) insert into probe (card_number) select card_number from s", "select * from probe"}},
	{name: "update from masked subquery", mode: modeSimple, steps: []string{"insert into probe (id) values (100)", "update probe set note = (select email from customers where id = 1) where id = 100", "select note from probe"}},

	// --- masking: views (RowDescription names the view's OID) ------------
	{name: "view star", mode: modeSimple, steps: one("select * from v_customers")},
	{name: "view star", mode: modeBinary, steps: one("select * from v_customers")},
	{name: "view renamed columns", mode: modeSimple, steps: one("select cc, contact from v_cards")},
	{name: "view renamed columns", mode: modePsql, steps: one("select * from v_cards")},
	{name: "view predicate", mode: modeSimple, steps: one("select id from v_cards where cc like '4111%'"), deny: true},
	{name: "nested view", mode: modeSimple, steps: one("select card, id from v_nested")},
	{name: "nested view", mode: modeBinary, steps: one("select card, id from v_nested where id = 1")},
	{name: "nested view computed column", mode: modeSimple, steps: one("select shout from v_nested"), deny: true},
	{name: "nested view predicate", mode: modeExtended, steps: one("select id from v_nested where card like '4%'"), deny: true},
	{name: "materialized view", mode: modeSimple, steps: one("select * from mv_cards")},
	{name: "materialized view", mode: modeBinary, steps: one("select card_number, email from mv_cards")},
	{name: "materialized view predicate", mode: modeSimple, steps: one("select id from mv_cards where card_number like '4%'"), deny: true},

	// --- masking: masked columns in predicates (predicates: deny) --------
	{name: "where", mode: modeSimple, steps: one("select id from customers where card_number like '4111%'"), deny: true},
	{name: "where extended param", mode: modeExtended, steps: one("select id from customers where email = 'ann@example.com'"), deny: true},
	{name: "where is not null", mode: modeSimple, steps: one("select id from customers where email is not null"), deny: true},
	{name: "order by", mode: modeSimple, steps: one("select id from customers order by card_number"), deny: true},
	{name: "order by ordinal", mode: modeSimple, steps: one("select card_number, id from customers order by 1"), deny: true},
	{name: "group by", mode: modeSimple, steps: one("select count(*) from customers group by email"), deny: true},
	{name: "having", mode: modeSimple, steps: one("select 1 from customers having max(card_number) > '5'"), deny: true},
	{name: "join on", mode: modeSimple, steps: one("select c.id from customers c join probe p on p.card_number = c.card_number"), deny: true},
	{name: "join using", mode: modeSimple, steps: one("select id from customers join probe using (card_number)"), deny: true},
	{name: "natural join", mode: modeSimple, steps: one("select 1 from customers natural join (select '4111111111111111'::text as card_number) p"), deny: true},
	{name: "subquery in where", mode: modeSimple, steps: one("select id from probe where exists (select 1 from customers c where c.card_number > '5')"), deny: true},
	{name: "in subquery", mode: modeExtended, steps: one("select 1 where 1 in (select id from customers where card_number like '4%')"), deny: true},
	{name: "alias in where", mode: modeSimple, steps: one("select x.id from customers x where x.email like 'a%'"), deny: true},
	{name: "whole row in where", mode: modeSimple, steps: one("select id from customers c where c::text like '%4111%'"), deny: true},
	{name: "row_to_json in where", mode: modeSimple, steps: one("select id from customers c where row_to_json(c)->>'card_number' like '4%'"), deny: true},
	{name: "distinct on", mode: modeSimple, steps: one("select distinct on (card_number) id from customers"), deny: true},
	{name: "window order", mode: modeSimple, steps: one("select id, row_number() over (order by card_number) from customers"), deny: true},
	{name: "aggregate filter", mode: modeSimple, steps: one("select count(*) filter (where email like 'a%') from customers"), deny: true},
	{name: "case in select list", mode: modeSimple, steps: one("select id, case when card_number like '4%' then 1 else 0 end from customers"), deny: true},
	{name: "division by zero oracle", mode: modeSimple, steps: one("select id, 1 / (position('4' in card_number) - 1) from customers"), deny: true},
	{name: "limit subquery", mode: modeSimple, steps: one("select id from customers limit (select length(email) from customers where id = 1)"), deny: true},
	{name: "prepare with predicate", mode: modeSimple, steps: []string{"prepare q(text) as select id from customers where card_number like $1", "execute q('4%')"}, deny: true},
	// SQL EXECUTE runs the masking checks of the statement behind it.
	{name: "execute with predicate", mode: modePsql, steps: []string{"prepare p(text) as select name from customers where card_number = $1", "execute p('4111111111111111')"}, deny: true},
	{name: "execute derived", mode: modePsql, steps: []string{"prepare q as select upper(email) from customers", "execute q"}, deny: true},
	{name: "execute derived", mode: modeExtended, steps: []string{"prepare q as select card_number || '' from customers", "execute q"}, deny: true},
	{name: "execute plain", mode: modePsql, steps: []string{"prepare r as select card_number, email from customers", "execute r"}},
	{name: "execute plain", mode: modeBinary, steps: []string{"prepare r as select card_number, email from customers", "execute r"}},
	{name: "execute after denied deallocate", mode: modeSimple, steps: []string{"prepare r as select card_number from customers", "deallocate r; select id from customers where card_number like '4%'", "execute r"}, deny: true},
	{name: "execute after failed re-prepare", mode: modeSimple, steps: []string{"prepare r as select card_number from customers", "prepare r as select 1", "execute r"}},
	{name: "execute of unknown statement", mode: modeSimple, steps: []string{"prepare x as select upper(email) from customers", "execute x"}, deny: true},
	{name: "explain analyze execute", mode: modeSimple, steps: []string{"prepare r as select card_number from customers", "explain (analyze, verbose) execute r"}},
	{name: "explain analyze execute with predicate", mode: modeSimple, steps: []string{"prepare r as select 1", "deallocate r", "prepare r(text) as select id from customers where email = $1", "explain analyze execute r('ann@example.com')"}, deny: true},
	{name: "create table as execute", mode: modeSimple, steps: []string{"prepare r as select card_number from customers", "create temp table copied as execute r", "select * from copied"}, deny: true},
	{name: "select into copies masked", mode: modeSimple, steps: []string{"select card_number into temp copied from customers", "select * from copied"}, deny: true},
	{name: "cursor with predicate", mode: modeSimple, steps: []string{"begin", "declare k cursor for select id from customers where card_number like '4%'", "fetch all from k", "commit"}, deny: true},
	{name: "update where masked", mode: modeSimple, steps: one("update probe set note = 'x' where id in (select id from customers where card_number like '4%')"), deny: true},

	// --- COPY -------------------------------------------------------------
	{name: "copy table", mode: modeCopy, steps: one("COPY customers TO STDOUT")},
	{name: "copy table columns", mode: modeCopy, steps: one("copy public.customers (card_number, email) to stdout with (format csv)")},
	{name: "copy binary", mode: modeCopy, steps: one("copy customers to stdout with (format binary)")},
	{name: "copy query", mode: modeCopy, steps: one("COPY (SELECT card_number FROM customers) TO STDOUT")},
	{name: "copy query derived", mode: modeCopy, steps: one("copy (select card_number || '' from customers) to stdout")},
	{name: "copy view", mode: modeCopy, steps: one("copy (select * from v_cards) to stdout")},
	{name: "copy psql", mode: modePsql, steps: one(`\copy customers to stdout`)},
	{name: "copy to program", mode: modeSimple, steps: one("copy customers to program 'cat'"), deny: true},
	{name: "copy to file", mode: modeSimple, steps: one("copy customers to '/tmp/gatehouse-bypass.txt'"), deny: true},
	// --- leaks outside plain SELECT rows ---------------------------------
	{name: "cursor with hold across transactions", mode: modeSimple, steps: []string{"begin", "declare h cursor with hold for select card_number, email from customers", "commit", "fetch all from h"}},
	{name: "cursor with hold across transactions", mode: modeExtended, steps: []string{"begin", "declare h cursor with hold for select card_number, email from customers", "commit", "fetch all from h"}},
	{name: "scroll cursor backward absolute move", mode: modeSimple, steps: []string{"begin", "declare s scroll cursor for select card_number, email from customers", "fetch absolute 2 from s", "fetch backward 1 from s", "move first in s", "fetch relative 0 from s", "commit"}},
	{name: "scroll cursor", mode: modeBinary, steps: []string{"begin", "declare s scroll cursor for select * from customers", "fetch last from s", "fetch prior from s", "commit"}},
	{name: "cursor derived", mode: modeSimple, steps: []string{"begin", "declare k cursor for select card_number || '' from customers", "fetch all from k", "commit"}, deny: true},
	{name: "refcursor from function", mode: modeSimple, steps: []string{"begin", "select card_cursor()", "fetch all from rc", "commit"}},
	{name: "refcursor from function", mode: modeExtended, steps: []string{"begin", "select card_cursor()", "fetch all in rc", "commit"}},
	{name: "pg_notify masked value", mode: modeSimple, steps: []string{"listen c", "select pg_notify('c', card_number) from customers"}, deny: true},
	{name: "pg_notify scalar subquery", mode: modeSimple, steps: []string{"listen c", "select pg_notify('c', (select email from customers where id = 1))"}},
	{name: "raise notice through function", mode: modeSimple, steps: one("select shout(card_number) from customers"), deny: true},
	{name: "raise notice scalar subquery", mode: modeExtended, steps: one("select shout((select email from customers where id = 1))")},
	{name: "unique violation detail", mode: modeSimple, steps: one("update customers set card_number = (select card_number from customers where id = 1) where id = 2")},
	{name: "unique violation detail insert select", mode: modeExtended, steps: one("insert into customers (id, card_number) select 3, card_number from customers where id = 2")},
	{name: "returning update", mode: modeSimple, steps: one("update customers set name = name where id = 1 returning card_number, email")},
	{name: "returning update", mode: modeBinary, steps: one("update customers set name = name where id = 1 returning *")},
	{name: "returning delete rolled back", mode: modeSimple, steps: []string{"begin", "delete from customers where id = 1 returning card_number, email", "rollback"}},
	{name: "returning insert select", mode: modeSimple, steps: []string{"begin", "insert into customers select id + 10, name, email, card_number from customers returning card_number, email", "rollback"}},
	{name: "returning derived", mode: modeSimple, steps: one("update customers set name = name where id = 1 returning card_number || ''"), deny: true},
	{name: "values scalar subquery", mode: modeSimple, steps: one("values ((select card_number from customers limit 1))")},
	{name: "scalar subquery array_agg", mode: modeSimple, steps: one("select (select array_agg(email) from customers)"), deny: true},
	{name: "jsonb_agg", mode: modeSimple, steps: one("select jsonb_agg(card_number) from customers"), deny: true},
	{name: "window function value", mode: modeSimple, steps: one("select first_value(card_number) over () from customers"), deny: true},
	{name: "lag window", mode: modeExtended, steps: one("select lag(email) over (partition by id) from customers"), deny: true},
	{name: "unnest set-returning", mode: modeSimple, steps: one("select unnest(array[card_number]) from customers"), deny: true},
	{name: "lateral outer reference", mode: modeSimple, steps: one("select s.x from customers c, lateral (select c.card_number as x) s")},
	{name: "recursive CTE", mode: modeSimple, steps: one("with recursive r(x, n) as (select card_number, 1 from customers union all select x, n + 1 from r where n < 2) select x from r")},
	{name: "aggregate through view", mode: modeSimple, steps: one("select string_agg(cc, ',') from v_cards"), deny: true},
	{name: "max aggregate", mode: modeSimple, steps: one("select max(card_number) from customers"), deny: true},
	{name: "explain verbose analyze", mode: modeSimple, steps: one("explain (verbose, analyze, costs off) select card_number, email from customers")},
	{name: "fast-path function call", mode: modeSimple, steps: one("fastpath first_card"), deny: true},
	{name: "function returning masked value", mode: modeSimple, steps: one("select first_card()"), deny: true},
	{name: "view calling a function returning masked value", mode: modeSimple, steps: one("select c from v_first_card"), deny: true},
	{name: "view calling a function, extended", mode: modeExtended, steps: one("select * from v_first_card"), deny: true},
	{name: "lateral jsonb_each_text", mode: modeSimple, steps: one("select j.* from customers c cross join lateral jsonb_each_text(to_jsonb(c)) j"), deny: true},
	{name: "lateral unnest", mode: modeExtended, steps: one("select x from customers, lateral unnest(array[card_number, email]) x"), deny: true},
	{name: "copy whole row", mode: modeCopy, steps: one("copy (select c from customers c) to stdout"), deny: true},
	{name: "copy returning", mode: modeCopy, steps: one("copy (update customers set name = name where id = 1 returning card_number, email) to stdout")},
	{name: "copy aggregate", mode: modeCopy, steps: one("copy (select string_agg(email, ',') from customers) to stdout"), deny: true},
}

// knownBypasses are the cases gatehouse does not catch yet, by mode/name.
// They stay in the suite, skipped, so fixing one is a matter of deleting its
// line here.
var knownBypasses = map[string]string{}
