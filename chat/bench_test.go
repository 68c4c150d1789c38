package chat

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	rtmetrics "runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkSendDeliver measures the whole path over loopback: N pairs of
// WebSocket clients; each sender sends (a window of outstanding sends), the
// server stores (SQLite, synchronous=FULL), acks and delivers to the
// receiver; the server keeps up to send_window of a connection's sends in
// flight. It reports stored+delivered messages per second and the p50/p99
// latency from send to ack and from send to delivery.
//
// The paced variant sends at a fixed total rate instead, for the latency at
// a given load (use -benchtime=Nx so that N messages take a few seconds).
// CHATD_BENCH_SYNC=NORMAL runs the store without an fsync per commit.
//
//	go test -run XXX -bench SendDeliver -benchtime=20000x ./chat
func BenchmarkSendDeliver(b *testing.B) {
	for _, pairs := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("pairs=%d", pairs), func(b *testing.B) { benchSendDeliver(b, pairs, 32, 0, 0) })
	}
	b.Run("pairs=16/rate=2000", func(b *testing.B) { benchSendDeliver(b, 16, 32, 2000, 0) })
	// send_window=1: one send in flight per connection on the server (what
	// every connection had before pipelined sends), for comparison.
	for _, pairs := range []int{1, 16} {
		b.Run(fmt.Sprintf("pairs=%d/send_window=1", pairs), func(b *testing.B) { benchSendDeliver(b, pairs, 32, 0, 1) })
	}
	// Tracing on, every message sampled, spans batched to an exporter that
	// discards them: the cost of tracing.otlp_endpoint minus the network.
	for _, pairs := range []int{1, 16} {
		b.Run(fmt.Sprintf("pairs=%d/tracing", pairs), func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			benchSendDeliverWith(b, pairs, 32, 0, 0, func(e *testEnv) { e.tracer = tp })
		})
	}
}

type benchFrame struct {
	Type    string `json:"type"`
	Message struct {
		Text string `json:"text"`
	} `json:"message"`
}

// benchSendDeliver runs pairs senders, each keeping window sends
// outstanding; sendWindow > 0 sets the server's send_window.
func benchSendDeliver(b *testing.B, pairs, window int, rate float64, sendWindow int) {
	benchSendDeliverWith(b, pairs, window, rate, sendWindow, nil)
}

