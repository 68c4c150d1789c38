package chat

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

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
	// Bob answers: now both have sent.
	wb.sendOK(alice, "hi alice", cmid())
	if p, _ := wa.nextOf("presence"); p.str("user_id") != bob.id || p.obj("presence")["online"] != true {
		t.Fatalf("alice's presence frame = %v", p)
	}
	if p, _ := wb.nextOf("presence"); p.str("user_id") != alice.id || p.obj("presence")["online"] != true {
		t.Fatalf("bob's presence frame = %v", p)
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
