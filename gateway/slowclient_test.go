package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A WebSocket client behind the gateway that never reads (a small receive
// buffer, no Read call until the gateway gave it up) loses its tunnel
// after gateway.ws_write_timeout, and then reads the frames the kernel
// already holds and the end of the stream: 1013 where the close frame
// could be queued behind the frame in flight (issue 8, defect 14: the
// tunnel stayed open, blocked, for ever).
func TestNeverReadingClientThroughGatewayIsDropped(t *testing.T) {
	a, c1 := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	cfg := testConfig([]string{a.URL()}, []string{c1.URL()})
	cfg.WSWriteTimeout = 300 * time.Millisecond
	tg := newTestGateway(t, cfg, true)

	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hdr := tg.bearer(t)
	hdr.Set("Origin", tg.srv.URL)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(tg.srv.URL, "http")+"/ws", &websocket.DialOptions{
		HTTPHeader: hdr, HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	if err := ws.Write(ctx, websocket.MessageText, []byte("flood")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gateway to give the tunnel up", func() bool { return tg.g.tunnels.Load() == 0 })
	for {
		_, _, err := ws.Read(ctx)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			t.Fatalf("the client's stream did not end: %v", err)
		}
		// The 1013 close frame needs the kernel to take the rest of the
		// frame in flight; when the send buffer could not grow enough the
		// stream ends without it.
		t.Logf("the stream ended with %v (close status %d)", err, websocket.CloseStatus(err))
		break
	}
}
