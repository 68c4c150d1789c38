package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chatd/chatd/httpapi"
)

// tunnelBufSize is the size of the copy buffers of proxied WebSockets.
// Chat frames are small and at most 16 KiB; a buffer is taken from
// tunnelBufs only while a read returns bytes (readable), so an idle
// tunnel holds none.
const tunnelBufSize = 4 << 10

// tunnelBufs are the tunnels' copy buffers (*[]byte of tunnelBufSize).
var tunnelBufs = sync.Pool{New: func() any { b := make([]byte, tunnelBufSize); return &b }}

// closeWriteTimeout bounds the write of a close frame to a client.
const closeWriteTimeout = time.Second

// statusTryAgainLater (1013) closes the tunnel of a client that does not
// read, as chat closes its own sockets.
const statusTryAgainLater = 1013

// stallHeadroom is the least growth of a stuck client's send buffer (it
// at least doubles): room for the rest of the frame in flight (chat frames
// are at most 16 KiB) and a close frame.
const stallHeadroom = 64 << 10

// tunnelSendBuffer is the kernel send buffer of a tunnel's client socket,
// fixed rather than autotuned (up to 4 MiB): plenty for chat's small
// frames, it bounds what a client that stops reading holds in the
// gateway's kernel, and leaves room to grow by stallHeadroom.
const tunnelSendBuffer = 256 << 10

// errSlowClient ends the copy to a client that did not read.
var errSlowClient = errors.New("gateway: websocket client does not read")

// tunnel is a proxied WebSocket once both handshakes are done: the
// client's connection (hijacked from the HTTP server) and the upstream's
// (dialled by serveTunnel). It runs on exactly two goroutines, one per
// direction, and the request's goroutine has returned: an idle tunnel is
// its two connections, this struct and two small parked stacks.
//
// The copy to the client follows the frame boundaries of what it copies
// (frameTracker), so that closeWith can end the client's stream with a
// close frame of its own without cutting a frame. A client that takes no
// bytes for writeTimeout is closed with 1013, as a chat replica closes its
// own: its send buffer grows by stallHeadroom, the frame in flight is
// finished, the close frame follows, and the tunnel ends (the kernel
// delivers what it holds when the client reads again).
//
// The tunnel ends when either direction fails or the client's stream
// ends; when the upstream's stream ends, the client's is half-closed
// (when its connection can) and the tunnel ends with the client's, as
// httputil.ReverseProxy did.
type tunnel struct {
	g            *Gateway
	up           *upstream
	client       net.Conn
	upstream     net.Conn
	fromC, fromU source
	writeTimeout time.Duration // gateway.ws_write_timeout

	mu      sync.Mutex // held while writing to the client
	fr      frameTracker
	stalled bool // a write to the client timed out
	closed  bool // closeWith ran or the copy to the client ended: nothing more is written

	closeOnce   sync.Once
	live        atomic.Int32 // directions still copying
	stopClosing func() bool  // the AfterFunc on Gateway.closing
	stopDrop    func() bool  // the AfterFunc on the upstream's tunnelDrop signal
}

// startTunnel runs a tunnel between client and upstream, counted as open
// on g (Stop waits for it); it takes over the count of the handshake as
// active on u, which it ends. toClient and
// toUpstream are bytes that arrived behind the handshakes (the upstream's
// first frames, read with its 101 response; a client's first frames,
// read with its request). drop is the signal, taken when the attempt
// started, that u stopped answering.
func (g *Gateway) startTunnel(u *upstream, client, upstream net.Conn, toClient, toUpstream []byte, drop context.Context) {
	t := &tunnel{g: g, up: u, client: client, upstream: upstream, writeTimeout: g.cfg.WSWriteTimeout}
	t.fromC.init(client)
	t.fromU.init(upstream)
	if tcp := tcpConn(client); tcp != nil {
		_ = tcp.SetWriteBuffer(tunnelSendBuffer / 2) // Linux doubles it
	}
	g.tunnels.Add(1)
	t.live.Store(2)
	// Stop closes every tunnel; an upstream that stops answering loses
	// its tunnels (1001), so that their clients reconnect to one that does.
	t.stopClosing = context.AfterFunc(g.closing, t.close)
	t.stopDrop = context.AfterFunc(drop, func() { t.closeWith(statusGoingAway, "upstream not answering") })
	go t.copyToUpstream(toUpstream)
	go t.copyToClient(toClient)
}

