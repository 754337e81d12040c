package masking

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/pgtest"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

var testKey = []byte("0123456789abcdef-test-key")

var allMethods = []Method{Redact, Last4, Hash, Null, EmailDomain}

// sampleRow is one value per supported type, as SQL expressions.
var sampleRow = []struct {
	name string
	expr string
}{
	{"text", `'jane.doe@example.com'::text`},
	{"varchar", `'4111-1111-1111-1111'::varchar(30)`},
	{"bpchar", `'ab12'::char(12)`},
	{"bpchar_short", `'xy'::char(3)`},
	{"name", `'some_role'::name`},
	{"json", `'{"card": "4111111111111111"}'::json`},
	{"json_str", `'"bob@example.org"'::json`},
	{"jsonb", `'{"a": [1, 2, "x"]}'::jsonb`},
	{"int2", `1234::int2`},
	{"int4", `-123456789::int4`},
	{"int8", `4111111111111111::int8`},
	{"numeric", `-12345678.901::numeric`},
	{"numeric_big", `123456789012345678901234567890.5::numeric`},
	{"numeric_nan", `'NaN'::numeric`},
	{"float4", `3.25::float4`},
	{"float8", `-1e300::float8`},
	{"bool", `true`},
	{"date", `'1987-06-05'::date`},
	{"date_inf", `'infinity'::date`},
	{"timestamp", `'2024-01-15 10:30:00.123456'::timestamp`},
	{"timestamptz", `'2024-01-15 10:30:00+02'::timestamptz`},
	{"uuid", `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid`},
	{"bytea", `'\xdeadbeef0102'::bytea`},
	{"inet", `'192.168.10.20/24'::inet`},
	{"inet6", `'2001:db8::7'::inet`},
	{"cidr", `'10.1.0.0/16'::cidr`},
	{"interval", `'1 day'::interval`}, // unknown to the package: NULL
}

// TestApplyRoundTripsThroughPostgreSQL fetches real values in both formats,
// masks them with every method and sends each masked value back to the
// server as a parameter of the same type and format: PostgreSQL's own
// input/receive functions then say whether a client could decode it.
func TestApplyRoundTripsThroughPostgreSQL(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	sql := "SELECT "
	for i, c := range sampleRow {
		if i > 0 {
			sql += ", "
		}
		sql += c.expr
	}
	for _, format := range []int16{FormatText, FormatBinary} {
		formats := make([]int16, len(sampleRow))
		for i := range formats {
			formats[i] = format
		}
		res := conn.ExecParams(ctx, sql, nil, nil, nil, formats).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		row := res.Rows[0]
		for i, fd := range res.FieldDescriptions {
			for _, m := range allMethods {
				name := fmt.Sprintf("%s/%s/fmt%d", sampleRow[i].name, m, format)
				out, err := Apply(m, fd.DataTypeOID, format, row[i], testKey)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if !Supported(fd.DataTypeOID) && out != nil {
					t.Errorf("%s: unknown type must become NULL, got %q", name, out)
				}
				if m == Null && out != nil {
					t.Errorf("%s: null gave %q", name, out)
				}
				if out == nil {
					continue
				}
				// Send it back: $1 typed by OID, in the same format.
				back := conn.ExecParams(ctx, "SELECT $1::text", [][]byte{out}, []uint32{fd.DataTypeOID}, []int16{format}, []int16{FormatText}).Read()
				if back.Err != nil {
					t.Errorf("%s: PostgreSQL rejects masked value %q: %v", name, out, back.Err)
					continue
				}
				if bytes.Equal(out, row[i]) && m != Null && len(out) > 0 && sampleRow[i].name != "bool" {
					t.Errorf("%s: value unchanged: %q", name, out)
				}
				t.Logf("%s: %q → %q (server reads %s)", name, row[i], out, back.Rows[0][0])
			}
		}
	}
}

