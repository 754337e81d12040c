package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: Parse never panics, returns exactly one of a config or an
// error, and a config it returns validates again and marshals.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	seeds = append(seeds, "../../gatehouse.example.yaml")
	for _, path := range seeds {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("connections: [{name: x, address: '[::1', username: u}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", c != nil, err)
		}
		if c == nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate again: %v", err)
		}
		if _, err := json.Marshal(c); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseByteSize: no panics, and every accepted size round-trips
// through String.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"0", "64MiB", "1 GiB", "100MB", "9223372036854775807", "8EiB", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseByteSize(s)
		if err != nil {
			return
		}
		back, err := ParseByteSize(v.String())
		if err != nil || back != v {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, v, v.String(), back, err)
		}
	})
}
