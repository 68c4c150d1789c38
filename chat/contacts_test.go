package chat

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
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
	// Bob answers: now both have sent. His ack and alice's presence come in
	// either order: the check runs as the batch is published, and the ack is
	// queued after that (pipeline.go).
	wb.send(alice, "hi alice", cmid())
	if p, _ := wa.nextOf("presence"); p.str("user_id") != bob.id || p.obj("presence")["online"] != true {
		t.Fatalf("alice's presence frame = %v", p)
	}
	var presence frame
	for acked := false; !acked || presence == nil; {
		got := wb.until(func(f frame) bool { return f.typ() == "ack" || f.typ() == "presence" })
		switch f := got[len(got)-1]; f.typ() {
		case "ack":
			acked = true
		default:
			presence = f
		}
	}
	if presence.str("user_id") != alice.id || presence.obj("presence")["online"] != true {
		t.Fatalf("bob's presence frame = %v", presence)
	}
}

// countingContacts counts the store's ContactIDs reads.
type countingContacts struct {
	store.Store
	n *atomic.Int64
}

func (c countingContacts) ContactIDs(ctx context.Context, userID string) ([]string, error) {
	c.n.Add(1)
	return c.Store.ContactIDs(ctx, userID)
}

// Sends in a one-sided conversation stop reading the contacts once a check
// found it one-sided: the sender's further sends cannot make them contacts.
func TestOneSidedSendsSkipContactChecks(t *testing.T) {
	var reads atomic.Int64
	e := newTestEnvWith(t, nil, func(e *testEnv) {
		e.wrapStore = func(st store.Store) store.Store { return countingContacts{st, &reads} }
	})
	alice, bob := e.user("alice"), e.user("bob")
	wa := e.dial(alice)
	wa.sendOK(bob, "first", cmid())
	conv := store.ConversationID(alice.id, bob.id)
	waitUntil(t, "the check after the first send found it one-sided", func() bool {
		p := &e.svc.pairs
		p.mu.Lock()
		defer p.mu.Unlock()
		_, ok := p.notYet[conv]
		return ok
	})
	before := reads.Load()
	for i := range 20 {
		wa.sendOK(bob, "again "+itoa(i), cmid())
	}
	if n := reads.Load() - before; n > 2 {
		t.Fatalf("20 one-sided sends read the contacts %d times, want at most 2", n)
	}
}

// The presence a first contact sends is read before it is published: a
// user who comes online in between had the other see the online event
// first and then the state read before it, offline, which stayed on the
// screen until the next change. checkFirstContact now reads again after
// its publishes and sends what changed.
func TestFirstContactPresenceNotLeftStale(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	if st, _ := e.restSend(alice, bob, "hi bob", cmid()); st != http.StatusCreated {
		t.Fatal(st)
	}
	wb := e.dial(bob)
	lookedUp, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	testHookFirstContactLookedUp = func() { once.Do(func() { close(lookedUp); <-resume }) }
	t.Cleanup(func() { testHookFirstContactLookedUp = nil })

	if st, _ := e.restSend(bob, alice, "hi alice", cmid()); st != http.StatusCreated { // now contacts
		t.Fatal(st)
	}
	<-lookedUp // the check read alice offline; she comes online before it publishes
	e.dial(alice)
	if p, _ := wb.nextOf("presence"); p.str("user_id") != alice.id || p.obj("presence")["online"] != true {
		t.Fatalf("bob's first presence frame = %v, want alice online", p)
	}
	close(resume)
	waitFirstContact(t, e, alice, bob)
	if st, _ := e.restSend(alice, bob, "marker", cmid()); st != http.StatusCreated {
		t.Fatal(st)
	}
	var last frame
	for _, f := range wb.until(func(f frame) bool { return f.typ() == "message" && f.obj("message").str("text") == "marker" }) {
		if f.typ() == "presence" && f.str("user_id") == alice.id {
			last = f
		}
	}
	if last == nil || last.obj("presence")["online"] != true {
		t.Fatalf("the last presence of alice bob got = %v, want online", last)
	}
}

// waitFirstContact waits until the first-contact check of a and b's
// conversation (contacts.go) found them contacts and sent its presence.
func waitFirstContact(t *testing.T, e *testEnv, a, b *testUser) {
	t.Helper()
	conv := store.ConversationID(a.id, b.id)
	waitUntil(t, "the first-contact check is done", func() bool {
		p := &e.svc.pairs
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.known[conv]
	})
}

// holdingBroker holds each message publication until a presence
// publication has gone out or hold has passed, so that a presence racing
// the message that made two users contacts wins whenever it can.
type holdingBroker struct {
	pubsub.Broker
	hold      time.Duration
	presences atomic.Int64
}

func (b *holdingBroker) Publish(ctx context.Context, topic string, p []byte) error {
	switch {
	case bytes.Contains(p, []byte(`"type":"presence"`)):
		b.presences.Add(1)
	case bytes.Contains(p, []byte(`"type":"message"`)):
		for end := time.Now().Add(b.hold); b.presences.Load() == 0 && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
	}
	return b.Broker.Publish(ctx, topic, p)
}

// The WebSocket send that makes two users contacts reaches the other
// before the presence it brings (CI run of 58254aa: the first-contact check
// started before its completion batch was published, so the presence
// could come first, to a user who was not yet shown as a contact).
func TestFirstContactMessageBeforeItsPresence(t *testing.T) {
	e := newTestEnv(t, nil)
	hb := &holdingBroker{hold: 500 * time.Millisecond}
	e.wrapBroker = func(b pubsub.Broker) pubsub.Broker { hb.Broker = b; return hb }
	n := e.node("node-2", nil)
	alice, mallory := n.user("alice"), n.user("mallory")
	if st, _ := n.restSend(mallory, alice, "hi, stranger", cmid()); st != http.StatusCreated {
		t.Fatal(st)
	}
	m, a := n.dial(mallory), n.dial(alice)
	a.sendOK(mallory, "hi back", cmid()) // now contacts
	got := m.until(func(f frame) bool { return f.typ() == "message" || f.typ() == "presence" })
	if f := got[len(got)-1]; f.typ() != "message" {
		t.Fatalf("mallory's first frame after alice answered = %v, want the message", f)
	}
	if p, _ := m.nextOf("presence"); p.str("user_id") != alice.id || p.obj("presence")["online"] != true {
		t.Fatalf("mallory's presence frame = %v, want alice online", p)
	}
}

// Conversations found one-sided at the same moment are not all believed so
// until the same moment: each belief lasts between half of oneSidedTTL and
// all of it, so their checks again come spread out, not as one wave (a
// wave stalled the split deployment's appends every 30 s).
func TestOneSidedBeliefsExpireSpread(t *testing.T) {
	var p contactPairs
	now := time.Now()
	lo, hi := oneSidedTTL, time.Duration(0)
	for i := range 1000 {
		conv := fmt.Sprint("conv", i)
		p.oneSidedAfter(conv, "silent", now)
		d := p.notYet[conv].until.Sub(now)
		if d < oneSidedTTL/2 || d > oneSidedTTL {
			t.Fatalf("a belief lasts %s; want between %s and %s", d, oneSidedTTL/2, oneSidedTTL)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < oneSidedTTL/4 {
		t.Fatalf("1,000 beliefs taken at once expire within %s of each other; want them spread over at least %s", hi-lo, oneSidedTTL/4)
	}
}
