package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatd/chatd/auth/token"
)

func TestRouting(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), false)

	for _, tc := range []struct {
		path, want string
	}{
		{"/auth/me", "auth-1"},
		{"/auth/jwks", "auth-1"},
		{"/api/conversations", "chat-1"},
		{"/api/users?q=al&limit=5", "chat-1"},
	} {
		var e echo
		res := tg.do(t, http.MethodGet, tc.path, tg.bearer(t), "", &e)
		if res.StatusCode != http.StatusOK || e.Node != tc.want {
			t.Errorf("GET %s: status %d node %q, want 200 from %s", tc.path, res.StatusCode, e.Node, tc.want)
		}
		if p, q, _ := strings.Cut(tc.path, "?"); e.Path != p || e.Query != q {
			t.Errorf("GET %s: upstream saw path %q query %q", tc.path, e.Path, e.Query)
		}
	}
	if _, node := tg.dialWS(t); node != "chat-1" {
		t.Errorf("/ws went to %q", node)
	}
	for _, path := range []string{"/", "/index.html", "/app/chat", "/apiary", "/authority", "/wsx"} {
		res, err := client.Get(tg.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if got := string(data); got != "ui:"+path {
			t.Errorf("GET %s: got %q, want the UI", path, got)
		}
	}
	if a.hits.Load() != 2 {
		t.Errorf("auth upstream hits = %d, want 2", a.hits.Load())
	}
	if got, _ := metric(t, tg.reg, "chatd_gateway_requests_total", map[string]string{"route": "api", "code": "200"}); got != 2 {
		t.Errorf("requests_total{api,200} = %v, want 2", got)
	}
	if got, _ := metric(t, tg.reg, "chatd_gateway_requests_total", map[string]string{"route": "ui", "code": "200"}); got != 6 {
		t.Errorf("requests_total{ui,200} = %v, want 6", got)
	}
}

