package sqlinspect

import "testing"

func TestRedactLiterals(t *testing.T) {
	for sql, want := range map[string]string{
		"insert into customers (id, ssn) values (4, '987-65-4328')":                                                     "insert into customers (id, ssn) values (?, ?)",
		"update customers set note = 'sekrit' where id = $1 -- sekrit":                                                  "update customers set note = ? where id = $1 --",
		"select id from customers where ssn = '987-65-4327'::text /* sekrit */":                                         "select id from customers where ssn = ?::text /**/",
		"execute p('sekrit', 4111111111111113, -1.5e3)":                                                                 "execute p(?, ?, -?)",
		"prepare q as insert into customers (ssn) values ('sekrit')":                                                    "prepare q as insert into customers (ssn) values (?)",
		`insert into t values (E'sekrit\'x', $$sekrit$$, $t$sekrit$t$, B'1011', X'5ec', U&'sekrit', date '2020-01-01')`: "insert into t values (?, ?, ?, ?, ?, ?, date ?)",
		`select "sekrit col" from t`:                                                                                    `select "sekrit col" from t`, // identifiers are not values
	} {
		got, err := RedactLiterals(sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if got != want {
			t.Errorf("RedactLiterals(%q)\n = %q\nwant %q", sql, got, want)
		}
	}
	if _, err := RedactLiterals("insert into t values ('unterminated"); err == nil {
		t.Error("text the lexer refuses was redacted")
	}
}
