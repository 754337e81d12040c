package masking

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// FuzzRewriteDataRow: arbitrary bodies and plans never panic or read out of
// bounds; a success is a well-formed DataRow with the same field count.
func FuzzRewriteDataRow(f *testing.F) {
	body, _ := benchRow()
	f.Add(body, uint8(3), uint8(1), uint32(oidText), false)
	f.Add(buildRow(nil, []byte("x")), uint8(1), uint8(0), uint32(oidInt4), true)
	f.Add([]byte{0, 2, 0, 0, 0, 1}, uint8(0), uint8(2), uint32(oidJSONB), true)
	f.Add([]byte{0xff, 0xff}, uint8(0), uint8(0), uint32(0), false)
	f.Fuzz(func(t *testing.T, body []byte, idx, method uint8, oid uint32, entities bool) {
		plan := []FieldPlan{{Index: int(idx % 16), Method: allMethods[int(method)%len(allMethods)], TypeOID: oid,
			Format: int16(method>>4) & 1, Entities: entities, Key: testKey}}
		out, err := RewriteDataRow(nil, body, plan)
		if err != nil {
			return
		}
		if len(out) < 2 || binary.BigEndian.Uint16(out) != binary.BigEndian.Uint16(body) {
			t.Fatalf("field count changed")
		}
		parseRow(t, out)
	})
}

// FuzzDetect: matches are in bounds, ordered and disjoint, and masking
// keeps the length.
func FuzzDetect(f *testing.F) {
	for _, s := range []string{"card 4111 1111 1111 1111", "jane@example.com", "+1 (415) 627-3980", "DE89 3704 0044 0532 0130 00",
		"2001:db8::1", "api_key=Zx81kQ0pLm2n", "-----BEGIN PRIVATE KEY-----", "eyJhbGciOiJub25lIn0.eyJ9.", "@@@:::===((++"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms := Detect(s, nil)
		prev := 0
		for _, m := range ms {
			if m.Start < prev || m.End <= m.Start || m.End > len(s) {
				t.Fatalf("bad match %+v (prev end %d) in %q", m, prev, s)
			}
			prev = m.End
		}
		masked, n := MaskEntities(s, nil)
		if len(masked) != len(s) || n != len(ms) {
			t.Fatalf("mask changed length or count: %d/%d, %d/%d", len(masked), len(s), n, len(ms))
		}
	})
}

// FuzzApply: whatever the input, a successful Apply yields a value pgx can
// decode for the type in that format (and a date/timestamp text parses).
func FuzzApply(f *testing.F) {
	f.Add(uint8(0), uint8(2), false, []byte("1234"))
	f.Add(uint8(1), uint8(9), true, []byte{0, 0, 0, 5})
	f.Add(uint8(2), uint8(12), false, []byte("2024-01-15"))
	f.Add(uint8(1), uint8(8), true, []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 7})
	f.Add(uint8(4), uint8(4), false, []byte(`"a@b.c"`))
	oids := []uint32{oidText, oidVarchar, oidBpchar, oidName, oidJSON, oidJSONB, oidInt2, oidInt4, oidInt8, oidNumeric,
		oidFloat4, oidFloat8, oidBool, oidDate, oidTimestamp, oidTimestamptz, oidUUID, oidBytea, oidInet, oidCIDR, 1186}
	m := pgtype.NewMap()
	f.Fuzz(func(t *testing.T, method, oidIdx uint8, bin bool, v []byte) {
		meth := allMethods[int(method)%len(allMethods)]
		oid := oids[int(oidIdx)%len(oids)]
		format := FormatText
		if bin {
			format = FormatBinary
		}
		out, err := Apply(meth, oid, format, v, testKey)
		if err != nil || out == nil {
			return
		}
		var dst any
		if err := m.Scan(oid, format, out, &dst); err != nil {
			t.Fatalf("%s oid %d fmt %d: %q → %q does not decode: %v", meth, oid, format, v, out, err)
		}
		if format == FormatBinary {
			want := map[uint32]int{oidInt2: 2, oidInt4: 4, oidInt8: 8, oidFloat4: 4, oidFloat8: 8, oidBool: 1, oidDate: 4,
				oidTimestamp: 8, oidTimestamptz: 8, oidUUID: 16}
			if w, ok := want[oid]; ok && len(out) != w {
				t.Fatalf("binary oid %d is %d bytes, want %d", oid, len(out), w)
			}
		} else {
			switch oid {
			case oidDate:
				if _, err := time.Parse("2006-01-02", string(out)); err != nil {
					t.Fatalf("date %q: %v", out, err)
				}
			case oidTimestamp:
				if _, err := time.Parse("2006-01-02 15:04:05", string(out)); err != nil {
					t.Fatalf("timestamp %q: %v", out, err)
				}
			case oidJSON, oidJSONB:
				if !strings.HasPrefix(string(out), `"`) {
					t.Fatalf("json %q is not a string", out)
				}
			}
		}
	})
}
