package chat

import (
	"net/http"
	"testing"
)

// The send that makes two online users contacts brings each the other's
// presence at once (issue 10), with no reconnect; a one-sided message and
// an event (a reaction) do not.
func TestFirstContactPublishesPresence(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	wa, wb := e.dial(alice), e.dial(bob)
	m1 := wa.sendOK(bob, "hi bob", cmid())
	wb.event("react", alice, m1.num("seq"), cmid(), map[string]any{"emoji": "👋"})
	if f := wb.nextAnswer(); f.typ() != "ack" {
		t.Fatalf("bob's reaction: %v", f)
	}
	// A marker through the same topics: no presence came before it.
	if st, _ := e.restSend(alice, bob, "still only me", cmid()); st != http.StatusCreated {
		t.Fatal(st)
	}
	for _, f := range wb.until(func(f frame) bool { return f.typ() == "message" && f.obj("message").str("text") == "still only me" }) {
		if f.typ() == "presence" {
			t.Fatalf("bob got alice's presence before being her contact: %v", f)
		}
	}
	// Bob answers: now both have sent.
	wb.sendOK(alice, "hi alice", cmid())
	if p, _ := wa.nextOf("presence"); p.str("user_id") != bob.id || p.obj("presence")["online"] != true {
		t.Fatalf("alice's presence frame = %v", p)
	}
	if p, _ := wb.nextOf("presence"); p.str("user_id") != alice.id || p.obj("presence")["online"] != true {
		t.Fatalf("bob's presence frame = %v", p)
	}
}
