package masking

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// buildRow encodes a DataRow body; a nil field is NULL.
func buildRow(fields ...[]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(fields)))
	for _, f := range fields {
		if f == nil {
			b = binary.BigEndian.AppendUint32(b, 0xFFFFFFFF)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// parseRow decodes a DataRow body (test helper; errors fail the test).
func parseRow(t testing.TB, b []byte) [][]byte {
	t.Helper()
	n := int(binary.BigEndian.Uint16(b))
	p := 2
	var out [][]byte
	for i := 0; i < n; i++ {
		l := int(int32(binary.BigEndian.Uint32(b[p:])))
		p += 4
		if l < 0 {
			out = append(out, nil)
			continue
		}
		out = append(out, b[p:p+l])
		p += l
	}
	if p != len(b) {
		t.Fatalf("trailing bytes in rewritten row")
	}
	return out
}

func TestRewriteDataRow(t *testing.T) {
	body := buildRow([]byte("1"), []byte("4111-1111-1111-1234"), nil, be32(7),
		[]byte("call me at 415-555-2671 or jane@example.com"), []byte(`{"card": 4111111111111111}`), []byte("keep"))
	plan := []FieldPlan{
		{Index: 1, Method: Last4, TypeOID: oidText},
		{Index: 2, Method: Redact, TypeOID: oidText},
		{Index: 3, Method: Hash, TypeOID: oidInt4, Format: FormatBinary, Key: testKey},
		{Index: 4, TypeOID: oidText, Entities: true},
		{Index: 5, TypeOID: oidJSONB, Entities: true},
	}
	if err := Validate(plan); err != nil {
		t.Fatal(err)
	}
	out, err := RewriteDataRow(nil, body, plan)
	if err != nil {
		t.Fatal(err)
	}
	got := parseRow(t, out)
	want := []string{"1", "****-****-****-1234", "", "", "call me at ***-***-**71 or ****@example.com", `"[REDACTED]"`, "keep"}
	for i, w := range want {
		if i == 2 {
			if got[i] != nil {
				t.Errorf("NULL stays NULL, got %q", got[i])
			}
			continue
		}
		if i == 3 {
			if len(got[i]) != 4 {
				t.Errorf("hashed int4 is %d bytes", len(got[i]))
			}
			continue
		}
		if string(got[i]) != w {
			t.Errorf("field %d = %q, want %q", i, got[i], w)
		}
	}
}

func TestRewriteDataRowErrors(t *testing.T) {
	good := buildRow([]byte("a"), []byte("b"))
	cases := map[string]struct {
		body []byte
		plan []FieldPlan
		err  error
	}{
		"short":          {[]byte{0}, nil, ErrDataRow},
		"negative count": {[]byte{0xFF, 0xFF}, nil, ErrDataRow},
		"truncated len":  {append(buildRow([]byte("a")), 0, 0)[:5], nil, ErrDataRow},
		"value overruns": {[]byte{0, 1, 0, 0, 0, 9, 'a'}, nil, ErrDataRow},
		"bad length":     {[]byte{0, 1, 0xFF, 0xFF, 0xFF, 0xFE}, nil, ErrDataRow},
		"trailing":       {append(buildRow([]byte("a")), 'x'), nil, ErrDataRow},
		"beyond row":     {good, []FieldPlan{{Index: 5, Method: Redact, TypeOID: oidText}}, ErrPlan},
		"unsorted":       {good, []FieldPlan{{Index: 1, Method: Redact}, {Index: 0, Method: Redact}}, ErrPlan},
		"bad value":      {good, []FieldPlan{{Index: 0, Method: Last4, TypeOID: oidInt4, Format: FormatBinary}}, ErrValue},
	}
	for name, c := range cases {
		if _, err := RewriteDataRow(nil, c.body, c.plan); !errors.Is(err, c.err) {
			t.Errorf("%s: err = %v, want %v", name, err, c.err)
		}
	}
}

// benchRow is a 10-field row with two fields to mask (a card number, last4;
// an e-mail, email-domain) and a hashed-key-free plan, as in the issue's
// result-heavy benchmark.
func benchRow() ([]byte, []FieldPlan) {
	body := buildRow([]byte("12345"), []byte("Jane"), []byte("Doe"), []byte("4111111111111111"),
		[]byte("jane.doe@example.com"), []byte("2024-01-15"), []byte("42.50"), []byte("t"),
		[]byte("some free text about the order"), []byte("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))
	plan := []FieldPlan{
		{Index: 3, Method: Last4, TypeOID: oidText},
		{Index: 4, Method: EmailDomain, TypeOID: oidVarchar},
	}
	return body, plan
}

func TestRewriteDataRowDoesNotAllocate(t *testing.T) {
	body, plan := benchRow()
	plan = append(plan, FieldPlan{Index: 8, TypeOID: oidText, Entities: true},
		FieldPlan{Index: 9, Method: Hash, TypeOID: oidUUID, Key: testKey})
	dst := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(200, func() {
		var err error
		if _, err = RewriteDataRow(dst[:0], body, plan); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("RewriteDataRow allocates %.1f times per row", allocs)
	}
}

func BenchmarkRewriteDataRow(b *testing.B) {
	body, plan := benchRow()
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var err error
		if dst, err = RewriteDataRow(dst[:0], body, plan); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkRewriteDataRowEntities(b *testing.B) {
	body, plan := benchRow()
	plan = append(plan, FieldPlan{Index: 8, TypeOID: oidText, Entities: true})
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = RewriteDataRow(dst[:0], body, plan)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkRewriteDataRowNotes cycles through rows of bench/masking.sh's
// table: ten columns, card_number (last4) and email (email-domain) masked
// by column rules, and a free-text notes column scanned for entities that
// holds a phone number, a card number, nothing, or an e-mail address.
func BenchmarkRewriteDataRowNotes(b *testing.B) {
	notes := []string{
		"Customer called from +1 (415) 627-4240 about order 4240; wants a callback.",
		"Paid with card 4111 1111 1111 1111 on the second attempt; receipt sent, nothing else to do.",
		"Asked to update the billing address. No action needed until the next invoice run in March.",
		"Please copy jane.doe4243@example.org on the renewal quote and the signed order form.",
	}
	var bodies [][]byte
	size := 0
	for i, n := range notes {
		id := fmt.Sprint(4240 + i)
		bodies = append(bodies, buildRow([]byte(id), []byte("411100000000"+id), []byte("customer"+id+"@example.com"),
			[]byte(n), []byte("42.42"), []byte("42"), []byte("2024-08-29"), []byte("2024-01-03 22:42:00+00"), []byte("t"),
			[]byte("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")))
		size += len(bodies[i])
	}
	plan := []FieldPlan{
		{Index: 1, Method: Last4, TypeOID: oidText},
		{Index: 2, Method: EmailDomain, TypeOID: oidText},
		{Index: 3, TypeOID: oidText, Entities: true, Kinds: []Entity{CreditCard, Email, Phone, USSSN, IBAN, Secret}},
	}
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(size / len(bodies)))
	i := 0
	for b.Loop() {
		var err error
		if dst, err = RewriteDataRow(dst[:0], bodies[i%len(bodies)], plan); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
