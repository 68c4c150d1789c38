package gateway

import (
	"io"
	"net/http"
)

// tunnelBufSize is the copy buffer per direction of a proxied WebSocket.
// The reverse proxy copies an upgraded connection with io.Copy, which
// allocates 32 KiB per direction for the connection's whole life; chat
// frames are small and at most 16 KiB, so 4 KiB buffers cut the gateway's
// memory per idle WebSocket by more than half at no cost worth measuring.
const tunnelBufSize = 4 << 10

// upgradeTransport wraps the body of a 101 Switching Protocols response
// (the upstream end of a WebSocket) so that the reverse proxy's io.Copy in
// either direction uses tunnelConn's small buffers.
type upgradeTransport struct{ *http.Transport }

func (t upgradeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.Transport.RoundTrip(req)
	if err == nil && res.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := res.Body.(io.ReadWriteCloser); ok {
			res.Body = &tunnelConn{rwc: rwc}
		}
	}
	return res, err
}

// tunnelConn is the upstream end of a tunnel. io.Copy(client, tunnelConn)
// picks WriteTo and io.Copy(tunnelConn, client) picks ReadFrom (a
// *net.TCPConn client hands over to it too), both with tunnelBufSize
// buffers.
type tunnelConn struct{ rwc io.ReadWriteCloser }

func (t *tunnelConn) Read(p []byte) (int, error)  { return t.rwc.Read(p) }
func (t *tunnelConn) Write(p []byte) (int, error) { return t.rwc.Write(p) }
func (t *tunnelConn) Close() error                { return t.rwc.Close() }

// WriteTo copies from the upstream to w.
func (t *tunnelConn) WriteTo(w io.Writer) (int64, error) {
	// The anonymous structs hide ReadFrom/WriteTo, which would make
	// io.CopyBuffer ignore the buffer.
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{t.rwc}, make([]byte, tunnelBufSize))
}

// ReadFrom copies from r to the upstream.
func (t *tunnelConn) ReadFrom(r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{t.rwc}, struct{ io.Reader }{r}, make([]byte, tunnelBufSize))
}