// TestHashStableAcrossFormats: joins keep working only if a value hashes to
// the same masked value whichever format the client asked for.
func TestHashStableAcrossFormats(t *testing.T) {
	cases := []struct {
		oid       uint32
		text, bin []byte
	}{
		{oidInt4, []byte("-123456789"), be32(uint32(0xFFFFFFFF - 123456789 + 1))},
		{oidInt8, []byte("42"), be64(42)},
		{oidUUID, []byte("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), []byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}},
		{oidText, []byte("x@y.z"), []byte("x@y.z")},
		{oidDate, []byte("2000-01-11"), be32(10)},
		{oidNumeric, []byte("10000.50"), []byte{0, 3, 0, 1, 0, 0, 0, 2, 0, 1, 0, 0, 0x13, 0x88}},
		{oidBytea, []byte(`\xdead`), []byte{0xde, 0xad}},
	}
	for _, c := range cases {
		ht, err := Apply(Hash, c.oid, FormatText, c.text, testKey)
		if err != nil {
			t.Fatalf("oid %d text: %v", c.oid, err)
		}
		hb, err := Apply(Hash, c.oid, FormatBinary, c.bin, testKey)
		if err != nil {
			t.Fatalf("oid %d binary: %v", c.oid, err)
		}
		// Compare through the text form of the binary result.
		var m = pgtype.NewMap()
		var vt, vb any
		if err := m.Scan(c.oid, FormatText, ht, &vt); err != nil {
			t.Fatalf("oid %d: decode text %q: %v", c.oid, ht, err)
		}
		if err := m.Scan(c.oid, FormatBinary, hb, &vb); err != nil {
			t.Fatalf("oid %d: decode binary: %v", c.oid, err)
		}
		if fmt.Sprint(vt) != fmt.Sprint(vb) {
			t.Errorf("oid %d: hash differs by format: %v vs %v", c.oid, vt, vb)
		}
		again, _ := Apply(Hash, c.oid, FormatText, c.text, testKey)
		if !bytes.Equal(again, ht) {
			t.Errorf("oid %d: hash not stable", c.oid)
		}
		other, _ := Apply(Hash, c.oid, FormatText, c.text, []byte("another-key-of-16-bytes"))
		if bytes.Equal(other, ht) {
			t.Errorf("oid %d: hash does not depend on the key", c.oid)
		}
	}
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func TestApplyExamples(t *testing.T) {
	cases := []struct {
		m      Method
		oid    uint32
		format int16
		in     string
		want   string
	}{
		{Last4, oidText, 0, "4111-1111-1111-1234", "****-****-****-1234"},
		{Last4, oidVarchar, 0, "abc", "***"},
		{Last4, oidBpchar, 0, "12345678  ", "****5678  "},
		{Redact, oidText, 0, "secret", "[REDACTED]"},
		{Redact, oidBpchar, 0, "ab   ", "*****"},
		{Redact, oidBpchar, 0, "abcdefghijkl", "[REDACTED]  "},
		{EmailDomain, oidText, 0, "jane.doe@example.com", "********@example.com"},
		{EmailDomain, oidText, 0, "no at sign", "[REDACTED]"},
		{EmailDomain, oidJSON, 0, `"bob@x.org"`, `"***@x.org"`},
		{Redact, oidJSONB, 1, "\x01{\"a\":1}", "\x01\"[REDACTED]\""},
		{Last4, oidInt4, 0, "-123456789", "-6789"},
		{Last4, oidNumeric, 0, "98765.4321", "8765"},
		{Redact, oidDate, 0, "2024-01-01", "1970-01-01"},
		{Redact, oidTimestamptz, 0, "2024-01-01 00:00:00+02", "1970-01-01 00:00:00+00"},
		{Last4, oidUUID, 0, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000a11"},
		{Redact, oidBytea, 0, `\x0102`, `\x`},
		{Redact, oidInet, 0, "2001:db8::1", "::"},
		{Redact, oidBool, 1, "\x01", "\x00"},
	}
	for _, c := range cases {
		got, err := Apply(c.m, c.oid, c.format, []byte(c.in), testKey)
		if err != nil || string(got) != c.want {
			t.Errorf("Apply(%s, %d, %d, %q) = %q, %v; want %q", c.m, c.oid, c.format, c.in, got, err, c.want)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	if _, err := Apply("scramble", oidText, 0, []byte("x"), nil); err == nil {
		t.Error("unknown method accepted")
	}
	if _, err := Apply(Hash, oidText, 0, []byte("x"), []byte("short")); err == nil {
		t.Error("short hash key accepted")
	}
	if _, err := Apply(Last4, oidInt4, 1, []byte{1, 2, 3}, nil); err == nil {
		t.Error("3-byte binary int4 accepted")
	}
	if _, err := Apply(Redact, oidText, 2, []byte("x"), nil); err == nil {
		t.Error("format 2 accepted")
	}
	if out, err := Apply(Redact, oidText, 0, nil, nil); err != nil || out != nil {
		t.Errorf("NULL must stay NULL: %q %v", out, err)
	}
	if out, err := Apply(Redact, oidText, 0, []byte{}, nil); err != nil || out == nil {
		t.Errorf("empty is not NULL: %v %v", out, err)
	}
}
