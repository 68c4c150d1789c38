package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chatd/chatd/auth/token"
)

const (
	testIssuer   = "chatd"
	testAudience = "chatd"
)

// echo is what a test upstream answers to a plain request.
type echo struct {
	Node   string      `json:"node"`
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Query  string      `json:"query"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// testUpstream is a real HTTP and WebSocket server standing in for an auth
// or chat replica: it echoes requests, serves a WebSocket echo on /ws, and
// has a /readyz that the test can flip.
type testUpstream struct {
	name   string
	srv    *httptest.Server
	ready  atomic.Bool
	broken atomic.Bool // drop every non-/readyz connection without an answer
	// slowReady makes /readyz hang until the checker gives up (a replica
	// waiting on a slow backend); /healthz still answers.
	slowReady atomic.Bool
	// frozen makes /readyz and /healthz hang (a SIGSTOPped replica); open
	// WebSockets stay open and silent.
	frozen atomic.Bool
	hits   atomic.Int64 // requests other than /readyz
	wsOpen atomic.Int64
	closes chan websocket.StatusCode // close codes the upstream's sockets ended with
	// wsHeader is the request header of the last WebSocket upgrade.
	wsHeader atomic.Pointer[http.Header]
}

func newTestUpstream(t testing.TB, name string) *testUpstream {
	t.Helper()
	u := &testUpstream{name: name, closes: make(chan websocket.StatusCode, 64)}
	u.ready.Store(true)
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *testUpstream) URL() string { return u.srv.URL }

func (u *testUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if (r.URL.Path == "/readyz" || r.URL.Path == "/healthz") && u.frozen.Load() ||
		r.URL.Path == "/readyz" && u.slowReady.Load() {
		<-r.Context().Done()
		return
	}
	if r.URL.Path == "/healthz" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.URL.Path == "/readyz" {
		if u.ready.Load() {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return
	}
	u.hits.Add(1)
	if u.broken.Load() {
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = c.Close()
		}
		return
	}
	switch r.URL.Path {
	case "/ws":
		u.serveWS(w, r)
		return
	case "/api/bad-gateway":
		w.WriteHeader(http.StatusBadGateway)
		return
	case "/api/attachments": // an upload: count it, do not echo it
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{"received": n})
		return
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "X-Upstream-Hop")
	w.Header().Set("X-Upstream-Hop", "secret")
	_ = json.NewEncoder(w).Encode(echo{
		Node: u.name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Host: r.Host, Header: r.Header, Body: string(body),
	})
}

// serveWS accepts with the library's default Origin check (Origin must
// name the request's Host, like chat's default), says hello with its node
// name, then echoes; "close:CODE" makes it close with CODE.
func (u *testUpstream) serveWS(w http.ResponseWriter, r *http.Request) {
	h := r.Header.Clone()
	u.wsHeader.Store(&h)
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	u.wsOpen.Add(1)
	defer u.wsOpen.Add(-1)
	defer c.CloseNow()
	ctx := context.Background()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"node":"`+u.name+`"}`)); err != nil {
		return
	}
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			select {
			case u.closes <- websocket.CloseStatus(err):
			default:
			}
			return
		}
		switch string(data) {
		case "close:4001":
			_ = c.Close(4001, "session revoked")
			return
		case "close:1001":
			_ = c.Close(websocket.StatusGoingAway, "node shutting down")
			return
		case "flood":
			// 8 KB frames until the tunnel goes away.
			big := []byte(`{"type":"typing","from":"` + strings.Repeat("x", 8000) + `"}`)
			for c.Write(ctx, websocket.MessageText, big) == nil {
			}
			return
		}
		if err := c.Write(ctx, typ, data); err != nil {
			return
		}
	}
}

// deadURL is the address of a port nothing listens on any more.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

type testKeys struct {
	key      *token.SigningKey
	signer   *token.Signer
	verifier *token.Verifier
}

func newTestKeys(t testing.TB) *testKeys {
	t.Helper()
	key, err := token.LoadOrCreateKey(filepath.Join(t.TempDir(), "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &testKeys{
		key:      key,
		signer:   token.NewSigner(key, testIssuer, testAudience, time.Hour),
		verifier: token.NewVerifier(key.KeySet(), testIssuer, testAudience),
	}
}

func (k *testKeys) token(t testing.TB) string {
	t.Helper()
	tok, _, err := k.signer.Sign("user-1", "session-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type testGateway struct {
	g    *Gateway
	srv  *httptest.Server
	reg  *prometheus.Registry
	keys *testKeys
}

// newTestGateway starts a gateway over loopback in front of the given
// upstreams; start also starts its health checks.
func newTestGateway(t testing.TB, cfg Config, start bool) *testGateway {
	t.Helper()
	tg := &testGateway{reg: prometheus.NewRegistry(), keys: newTestKeys(t)}
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ui:"+r.URL.Path)
	})
	g, err := New(cfg, Deps{Verifier: tg.keys.verifier, UI: ui, Logger: testLogger(t), Metrics: tg.reg})
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
	if start {
		if err := g.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return tg
}

func testConfig(authUps, chatUps []string) Config {
	cfg := DefaultConfig()
	cfg.AuthUpstreams = authUps
	cfg.ChatUpstreams = chatUps
	cfg.HealthInterval = time.Hour // tests that want checks set it
	cfg.HealthTimeout = 2 * time.Second
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var client = &http.Client{Timeout: 10 * time.Second}

// do sends a request to the gateway and decodes a JSON answer into out
// (when not nil); it returns the response with its body read.
func (tg *testGateway) do(t *testing.T, method, path string, hdr http.Header, body string, out any) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, tg.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusSwitchingProtocols {
		t.Fatalf("%s %s: switched protocols", method, path)
	}
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, res.StatusCode, data, err)
		}
	}
	return res
}

func (tg *testGateway) bearer(t testing.TB) http.Header {
	return http.Header{"Authorization": {"Bearer " + tg.keys.token(t)}}
}

// dialWS opens a WebSocket through the gateway with a valid token and the
// gateway's own Origin, and reads the upstream's hello; it returns the
// connection and the node that took it.
func (tg *testGateway) dialWS(t *testing.T) (*websocket.Conn, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hdr := tg.bearer(t)
	hdr.Set("Origin", tg.srv.URL)
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(tg.srv.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial ws through the gateway: %v (status %d)", err, status)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read hello: %v", err)
	}
	var hello struct{ Node string }
	if err := json.Unmarshal(data, &hello); err != nil {
		t.Fatalf("hello %q: %v", data, err)
	}
	return c, hello.Node
}

// eventually polls cond until it holds or 10 s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric returns the value of the named metric with exactly these labels,
// and whether it exists.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// apiError decodes api.md's error shape.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
