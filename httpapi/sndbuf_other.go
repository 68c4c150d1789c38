//go:build !unix

package httpapi

import "net"

// GrowSendBuffer is not supported here: a stuck write fails at once.
func GrowSendBuffer(net.Conn, int) bool { return false }