func TestEdgeAuthentication(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), false)
	k := tg.keys

	// A token signed by another key, with its own kid and with ours.
	other, err := token.LoadOrCreateKey(t.TempDir() + "/other.key")
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := token.NewSigner(other, testIssuer, testAudience, time.Hour).Sign("user-1", "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	sameKid, _, err := token.NewSigner(&token.SigningKey{ID: k.key.ID, Private: priv}, testIssuer, testAudience, time.Hour).Sign("user-1", "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := k.signer.Sign("user-1", "s", time.Now().Add(-3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	wrongAud, _, err := token.NewSigner(k.key, testIssuer, "someone-else", time.Hour).Sign("user-1", "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	valid := k.token(t)

	refused := map[string]http.Header{
		"missing":          {},
		"garbage":          {"Authorization": {"Bearer not.a.jwt"}},
		"other key":        {"Authorization": {"Bearer " + forged}},
		"same kid, forged": {"Authorization": {"Bearer " + sameKid}},
		"expired":          {"Authorization": {"Bearer " + expired}},
		"wrong audience":   {"Authorization": {"Bearer " + wrongAud}},
		"forged cookie":    {"Cookie": {token.SessionCookie + "=" + forged}},
		"alg none":         {"Authorization": {"Bearer " + algNone(valid)}},
	}
	for name, hdr := range refused {
		for _, path := range []string{"/api/conversations", "/ws"} {
			h := hdr.Clone()
			if path == "/ws" {
				h.Set("Connection", "Upgrade")
				h.Set("Upgrade", "websocket")
				h.Set("Sec-WebSocket-Version", "13")
				h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			}
			var e apiError
			res := tg.do(t, http.MethodGet, path, h, "", &e)
			if res.StatusCode != http.StatusUnauthorized || e.Error.Code != "unauthenticated" {
				t.Errorf("%s %s: %d %q, want 401 unauthenticated", name, path, res.StatusCode, e.Error.Code)
			}
		}
	}
	// A WebSocket client gets the 401 too.
	_, res, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(tg.srv.URL, "http")+"/ws", nil)
	if err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("ws dial without a token: err %v, response %v; want a 401", err, res)
	}
	if n := c.hits.Load(); n != 0 {
		t.Fatalf("%d refused requests reached the chat upstream", n)
	}

	for name, hdr := range map[string]http.Header{
		"bearer": {"Authorization": {"Bearer " + valid}},
		"cookie": {"Cookie": {token.SessionCookie + "=" + valid}},
	} {
		var e echo
		if res := tg.do(t, http.MethodGet, "/api/conversations", hdr, "", &e); res.StatusCode != http.StatusOK || e.Node != "chat-1" {
			t.Errorf("valid %s: %d from %q", name, res.StatusCode, e.Node)
		}
	}
	// /auth needs no token at the edge.
	if res := tg.do(t, http.MethodGet, "/auth/me", nil, "", nil); res.StatusCode != http.StatusOK {
		t.Errorf("/auth/me without a token: %d, want the upstream's answer", res.StatusCode)
	}
}

// algNone turns a JWT into an unsigned one with the same claims.
func algNone(tok string) string {
	parts := strings.Split(tok, ".")
	return "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + parts[1] + "."
}

// forgedUnknown are identity-looking headers on no deny-list: only an
// allow-list keeps them from a replica.
var forgedUnknown = []string{"X-Chatd-Node-Trust", "X-User-Role", "X-Internal-Admin", "X-Kept", "X-Authenticated-User", "Cf-Connecting-Ip", "True-Client-Ip", "X-Original-Forwarded-For"}

func TestHeaders(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), false)

	hdr := tg.bearer(t)
	spoofed := map[string]string{
		"X-User-Id": "admin", "X-Chatd-User": "admin", "X-Forwarded-User": "admin",
		"X-Auth-Request-User": "admin", "X-Auth-User-Id": "admin", "X-Real-Ip": "6.6.6.6",
		"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
		"Forwarded": "for=6.6.6.6;host=evil.example", "X-Hop": "hop", "Keep-Alive": "timeout=5",
		"Proxy-Authorization": "Basic Zm9vOmJhcg==", "Te": "gzip", "X-Forwarded-Port": "443", "X-Forwarded-Prefix": "/admin",
	}
	for k, v := range spoofed {
		hdr.Set(k, v)
	}
	hdr.Set("Connection", "X-Hop, keep-alive")
	// Headers nobody listed: the allow-list drops them too.
	for _, k := range forgedUnknown {
		hdr.Set(k, "admin")
	}
	hdr.Set("Accept-Language", "fr")

	for _, path := range []string{"/api/conversations", "/auth/me"} {
		var e echo
		res := tg.do(t, http.MethodGet, path, hdr, "", &e)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
		for _, k := range []string{"X-User-Id", "X-Chatd-User", "X-Forwarded-User", "X-Auth-Request-User",
			"X-Auth-User-Id", "X-Real-Ip", "Forwarded", "X-Hop", "Keep-Alive", "Proxy-Authorization", "Te", "Connection",
			"X-Forwarded-Port", "X-Forwarded-Prefix"} {
			if v, ok := e.Header[k]; ok {
				t.Errorf("%s: upstream got %s: %q", path, k, v)
			}
		}
		for k := range e.Header {
			if !forwardedHeaders[k] && k != "X-Forwarded-For" && k != "X-Forwarded-Proto" && k != "X-Forwarded-Host" {
				t.Errorf("%s: upstream got %s, which is not on the allow-list", path, k)
			}
		}
		for _, k := range forgedUnknown {
			if v, ok := e.Header[k]; ok {
				t.Errorf("%s: upstream got %s: %q", path, k, v)
			}
		}
		want := map[string]string{
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Host":  tg.srv.Listener.Addr().String(),
			"X-Forwarded-Proto": "http",
			"Accept-Language":   "fr",
		}
		for k, v := range want {
			if got := strings.Join(e.Header[k], ","); got != v {
				t.Errorf("%s: upstream got %s %q, want %q", path, k, got, v)
			}
		}
		if e.Host != tg.srv.Listener.Addr().String() {
			t.Errorf("%s: upstream saw Host %q, want the client's %q", path, e.Host, tg.srv.Listener.Addr())
		}
		if strings.HasPrefix(path, "/api") && e.Header.Get("Authorization") == "" {
			t.Errorf("%s: Authorization was not passed on", path)
		}
		if res.Header.Get("X-Upstream-Hop") != "" {
			t.Errorf("%s: a header the upstream named in Connection reached the client", path)
		}
	}

	// Behind a trusted proxy the chain is kept and extended.
	cfg := testConfig([]string{a.URL()}, []string{c.URL()})
	cfg.TrustedProxies = []string{"127.0.0.0/8"}
	tp := newTestGateway(t, cfg, false)
	h := tp.bearer(t)
	h.Set("X-Forwarded-For", "203.0.113.9")
	h.Set("X-Forwarded-Host", "chat.example.com")
	h.Set("X-Forwarded-Proto", "https")
	h.Set("X-User-Id", "admin")
	var e echo
	tp.do(t, http.MethodGet, "/api/conversations", h, "", &e)
	for k, v := range map[string]string{
		"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Host": "chat.example.com", "X-Forwarded-Proto": "https",
	} {
		if got := strings.Join(e.Header[k], ","); got != v {
			t.Errorf("trusted proxy: upstream got %s %q, want %q", k, got, v)
		}
	}
	if _, ok := e.Header["X-User-Id"]; ok {
		t.Error("trusted proxy: X-User-Id passed on")
	}
}