// close ends both connections, which ends both copies.
func (t *tunnel) close() {
	t.closeOnce.Do(func() {
		_ = t.client.Close()
		_ = t.upstream.Close()
	})
}

// exit is each copy's last call; the last one ends the tunnel.
func (t *tunnel) exit() {
	if t.live.Add(-1) != 0 {
		return
	}
	t.close()
	t.stopClosing()
	t.stopDrop()
	t.up.active.Add(-1)
	t.g.tunnels.Add(-1)
}

// copyToUpstream copies the client's stream to the upstream; its end (or
// any error) ends the tunnel.
func (t *tunnel) copyToUpstream(pending []byte) {
	defer t.exit()
	defer t.close()
	if len(pending) > 0 {
		if _, err := t.upstream.Write(pending); err != nil {
			return
		}
	}
	for {
		b, n, err := t.fromC.read()
		if n > 0 {
			_, werr := t.upstream.Write((*b)[:n])
			tunnelBufs.Put(b)
			if werr != nil {
				return
			}
		} else if b != nil {
			tunnelBufs.Put(b)
		}
		if err != nil {
			return
		}
	}
}

// copyToClient copies the upstream's stream to the client.
func (t *tunnel) copyToClient(pending []byte) {
	defer t.exit()
	if len(pending) > 0 {
		if err := t.writeFrames(pending); err != nil {
			t.close()
			return
		}
	}
	for {
		b, n, err := t.fromU.read()
		if n > 0 {
			werr := t.writeFrames((*b)[:n])
			tunnelBufs.Put(b)
			if werr != nil {
				t.close()
				return
			}
		} else if b != nil {
			tunnelBufs.Put(b)
		}
		if err == io.EOF {
			t.mu.Lock()
			t.closed = true
			t.mu.Unlock()
			if cw, ok := t.client.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return // the client's end of the stream ends the tunnel
			}
			t.close()
			return
		}
		if err != nil {
			t.close()
			return
		}
	}
}

// writeFrames writes p, bytes of the upstream's stream, to the client and
// ends a stalled client's stream with 1013 at the next frame boundary.
func (t *tunnel) writeFrames(p []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return net.ErrClosed
	}
	m, err := t.writeClient(p)
	t.fr.feed(p[:m])
	if err == nil && t.stalled && t.fr.boundary() {
		_, _ = t.client.Write(closeFrame(statusTryAgainLater, "too slow"))
		t.closed = true
		return errSlowClient
	}
	if err == nil && m < len(p) {
		err = io.ErrShortWrite
	}
	return err
}

// writeClient writes p to the client with a deadline of writeTimeout per
// write; the first write that times out grows the send buffer once and
// goes on (stalled), a second one fails. The deadline is cleared after a
// write, so that an idle tunnel has no timer armed.
func (t *tunnel) writeClient(p []byte) (int, error) {
	if t.writeTimeout <= 0 {
		return t.client.Write(p)
	}
	written := 0
	for {
		_ = t.client.SetWriteDeadline(time.Now().Add(t.writeTimeout))
		n, err := t.client.Write(p[written:])
		written += n
		if err == nil {
			_ = t.client.SetWriteDeadline(time.Time{})
		}
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || t.stalled || t.closed {
			return written, err
		}
		t.stalled = true
		if !httpapi.GrowSendBuffer(t.client, stallHeadroom) {
			return written, err
		}
	}
}

