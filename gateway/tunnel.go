package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/chatd/chatd/httpapi"
)

// tunnelBufSize is the copy buffer per direction of a proxied WebSocket.
// The reverse proxy copies an upgraded connection with io.Copy, which
// allocates 32 KiB per direction for the connection's whole life; chat
// frames are small and at most 16 KiB, so 4 KiB buffers cut the gateway's
// memory per idle WebSocket by more than half at no cost worth measuring.
const tunnelBufSize = 4 << 10

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

// upgradeTransport wraps the body of a 101 Switching Protocols response
// (the upstream end of a WebSocket) so that the reverse proxy's io.Copy in
// either direction uses tunnelConn's small buffers, and so that forward can
// close the tunnel with a close frame (attempt.tunnel).
type upgradeTransport struct {
	*http.Transport
	writeTimeout time.Duration // gateway.ws_write_timeout
}

func (t upgradeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.Transport.RoundTrip(req)
	if err == nil && res.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := res.Body.(io.ReadWriteCloser); ok {
			tc := &tunnelConn{rwc: rwc, writeTimeout: t.writeTimeout}
			res.Body = tc
			if a := attemptOf(req.Context()); a != nil {
				a.tunnel.Store(tc)
			}
		}
	}
	return res, err
}

// tunnelConn is the upstream end of a tunnel. io.Copy(client, tunnelConn)
// picks WriteTo and io.Copy(tunnelConn, client) picks ReadFrom (a
// *net.TCPConn client hands over to it too), both with tunnelBufSize
// buffers. WriteTo follows the frame boundaries of what it copies to the
// client, so that closeWith can end the client's stream with a close frame
// of its own without cutting a frame.
//
// A client that takes no bytes for writeTimeout is closed with 1013, as a
// chat replica closes its own: its send buffer grows by stallHeadroom, the
// frame in flight is finished, the close frame follows, and the tunnel
// ends (the kernel delivers what it holds when the client reads again).
type tunnelConn struct {
	rwc          io.ReadWriteCloser
	writeTimeout time.Duration
	stalled      bool // a write to the client timed out; guarded by mu

	cmu    sync.Mutex
	client io.Writer // set when WriteTo starts

	mu     sync.Mutex // held while writing to the client
	fr     frameTracker
	closed bool // closeWith ran: WriteTo writes nothing more
}

func (t *tunnelConn) Read(p []byte) (int, error)  { return t.rwc.Read(p) }
func (t *tunnelConn) Write(p []byte) (int, error) { return t.rwc.Write(p) }
func (t *tunnelConn) Close() error                { return t.rwc.Close() }

// WriteTo copies from the upstream to w.
func (t *tunnelConn) WriteTo(w io.Writer) (int64, error) {
	t.cmu.Lock()
	t.client = w
	t.cmu.Unlock()
	if tcp, ok := w.(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(tunnelSendBuffer / 2) // Linux doubles it
	}
	buf := make([]byte, tunnelBufSize)
	var total int64
	for {
		n, rerr := t.rwc.Read(buf)
		if n > 0 {
			t.mu.Lock()
			if t.closed {
				t.mu.Unlock()
				return total, net.ErrClosed
			}
			m, werr := t.writeClient(w, buf[:n])
			t.fr.feed(buf[:m])
			if werr == nil && t.stalled && t.fr.boundary() {
				_, _ = w.Write(closeFrame(statusTryAgainLater, "too slow"))
				t.closed = true
				t.mu.Unlock()
				_ = t.rwc.Close()
				return total + int64(m), errSlowClient
			}
			t.mu.Unlock()
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if m < n {
				return total, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// writeClient writes p to the client with a deadline of writeTimeout per
// write; the first write that times out grows the send buffer once and
// goes on (stalled), a second one fails.
func (t *tunnelConn) writeClient(w io.Writer, p []byte) (int, error) {
	d, ok := w.(interface{ SetWriteDeadline(time.Time) error })
	if !ok || t.writeTimeout <= 0 {
		return w.Write(p)
	}
	written := 0
	for {
		_ = d.SetWriteDeadline(time.Now().Add(t.writeTimeout))
		n, err := w.Write(p[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || t.stalled || t.closed {
			return written, err
		}
		t.stalled = true
		nc, isConn := w.(net.Conn)
		if !isConn || !httpapi.GrowSendBuffer(nc, stallHeadroom) {
			return written, err
		}
	}
}

// ReadFrom copies from r to the upstream.
func (t *tunnelConn) ReadFrom(r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{t.rwc}, struct{ io.Reader }{r}, make([]byte, tunnelBufSize))
}

// closeWith sends the client a close frame with code and reason (when the
// stream to it is between frames and the client takes it within
// closeWriteTimeout) and closes the upstream end, which ends the tunnel.
func (t *tunnelConn) closeWith(code uint16, reason string) {
	t.cmu.Lock()
	w := t.client
	t.cmu.Unlock()
	if d, ok := w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Now().Add(closeWriteTimeout)) // also unblocks a stuck copy
	}
	t.mu.Lock()
	if !t.closed && w != nil && t.fr.boundary() {
		_, _ = w.Write(closeFrame(code, reason))
	}
	t.closed = true
	t.mu.Unlock()
	_ = t.rwc.Close()
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
