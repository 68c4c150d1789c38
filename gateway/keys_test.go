package gateway

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/auth/token"
	"github.com/prometheus/client_golang/prometheus"
)

// Auth down (its JWKS unreachable): a valid token the gateway has not
// verified yet gets 503 unavailable with Retry-After, not 401 (on which the
// UI logs the user out), and it goes through once auth is back.
func TestGatewayKeysUnavailableIs503(t *testing.T) {
	keys := newTestKeys(t)
	var up atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(keys.key.JWKS())
	}))
	t.Cleanup(jwks.Close)

	chat := newTestUpstream(t, "chat-1")
	auth := newTestUpstream(t, "auth-1")
	cfg := testConfig([]string{auth.URL()}, []string{chat.URL()})
	verifier := token.NewVerifier(token.NewRemoteKeySet(jwks.URL, nil, time.Minute), testIssuer, testAudience)
	g, err := New(cfg, Deps{Verifier: verifier, Logger: testLogger(t), Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	tg := &testGateway{g: g, srv: httptest.NewServer(g.Handler()), keys: keys}
	t.Cleanup(tg.srv.Close)
	hdr := http.Header{"Authorization": {"Bearer " + keys.token(t)}}

	var body struct{ Error struct{ Code string } }
	res := tg.do(t, http.MethodGet, "/api/conversations", hdr, "", &body)
	if res.StatusCode != http.StatusServiceUnavailable || body.Error.Code != "unavailable" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("auth down: %d %q Retry-After=%q, want 503 unavailable with Retry-After",
			res.StatusCode, body.Error.Code, res.Header.Get("Retry-After"))
	}
	if n := chat.hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the chat replica unverified", n)
	}
	// A forged token is still 401 once keys are known; before that it is
	// 503 too, which tells a forger nothing.
	up.Store(true)
	eventually(t, "the token is accepted after auth is back", func() bool {
		return tg.do(t, http.MethodGet, "/api/conversations", hdr, "", nil).StatusCode == http.StatusOK
	})
	bad := http.Header{"Authorization": {"Bearer x.y.z"}}
	if res := tg.do(t, http.MethodGet, "/api/conversations", bad, "", nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("garbage token: %d, want 401", res.StatusCode)
	}
}