// A WebSocket upgrade through the gateway reaches the replica with the
// allow-listed headers only: the handshake's, the token, the Origin.
func TestWebSocketForgedHeaders(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hdr := tg.bearer(t)
	hdr.Set("Origin", tg.srv.URL)
	for _, k := range append(forgedUnknown, "X-User-Id", "X-Chatd-User", "X-Real-Ip", "Forwarded") {
		hdr.Set(k, "admin")
	}
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(tg.srv.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.CloseNow()
	if _, _, err := conn.Read(ctx); err != nil {
		t.Fatalf("hello: %v", err)
	}
	got := c.wsHeader.Load()
	if got == nil {
		t.Fatal("the upstream saw no upgrade")
	}
	for k, v := range *got {
		if !forwardedHeaders[k] && k != "X-Forwarded-For" && k != "X-Forwarded-Proto" && k != "X-Forwarded-Host" {
			t.Errorf("upstream upgrade got %s: %q, which is not on the allow-list", k, v)
		}
	}
	for _, k := range []string{"Authorization", "Origin", "Sec-Websocket-Key", "Sec-Websocket-Version", "Upgrade"} {
		if got.Get(k) == "" {
			t.Errorf("upstream upgrade lacks %s", k)
		}
	}
}

func TestWebSocketEndToEnd(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	conn, node := tg.dialWS(t)
	if node != "chat-1" {
		t.Fatalf("hello from %q", node)
	}
	// Frames both ways, text and binary, one larger than a TCP segment.
	big := strings.Repeat("x", 12<<10)
	for _, m := range []struct {
		typ  websocket.MessageType
		data string
	}{{websocket.MessageText, `{"type":"send","text":"hi"}`}, {websocket.MessageBinary, "\x00\x01\x02"}, {websocket.MessageText, big}} {
		if err := conn.Write(ctx, m.typ, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
		typ, data, err := conn.Read(ctx)
		if err != nil || typ != m.typ || string(data) != m.data {
			t.Fatalf("echo: %v %v %d bytes; want %v %d bytes", err, typ, len(data), m.typ, len(m.data))
		}
	}
	if got, _ := metric(t, tg.reg, "chatd_gateway_upstream_active_connections", map[string]string{"kind": "chat", "upstream": c.URL()}); got != 1 {
		t.Errorf("active connections while the socket is open = %v, want 1", got)
	}

	// The client's close code reaches the upstream.
	if err := conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Errorf("client close: %v", err)
	}
	select {
	case code := <-c.closes:
		if code != websocket.StatusNormalClosure {
			t.Errorf("upstream saw close code %d, want 1000", code)
		}
	case <-ctx.Done():
		t.Fatal("upstream never saw the close")
	}

	// The upstream's close codes reach the client.
	for _, code := range []websocket.StatusCode{4001, websocket.StatusGoingAway} {
		conn, _ := tg.dialWS(t)
		if err := conn.Write(ctx, websocket.MessageText, []byte("close:"+strconv.Itoa(int(code)))); err != nil {
			t.Fatal(err)
		}
		_, _, err := conn.Read(ctx)
		if got := websocket.CloseStatus(err); got != code {
			t.Errorf("client saw %v (code %d), want close code %d", err, got, code)
		}
	}
	eventually(t, "the gateway to count the closed sockets out", func() bool { return tg.g.chat.list()[0].active.Load() == 0 })
	eventually(t, "requests_total{ws,101} to reach 3", func() bool {
		got, _ := metric(t, tg.reg, "chatd_gateway_requests_total", map[string]string{"route": "ws", "code": "101"})
		return got == 3
	})
}

// A foreign Origin is refused by the upstream's own check, which sees the
// client's Host through the gateway.
func TestWebSocketForeignOrigin(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), false)
	hdr := tg.bearer(t)
	hdr.Set("Origin", "http://evil.example")
	_, res, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(tg.srv.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err %v response %v; want 403 from the upstream", err, res)
	}
}

