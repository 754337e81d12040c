package sqlinspect

import (
	"strings"

	pgq "github.com/pganalyze/pg_query_go/v6"
	pgquery "github.com/wasilibs/go-pgquery"
)

// RedactLiterals returns sql with every constant — numbers, strings of
// every form ('…', E'…', $$…$$, B'…', X'…', U&'…') — replaced by "?", and
// every comment by an empty one, found by PostgreSQL's own lexer
// (libpg_query's scanner, standard_conforming_strings on, as the gateway
// reads all text). Everything else is kept as written, so the statement
// still reads as what was run. The audit records this form of a statement
// that may carry values of masked columns; unlike libpg_query's normalizer
// it also reaches the constants of utility statements (EXECUTE p('…'),
// PREPARE … AS INSERT … VALUES ('…')). It fails for text the lexer
// refuses; callers then withhold the text.
func RedactLiterals(sql string) (string, error) {
	if strings.IndexByte(sql, 0) >= 0 {
		return "", &ParseError{Message: "query text contains a NUL byte"}
	}
	parseSlots <- struct{}{}
	res, err := pgquery.Scan(sql)
	<-parseSlots
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(sql))
	last := 0
	for _, t := range res.GetTokens() {
		var with string
		switch t.GetToken() {
		case pgq.Token_SCONST, pgq.Token_USCONST, pgq.Token_BCONST, pgq.Token_XCONST, pgq.Token_ICONST, pgq.Token_FCONST:
			with = "?"
		case pgq.Token_SQL_COMMENT:
			with = "--"
		case pgq.Token_C_COMMENT:
			with = "/**/"
		default:
			continue
		}
		start, end := int(t.GetStart()), int(t.GetEnd())
		if start < last || end > len(sql) || start > end {
			return "", &ParseError{Message: "scanner positions out of order"}
		}
		b.WriteString(sql[last:start])
		b.WriteString(with)
		last = end
	}
	b.WriteString(sql[last:])
	return b.String(), nil
}
