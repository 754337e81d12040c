package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes, written in configuration as a plain integer
// or with a unit: 64MiB, 1GiB, 512KiB, 100MB.
type ByteSize int64

// Binary and decimal units.
const (
	B   ByteSize = 1
	KiB          = 1024 * B
	MiB          = 1024 * KiB
	GiB          = 1024 * MiB
	TiB          = 1024 * GiB
	KB           = 1000 * B
	MB           = 1000 * KB
	GB           = 1000 * MB
	TB           = 1000 * GB
)

// units is ordered so String picks the largest exact binary unit.
var units = []struct {
	name string
	size ByteSize
}{
	{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB},
	{"TB", TB}, {"GB", GB}, {"MB", MB}, {"KB", KB}, {"B", B},
}

// ParseByteSize parses "1048576", "64MiB", "1 GiB", "100MB" or "512B".
// Units are case-sensitive as written here, so an ambiguous "mb" or "m" is
// rejected rather than guessed at. KiB/MiB/GiB/TiB are powers of 1024,
// KB/MB/GB/TB powers of 1000.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, fmt.Errorf("must be a size like 64MiB, 1GiB or a number of bytes (got %q)", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	mult := B
	if unit != "" {
		found := false
		for _, u := range units {
			if u.name == unit {
				mult, found = u.size, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown size unit %q in %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", unit, s)
		}
	}
	if n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n) * mult, nil
}

// String formats the size with the largest unit that divides it exactly.
func (b ByteSize) String() string {
	if b > 0 {
		for _, u := range units {
			if b%u.size == 0 {
				return strconv.FormatInt(int64(b/u.size), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// MarshalText writes the String form, which ParseByteSize reads back.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses the ParseByteSize forms.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
