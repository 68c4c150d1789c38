package gateway

import (
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// testDNS is a DNS server on loopback UDP that answers A and AAAA queries
// for one name from a set the test changes, NXDOMAIN for other names, and
// SERVFAIL for everything while failing is set.
type testDNS struct {
	name    string // lower case, with the final dot
	conn    net.PacketConn
	mu      sync.Mutex
	addrs   []netip.Addr
	failing atomic.Bool
	failed  atomic.Int64 // queries answered SERVFAIL
}

func newTestDNS(t *testing.T, name string) *testDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{name: strings.ToLower(name), conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := d.answer(buf[:n]); resp != nil {
				_, _ = conn.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-done })
	return d
}

func (d *testDNS) set(addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs = d.addrs[:0]
	for _, a := range addrs {
		d.addrs = append(d.addrs, netip.MustParseAddr(a))
	}
}

// resolver is a Go resolver whose every query goes to d.
func (d *testDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", d.conn.LocalAddr().String())
	}}
}

// answer builds the response to one query (RFC 1035 §4.1), or nil for a
// packet that is not one.
func (d *testDNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	// The question: labels up to the root, then type and class.
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		l := int(q[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+l]))
		i += l
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	question := q[12 : i+4]
	name := strings.ToLower(strings.Join(labels, ".") + ".")

	rcode := uint16(0)
	var rdata [][]byte
	switch {
	case d.failing.Load():
		rcode = 2 // SERVFAIL
		d.failed.Add(1)
	case name != d.name:
		rcode = 3 // NXDOMAIN
	default:
		d.mu.Lock()
		for _, a := range d.addrs {
			if (qtype == 1 && a.Is4()) || (qtype == 28 && a.Is6()) {
				rdata = append(rdata, a.AsSlice())
			}
		}
		d.mu.Unlock()
	}
	resp := make([]byte, 12, 512)
	copy(resp, q[:2])                                                       // id
	binary.BigEndian.PutUint16(resp[2:], 0x8000|0x0400|0x0100|0x0080|rcode) // QR, AA, RD, RA
	binary.BigEndian.PutUint16(resp[4:], 1)
	binary.BigEndian.PutUint16(resp[6:], uint16(len(rdata)))
	resp = append(resp, question...)
	for _, rd := range rdata {
		resp = append(resp, 0xc0, 12) // the name: a pointer to the question's
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = binary.BigEndian.AppendUint16(resp, 1) // IN
		resp = binary.BigEndian.AppendUint32(resp, 0) // TTL
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(rd)))
		resp = append(resp, rd...)
	}
	return resp
}

// sharedPortUpstreams starts one test upstream on each of the given
// loopback addresses, all on the same port, as the pods behind a headless
// Service are; it returns them and the port.
func sharedPortUpstreams(t *testing.T, ips ...string) ([]*testUpstream, string) {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(first.Addr().String())
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				break
			}
			lns = append(lns, l)
		}
		if len(lns) < len(ips) {
			for _, l := range lns {
				_ = l.Close()
			}
			continue // the port was taken on another address; try another
		}
		ups := make([]*testUpstream, len(ips))
		for i, l := range lns {
			u := &testUpstream{name: ips[i], closes: make(chan websocket.StatusCode, 64)}
			u.ready.Store(true)
			u.srv = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
			_ = u.srv.Listener.Close()
			u.srv.Listener = l
			u.srv.Start()
			t.Cleanup(u.srv.Close)
			ups[i] = u
		}
		return ups, port
	}
	t.Fatal("no port free on every loopback address")
	return nil, ""
}