func TestLeastConnections(t *testing.T) {
	a := newTestUpstream(t, "auth-1")
	c1, c2 := newTestUpstream(t, "chat-1"), newTestUpstream(t, "chat-2")
	c2.ready.Store(false)
	cfg := testConfig([]string{a.URL()}, []string{c1.URL(), c2.URL()})
	cfg.HealthInterval = 20 * time.Millisecond
	tg := newTestGateway(t, cfg, true)
	up1, up2 := tg.g.chat.list()[0], tg.g.chat.list()[1]

	// chat-2 is out of rotation: three sockets go to chat-1 and stay open.
	var onFirst []*websocket.Conn
	for range 3 {
		conn, node := tg.dialWS(t)
		if node != "chat-1" {
			t.Fatalf("socket went to %s while chat-2 was unhealthy", node)
		}
		onFirst = append(onFirst, conn)
	}
	c2.ready.Store(true)
	eventually(t, "chat-2 to be healthy", up2.available)

	// chat-1 holds 3 open sockets: the next three go to chat-2.
	for i := range 3 {
		if _, node := tg.dialWS(t); node != "chat-2" {
			t.Fatalf("socket %d went to %s, want chat-2 (active: chat-1 %d, chat-2 %d)", i, node, up1.active.Load(), up2.active.Load())
		}
	}
	for _, u := range []*testUpstream{c1, c2} {
		if got, _ := metric(t, tg.reg, "chatd_gateway_upstream_active_connections", map[string]string{"kind": "chat", "upstream": u.URL()}); got != 3 {
			t.Errorf("active connections of %s = %v, want 3", u.name, got)
		}
	}
	// A plain request on a 3:3 tie goes somewhere and is counted out again.
	tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", nil)

	// chat-1's sockets close: they stop counting, and chat-1 is the least loaded.
	for _, conn := range onFirst {
		_ = conn.Close(websocket.StatusNormalClosure, "")
	}
	eventually(t, "chat-1's sockets to be counted out", func() bool { return up1.active.Load() == 0 })
	if _, node := tg.dialWS(t); node != "chat-1" {
		t.Errorf("after chat-1's sockets closed a new socket went to %s", node)
	}
	var e echo
	if tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", &e); e.Node != "chat-1" {
		t.Errorf("a request went to %s, want the less loaded chat-1", e.Node)
	}
}

func TestRoundRobinAuth(t *testing.T) {
	a1, a2, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "auth-2"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a1.URL(), a2.URL()}, []string{c.URL()}), false)
	for range 10 {
		tg.do(t, http.MethodGet, "/auth/me", nil, "", nil)
	}
	if a1.hits.Load() != 5 || a2.hits.Load() != 5 {
		t.Errorf("round robin: auth-1 %d, auth-2 %d; want 5 and 5", a1.hits.Load(), a2.hits.Load())
	}
}

func TestActiveHealthChecks(t *testing.T) {
	a := newTestUpstream(t, "auth-1")
	c1, c2 := newTestUpstream(t, "chat-1"), newTestUpstream(t, "chat-2")
	cfg := testConfig([]string{a.URL()}, []string{c1.URL(), c2.URL()})
	cfg.HealthInterval = 20 * time.Millisecond
	tg := newTestGateway(t, cfg, true)
	up1 := tg.g.chat.list()[0]
	ctx := context.Background()
	if err := tg.g.Ready(ctx); err != nil {
		t.Fatalf("ready after start: %v", err)
	}

	c1.ready.Store(false)
	eventually(t, "chat-1 to be ejected by the health check", func() bool { return !up1.available() })
	if got, _ := metric(t, tg.reg, "chatd_gateway_upstream_up", map[string]string{"kind": "chat", "upstream": c1.URL()}); got != 0 {
		t.Errorf("upstream_up{chat-1} = %v, want 0", got)
	}
	before := c1.hits.Load()
	for range 6 {
		var e echo
		if res := tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", &e); res.StatusCode != 200 || e.Node != "chat-2" {
			t.Fatalf("with chat-1 unhealthy: %d from %q", res.StatusCode, e.Node)
		}
	}
	if c1.hits.Load() != before {
		t.Error("requests reached the unhealthy chat-1")
	}
	if err := tg.g.Ready(ctx); err != nil {
		t.Errorf("ready with one chat upstream left: %v", err)
	}

	c1.ready.Store(true)
	eventually(t, "chat-1 to recover", up1.available)
	seen := map[string]bool{}
	for range 6 {
		var e echo
		tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", &e)
		seen[e.Node] = true
	}
	if !seen["chat-1"] || !seen["chat-2"] {
		t.Errorf("after recovery requests went to %v, want both", seen)
	}
}

