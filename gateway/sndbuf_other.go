//go:build !unix

package gateway

import "net"

// growSendBuffer is not supported here: a stuck write fails at once.
func growSendBuffer(net.Conn, int) bool { return false }
