package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration. Load, Parse, Validate and
// ResolveSecrets return every problem they find, joined with errors.Join;
// use errors.As to get the first, or unwrap the join for all.
type Error struct {
	File    string // "" when the configuration did not come from a file
	Line    int    // 1-based; 0 when unknown
	Key     string // key path, e.g. "connections[0].tls"; "" for the whole file
	Problem string
}

// Error formats as "file:line: key: problem", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// problem is an Error before the file name is known.
type problem struct {
	line int
	key  string
	msg  string
}

// joinProblems turns problems into one error, ordered by line so the output
// reads top to bottom like the file (problems without a line go last).
func joinProblems(file string, probs []problem) error {
	if len(probs) == 0 {
		return nil
	}
	sort.SliceStable(probs, func(i, j int) bool {
		li, lj := probs[i].line, probs[j].line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	errs := make([]error, 0, len(probs))
	seen := make(map[problem]bool, len(probs))
	for _, p := range probs {
		if seen[p] {
			continue
		}
		seen[p] = true
		errs = append(errs, &Error{File: file, Line: p.line, Key: p.key, Problem: p.msg})
	}
	return errors.Join(errs...)
}

// lineOf finds the line a key path was written on, falling back to its
// closest written parent (a missing required key is reported at the mapping
// that lacks it).
func lineOf(lines map[string]int, key string) int {
	for key != "" {
		if l, ok := lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}
