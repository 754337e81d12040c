package sqlcommon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
)

func TestCeilMicro(t *testing.T) {
	base := time.Date(2024, 5, 1, 12, 0, 0, 1000, time.UTC)
	if got := CeilMicro(base); !got.Equal(base) {
		t.Errorf("exact: %v", got)
	}
	if got := CeilMicro(base.Add(1)); !got.Equal(base.Add(time.Microsecond)) {
		t.Errorf("ceil: %v", got)
	}
	if got := Micro(base.Add(999)); !got.Equal(base) {
		t.Errorf("trunc: %v", got)
	}
}

func TestAccessRoundTrip(t *testing.T) {
	for _, a := range [][]string{nil, {}, {"group:x"}, {"sub:a\"b", "*", "client:ü"}} {
		s, err := EncodeAccess(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeAccess(s)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(a) || (len(a) == 0 && got != nil) {
			t.Errorf("%q -> %s -> %q", a, s, got)
		}
	}
	if _, err := DecodeAccess("nope"); err == nil {
		t.Error("bad JSON accepted")
	}
}

func TestEventQuery(t *testing.T) {
	ph := func(n int) string { return fmt.Sprintf("$%d", n) }
	q, args := EventQuery(audit.Filter{}, ph, func(t time.Time) any { return t })
	if strings.Contains(q, "WHERE") || !strings.HasSuffix(q, "ORDER BY seq DESC LIMIT 100") || len(args) != 0 {
		t.Errorf("empty filter: %s %v", q, args)
	}
	q, args = EventQuery(audit.Filter{Principal: "p", Connection: "c", Decision: "deny", Type: "statement",
		SessionID: "s", Since: time.Unix(5, 0), AfterSeq: 9, Limit: 3}, ph, func(t time.Time) any { return t.UnixMicro() })
	want := "WHERE subject = $1 AND connection = $2 AND decision = $3 AND type = $4 AND session_id = $5 AND time >= $6 AND seq > $7 ORDER BY seq ASC LIMIT 3"
	if !strings.HasSuffix(q, want) || len(args) != 7 || args[5] != int64(5_000_000) {
		t.Errorf("full filter: %s %v", q, args)
	}
}
