package sqlinspect

import (
	"strings"
	"testing"
)

// TestAnalyzeView traces view output columns (as pg_get_viewdef prints
// them, with search_path empty) to the columns they carry.
func TestAnalyzeView(t *testing.T) {
	cases := []struct {
		def    string
		want   []string // per output: "=schema.table.col" (pass-through) or "~a.b,c.d" (computed from)
		opaque bool
		tables string
	}{
		{" SELECT customers.id,\n    customers.card_number AS cc,\n    customers.email AS contact\n   FROM public.customers;",
			[]string{"=public.customers.id", "=public.customers.card_number", "=public.customers.email"}, false, "public.customers"},
		{" SELECT c.cc,\n    upper(c.contact) AS u,\n    ( SELECT count(*) AS count FROM public.customers x WHERE (x.id = c.id)) AS n\n   FROM public.v_cards c\n  WHERE (c.id > 0);",
			[]string{"=public.v_cards.cc", "~public.v_cards.contact", "~public.customers.id,public.v_cards.id"}, false, "public.v_cards,public.customers"},
		{" SELECT s.x\n   FROM ( SELECT customers.card_number AS x FROM public.customers) s\nUNION ALL\n SELECT 'a'::text AS x;",
			nil, true, "public.customers"},
		{" SELECT s.x FROM ( SELECT customers.card_number AS x FROM public.customers) s;",
			[]string{"=.x"}, false, "public.customers"},
		{" SELECT row_to_json(c.*) AS j, 1 AS one FROM public.customers c;",
			[]string{"~public.customers.*", "~"}, false, "public.customers"},
		{" SELECT id FROM customers;", []string{"=customers.id"}, false, "customers"},
		{" VALUES (1), (2);", nil, true, ""},
	}
	for _, c := range cases {
		v, err := AnalyzeView(c.def)
		if err != nil {
			t.Errorf("%s: %v", c.def, err)
			continue
		}
		var got []string
		for _, vc := range v.Columns {
			var from []string
			for _, f := range vc.From {
				n := f.Name
				if f.Star {
					n = "*"
				}
				from = append(from, strings.TrimPrefix(f.Schema+"."+f.Table+"."+n, "."))
			}
			if vc.Source != nil {
				got = append(got, "="+from[0])
			} else {
				got = append(got, "~"+strings.Join(from, ","))
			}
		}
		var tables []string
		for _, tb := range v.Tables {
			tables = append(tables, strings.TrimPrefix(tb.Schema+"."+tb.Name, "."))
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") || v.Opaque != c.opaque || strings.Join(tables, ",") != c.tables {
			t.Errorf("%s:\n got %v opaque=%v tables=%v\nwant %v opaque=%v tables=%v", c.def, got, v.Opaque, tables, c.want, c.opaque, c.tables)
		}
	}
	for _, bad := range []string{"select 1; select 2", "delete from t", "select * from t", "select (", ""} {
		if _, err := AnalyzeView(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzAnalyzeView: any text gives a traced view or an error, never a
// panic; a traced view's pass-through columns are among their own From.
func FuzzAnalyzeView(f *testing.F) {
	seeds(f)
	f.Add(" SELECT c.cc, upper(c.contact) AS u FROM public.v_cards c WHERE (c.id > 0);")
	f.Add(" SELECT s.x FROM ( SELECT customers.card_number AS x FROM public.customers) s UNION SELECT 'a';")
	f.Fuzz(func(t *testing.T, def string) {
		v, err := AnalyzeView(def)
		if err != nil {
			return
		}
		for _, c := range v.Columns {
			if c.Source != nil && (len(c.From) != 1 || c.From[0] != *c.Source) {
				t.Fatalf("AnalyzeView(%q): source %+v not its only From %+v", def, c.Source, c.From)
			}
		}
	})
}
