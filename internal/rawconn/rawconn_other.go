//go:build !linux

package rawconn

import "net"

// Wrap returns c unchanged: raw system calls are implemented for Linux only.
func Wrap(c net.Conn) net.Conn { return c }