// Upstreams that answer but report unready (every chat replica does while
// their shared Redis is down) still get traffic, and the gateway stays
// ready: refusing everything would turn a degraded backend into an outage.
func TestAllUpstreamsUnreadyStillServed(t *testing.T) {
	a := newTestUpstream(t, "auth-1")
	c1, c2 := newTestUpstream(t, "chat-1"), newTestUpstream(t, "chat-2")
	cfg := testConfig([]string{a.URL()}, []string{c1.URL(), c2.URL()})
	cfg.HealthInterval = 20 * time.Millisecond
	tg := newTestGateway(t, cfg, true)

	c1.ready.Store(false)
	c2.ready.Store(false)
	a.ready.Store(false)
	eventually(t, "every upstream to be unready", func() bool {
		return tg.g.chat.availableCount() == 0 && tg.g.auth.availableCount() == 0
	})
	// The gateway itself stays ready while it can route in panic mode, so
	// that a load balancer in front of it does not undo panic mode (issue 8,
	// defect 3: it reported not ready here before).
	if err := tg.g.Ready(context.Background()); err != nil {
		t.Errorf("not ready while every upstream answers: %v", err)
	}
	for _, path := range []string{"/api/conversations", "/auth/me"} {
		if res := tg.do(t, http.MethodGet, path, tg.bearer(t), "", nil); res.StatusCode != http.StatusOK {
			t.Errorf("%s with unready upstreams: %d, want it served", path, res.StatusCode)
		}
	}
}

// With no upstream answering at all, requests get 503 with Retry-After.
func TestAllUpstreamsDown(t *testing.T) {
	dead := []string{deadURL(t), deadURL(t)}
	cfg := testConfig([]string{deadURL(t)}, dead)
	cfg.HealthInterval = 20 * time.Millisecond
	tg := newTestGateway(t, cfg, true)
	eventually(t, "every upstream to be down", func() bool {
		for _, p := range tg.g.pools {
			for _, u := range p.list() {
				if u.answering.Load() {
					return false
				}
			}
		}
		return true
	})
	if err := tg.g.Ready(context.Background()); err == nil {
		t.Error("ready with no healthy upstream")
	}
	for _, path := range []string{"/api/conversations", "/auth/me"} {
		var e apiError
		res := tg.do(t, http.MethodGet, path, tg.bearer(t), "", &e)
		if res.StatusCode != http.StatusServiceUnavailable || e.Error.Code != "unavailable" {
			t.Errorf("%s: %d %q, want 503 unavailable", path, res.StatusCode, e.Error.Code)
		}
		if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("%s: Retry-After %q", path, res.Header.Get("Retry-After"))
		}
	}
	// WebSocket upgrades too.
	hdr := tg.bearer(t)
	_, res, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(tg.srv.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err == nil || res == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ws with every chat upstream down: %v %v", err, res)
	}
}

