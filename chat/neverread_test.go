package chat

import (
	"context"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chatd/pubsub"
	"github.com/coder/websocket"
)

// A consumer that never reads (a small TCP receive buffer, no Read call
// until the server has given it up) is dropped with 1013, which it finds
// after the backlog when it reads again: whether its queue overflowed
// first or a write stayed stuck beyond chat.write_timeout. Another user
// keeps receiving meanwhile.
func TestNeverReadingConsumerGets1013(t *testing.T) {
	for _, tc := range []struct {
		name  string
		queue int
	}{
		{"queue full", 16},
		{"write stuck", 1 << 16}, // the queue never fills: only the write timeout can drop it
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, func(c *Config) {
				c.SendQueue = tc.queue
				c.WriteTimeout = 300 * time.Millisecond
			})
			alice, sam, fred := e.user("alice"), e.user("sam"), e.user("fred")
			f := e.dial(fred)

			// The receive buffer is set before connecting, so the window
			// advertised in the handshake matches it.
			dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
				}); err != nil {
					return err
				}
				return serr
			}}
			hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, _, err := websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{HTTPClient: hc,
				HTTPHeader: http.Header{"Authorization": {"Bearer " + sam.token}}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.CloseNow()
			s.SetReadLimit(1 << 20)

			var sc *conn
			waitUntil(t, "sam's connection is registered", func() bool {
				e.svc.hub.conns.mu.Lock()
				defer e.svc.hub.conns.mu.Unlock()
				for c := range e.svc.hub.conns.all {
					if c.userID == sam.id {
						sc = c
					}
				}
				return sc != nil
			})
			closing := func() bool {
				sc.mu.Lock()
				defer sc.mu.Unlock()
				return sc.closing
			}

			// Flood sam's topic (as other nodes would) until the server
			// gives his connection up; sam reads nothing meanwhile.
			big := []byte(`{"type":"typing","from":"` + strings.Repeat("x", 8000) + `"}`)
			env := append(newEnvelope(envEvent, 0, len(big)), big...)
			deadline := time.Now().Add(30 * time.Second)
			for !closing() {
				if time.Now().After(deadline) {
					t.Fatal("sam's connection was never given up")
				}
				for range 20 {
					_ = e.br.Publish(ctx, pubsub.UserTopic(sam.id), env)
				}
				time.Sleep(5 * time.Millisecond)
			}
			// Fred is unaffected.
			if st, _ := e.restSend(alice, fred, "for fred", cmid()); st != http.StatusCreated {
				t.Fatalf("send %d", st)
			}
			if m, _ := f.nextOf("message"); m.obj("message").str("text") != "for fred" {
				t.Fatalf("fred got %v", m)
			}
			// Sam, reading at last, finds the backlog and then the 1013.
			for {
				_, _, err := s.Read(ctx)
				if err != nil {
					if code := websocket.CloseStatus(err); code != websocket.StatusTryAgainLater {
						t.Fatalf("sam's connection ended with %v (status %d), want 1013", err, code)
					}
					break
				}
			}
		})
	}
}
