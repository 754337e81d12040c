package masking

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

// minScores are the per-entity floors for the labelled corpus
// (testdata/entities.tsv), set a little under the measured values recorded
// in README.md: a detector change that loses precision or recall fails here.
var minScores = map[Entity]struct{ precision, recall float64 }{
	CreditCard: {0.97, 0.97},
	Email:      {0.95, 0.95},
	Phone:      {0.95, 0.90},
	USSSN:      {0.95, 0.95},
	IBAN:       {0.95, 0.95},
	IPAddress:  {0.95, 0.95},
	JWT:        {0.95, 0.95},
	Secret:     {0.95, 0.90},
}

// TestCorpusPrecisionRecall runs every detector over the labelled corpus. A
// positive line counts as found only when a match of its kind covers
// exactly the labelled text; every other match is a false positive.
func TestCorpusPrecisionRecall(t *testing.T) {
	f, err := os.Open("testdata/entities.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type score struct{ tp, fp, fn int }
	scores := map[Entity]*score{}
	for _, e := range allEntities {
		scores[e] = &score{}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("line %d: want 3 tab-separated columns", lines+1)
		}
		lines++
		kind, want, text := Entity(parts[0]), parts[1], parts[2]
		found := false
		for _, m := range Detect(text, nil) {
			if m.Kind == kind && text[m.Start:m.End] == want && !found {
				found = true
				continue
			}
			scores[m.Kind].fp++
			if testing.Verbose() {
				t.Logf("false positive %s %q in %q", m.Kind, text[m.Start:m.End], text)
			}
		}
		if kind == "none" {
			continue
		}
		s, ok := scores[kind]
		if !ok {
			t.Fatalf("line %d: unknown kind %q", lines, kind)
		}
		if found {
			s.tp++
		} else {
			s.fn++
			if testing.Verbose() {
				t.Logf("missed %s %q in %q", kind, want, text)
			}
		}
	}
	if lines < 300 {
		t.Fatalf("corpus has %d lines, want at least 300", lines)
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| entity | TP | FP | FN | precision | recall |\n|---|---|---|---|---|---|\n")
	kinds := append([]Entity(nil), allEntities...)
	sort.Slice(kinds, func(i, j int) bool { return kinds[i] < kinds[j] })
	for _, e := range kinds {
		s := scores[e]
		p, r := ratio(s.tp, s.tp+s.fp), ratio(s.tp, s.tp+s.fn)
		fmt.Fprintf(&table, "| %s | %d | %d | %d | %.3f | %.3f |\n", e, s.tp, s.fp, s.fn, p, r)
		if min := minScores[e]; p < min.precision || r < min.recall {
			t.Errorf("%s: precision %.3f recall %.3f below the floor %.2f/%.2f", e, p, r, min.precision, min.recall)
		}
	}
	t.Logf("corpus: %d lines\n%s", lines, table.String())
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}
