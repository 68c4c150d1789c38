package chat

import (
	"context"
	"fmt"
	"testing"

	"github.com/chatd/chatd/store"
	"github.com/coder/websocket"
)

// One connection writes 500 sends back to back, some refused, two retries
// and an unknown frame among them: every answer comes in the order of the
// frames, new messages get increasing seqs, a retry gets the first message
// back, and the peer gets each new message once (keyed by seq, as clients
// do: a retry is published again), in seq order.
func TestPipelinedSends(t *testing.T) {
	e := newTestEnv(t, nil)
	if _, adapted := e.svc.store.async.(syncAppender); adapted {
		t.Fatal("the SQLite store does not pipeline sends")
	}
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.dial(alice), e.dial(bob)

	const n = 500
	type sent struct {
		cmid    string
		invalid bool // empty text: refused with text_empty
		dupOf   int  // index of the send it retries, or -1
		unknown bool // a frame of unknown type, answered with an error
	}
	sends := make([]sent, n)
	for i := range sends {
		s := sent{cmid: fmt.Sprintf("p-%d", i), dupOf: -1}
		switch {
		case i%61 == 7:
			s.invalid = true
		case i == 300: // right behind its first send: likely the same batch
			s.cmid, s.dupOf = sends[299].cmid, 299
		case i == 400:
			s.cmid, s.dupOf = sends[100].cmid, 100
		case i == 250:
			s.unknown = true
		}
		sends[i] = s
	}
	for _, s := range sends {
		switch {
		case s.unknown:
			a.write(map[string]any{"type": "dance", "client_msg_id": s.cmid})
		case s.invalid:
			a.send(bob, " ", s.cmid)
		default:
			a.send(bob, "pipelined "+s.cmid, s.cmid)
		}
	}

	msgs := make([]frame, n)
	var created []frame // new messages, in ack order
	last := int64(0)
	for i, s := range sends {
		f := a.next()
		for f.typ() == "presence" {
			f = a.next()
		}
		switch {
		case s.invalid || s.unknown:
			code := "text_empty"
			if s.unknown {
				code = "invalid_request"
			}
			if f.typ() != "error" || f.str("ref") != s.cmid || f.obj("error").str("code") != code {
				t.Fatalf("answer %d: %v, want the %s error of %s", i, f, code, s.cmid)
			}
		default:
			if f.typ() != "ack" || f.str("client_msg_id") != s.cmid {
				t.Fatalf("answer %d: %v, want the ack of %s", i, f, s.cmid)
			}
			m := f.obj("message")
			msgs[i] = m
			if s.dupOf >= 0 {
				first := msgs[s.dupOf]
				if m.str("id") != first.str("id") || m.num("seq") != first.num("seq") {
					t.Fatalf("retry %d gave %v, first %v", i, m, first)
				}
				continue
			}
			if m.num("seq") <= last {
				t.Fatalf("answer %d: seq %d after %d", i, m.num("seq"), last)
			}
			last = m.num("seq")
			created = append(created, m)
		}
	}

	// Bob gets every new message once, in order; the marker comes next.
	marker := a.sendOK(bob, "marker", "p-marker")
	got := uniqueBySeq(b.until(func(f frame) bool { return f.obj("message").str("id") == marker.str("id") }))
	got = got[:len(got)-1] // the marker
	if len(got) != len(created) {
		t.Fatalf("bob got %d messages, want %d", len(got), len(created))
	}
	for i, m := range got {
		if m.str("id") != created[i].str("id") || m.num("seq") != created[i].num("seq") {
			t.Fatalf("bob's message %d is %v, want %v", i, m, created[i])
		}
	}
	// And they are stored.
	stored, _, err := e.st.MessagesAfter(context.Background(), store.ConversationID(alice.id, bob.id), 0, 1000)
	if err != nil || len(stored) != len(created)+1 {
		t.Fatalf("%d messages stored (%v), want %d", len(stored), err, len(created)+1)
	}
}