// A chat upstream that refuses connections: GETs are retried on the other
// and succeed, and after EjectAfter failures the gateway stops trying it.
func TestRetryOnDeadUpstream(t *testing.T) {
	a, live := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-live")
	dead := deadURL(t)
	cfg := testConfig([]string{a.URL()}, []string{dead, live.URL()})
	cfg.EjectAfter = 2
	tg := newTestGateway(t, cfg, false) // no active checks: passive ejection only
	deadUp := tg.g.chat.list()[0]

	for i := range 8 {
		var e echo
		res := tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", &e)
		if res.StatusCode != http.StatusOK || e.Node != "chat-live" {
			t.Fatalf("GET %d: %d from %q, want 200 from chat-live", i, res.StatusCode, e.Node)
		}
	}
	if deadUp.available() {
		t.Fatal("the dead upstream is still in rotation")
	}
	retries, _ := metric(t, tg.reg, "chatd_gateway_retries_total", map[string]string{"kind": "chat"})
	if retries != 2 {
		t.Errorf("retries = %v, want 2 (one per failure until ejection after 2)", retries)
	}
	// No more retries once it is out.
	for range 4 {
		tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", nil)
	}
	if again, _ := metric(t, tg.reg, "chatd_gateway_retries_total", map[string]string{"kind": "chat"}); again != retries {
		t.Errorf("retries went from %v to %v after ejection", retries, again)
	}
	if v, _ := metric(t, tg.reg, "chatd_gateway_upstream_ejections_total", map[string]string{"kind": "chat", "upstream": dead}); v != 1 {
		t.Errorf("ejections = %v, want 1", v)
	}

	// A WebSocket whose dial failed may go elsewhere too: eject nothing more,
	// put the dead one back (as a passed health check would) and dial.
	deadUp.ejected.Store(false)
	deadUp.fails.Store(0)
	for range 4 {
		if _, node := tg.dialWS(t); node != "chat-live" {
			t.Fatalf("ws went to %s", node)
		}
	}
}

// An upstream that accepts and drops connections: idempotent requests are
// retried elsewhere, it is ejected after EjectAfter failures and never
// tried again until a health check passes; a non-idempotent request and a
// WebSocket upgrade that reached it are not retried.
func TestPassiveEjectionAndRecovery(t *testing.T) {
	a := newTestUpstream(t, "auth-1")
	bad, good := newTestUpstream(t, "chat-bad"), newTestUpstream(t, "chat-good")
	cfg := testConfig([]string{a.URL()}, []string{bad.URL(), good.URL()})
	cfg.EjectAfter = 3
	tg := newTestGateway(t, cfg, false)
	badUp := tg.g.chat.list()[0]
	bad.broken.Store(true)

	// Non-idempotent: answered 503, not retried.
	for i := 0; badUp.fails.Load() == 0; i++ {
		guard(t, i)
		var e apiError
		badBefore, goodBefore := bad.hits.Load(), good.hits.Load()
		res := tg.do(t, http.MethodPost, "/api/conversations/peer/read", withJSON(tg.bearer(t)), `{"seq":1}`, &e)
		if bad.hits.Load() == badBefore {
			continue // the balancer picked the good one
		}
		if res.StatusCode != http.StatusServiceUnavailable || e.Error.Code != "unavailable" || res.Header.Get("Retry-After") == "" {
			t.Errorf("failed POST: %d %q, Retry-After %q; want 503 unavailable", res.StatusCode, e.Error.Code, res.Header.Get("Retry-After"))
		}
		if good.hits.Load() != goodBefore {
			t.Error("a non-idempotent POST that reached an upstream was retried")
		}
	}
	// A WebSocket upgrade that reached the bad one is not retried either.
	for i := 0; badUp.fails.Load() == 1; i++ {
		guard(t, i)
		badBefore, goodBefore := bad.hits.Load(), good.hits.Load()
		hdr := tg.bearer(t)
		conn, res, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(tg.srv.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
		if err == nil {
			_ = conn.CloseNow()
		}
		if bad.hits.Load() == badBefore {
			continue
		}
		if good.hits.Load() != goodBefore {
			t.Error("an upgrade that reached an upstream was retried")
		}
		if err == nil || res == nil || res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("failed upgrade: %v %v, want 503", err, res)
		}
	}
	// POST /api/messages is idempotent (client_msg_id): retried with its body.
	for i := 0; badUp.available(); i++ {
		guard(t, i)
		var e echo
		body := `{"to":"peer","text":"hello","client_msg_id":"m1"}`
		res := tg.do(t, http.MethodPost, "/api/messages", withJSON(tg.bearer(t)), body, &e)
		if res.StatusCode != http.StatusOK || e.Node != "chat-good" || e.Body != body {
			t.Fatalf("POST /api/messages: %d from %q with body %q", res.StatusCode, e.Node, e.Body)
		}
	}
	hitsAtEjection := bad.hits.Load()
	for range 6 {
		var e echo
		if res := tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", &e); res.StatusCode != 200 || e.Node != "chat-good" {
			t.Fatalf("after ejection: %d from %q", res.StatusCode, e.Node)
		}
	}
	if bad.hits.Load() != hitsAtEjection {
		t.Errorf("the ejected upstream got %d more requests", bad.hits.Load()-hitsAtEjection)
	}

	// Fixed, and a health check passes: back in rotation.
	bad.broken.Store(false)
	tg.g.checkAll(context.Background())
	if !badUp.available() {
		t.Fatal("a passed health check did not bring the upstream back")
	}
	seen := map[string]bool{}
	for range 4 {
		var e echo
		tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", &e)
		seen[e.Node] = true
	}
	if !seen["chat-bad"] {
		t.Errorf("after recovery requests went only to %v", seen)
	}
}

