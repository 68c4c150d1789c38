package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"

	"github.com/chatd/chatd/store"
	"github.com/coder/websocket"
)

// restSendResp posts a message and returns the whole response.
func (e *testEnv) restSendResp(from, to *testUser, cmid string) *http.Response {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"to": to.id, "text": "hi", "client_msg_id": cmid})
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/messages", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+from.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("send: %v", err)
	}
	return resp
}

func TestSendRateLimitPerUser(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.SendRate, c.SendBurst = 0.001, 5 }) // no refill within the test
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	ws := e.dial(alice)

	for range 3 {
		if st, _ := e.restSend(alice, bob, "hi", cmid()); st != http.StatusCreated {
			t.Fatalf("send within the burst: %d", st)
		}
	}
	ws.sendOK(bob, "hi", cmid())
	ws.sendOK(bob, "hi", cmid())

	// The burst is spent: REST gets 429 with Retry-After, WS an error frame.
	resp := e.restSendResp(alice, bob, cmid())
	var ae apiError
	_ = json.NewDecoder(resp.Body).Decode(&ae)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || ae.Error.Code != "rate_limited" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("REST send over the limit: %d %+v Retry-After %q, want 429 rate_limited with Retry-After", resp.StatusCode, ae, resp.Header.Get("Retry-After"))
	}
	id := cmid()
	ws.send(bob, "hi", id)
	f, _ := ws.nextOf("error")
	if f.obj("error").str("code") != "rate_limited" || f.str("ref") != id || f.num("retry_after_ms") <= 0 {
		t.Fatalf("WS send over the limit: %v, want rate_limited with ref and retry_after_ms", f)
	}

	// Nothing was stored for the refused sends.
	msgs, _, err := e.st.MessagesAfter(context.Background(), store.ConversationID(alice.id, bob.id), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 5 {
		t.Fatalf("stored %d messages, want the 5 of the burst", len(msgs))
	}
	// The limit is per user: carol still sends.
	if st, _ := e.restSend(carol, bob, "hi", cmid()); st != http.StatusCreated {
		t.Fatalf("another user's send: %d, want 201", st)
	}
}

// dialFrom opens a WebSocket for tok from the loopback address ip.
func (e *testEnv) dialFrom(tok, ip string) (*websocket.Conn, *http.Response, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitTimeout}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{
		HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
	if c != nil {
		e.t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, resp, err
}

func wantRefused(t *testing.T, what string, resp *http.Response, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: upgraded, want 429", what)
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("%s: %v (response %v), want 429 before the upgrade", what, err, resp)
	}
}

func TestWebSocketsPerUserCapped(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxSocketsPerUser = 3 })
	alice, bob := e.user("alice"), e.user("bob")
	var open []*websocket.Conn
	for i := range 3 {
		c, _, err := e.dialFrom(alice.token, "127.0.0.2")
		if err != nil {
			t.Fatalf("socket %d: %v", i+1, err)
		}
		open = append(open, c)
	}
	_, resp, err := e.dialFrom(alice.token, "127.0.0.3") // another address changes nothing
	wantRefused(t, "4th socket of a user", resp, err)
	if _, _, err := e.dialFrom(bob.token, "127.0.0.2"); err != nil {
		t.Fatalf("another user's socket: %v", err)
	}
	// A closed socket frees its place.
	_ = open[0].Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "a place after a close", func() bool {
		c, _, err := e.dialFrom(alice.token, "127.0.0.2")
		if err == nil {
			_ = c.CloseNow()
		}
		return err == nil
	})
}

func TestWebSocketsPerAddressCapped(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxSocketsPerAddr = 4 })
	users := []*testUser{e.user("u1"), e.user("u2"), e.user("u3")}
	for i := range 4 {
		if _, _, err := e.dialFrom(users[i%2].token, "127.0.0.2"); err != nil {
			t.Fatalf("socket %d from 127.0.0.2: %v", i+1, err)
		}
	}
	_, resp, err := e.dialFrom(users[2].token, "127.0.0.2")
	wantRefused(t, "5th socket of an address", resp, err)
	if _, _, err := e.dialFrom(users[2].token, "127.0.0.3"); err != nil {
		t.Fatalf("a socket from another address: %v", err)
	}
}
