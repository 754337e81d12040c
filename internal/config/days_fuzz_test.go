package config

import (
	"testing"
	"time"
)

// FuzzParseDays: ParseDays never panics, never returns a negative duration,
// and reads "Nd" as N whole days.
func FuzzParseDays(f *testing.F) {
	for _, s := range []string{"90d", "0", "", "36h", "1h30m", "-1d", "36500d", "99999999999999999d", "d", " 7d "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseDays(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("%q -> negative %s", s, v)
		}
		if time.Duration(v)%(24*time.Hour) == 0 && v > 0 {
			back, err := ParseDays(time.Duration(v).String())
			if err != nil || back != v {
				t.Fatalf("%q -> %s -> %s, %v", s, v, back, err)
			}
		}
	})
}
