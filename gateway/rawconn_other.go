//go:build !unix

package gateway

import "syscall"

// rawReads: no readFD here; tunnels read through net.Conn.
const rawReads = false

// readFD is never called where rawConn gives no RawConn.
func readFD(uintptr, []byte) (int, error) { return 0, syscall.EINVAL }
