package chat

import "testing"

// The UI's heartbeat (ui/static/assets/js/ws.js) relies on api.md's rule
// that a refused frame is answered: a frame of an unknown type gets an
// `error` frame whose ref is its client_msg_id, and the socket stays open.
func TestUnknownFrameTypeIsAnsweredForHeartbeat(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a := e.dial(alice)
	a.write(map[string]any{"type": "heartbeat_probe", "client_msg_id": "heartbeat_probe-1"})
	f, _ := a.nextOf("error")
	if f.str("ref") != "heartbeat_probe-1" || f.obj("error").str("code") != "invalid_request" {
		t.Fatalf("answer to a probe: %v", f)
	}
	a.sendOK(bob, "still open", cmid())
}
