package chat

import (
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestHelloCarriesMaxTextBytes: clients learn the text limit from hello.
func TestHelloCarriesMaxTextBytes(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxTextBytes = 1000 })
	a := e.dial(e.user("alice"))
	if got := a.hello.num("max_text_bytes"); got != 1000 {
		t.Errorf("hello max_text_bytes = %v, want 1000", a.hello["max_text_bytes"])
	}
}

// TestHelloCarriesMaxAttachmentBytes: clients learn the upload limit from
// hello, so the UI refuses a larger file before sending a byte.
func TestHelloCarriesMaxAttachmentBytes(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxAttachmentBytes = 5000; c.UploadQuotaBytes = 10000 })
	a := e.dial(e.user("alice"))
	if got := a.hello.num("max_attachment_bytes"); got != 5000 {
		t.Errorf("hello max_attachment_bytes = %v, want 5000", a.hello["max_attachment_bytes"])
	}
}

// TestEventRightAfterHelloArrives: api.md promises that once hello is sent
// the connection is subscribed. The hub used to queue hello (which starts
// the writer) before adding the connection to its user's delivery list, so
// an event published the moment hello reached the client found an empty
// list and was lost live (it failed in CI under load). Each round publishes
// as soon as hello is read; the window was microseconds, hence the rounds.
func TestEventRightAfterHelloArrives(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	e.contacts(alice, bob)
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for round := range 300 {
		b := e.dial(bob)
		e.svc.UserWentOffline(alice.id, at.Add(time.Duration(round)*time.Second))
		p, _ := b.nextOf("presence")
		if p.str("user_id") != alice.id || p.obj("presence")["online"] != false {
			t.Fatalf("round %d: presence = %v", round, p)
		}
		_ = b.c.Close(websocket.StatusNormalClosure, "")
	}
}
