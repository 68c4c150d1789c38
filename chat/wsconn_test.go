package chat

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// rawUpgrade dials the node with a hand-written upgrade request for tok,
// followed in the same write by extra (client frames), and returns the
// connection and its reader, past the 101 response.
func rawUpgrade(t testing.TB, e *testEnv, tok string, extra []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	req := fmt.Sprintf("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n", addr, tok)
	if _, err := c.Write(append([]byte(req), extra...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c, br
}

// maskedText is a client text frame (masked with a zero key, which leaves
// the payload as it is).
func maskedText(payload string) []byte {
	f := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	default:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	}
	f = append(f, 0, 0, 0, 0)
	return append(f, payload...)
}

// readServerFrame reads one unmasked, unfragmented server frame.
func readServerFrame(t testing.TB, br *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0f, payload
}

// Frames the client sends right behind its upgrade request (in the same
// TCP segment, so net/http has read them already) are not lost when the
// connection gets its own smaller read buffer.
func TestFramesRightAfterUpgrade(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.user("alice")
	frames := append(maskedText(`{"type":"nonsense","client_msg_id":"a"}`), maskedText(`{"type":"nonsense","client_msg_id":"b"}`)...)
	_, br := rawUpgrade(t, e, alice.token, frames)
	want := []string{"hello", "error", "error"}
	for i, w := range want {
		op, p := readServerFrame(t, br)
		var f frame
		if op != 1 || json.Unmarshal(p, &f) != nil || f.typ() != w {
			t.Fatalf("frame %d: op %d %s, want a %s frame", i, op, p, w)
		}
		if i > 0 && f.str("ref") != string(rune('a'+i-1)) {
			t.Fatalf("frame %d answers %q, want %q", i, f.str("ref"), string(rune('a'+i-1)))
		}
	}
}

// An idle WebSocket keeps one goroutine (its reader) and at most
// idleSocketBudget bytes of heap and stacks on the node (issue 13: ≤ 10 KB;
// 23 KB before the writer started on demand and the buffers shrank).
func TestIdleSocketMemory(t *testing.T) {
	const n, idleSocketBudget = 400, 11 << 10
	if raceEnabled {
		t.Skip("the race detector's stacks are larger")
	}
	e := newTestEnv(t, nil)
	users := make([]*testUser, 20)
	for i := range users {
		users[i] = e.user(fmt.Sprintf("idle%d", i))
	}
	count := func() int {
		e.svc.hub.conns.mu.Lock()
		defer e.svc.hub.conns.mu.Unlock()
		return len(e.svc.hub.conns.all)
	}
	heap0, stack0 := memSplit()
	g0 := runtime.NumGoroutine()
	for i := range n {
		_, br := rawUpgrade(t, e, users[i%len(users)].token, nil)
		if op, p := readServerFrame(t, br); op != 1 || !strings.Contains(string(p), `"hello"`) {
			t.Fatalf("first frame: op %d %s", op, p)
		}
	}
	waitUntil(t, "every connection registered", func() bool { return count() == n })
	// The writers that wrote hello exit on their own.
	waitUntil(t, "one goroutine per socket", func() bool { return runtime.NumGoroutine()-g0 <= n+n/20 })
	heap1, stack1 := memSplit()
	per := float64(heap1+stack1-heap0-stack0) / n
	t.Logf("%.0f bytes per idle socket (heap %.0f, stacks %.0f)", per, float64(heap1-heap0)/n, float64(stack1-stack0)/n)
	if per > idleSocketBudget {
		t.Fatalf("%.0f bytes per idle socket, want at most %d", per, idleSocketBudget)
	}
}

// A corked batch leaves in one write per corkFlush bytes, in order, and
// writes made meanwhile by another goroutine (coder/websocket's pongs) join
// it in order.
func TestStallConnCork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	defer server.Close()
	sc := &stallConn{Conn: server, timeout: 5 * time.Second}

	var want []byte
	chunk := func(i int) []byte { return []byte(fmt.Sprintf("%05d", i) + strings.Repeat("x", 1019)) } // 1 KiB
	sc.cork()
	for i := range 40 { // 40 KiB: one write at 32 KiB, one at uncork
		p := chunk(i)
		if i == 20 {
			done := make(chan struct{})
			go func() { // another goroutine's frame, between two of the batch
				defer close(done)
				if _, err := sc.Write([]byte("PONG")); err != nil {
					t.Error(err)
				}
			}()
			<-done
			want = append(want, "PONG"...)
		}
		if n, err := sc.Write(p); err != nil || n != len(p) {
			t.Fatalf("corked write %d: %d, %v", i, n, err)
		}
		want = append(want, p...)
	}
	if err := sc.uncork(); err != nil {
		t.Fatal(err)
	}
	if got := sc.writes; got != 2 {
		t.Fatalf("%d socket writes for a 40 KiB batch, want 2", got)
	}
	if _, err := sc.Write([]byte("AFTER")); err != nil { // uncorked: straight through
		t.Fatal(err)
	}
	want = append(want, "AFTER"...)
	got := make([]byte, len(want))
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes arrived out of order or changed")
	}
}
