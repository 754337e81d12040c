package sqlinspect

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGolden inspects each testdata/*.sql file as one multi-statement text
// and compares the facts with testdata/*.golden (go test -update rewrites).
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.sql: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			sql, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Inspect(string(sql))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			got, err := json.MarshalIndent(f, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(file, ".sql") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s; run go test -run TestGolden -update and review the diff", file, golden)
			}
			// The statements split by the grammar are the ones Split finds.
			var texts []string
			for _, s := range f.Statements {
				texts = append(texts, s.Text)
			}
			if split := Split(string(sql)); strings.Join(split, "\x00") != strings.Join(texts, "\x00") {
				t.Errorf("Split and libpg_query disagree on %s", file)
			}
		})
	}
}
