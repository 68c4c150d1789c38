package gateway

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkIdleWebSocketMemory reports the gateway's memory per proxied idle
// WebSocket: the heap and stacks of N sockets dialled through the gateway
// minus those of N sockets dialled straight to the upstream (both sides of
// both run in this process, so the difference is the gateway's part).
func BenchmarkIdleWebSocketMemory(b *testing.B) {
	const n = 500
	a, c := newTestUpstream(b, "auth-1"), newTestUpstream(b, "chat-1")
	tg := newTestGateway(b, testConfig([]string{a.URL()}, []string{c.URL()}), false)
	ctx := context.Background()
	hdr := tg.bearer(b)

	measure := func(url string) uint64 {
		var conns []*websocket.Conn
		before := memInUse()
		for range n {
			conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := conn.Read(ctx); err != nil { // hello
				b.Fatal(err)
			}
			conns = append(conns, conn)
		}
		used := memInUse() - before
		for _, conn := range conns {
			_ = conn.CloseNow()
		}
		deadline := time.Now().Add(10 * time.Second)
		for c.wsOpen.Load() != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return used
	}
	for range b.N {
		direct := measure("ws" + strings.TrimPrefix(c.URL(), "http") + "/ws")
		proxied := measure("ws" + strings.TrimPrefix(tg.srv.URL, "http") + "/ws")
		b.ReportMetric(float64(proxied-direct)/n, "gateway-B/conn")
		b.ReportMetric(float64(direct)/n, "ends-B/conn")
	}
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
