package masking

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMaskEntities(t *testing.T) {
	cases := []struct{ in, want string }{
		{"card 4111 1111 1111 1111 ok", "card **** **** **** 1111 ok"},
		{"ssn 536-21-7740.", "ssn ***-**-7740."},
		{"mail jane.doe@example.com", "mail ****.***@example.com"},
		{"IBAN GB82WEST12345698765432", "IBAN GB****************5432"},
		{"postgres://app:s3cr3tP4ss@db.example.com/x", "postgres://app:**********@db.example.com/x"},
		{"nothing to see here", "nothing to see here"},
	}
	for _, c := range cases {
		got, _ := MaskEntities(c.in, nil)
		if got != c.want {
			t.Errorf("MaskEntities(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Kinds narrow the scan.
	if got, n := MaskEntities("jane@example.com 4111111111111111", []Entity{CreditCard}); n != 1 || !strings.HasPrefix(got, "jane@") {
		t.Errorf("kinds not honoured: %q %d", got, n)
	}
	if _, err := ParseEntity("credit_card"); err != nil {
		t.Error(err)
	}
	if _, err := ParseEntity("dna"); err == nil {
		t.Error("unknown entity accepted")
	}
}

// TestDetectLinear: pathological inputs made of trigger bytes finish and
// find nothing (RE2-style guarantee for the hand-written scan).
func TestDetectLinear(t *testing.T) {
	for _, s := range []string{strings.Repeat("a@", 50000), strings.Repeat("1:", 50000), strings.Repeat("key=", 50000),
		strings.Repeat("(1 ", 50000), strings.Repeat("-----BEGIN", 20000), strings.Repeat("eyJ.", 30000)} {
		Detect(s, nil)
	}
}

var prose = strings.Repeat("The quarterly report shows revenue grew by twelve percent, driven by new "+
	"customers in Europe and Asia; the team will meet on Monday to review the plan. ", 7)[:1024]

// cpuMBs reports throughput per CPU second as well ("cpu-MB/s"): on a
// shared machine the wall-clock MB/s of the benchmark also counts the time
// the benchmark waited for a core, and the target is per core.
func cpuMBs(b *testing.B, n int) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		if el := cpu() - start; el > 0 {
			b.ReportMetric(float64(n)*float64(b.N)/el.Seconds()/1e6, "cpu-MB/s")
		}
	}
}

func BenchmarkDetectProse(b *testing.B) {
	b.SetBytes(int64(len(prose)))
	b.ReportAllocs()
	defer cpuMBs(b, len(prose))()
	for b.Loop() {
		Detect(prose, nil)
	}
}

func BenchmarkDetectMixed(b *testing.B) {
	mixed := prose[:700] + " card 4111 1111 1111 1111, jane@example.com, +1 (415) 627-3980, 10.0.0.1, order 2024-01-15 #42 " +
		"api_key=Zx81kQ0pLm2nR7 v1.2.3 " + prose[:120]
	b.SetBytes(int64(len(mixed)))
	b.ReportAllocs()
	defer cpuMBs(b, len(mixed))()
	for b.Loop() {
		MaskEntities(mixed, nil)
	}
}

// phoneDense is a contact list: about one phone-shaped candidate every 40
// bytes, most of them real numbers, a few ids and dates that must be
// rejected, so the phone confirmation dominates the scan.
var phoneDense = func() string {
	lines := []string{
		"Jane Roe, mobile +1 (415) 627-3980, office 212-736-4821 ext 4; ",
		"Max Mustermann +49 30 901820, fax +49 30 9018 2111; ",
		"order 2024-01-15 ref 555-123-4567 shipped; ",
		"Sophie Martin +33 1 42 68 53 00, tel 617.253.1000; ",
		"Hiro Tanaka +81 3-3224-5000 (work), home (206) 684-4000; ",
		"Priya Shah +91 98765 43210, desk 512 974 2000, invoice 4411-22-3344; ",
	}
	var b strings.Builder
	for b.Len() < 1024 {
		for _, l := range lines {
			b.WriteString(l)
		}
	}
	return b.String()[:1024]
}()

func BenchmarkDetectPhones(b *testing.B) {
	b.SetBytes(int64(len(phoneDense)))
	b.ReportAllocs()
	defer cpuMBs(b, len(phoneDense))()
	for b.Loop() {
		MaskEntities(phoneDense, nil)
	}
}