// closeWith sends the client a close frame with code and reason (when the
// stream to it is between frames and the client takes it within
// closeWriteTimeout) and ends the tunnel.
func (t *tunnel) closeWith(code uint16, reason string) {
	_ = t.client.SetWriteDeadline(time.Now().Add(closeWriteTimeout)) // also unblocks a stuck copy
	t.mu.Lock()
	if !t.closed && t.fr.boundary() {
		_, _ = t.client.Write(closeFrame(code, reason))
	}
	t.closed = true
	t.mu.Unlock()
	t.close()
}

// source reads one direction of a tunnel. On a plain TCP connection it
// waits for bytes through the connection's RawConn, with no buffer, and
// takes a buffer from tunnelBufs only for a read that returns bytes; on
// any other connection (TLS keeps records of its own) the buffer is
// taken before the read and held while it waits.
type source struct {
	conn  net.Conn
	raw   syscall.RawConn       // nil: conn.Read
	readf func(fd uintptr) bool // the RawConn.Read callback, made once
	buf   *[]byte               // readf's result: the buffer,
	n     int                   // the byte count
	err   error                 // and the read's error
}

func (s *source) init(c net.Conn) {
	s.conn = c
	if s.raw = rawConn(c); s.raw != nil {
		s.readf = s.readFD
	}
}

// read returns the next bytes of the stream in a buffer of tunnelBufs,
// which the caller puts back (a nil buffer when nothing was read).
// io.EOF ends the stream.
func (s *source) read() (*[]byte, int, error) {
	if s.raw == nil {
		b := tunnelBufs.Get().(*[]byte)
		n, err := s.conn.Read(*b)
		return b, n, err
	}
	s.buf, s.n, s.err = nil, 0, nil
	if err := s.raw.Read(s.readf); err != nil {
		return s.buf, 0, err
	}
	return s.buf, s.n, s.err
}

// readFD reads what fd holds without blocking; with nothing to read it
// gives the buffer back and returns false, and the RawConn waits for fd
// to be readable (the poller's wait, as conn.Read's) and calls it again.
func (s *source) readFD(fd uintptr) bool {
	if s.buf == nil {
		s.buf = tunnelBufs.Get().(*[]byte)
	}
	for {
		n, err := readFD(fd, *s.buf)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			tunnelBufs.Put(s.buf)
			s.buf = nil
			return false
		case err != nil:
			s.err = err
		case n == 0:
			s.err = io.EOF
		default:
			s.n = n
		}
		return true
	}
}

// closeFrame is an unmasked (server to client) close frame; reason must be
// at most 123 bytes.
func closeFrame(code uint16, reason string) []byte {
	f := make([]byte, 4, 4+len(reason))
	f[0] = 0x88 // FIN, opcode close
	f[1] = byte(2 + len(reason))
	binary.BigEndian.PutUint16(f[2:], code)
	return append(f, reason...)
}

// frameTracker follows WebSocket frame boundaries in a byte stream (RFC
// 6455 §5.2): the header's length fields say where each frame ends.
type frameTracker struct {
	hdr     [14]byte
	hn      int    // header bytes of the current frame seen so far
	payload uint64 // payload bytes of the current frame still to come
}

// boundary reports whether the stream so far ends between two frames.
func (f *frameTracker) boundary() bool { return f.hn == 0 && f.payload == 0 }

func (f *frameTracker) feed(p []byte) {
	for len(p) > 0 {
		if f.payload > 0 {
			k := min(uint64(len(p)), f.payload)
			f.payload -= k
			p = p[k:]
			continue
		}
		f.hdr[f.hn] = p[0]
		f.hn++
		p = p[1:]
		if f.hn < 2 {
			continue
		}
		need, l7 := 2, f.hdr[1]&0x7f
		switch l7 {
		case 126:
			need += 2
		case 127:
			need += 8
		}
		if f.hdr[1]&0x80 != 0 {
			need += 4 // masking key
		}
		if f.hn < need {
			continue
		}
		switch l7 {
		case 126:
			f.payload = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
		case 127:
			f.payload = binary.BigEndian.Uint64(f.hdr[2:10])
		default:
			f.payload = uint64(l7)
		}
		f.hn = 0
	}
}
