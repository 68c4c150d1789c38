package chat

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/auth/token"
)

// Auth down (its JWKS unreachable): a valid token is answered 503
// unavailable with Retry-After on REST and on the WebSocket handshake, not
// 401 (the UI logs the user out on 401), and works again once auth is back.
func TestKeysUnavailableIs503NotUnauthenticated(t *testing.T) {
	e := newTestEnv(t, nil)
	var up atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(e.key.JWKS())
	}))
	t.Cleanup(jwks.Close)
	e.keySet = token.NewRemoteKeySet(jwks.URL, nil, time.Minute)
	n := e.node("node-remote", nil)
	alice := n.user("alice")

	var body apiError
	if st := n.call(alice.token, http.MethodGet, "/api/conversations", nil, &body); st != http.StatusServiceUnavailable || body.Error.Code != "unavailable" {
		t.Fatalf("REST with auth down: %d %q, want 503 unavailable", st, body.Error.Code)
	}
	req, _ := http.NewRequest(http.MethodGet, n.srv.URL+"/api/conversations", nil)
	req.Header.Set("Authorization", "Bearer "+alice.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.Header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After")
	}
	_, wres, err := n.dialRaw(alice.token, nil)
	if err == nil || wres == nil || wres.StatusCode != http.StatusServiceUnavailable {
		status := 0
		if wres != nil {
			status = wres.StatusCode
		}
		t.Fatalf("WS handshake with auth down: %v (status %d), want 503", err, status)
	}

	up.Store(true)
	deadline := time.Now().Add(waitTimeout)
	for n.call(alice.token, http.MethodGet, "/api/conversations", nil, nil) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the token is still refused after auth came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
