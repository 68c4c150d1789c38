//go:build unix

package gateway

import (
	"syscall"
)

// rawReads: readFD reads a socket.
const rawReads = true

// readFD is a read(2) of fd, which the runtime keeps non-blocking.
func readFD(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		return 0, err
	}
	return n, nil
}
