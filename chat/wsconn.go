package chat

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/coder/websocket"

	"github.com/chatd/chatd/httpapi"
)

// stallConn is the server end of a WebSocket as coder/websocket writes to
// it (hijackWriter hands it over). Every write has a deadline of the write
// timeout, so a peer that stops reading cannot hold the writer for longer.
//
// A write stuck that long means the peer's receive window and the kernel's
// send buffer are full, usually in the middle of a frame, and a close frame
// can only follow that frame's last byte. So the first stuck write asks for
// a 1013 close and grows the socket's send buffer by stallHeadroom: the rest
// of the frame and the close frame then fit into the kernel, which keeps
// them after the socket is closed and delivers them (before the FIN) when
// the peer reads again. A peer that reads again finds its backlog and the
// documented 1013, not a bare TCP close (1006). If the buffer cannot grow
// (the system's wmem_max) or the peer is still stuck, the write fails and
// the connection is closed without a handshake.
type stallConn struct {
	net.Conn
	c       *conn
	timeout time.Duration
	grown   bool // writes are serialized by coder/websocket's frame lock
}

// stallHeadroom is the send-buffer growth on the first stuck write: one
// frame's remainder (frame_limit is 16 KiB by default) and a close frame,
// with room to spare.
const stallHeadroom = 64 << 10

func (s *stallConn) Write(p []byte) (int, error) {
	written := 0
	for {
		_ = s.SetWriteDeadline(time.Now().Add(s.timeout))
		n, err := s.Conn.Write(p[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return written, err
		}
		s.c.requestClose(websocket.StatusTryAgainLater, "too slow")
		if s.grown || !httpapi.GrowSendBuffer(s.Conn, stallHeadroom) {
			return written, err
		}
		s.grown = true
	}
}

// hijackWriter is the ResponseWriter given to websocket.Accept: its Hijack
// wraps the connection in a stallConn, and points the hijacked buffered
// writer (whose buffer it reuses) at it.
type hijackWriter struct {
	http.ResponseWriter
	c       *conn
	timeout time.Duration
}

func (w hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Flush(); err != nil {
		_ = nc.Close()
		return nil, nil, err
	}
	sc := &stallConn{Conn: nc, c: w.c, timeout: w.timeout}
	brw.Writer.Reset(sc)
	return sc, brw, nil
}