// Shutdown while a connection has many sends in flight waits for them:
// every ack the client saw is of a stored message, the socket then closes
// with 1001, and nothing hangs.
func TestShutdownDuringPipelinedSends(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a := e.dial(alice)
	const n = 200
	for i := range n {
		a.send(bob, "in flight", fmt.Sprintf("sd-%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.svc.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if code := a.closed(); code != websocket.StatusGoingAway {
		t.Fatalf("closed with %d, want 1001", code)
	}
	// The answers come in send order: acks, then (once the node refuses
	// work) unavailable errors; frames read after the close have none.
	acked := map[string]frame{}
	i, refused := 0, false
	for len(a.frames) > 0 {
		f := <-a.frames
		want := fmt.Sprintf("sd-%d", i)
		switch f.typ() {
		case "ack":
			if refused || f.str("client_msg_id") != want {
				t.Fatalf("answer %d: %v, want the ack of %s", i, f, want)
			}
			acked[want] = f.obj("message")
		case "error":
			if f.str("ref") != want || f.obj("error").str("code") != "unavailable" {
				t.Fatalf("answer %d: %v, want the unavailable error of %s", i, f, want)
			}
			refused = true
		default:
			continue
		}
		i++
	}
	stored, _, err := e.st.MessagesAfter(context.Background(), store.ConversationID(alice.id, bob.id), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	byCmid := map[string]store.Message{}
	for _, m := range stored {
		byCmid[m.ClientMsgID] = m
	}
	for cmid, m := range acked {
		s, ok := byCmid[cmid]
		if !ok || s.ID != m.str("id") || s.Seq != m.num("seq") {
			t.Fatalf("acked %s (%v) is not stored as such (%+v)", cmid, m, s)
		}
	}
	t.Logf("%d of %d sends acked before the shutdown, %d stored", len(acked), n, len(stored))
}

// With a store that cannot append without waiting (mongostore), sends take
// the same path through an adapter that appends one at a time: answers
// still in order.
func TestSendsWithoutAsyncStore(t *testing.T) {
	e := newTestEnv(t, nil)
	e.syncStore = true
	n := e.node("node-sync", nil)
	if _, adapted := n.svc.store.async.(syncAppender); !adapted {
		t.Fatal("the wrapped store still pipelines")
	}
	alice, bob := n.user("alice"), n.user("bob")
	a, b := n.dial(alice), n.dial(bob)
	const count = 50
	for i := range count {
		text := "sync"
		if i == 20 {
			text = ""
		}
		a.send(bob, text, fmt.Sprintf("s-%d", i))
	}
	last := int64(0)
	for i := range count {
		got := a.until(func(f frame) bool { return f.typ() == "ack" || f.typ() == "error" })
		f := got[len(got)-1]
		if i == 20 {
			if f.typ() != "error" || f.str("ref") != "s-20" {
				t.Fatalf("answer %d: %v, want the error of s-20", i, f)
			}
			continue
		}
		if f.typ() != "ack" || f.str("client_msg_id") != fmt.Sprintf("s-%d", i) || f.obj("message").num("seq") <= last {
			t.Fatalf("answer %d: %v after seq %d", i, f, last)
		}
		last = f.obj("message").num("seq")
	}
	got := b.until(func(f frame) bool { return f.obj("message").num("seq") == last })
	msgs := 0
	for _, f := range got {
		if f.typ() == "message" {
			msgs++
		}
	}
	if msgs != count-1 {
		t.Fatalf("bob got %d messages, want %d", msgs, count-1)
	}
}

// A connection that goes away with sends in flight loses only their
// answers: the node stays healthy and what was stored stays stored.
func TestConnectionClosedMidFlight(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.dial(alice), e.dial(bob)
	for i := range 100 {
		a.send(bob, "going", fmt.Sprintf("gone-%d", i))
	}
	_ = a.c.CloseNow()
	waitUntil(t, "alice's connection to be gone", func() bool {
		e.svc.hub.conns.mu.Lock()
		defer e.svc.hub.conns.mu.Unlock()
		for c := range e.svc.hub.conns.all {
			if c.userID == alice.id {
				return false
			}
		}
		return true
	})
	a2 := e.dial(alice)
	m := a2.sendOK(bob, "after", "after-1")
	// Every message is stored by now (the store commits in queue order).
	// Bob gets each once; those of the closed connection in seq order.
	stored, _, err := e.st.MessagesAfter(context.Background(), store.ConversationID(alice.id, bob.id), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for len(seqs) < len(stored)-1 {
		f := b.next()
		if f.typ() == "message" && f.obj("message").str("id") != m.str("id") {
			seqs = append(seqs, f.obj("message").num("seq"))
		}
	}
	for i, s := range seqs {
		if s != stored[i].Seq {
			t.Fatalf("bob's message %d has seq %d, stored %d", i, s, stored[i].Seq)
		}
	}
}
