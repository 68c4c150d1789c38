package gateway

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// An idle proxied WebSocket costs the gateway at most 16 KiB (issue 13,
// point 5) and two goroutines, one per direction: the request's goroutine
// has returned and no copy buffer is held while nothing arrives. Through
// httputil.ReverseProxy it was about 47 KiB and four goroutines.
func TestIdleTunnelMemory(t *testing.T) {
	const n, budget = 400, 16 << 10
	if raceEnabled {
		t.Skip("the race detector's stacks are larger")
	}
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), false)
	hdr := tg.bearer(t)
	direct := measureIdleSockets(t, c, n, "ws"+strings.TrimPrefix(c.URL(), "http")+"/ws", hdr)
	proxied := measureIdleSockets(t, c, n, "ws"+strings.TrimPrefix(tg.srv.URL, "http")+"/ws", hdr)
	per := (proxied.heap + proxied.stack - direct.heap - direct.stack) / n
	goroutines := (proxied.goroutines - direct.goroutines) / n
	t.Logf("gateway: %.0f bytes per idle socket (heap %.0f, stacks %.0f), %.2f goroutines", per,
		(proxied.heap-direct.heap)/n, (proxied.stack-direct.stack)/n, goroutines)
	if per > budget {
		t.Errorf("%.0f bytes per idle proxied socket, want at most %d", per, budget)
	}
	if goroutines > 2.05 {
		t.Errorf("%.2f goroutines per idle proxied socket, want 2", goroutines)
	}
}

// BenchmarkIdleWebSocketMemory reports the gateway's memory per proxied idle
// WebSocket: the heap and stacks of N sockets dialled through the gateway
// minus those of N sockets dialled straight to the upstream (both sides of
// both run in this process, so the difference is the gateway's part).
func BenchmarkIdleWebSocketMemory(b *testing.B) {
	const n = 500
	a, c := newTestUpstream(b, "auth-1"), newTestUpstream(b, "chat-1")
	tg := newTestGateway(b, testConfig([]string{a.URL()}, []string{c.URL()}), false)
	hdr := tg.bearer(b)
	for range b.N {
		direct := measureIdleSockets(b, c, n, "ws"+strings.TrimPrefix(c.URL(), "http")+"/ws", hdr)
		proxied := measureIdleSockets(b, c, n, "ws"+strings.TrimPrefix(tg.srv.URL, "http")+"/ws", hdr)
		b.ReportMetric((proxied.heap+proxied.stack-direct.heap-direct.stack)/n, "gateway-B/conn")
		b.ReportMetric((proxied.heap-direct.heap)/n, "gateway-heap-B/conn")
		b.ReportMetric((proxied.stack-direct.stack)/n, "gateway-stack-B/conn")
		b.ReportMetric((proxied.goroutines-direct.goroutines)/n, "gateway-goroutines/conn")
		b.ReportMetric((direct.heap+direct.stack)/n, "ends-B/conn")
	}
}

// idleGrowth is what n idle sockets added to the process: heap and stack
// bytes in use after a GC, and goroutines.
type idleGrowth struct{ heap, stack, goroutines float64 }

// measureIdleSockets opens n WebSockets to url (each reads its hello),
// measures what they hold, closes them and waits until up has seen them
// close.
func measureIdleSockets(tb testing.TB, up *testUpstream, n int, url string, hdr http.Header) idleGrowth {
	tb.Helper()
	ctx := context.Background()
	conns := make([]*websocket.Conn, 0, n)
	heap0, stack0 := memSplit()
	g0 := runtime.NumGoroutine()
	for range n {
		conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
		if err != nil {
			tb.Fatal(err)
		}
		if _, _, err := conn.Read(ctx); err != nil { // hello
			tb.Fatal(err)
		}
		conns = append(conns, conn)
	}
	// The handshakes' goroutines return (the server's, the upstream's).
	deadline := time.Now().Add(10 * time.Second)
	g1 := runtime.NumGoroutine()
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		g := runtime.NumGoroutine()
		if g == g1 {
			break
		}
		g1 = g
	}
	heap1, stack1 := memSplit()
	for _, conn := range conns {
		_ = conn.CloseNow()
	}
	for up.wsOpen.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return idleGrowth{heap: float64(heap1) - float64(heap0), stack: float64(stack1) - float64(stack0), goroutines: float64(g1 - g0)}
}

// memSplit is the heap and stack bytes in use after two collections.
func memSplit() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}