// benchSendDeliverWith is benchSendDeliver with setup run on the env
// before its node starts.
func benchSendDeliverWith(b *testing.B, pairs, window int, rate float64, sendWindow int, setup func(*testEnv)) {
	e := newTestEnvWith(b, func(c *Config) {
		c.SendQueue = 4096
		if sendWindow > 0 {
			c.SendWindow = sendWindow
		}
	}, setup)
	type pair struct {
		from, to *testUser
		s, r     *websocket.Conn
	}
	ps := make([]pair, pairs)
	// Any failure cancels ctx, which ends every read and write at once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dial := func(u *testUser) *websocket.Conn {
		c, _, err := e.dialRaw(u.token, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		if _, _, err := c.Read(ctx); err != nil { // hello
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.CloseNow() })
		return c
	}
	for i := range ps {
		ps[i].from, ps[i].to = e.user(fmt.Sprintf("s%d", i)), e.user(fmt.Sprintf("r%d", i))
		ps[i].s, ps[i].r = dial(ps[i].from), dial(ps[i].to)
	}
	per := max(1, b.N/pairs)
	total := per * pairs
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(pairs) / rate)
	}
	var (
		mu             sync.Mutex
		ackLat, dlvLat []time.Duration
		wg             sync.WaitGroup
		failed         = make(chan error, 3*pairs)
		fail           = func(err error) { failed <- err; cancel() }
		sinceNs        = func(text string) time.Duration {
			ns, _ := strconv.ParseInt(text, 10, 64)
			return time.Duration(time.Now().UnixNano() - ns)
		}
		runID = strconv.FormatInt(time.Now().UnixNano(), 36)
	)
	b.ReportAllocs()
	b.ResetTimer()
	before := takeProcCounts(e)
	start := time.Now()
	for pi := range ps {
		p := ps[pi]
		sem := make(chan struct{}, window)
		wg.Add(3)
		go func() { // sender
			defer wg.Done()
			t0 := time.Now()
			for i := range per {
				if interval > 0 {
					if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
						time.Sleep(d)
					}
				}
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				f := fmt.Sprintf(`{"type":"send","to":%q,"text":"%d","client_msg_id":"%s-%d-%d"}`, p.to.id, time.Now().UnixNano(), runID, pi, i)
				if err := p.s.Write(ctx, websocket.MessageText, []byte(f)); err != nil {
					fail(err)
					return
				}
			}
		}()
		go func() { // sender's reader: acks
			defer wg.Done()
			lat := make([]time.Duration, 0, per)
			for len(lat) < per {
				_, data, err := p.s.Read(ctx)
				if err != nil {
					fail(err)
					return
				}
				var f benchFrame
				if json.Unmarshal(data, &f) != nil || f.Type != "ack" {
					fail(fmt.Errorf("sender got %s", data))
					return
				}
				lat = append(lat, sinceNs(f.Message.Text))
				<-sem
			}
			mu.Lock()
			ackLat = append(ackLat, lat...)
			mu.Unlock()
		}()
		go func() { // receiver
			defer wg.Done()
			lat := make([]time.Duration, 0, per)
			for len(lat) < per {
				_, data, err := p.r.Read(ctx)
				if err != nil {
					fail(err)
					return
				}
				var f benchFrame
				if json.Unmarshal(data, &f) != nil {
					fail(fmt.Errorf("receiver got %s", data))
					return
				}
				if f.Type == "message" {
					lat = append(lat, sinceNs(f.Message.Text))
				}
			}
			mu.Lock()
			dlvLat = append(dlvLat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	used := takeProcCounts(e).minus(before)
	select {
	case err := <-failed:
		b.Fatal(err)
	default:
	}
	if len(ackLat) != total || len(dlvLat) != total {
		b.Fatalf("got %d acks and %d deliveries, want %d", len(ackLat), len(dlvLat), total)
	}
	slices.Sort(ackLat)
	slices.Sort(dlvLat)
	pct := func(l []time.Duration, p float64) float64 {
		return float64(l[min(len(l)-1, int(float64(len(l))*p))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(pct(ackLat, 0.50), "ack_p50_ms")
	b.ReportMetric(pct(ackLat, 0.99), "ack_p99_ms")
	b.ReportMetric(pct(dlvLat, 0.50), "deliver_p50_ms")
	b.ReportMetric(pct(dlvLat, 0.99), "deliver_p99_ms")
	used.report(b, total)
}

// procCounts are this process's load-independent costs (client and server
// together): CPU time, GC cycles, the store's commits and the server's
// socket writes (an ack and a delivery per message: 2 without coalescing).
type procCounts struct {
	cpu                 time.Duration
	gcs                 uint64
	commits, storeWrits int64
	socketWrites        int64
}

func takeProcCounts(e *testEnv) procCounts {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	ms := []rtmetrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	rtmetrics.Read(ms)
	c := procCounts{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), gcs: ms[0].Value.Uint64()}
	c.commits, c.storeWrits, _ = e.st.WriteStats()
	c.socketWrites = socketWrites.Load()
	return c
}

func (c procCounts) minus(o procCounts) procCounts {
	return procCounts{cpu: c.cpu - o.cpu, gcs: c.gcs - o.gcs,
		commits: c.commits - o.commits, storeWrits: c.storeWrits - o.storeWrits, socketWrites: c.socketWrites - o.socketWrites}
}

func (c procCounts) report(b *testing.B, msgs int) {
	n := float64(msgs)
	b.ReportMetric(float64(c.cpu.Microseconds())/n, "cpu_us/msg")
	b.ReportMetric(1000*float64(c.gcs)/n, "gcs/1kmsg")
	b.ReportMetric(float64(c.socketWrites)/n, "ws_writes/msg")
	if c.commits > 0 {
		b.ReportMetric(float64(c.storeWrits)/float64(c.commits), "msgs/commit")
	}
}

// BenchmarkIdleConnMemory opens b.N idle WebSocket connections with bare
// TCP clients (a hand-written upgrade, so the client side costs almost
// nothing) and reports the server's heap + stack growth per connection.
// Run it with -benchtime=2000x (each connection holds two descriptors).
func BenchmarkIdleConnMemory(b *testing.B) {
	e := newTestEnv(b, nil)
	users := make([]*testUser, 50)
	for i := range users {
		users[i] = e.user(fmt.Sprintf("idle%d", i))
	}
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	count := func() int {
		e.svc.hub.conns.mu.Lock()
		defer e.svc.hub.conns.mu.Unlock()
		return len(e.svc.hub.conns.all)
	}
	heap0, stack0 := memSplit()
	conns := make([]net.Conn, 0, b.N)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
			addr, users[i%len(users)].token)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			b.Fatalf("upgrade: %v %v", resp, err)
		}
	}
	waitUntil(b, "every connection registered", func() bool { return count() == b.N })
	b.StopTimer()
	heap1, stack1 := memSplit()
	n := float64(b.N)
	b.ReportMetric(float64(heap1+stack1-heap0-stack0)/n, "bytes/conn")
	b.ReportMetric(float64(heap1-heap0)/n, "heap-B/conn")
	b.ReportMetric(float64(stack1-stack0)/n, "stack-B/conn")
	b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/conn")
}

// memSplit returns the heap and the goroutine stacks in use, after two GCs
// (which also shrink stacks that use little of theirs).
func memSplit() (heap, stack int64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse), int64(ms.StackInuse)
}
