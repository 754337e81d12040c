//go:build !linux

package journal

import (
	"errors"
	"os"
)

// mapSegment is not available here: the journal writes each record through
// with write(2) (see segment.place).
func mapSegment(f *os.File, size int) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapSegment(mem []byte) error { return nil }
