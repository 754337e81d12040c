package journal

import (
	"fmt"
	"os"
	"syscall"
)

// mapSegment reserves size bytes of disk for f and maps them shared, so an
// append is a copy into the page cache: no system call, and the bytes
// survive the process being killed (they belong to the file, not the
// process). Reserving the blocks first (fallocate) means a full disk fails
// here, at rotation, instead of as SIGBUS on a later store.
func mapSegment(f *os.File, size int) ([]byte, error) {
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, int64(size)); err != nil {
		return nil, fmt.Errorf("reserving %d bytes: %w", size, err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return mem, nil
}

func unmapSegment(mem []byte) error { return syscall.Munmap(mem) }
