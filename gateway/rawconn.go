package gateway

import (
	"crypto/tls"
	"net"
	"syscall"
)

// tcpConn is the TCP connection under c's wrappers (tls.Conn's,
// httpapi.LimitListener's), or nil.
func tcpConn(c net.Conn) *net.TCPConn {
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// rawConn is the RawConn of the TCP socket under c when reading that
// socket directly reads c's stream: c is that socket or wraps it without
// buffering (httpapi.LimitListener's wrapper); not under TLS, which reads
// whole records into buffers of its own. nil otherwise, and where
// source.readFD has no read(2) (not unix).
func rawConn(c net.Conn) syscall.RawConn {
	if !rawReads {
		return nil
	}
	for {
		switch v := c.(type) {
		case *tls.Conn:
			return nil
		case *net.TCPConn:
			rc, err := v.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
}