// An upstream answering 502 counts as failing (passive ejection); the 502
// itself is passed on.
func TestBadGatewayCountsAsFailure(t *testing.T) {
	a, c1, c2 := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1"), newTestUpstream(t, "chat-2")
	cfg := testConfig([]string{a.URL()}, []string{c1.URL(), c2.URL()})
	cfg.EjectAfter = 2
	tg := newTestGateway(t, cfg, false)
	for i := 0; tg.g.chat.availableCount() == 2; i++ {
		if i == 20 {
			t.Fatal("502 answers never ejected an upstream")
		}
		if res := tg.do(t, http.MethodGet, "/api/bad-gateway", tg.bearer(t), "", nil); res.StatusCode != http.StatusBadGateway {
			t.Fatalf("got %d, want the upstream's 502", res.StatusCode)
		}
	}
}

// POST /auth/login that fails to connect is retried: it never reached the
// first upstream.
func TestDialFailureRetriedForAnyRequest(t *testing.T) {
	live, c := newTestUpstream(t, "auth-live"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{deadURL(t), live.URL()}, []string{c.URL()}), false)
	for range 4 {
		var e echo
		body := `{"username":"alice","password":"correct horse"}`
		res := tg.do(t, http.MethodPost, "/auth/login", withJSON(nil), body, &e)
		if res.StatusCode != http.StatusOK || e.Node != "auth-live" || e.Body != body {
			t.Fatalf("login: %d from %q body %q", res.StatusCode, e.Node, e.Body)
		}
	}
}

// guard stops a loop that waits for the balancer to pick an upstream.
func guard(t *testing.T, i int) {
	t.Helper()
	if i == 20 {
		t.Fatal("20 requests and the awaited upstream was never picked")
	}
}

func withJSON(h http.Header) http.Header {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return h
}

func TestLoginRateLimit(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	cfg := testConfig([]string{a.URL()}, []string{c.URL()})
	cfg.LoginRateLimit = 0.01 // one token per 100 s: none comes back during the test
	cfg.LoginBurst = 3
	tg := newTestGateway(t, cfg, false)

	for i, path := range []string{"/auth/login", "/auth/token", "/auth/login"} {
		if res := tg.do(t, http.MethodPost, path, withJSON(nil), `{"username":"alice","password":"x"}`, nil); res.StatusCode != http.StatusOK {
			t.Fatalf("attempt %d: %d", i, res.StatusCode)
		}
	}
	// A forged X-Forwarded-For from an untrusted client changes nothing.
	for _, path := range []string{"/auth/login", "/auth/token"} {
		var e apiError
		res := tg.do(t, http.MethodPost, path, withJSON(http.Header{"X-Forwarded-For": {"198.51.100.1"}}), `{}`, &e)
		if res.StatusCode != http.StatusTooManyRequests || e.Error.Code != "rate_limited" {
			t.Fatalf("%s over the limit: %d %q", path, res.StatusCode, e.Error.Code)
		}
		if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 100 {
			t.Errorf("Retry-After %q", res.Header.Get("Retry-After"))
		}
	}
	if a.hits.Load() != 3 {
		t.Errorf("auth upstream got %d logins, want 3", a.hits.Load())
	}
	// Other auth requests are not limited.
	for _, p := range []string{"/auth/signup", "/auth/refresh"} {
		if res := tg.do(t, http.MethodPost, p, withJSON(nil), `{}`, nil); res.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
	}
	if res := tg.do(t, http.MethodGet, "/auth/me", nil, "", nil); res.StatusCode != http.StatusOK {
		t.Errorf("/auth/me: %d", res.StatusCode)
	}
	if got, _ := metric(t, tg.reg, "chatd_gateway_requests_total", map[string]string{"route": "auth", "code": "429"}); got != 2 {
		t.Errorf("requests_total{auth,429} = %v, want 2", got)
	}

	// Behind a trusted proxy each client address has its own bucket.
	// The right-most hop that is not a trusted proxy is the client; hops
	// left of it could be forged.
	cfg.TrustedProxies = []string{"127.0.0.0/8"}
	tp := newTestGateway(t, cfg, false)
	for _, addr := range []string{"203.0.113.7", "203.0.113.8"} {
		for i := range 4 {
			xff := "10.9.9.9, " + addr + ", 127.0.0.9"
			res := tp.do(t, http.MethodPost, "/auth/login", withJSON(http.Header{"X-Forwarded-For": {xff}}), `{}`, nil)
			want := http.StatusOK
			if i == 3 {
				want = http.StatusTooManyRequests
			}
			if res.StatusCode != want {
				t.Errorf("client %s attempt %d: %d, want %d", addr, i, res.StatusCode, want)
			}
		}
	}
}

