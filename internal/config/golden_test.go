package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGoldenValid parses every testdata/valid/*.yaml and compares the
// normalized configuration, as JSON, with the .json file beside it.
func TestGoldenValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range files {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(in, data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := json.MarshalIndent(c, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			compareGolden(t, strings.TrimSuffix(in, ".yaml")+".json", got)

			// Normalization is stable: validating again changes nothing.
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate after Parse: %v", err)
			}
			again, _ := json.MarshalIndent(c, "", "  ")
			if !bytes.Equal(append(again, '\n'), got) {
				t.Errorf("Validate changed an already normalized config")
			}
		})
	}
}

// TestGoldenInvalid parses every testdata/invalid/*.yaml and compares the
// error text with the .err file beside it.
func TestGoldenInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range files {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(in, data)
			if err == nil {
				t.Fatalf("Parse succeeded, want an error")
			}
			if c != nil {
				t.Errorf("Parse returned a config along with an error")
			}
			compareGolden(t, strings.TrimSuffix(in, ".yaml")+".err", []byte(err.Error()+"\n"))
			for _, secret := range []string{"hunter2", "s3cret-literal"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error text contains the literal secret %q", secret)
				}
			}
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}
