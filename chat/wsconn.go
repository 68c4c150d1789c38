package chat

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
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
//
// Cork: while the writer writes a batch of frames (cork … uncork), writes
// are gathered in a pooled buffer and leave in one write at uncork (or
// whenever corkFlush bytes are gathered), instead of one write syscall per
// frame. Frames written meanwhile by another goroutine (coder/websocket's
// pongs) join the buffer in order.
type stallConn struct {
	net.Conn
	c       *conn
	timeout time.Duration

	mu     sync.Mutex // serializes writes to Conn; guards the fields below
	grown  bool
	corked bool
	buf    *[]byte // while corked, from corkPool
	writes int     // to Conn (tests)
}

// corkFlush is how much a corked batch gathers before it writes.
const corkFlush = 32 << 10

var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// stallHeadroom is the send-buffer growth on the first stuck write: one
// frame's remainder (frame_limit is 16 KiB by default) and a close frame,
// with room to spare.
const stallHeadroom = 64 << 10

func (s *stallConn) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.corked {
		return s.writeLocked(p)
	}
	*s.buf = append(*s.buf, p...)
	if len(*s.buf) >= corkFlush {
		if err := s.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// cork gathers the writes that follow until uncork.
func (s *stallConn) cork() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corked = true
	s.buf = corkPool.Get().(*[]byte)
}

// uncork writes what was gathered and returns the buffer to the pool.
func (s *stallConn) uncork() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.flushLocked()
	s.corked = false
	if cap(*s.buf) <= 2*corkFlush {
		corkPool.Put(s.buf)
	}
	s.buf = nil
	return err
}

func (s *stallConn) flushLocked() error {
	b := *s.buf
	*s.buf = b[:0]
	if len(b) == 0 {
		return nil
	}
	_, err := s.writeLocked(b)
	return err
}

// socketWrites counts the writes to WebSocket connections (all of this
// process's; BenchmarkSendDeliver reports them per message).
var socketWrites atomic.Int64

// writeLocked writes p with the write timeout (s.mu held).
func (s *stallConn) writeLocked(p []byte) (int, error) {
	socketWrites.Add(1)
	s.writes++
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
// wraps the connection in a stallConn and hands coder/websocket smaller
// buffers than net/http's.
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
	w.c.sc = sc
	br := brw.Reader
	if n := br.Buffered(); n <= readBufferSize {
		// A smaller buffer, holding what the client sent after the upgrade
		// request (coder/websocket reads it first).
		pending, _ := br.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(pending)), nc), readBufferSize)
		if _, err := br.Peek(n); err != nil {
			_ = nc.Close()
			return nil, nil, err
		}
	}
	return sc, bufio.NewReadWriter(br, bufio.NewWriterSize(sc, writeBufferSize)), nil
}

// A connection's buffers, for as long as it lives (net/http's are 4 KiB
// each). Frames are read through the read buffer (a larger payload is read
// straight into the frame's buffer); writes are gathered by stallConn's
// cork, so the write buffer only carries a frame's header and small frames.
const (
	readBufferSize  = 512
	writeBufferSize = 256
)