func TestStopClosesWebSockets(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), true)
	conn, _ := tg.dialWS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tg.g.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, _, err := conn.Read(ctx); err == nil || ctx.Err() != nil {
		t.Errorf("the socket survived Stop: %v", err)
	}
	eventually(t, "the upstream socket to close", func() bool { return c.wsOpen.Load() == 0 })
	if tg.g.tunnels.Load() != 0 {
		t.Errorf("%d tunnels left", tg.g.tunnels.Load())
	}
}

func TestConfigValidate(t *testing.T) {
	good := testConfig([]string{"http://auth:8080"}, []string{"http://chat-1:8080", "https://chat-2"})
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	if err := DefaultConfig().Validate(); err == nil || !strings.HasPrefix(err.Error(), "gateway.auth_upstreams:") {
		t.Errorf("defaults without upstreams: %v", err)
	}
	for key, mutate := range map[string]func(*Config){
		"gateway.auth_upstreams":   func(c *Config) { c.AuthUpstreams = []string{"auth:8080"} },
		"gateway.chat_upstreams":   func(c *Config) { c.ChatUpstreams = []string{"http://chat:8080", "ftp://x"} },
		"gateway.health_interval":  func(c *Config) { c.HealthInterval = 0 },
		"gateway.health_timeout":   func(c *Config) { c.HealthTimeout = -time.Second },
		"gateway.eject_after":      func(c *Config) { c.EjectAfter = 0 },
		"gateway.login_rate_limit": func(c *Config) { c.LoginRateLimit = -1 },
		"gateway.login_burst":      func(c *Config) { c.LoginBurst = 0 },
		"http.trusted_proxies":     func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "not-a-cidr"} },
	} {
		c := good
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), key+":") {
			t.Errorf("%s: got %v", key, err)
		}
		if _, nerr := New(c, Deps{Verifier: newTestKeys(t).verifier}); nerr == nil {
			t.Errorf("%s: New accepted a bad config", key)
		}
	}
	off := good
	off.LoginRateLimit, off.LoginBurst = 0, 0
	if err := off.Validate(); err != nil {
		t.Errorf("login limit off: %v", err)
	}
	if _, err := New(good, Deps{}); err == nil {
		t.Error("New without a verifier")
	}
}

func BenchmarkProxyGET(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"conversations":[]}`)
	}))
	defer up.Close()
	keys := newTestKeys(b)
	g, err := New(testConfig([]string{up.URL}, []string{up.URL}), Deps{Verifier: keys.verifier})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	tok, _, _ := keys.signer.Sign("u", "s", time.Now())
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/conversations", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

// Through the gateway: a verified token is remembered (token.Verifier's
// cache), but a token that differs from it in any byte is verified on its own.
func TestTokenCache(t *testing.T) {
	a, ch := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{ch.URL()}), false)
	tok := tg.keys.token(t)
	for range 2 {
		if res := tg.do(t, http.MethodGet, "/api/conversations", http.Header{"Authorization": {"Bearer " + tok}}, "", nil); res.StatusCode != http.StatusOK {
			t.Fatalf("valid token: %d", res.StatusCode)
		}
	}
	parts := strings.Split(tok, ".")
	other, _, err := tg.keys.signer.Sign("admin", "s2", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	spliced := strings.Split(other, ".")[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
	if res := tg.do(t, http.MethodGet, "/api/conversations", http.Header{"Authorization": {"Bearer " + spliced}}, "", nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("another payload with a cached token's signature: %d, want 401", res.StatusCode)
	}
}
