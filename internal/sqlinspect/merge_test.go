package sqlinspect

import (
	"reflect"
	"testing"
)

// TestMergeActions: a MERGE lists what each WHEN clause does, and whether
// the rows an UPDATE/DELETE reaches are restricted by a condition on the
// target (ON true, or a condition on the source only, reaches every row).
func TestMergeActions(t *testing.T) {
	type act struct {
		kind  string
		where bool
	}
	cases := []struct {
		sql      string
		want     []act
		hasWhere bool
	}{
		{"merge into customers c using (select 1 as id) s on true when matched then delete", []act{{"delete", false}}, false},
		{"merge into customers c using (select 1 as id) s on s.id = 1 when matched then delete", []act{{"delete", false}}, false},
		{"merge into customers c using (select 1 as id) s on 1 = 1 when matched then update set name = 'x'", []act{{"update", false}}, false},
		{"merge into customers c using src s on c.id = s.id when matched then delete", []act{{"delete", true}}, true},
		{"merge into customers using src s on customers.id = s.id when matched then delete", []act{{"delete", true}}, true},
		{"merge into public.customers c using src s on c.id = sid when matched then delete", []act{{"delete", true}}, true},
		// Unqualified: the grammar cannot tell target from source columns.
		{"merge into customers c using (select 1 as sid) s on sid = 1 when matched then delete", []act{{"delete", false}}, false},
		{"merge into customers c using src s on id = sid when matched then delete", []act{{"delete", false}}, false},
		{"merge into customers c using src s on true when matched and c.id = 3 then delete when not matched then insert values (1)",
			[]act{{"delete", true}, {"insert", false}}, true},
		{"merge into customers c using src s on c.id = s.id when matched and s.x then update set name = s.n when matched then delete when not matched then do nothing",
			[]act{{"update", true}, {"delete", true}}, true},
		{"merge into customers c using src s on c.id = s.id when not matched by source then delete", []act{{"delete", false}}, false},
		{"merge into customers c using src s on true when not matched then insert values (s.id)", []act{{"insert", false}}, true},
		{"merge into t using (select 1 id) s on exists (select 1 from u where u.a = t.a) when matched then delete", []act{{"delete", true}}, true},
	}
	for _, c := range cases {
		st := one(t, c.sql)
		var got []act
		for _, a := range st.Actions {
			got = append(got, act{a.Kind, a.HasWhere})
			if len(a.Tables) != 1 || !a.Tables[0].Write || a.Tables[0].Name != st.Tables[0].Name || !a.Writes {
				t.Errorf("%s: action %+v does not write the target", c.sql, a)
			}
		}
		if !reflect.DeepEqual(got, c.want) || st.HasWhere != c.hasWhere {
			t.Errorf("%s:\n got %v has_where=%v\nwant %v has_where=%v", c.sql, got, st.HasWhere, c.want, c.hasWhere)
		}
	}
}
