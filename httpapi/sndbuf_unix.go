//go:build unix

package httpapi

import (
	"net"
	"syscall"
)

// GrowSendBuffer grows c's kernel send buffer by at least n bytes, and at
// least doubles it (Linux lets a blocked writer on only once the free space
// is a good part of what is queued); it reports whether the buffer is now
// larger (the system's wmem_max caps it).
func GrowSendBuffer(c net.Conn, n int) bool {
	// Unwrap *tls.Conn and LimitListener's wrapper, whichever are there.
	for u, ok := c.(interface{ NetConn() net.Conn }); ok; u, ok = c.(interface{ NetConn() net.Conn }) {
		c = u.NetConn()
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return false
	}
	size := func() (v int) {
		_ = rc.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF) })
		return v
	}
	before := size()
	if before <= 0 {
		return false
	}
	// Linux doubles the value set (for its bookkeeping) and reports the
	// doubled value, so ask for half of the wanted size.
	if err := tcp.SetWriteBuffer((before + max(n, before)) / 2); err != nil {
		return false
	}
	return size() > before
}
