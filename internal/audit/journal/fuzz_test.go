package journal

import "testing"

// FuzzParseRecord: no input makes the parser panic or read past its input,
// and whatever parses re-encodes to the same bytes.
func FuzzParseRecord(f *testing.F) {
	e := entry(1)
	e.ID = 5
	f.Add(appendDecision(nil, &e))
	f.Add(appendAck(nil, []uint64{1, 2, 3}))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, _ := scan(b)
		for _, r := range recs {
			var again []byte
			switch r.kind {
			case kindDecision:
				again = appendDecision(nil, &r.entry)
			case kindAck:
				again = appendAck(nil, r.acks)
			}
			if string(again) != string(r.raw) {
				t.Fatalf("re-encoding differs:\n%x\n%x", again, r.raw)
			}
		}
	})
}

// FuzzWalkIDs: the rotation scanner never panics and agrees with the full
// parser on which records are valid.
func FuzzWalkIDs(f *testing.F) {
	e := entry(1)
	e.ID = 5
	f.Add(appendAck(appendDecision(nil, &e), []uint64{5}))
	f.Add([]byte{9, 0, 0, 0, 1, 2, 3, 4, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ids []uint64
		walkIDs(b, func(kind byte, id uint64, acks, raw []byte) { ids = append(ids, id) })
		recs, _ := scan(b)
		if len(recs) > len(ids) {
			t.Fatalf("full parser read %d records, rotation scanner %d", len(recs), len(ids))
		}
	})
}
