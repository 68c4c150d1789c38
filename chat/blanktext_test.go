package chat

import "testing"

// invisibleOnly is text with nothing visible: zero width space, word
// joiner, byte order mark, Hangul filler and Braille blank (issue 9).
const invisibleOnly = "\u200b\u2060\ufeff\u3164\u2800 \u200b"

// Text of only invisible characters is refused as text_empty on both
// transports and stores nothing.
func TestInvisibleOnlyTextIsEmpty(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")

	var ae apiError
	if st := e.call(alice.token, "POST", "/api/messages",
		map[string]any{"to": bob.id, "text": invisibleOnly, "client_msg_id": cmid()}, &ae); st != 400 || ae.Error.Code != "text_empty" {
		t.Errorf("REST: got %d %+v, want 400 text_empty", st, ae.Error)
	}

	a := e.dial(alice)
	a.write(map[string]any{"type": "send", "to": bob.id, "text": invisibleOnly, "client_msg_id": "inv-1"})
	f, _ := a.nextOf("error")
	if f.str("ref") != "inv-1" || f.obj("error").str("code") != "text_empty" {
		t.Errorf("WebSocket: got %v, want an error text_empty for inv-1", f)
	}

	// Nothing was stored; one visible character among the invisible ones is
	// a message, stored exactly as sent.
	var page struct {
		Messages []struct {
			Text string `json:"text"`
		} `json:"messages"`
	}
	if st := e.call(alice.token, "GET", "/api/conversations/"+bob.id+"/messages", nil, &page); st != 200 || len(page.Messages) != 0 {
		t.Fatalf("history after refusals: %d %+v, want 200 and no messages", st, page.Messages)
	}
	if got := a.sendOK(bob, invisibleOnly+"x", "inv-2").str("text"); got != invisibleOnly+"x" {
		t.Errorf("stored text %q, want %q", got, invisibleOnly+"x")
	}
}
