package policy

import (
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
)

// Input is everything a rule condition can see about one action. It is
// plain data so this package depends on no SQL parser: the caller maps its
// statement facts into Statement. The `cel` tags are the names conditions
// use (statement.has_where, principal.client_id, …); docs/policy.md lists
// them all. Evaluate never modifies an Input.
type Input struct {
	Statement  Statement
	Principal  Principal
	Connection Connection
	Session    Session
	Action     Action
}

// Statement holds the facts about one SQL statement.
type Statement struct {
	// Kind is the statement kind: "select", "insert", "update", "delete",
	// "drop_table", "truncate", … (the names come from the SQL inspector).
	Kind string `cel:"kind"`
	// ObjectKind is the kind of object a DDL statement acts on ("table",
	// "index", "function", …); "" for non-DDL statements.
	ObjectKind string `cel:"object_kind"`
	// Tables are all tables the statement reads or writes, as written in
	// the statement ("orders" or "sales.orders").
	Tables []string `cel:"tables"`
	// TablesQualified is Tables with "public." put before unqualified
	// names. When nil, Evaluate derives it from Tables (one allocation per
	// call); callers that cache statement facts should fill it once with
	// QualifyTables.
	TablesQualified []string `cel:"tables_qualified"`
	// TablesWritten are the tables the statement writes, as written.
	TablesWritten []string `cel:"tables_written"`
	// Columns are the columns referenced, as "table.column".
	Columns []string `cel:"columns"`
	// Functions are the functions called, lower case, without schema.
	Functions []string `cel:"functions"`
	// HasWhere is true for an UPDATE or DELETE with a WHERE clause.
	HasWhere bool `cel:"has_where"`
	// Writes is true when the statement may change data or schema
	// (opaque bodies such as DO blocks and function calls count as writes).
	Writes bool `cel:"writes"`
	// Analyze is true for EXPLAIN ANALYZE (which executes the statement).
	Analyze bool `cel:"analyze"`
	// Text is the statement text exactly as the client sent it.
	Text string `cel:"text"`
}

// Principal is the caller's verified identity (see access.Principal).
type Principal struct {
	Subject  string         `cel:"subject"`
	Groups   []string       `cel:"groups"`
	ClientID string         `cel:"client_id"`
	Issuer   string         `cel:"issuer"`
	Claims   map[string]any `cel:"claims"` // all token claims; nil = none
	Act      []Actor        `cel:"act"`    // RFC 8693 delegation chain, current actor first
}

// Actor is one link of the delegation chain.
type Actor struct {
	Subject  string `cel:"subject"`
	ClientID string `cel:"client_id"`
}

// Connection is the upstream target the action goes to.
type Connection struct {
	Name string `cel:"name"` // connection name from the configuration
	Type string `cel:"type"` // "postgres", …
}

// Session describes the client connection the action arrived on.
type Session struct {
	ClientAddr      string    `cel:"client_addr"`      // client IP address (no port)
	ApplicationName string    `cel:"application_name"` // as the client set it; not verified
	User            string    `cel:"user"`             // user name the client claimed; not verified
	TLS             bool      `cel:"tls"`              // client connection uses TLS
	Time            time.Time `cel:"time"`             // when the action arrived; the caller sets it so Evaluate stays pure
}

// Action says what sort of request is being decided.
type Action struct {
	Kind     string `cel:"kind"`     // "statement", "function_call" or "startup_parameter"
	Protocol string `cel:"protocol"` // "simple", "extended", "fastpath", "startup"
}

// InputFor fills everything but Statement from an access.Action and its
// session. now is the time of the action (session.time in conditions).
// The Principal's slices and claims map are shared, not copied.
func InputFor(a *access.Action, now time.Time) *Input {
	in := new(Input)
	FillInput(in, a, now)
	return in
}

// FillInput is InputFor into an Input the caller owns (one it reuses, say:
// Evaluate keeps no reference to its input): every field is overwritten,
// Statement with the zero value.
func FillInput(in *Input, a *access.Action, now time.Time) {
	*in = Input{
		Action:  Action{Kind: string(a.Kind), Protocol: a.Protocol},
		Session: Session{Time: now},
	}
	if s := a.Session; s != nil {
		in.Connection = Connection{Name: s.Target.Name, Type: s.Target.Type}
		in.Session.ClientAddr = s.ClientAddr
		in.Session.ApplicationName = s.ApplicationName
		in.Session.User = s.ClientUser
		in.Session.TLS = s.TLS
		in.Principal = PrincipalFrom(s.Principal)
	}
}

// PrincipalFrom converts an access.Principal (nil gives the zero value,
// which no selector but "*" matches). Callers evaluating many statements in
// one session can convert once and reuse the result.
func PrincipalFrom(p *access.Principal) Principal {
	if p == nil {
		return Principal{}
	}
	out := Principal{
		Subject:  p.Subject,
		Groups:   p.Groups,
		ClientID: p.ClientID,
		Issuer:   p.Issuer,
		Claims:   p.Claims,
	}
	if len(p.Act) > 0 {
		out.Act = make([]Actor, len(p.Act))
		for i, a := range p.Act {
			out.Act[i] = Actor{Subject: a.Subject, ClientID: a.ClientID}
		}
	}
	return out
}

// QualifyTables returns tables with "public." put before names that have
// no schema. It returns a new slice; tables is not modified.
func QualifyTables(tables []string) []string {
	if tables == nil {
		return nil
	}
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = SchemaPrefix(t) + t
	}
	return out
}

// SchemaPrefix is what QualifyTables puts before a table name: "public."
// for a name without a schema, "" for a qualified one.
func SchemaPrefix(table string) string {
	if strings.Contains(table, ".") {
		return ""
	}
	return "public."
}

// matches reports whether the principal is named by a selector, with the
// exact semantics of access.Principal.Matches.
func (p *Principal) matches(selectors []string) bool {
	ap := access.Principal{Subject: p.Subject, Groups: p.Groups, ClientID: p.ClientID}
	return ap.MatchesAny(selectors)
}
