package gateway

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// newTLSUpstream is a testUpstream served over TLS by httptest's own CA;
// it returns the upstream and a PEM file of that CA.
func newTLSUpstream(t *testing.T, name string) (*testUpstream, string) {
	t.Helper()
	u := &testUpstream{name: name, closes: make(chan websocket.StatusCode, 64)}
	u.ready.Store(true)
	u.srv = httptest.NewTLSServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return u, caFile
}

// Replicas behind https:// with a private CA: with gateway.upstream_ca_file
// the health checks pass and requests and WebSockets go through; without
// it no upstream is usable, since their certificate is not trusted.
func TestUpstreamsOverTLS(t *testing.T) {
	auth, caFile := newTLSUpstream(t, "auth-tls")
	chat, _ := newTLSUpstream(t, "chat-tls") // httptest's CA is the same for both
	if !strings.HasPrefix(chat.URL(), "https://") {
		t.Fatalf("upstream URL %s", chat.URL())
	}

	untrusted := newTestGateway(t, testConfig([]string{auth.URL()}, []string{chat.URL()}), true)
	if err := untrusted.g.Ready(context.Background()); err == nil {
		t.Fatal("a gateway without the CA is ready in front of replicas it cannot verify")
	}

	cfg := testConfig([]string{auth.URL()}, []string{chat.URL()})
	cfg.UpstreamCAFile = caFile
	tg := newTestGateway(t, cfg, true)
	if err := tg.g.Ready(context.Background()); err != nil {
		t.Fatalf("with gateway.upstream_ca_file: %v", err)
	}
	var e echo
	if res := tg.do(t, http.MethodGet, "/api/conversations", tg.bearer(t), "", &e); res.StatusCode != 200 || e.Node != "chat-tls" {
		t.Fatalf("GET /api through the TLS upstream: %d %+v", res.StatusCode, e)
	}
	c, node := tg.dialWS(t)
	if node != "chat-tls" {
		t.Fatalf("socket on %q", node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, data, err := c.Read(ctx); err != nil || string(data) != "ping" {
		t.Fatalf("echo through the TLS tunnel: %q %v", data, err)
	}

	cfg.UpstreamCAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := New(cfg, Deps{Verifier: tg.keys.verifier}); err == nil || !strings.Contains(err.Error(), "gateway.upstream_ca_file") {
		t.Fatalf("a missing CA file: %v", err)
	}
}
