package gateway

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawHandshake is a WebSocket upgrade request for /ws on the gateway at
// host, with a token and the gateway's own Origin.
func rawHandshake(t *testing.T, tg *testGateway, host string) string {
	t.Helper()
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	return "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer " + tg.keys.token(t) + "\r\nOrigin: " + tg.srv.URL + "\r\n\r\n"
}

// maskedText is a client's (masked) text frame of a short payload.
func maskedText(payload string) []byte {
	mask := [4]byte{1, 2, 3, 4}
	f := []byte{0x81, 0x80 | byte(len(payload)), mask[0], mask[1], mask[2], mask[3]}
	for i := range len(payload) {
		f = append(f, payload[i]^mask[i%4])
	}
	return f
}

// readFrame reads one short unmasked frame from the server.
func readFrame(t *testing.T, br *bufio.Reader) (byte, string) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("frame header: %v", err)
	}
	if h[1]&0x80 != 0 || h[1]&0x7f >= 126 {
		t.Fatalf("unexpected frame header %x", h)
	}
	p := make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("frame payload: %v", err)
	}
	return h[0] & 0x0f, string(p)
}

// Bytes on either side of the handshake are part of the tunnel: a frame
// the client sends in the same write as its upgrade request reaches the
// upstream (it sat in the HTTP server's read buffer when the connection
// was hijacked), and the upstream's hello, which follows its 101 at once,
// reaches the client.
func TestTunnelKeepsBytesBehindHandshakes(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), false)
	host := strings.TrimPrefix(tg.srv.URL, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(append([]byte(rawHandshake(t, tg, host)), maskedText("early")...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(res.Header.Get("Upgrade"), "websocket") ||
		res.Header.Get("Sec-Websocket-Accept") == "" {
		t.Fatalf("handshake answer %d %v", res.StatusCode, res.Header)
	}
	if op, p := readFrame(t, br); op != 1 || p != `{"node":"chat-1"}` {
		t.Fatalf("first frame: op %d %q, want the hello", op, p)
	}
	if op, p := readFrame(t, br); op != 1 || p != "early" {
		t.Fatalf("second frame: op %d %q, want the echo of the frame sent with the request", op, p)
	}
}
