//go:build unix

package httpapi

import (
	"crypto/tls"
	"net"
	"testing"
)

// A hijacked connection over TLS is a *tls.Conn around LimitListener's
// wrapper around the TCP connection: GrowSendBuffer must reach the TCP
// connection through both.
//
// Each case grows a connection of its own: growing one socket twice can
// find it at wmem_max already (the kernel may have sized a loopback
// socket's buffer near it at the handshake), which says nothing about the
// unwrapping.
func TestGrowSendBufferThroughTLSAndLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln = LimitListener(ln, 10, 10, nil, nil)
	accept := func() net.Conn {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	if !GrowSendBuffer(accept(), 1<<16) {
		t.Fatal("the limited TCP connection's buffer did not grow")
	}
	if !GrowSendBuffer(tls.Server(accept(), &tls.Config{}), 1<<16) {
		t.Fatal("the buffer under a *tls.Conn did not grow")
	}
}