// newDNSGateway is newTestGateway with gateway.chat_dns and a resolver.
func newDNSGateway(t *testing.T, cfg Config, r *net.Resolver) *testGateway {
	t.Helper()
	tg := &testGateway{reg: prometheus.NewRegistry(), keys: newTestKeys(t)}
	g, err := New(cfg, Deps{Verifier: tg.keys.verifier, Logger: testLogger(t), Metrics: tg.reg, Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	tg.g = g
	tg.srv = httptest.NewServer(g.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tg.srv.Close()
		if err := g.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tg
}

func chatNames(g *Gateway) []string {
	var out []string
	for _, u := range g.chat.list() {
		out = append(out, u.name)
	}
	slices.Sort(out)
	return out
}

// nodesReached sends n API requests and returns the set of nodes that
// answered them.
func nodesReached(t *testing.T, tg *testGateway, n int) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for range n {
		var e echo
		if res := tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", &e); res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		seen[e.Node] = true
	}
	return seen
}

func TestDNSDiscovery(t *testing.T) {
	_, port := sharedPortUpstreams(t, "127.0.0.1", "127.0.0.2", "127.0.0.3")
	authUp := newTestUpstream(t, "auth-1")
	dns := newTestDNS(t, "chat-headless.chatd.test.")
	dns.set("127.0.0.1", "127.0.0.2")

	cfg := testConfig([]string{authUp.URL()}, nil)
	cfg.ChatDNS = "chat-headless.chatd.test.:" + port
	cfg.DNSInterval = 20 * time.Millisecond
	tg := newDNSGateway(t, cfg, dns.resolver())
	url := func(ip string) string { return "http://" + net.JoinHostPort(ip, port) }

	// Start resolved the name and checked the replicas: ready at once.
	if got, want := chatNames(tg.g), []string{url("127.0.0.1"), url("127.0.0.2")}; !slices.Equal(got, want) {
		t.Fatalf("chat upstreams after Start = %v, want %v", got, want)
	}
	if err := tg.g.Ready(context.Background()); err != nil {
		t.Fatalf("ready after Start: %v", err)
	}
	if seen := nodesReached(t, tg, 6); !seen["127.0.0.1"] || !seen["127.0.0.2"] || len(seen) != 2 {
		t.Fatalf("requests reached %v, want both discovered replicas", seen)
	}
	// Two sockets, one on each replica (least connections).
	ws1, n1 := tg.dialWS(t)
	ws2, n2 := tg.dialWS(t)
	if n1 == n2 {
		t.Fatalf("both sockets on %s", n1)
	}
	kept := tg.g.chat.list()[1] // 127.0.0.2, which stays in the answer

	// .1 is drained and .3 scaled out: the pool follows the answer.
	dns.set("127.0.0.2", "127.0.0.3")
	eventually(t, "the pool to follow the DNS answer", func() bool {
		return slices.Equal(chatNames(tg.g), []string{url("127.0.0.2"), url("127.0.0.3")})
	})
	if tg.g.chat.list()[0] != kept {
		t.Error("an upstream still in the answer was replaced instead of kept")
	}
	if seen := nodesReached(t, tg, 6); seen["127.0.0.1"] || !seen["127.0.0.3"] {
		t.Fatalf("after the change requests reached %v, want .2 and .3 only", seen)
	}
	if v, ok := metric(t, tg.reg, "chatd_gateway_upstream_up", map[string]string{"kind": "chat", "upstream": url("127.0.0.3")}); !ok || v != 1 {
		t.Errorf("upstream_up of the new replica = %v (present %v), want 1", v, ok)
	}
	if _, ok := metric(t, tg.reg, "chatd_gateway_upstream_up", map[string]string{"kind": "chat", "upstream": url("127.0.0.1")}); ok {
		t.Error("the replica gone from DNS is still reported")
	}
	// A socket opened on the replica that left the answer is not cut: a
	// draining pod finishes its conversations.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []*websocket.Conn{ws1, ws2} {
		if err := c.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
			t.Fatal(err)
		}
		if _, data, err := c.Read(ctx); err != nil || string(data) != "still here" {
			t.Fatalf("echo after the DNS change: %q %v", data, err)
		}
	}

	// While the DNS server fails, the last list is kept, even though the
	// answer behind it changed; once it answers again, the pool follows.
	dns.failing.Store(true)
	dns.set("127.0.0.3")
	failedBefore := dns.failed.Load()
	eventually(t, "three lookups to fail", func() bool { return dns.failed.Load() >= failedBefore+3 })
	if got, want := chatNames(tg.g), []string{url("127.0.0.2"), url("127.0.0.3")}; !slices.Equal(got, want) {
		t.Errorf("pool after failed lookups = %v, want the last list %v", got, want)
	}
	dns.failing.Store(false)
	eventually(t, "the pool to follow the answer again", func() bool {
		return slices.Equal(chatNames(tg.g), []string{url("127.0.0.3")})
	})
}

func TestDNSDiscoveryConfig(t *testing.T) {
	good := testConfig([]string{"http://auth:8080"}, nil)
	good.ChatDNS = "chat-headless.chatd.svc:8080"
	if err := good.Validate(); err != nil {
		t.Fatalf("chat_dns alone: %v", err)
	}
	for _, target := range []string{"https://chat-headless:8443", "[::1]:8080", "10.0.0.1:8080"} {
		c := good
		c.ChatDNS = target
		if err := c.Validate(); err != nil {
			t.Errorf("chat_dns %q: %v", target, err)
		}
	}
	for key, mutate := range map[string]func(*Config){
		"gateway.chat_dns":       func(c *Config) { c.ChatUpstreams = []string{"http://chat:8080"} },
		"gateway.dns_interval":   func(c *Config) { c.DNSInterval = 0 },
		"gateway.chat_upstreams": func(c *Config) { c.ChatDNS = "" },
	} {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), key+":") {
			t.Errorf("%s: got %v", key, err)
		}
	}
	for _, bad := range []string{"chat-headless", "chat-headless:0", "chat-headless:http", "ftp://chat:21", "http://chat:8080/path", ":8080"} {
		c := good
		c.ChatDNS = bad
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "gateway.chat_dns:") {
			t.Errorf("chat_dns %q: got %v", bad, err)
		}
	}
}

// A gateway that starts before any chat pod is ready (the name does not
// resolve yet) is unready, and becomes ready once the answer has one.
func TestDNSDiscoveryStartsEmpty(t *testing.T) {
	_, port := sharedPortUpstreams(t, "127.0.0.1")
	authUp := newTestUpstream(t, "auth-1")
	dns := newTestDNS(t, "chat-headless.chatd.test.")
	dns.failing.Store(true)

	cfg := testConfig([]string{authUp.URL()}, nil)
	cfg.ChatDNS = "chat-headless.chatd.test.:" + port
	cfg.DNSInterval = 20 * time.Millisecond
	tg := newDNSGateway(t, cfg, dns.resolver())
	if err := tg.g.Ready(context.Background()); err == nil {
		t.Fatal("ready without any chat upstream")
	}
	if res := tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", nil); res.StatusCode < 500 {
		t.Errorf("request with no chat upstream: %d, want a 5xx", res.StatusCode)
	}
	dns.set("127.0.0.1")
	dns.failing.Store(false)
	eventually(t, "the gateway to become ready", func() bool { return tg.g.Ready(context.Background()) == nil })
	if seen := nodesReached(t, tg, 2); !seen["127.0.0.1"] {
		t.Errorf("requests reached %v", seen)
	}
}
