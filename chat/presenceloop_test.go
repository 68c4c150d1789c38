package chat

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
)

// countingPresence counts Refresh calls.
type countingPresence struct {
	pubsub.Presence
	refreshes atomic.Int64
}

func (p *countingPresence) Refresh(ctx context.Context, node string, users []string) ([]string, error) {
	p.refreshes.Add(1)
	return p.Presence.Refresh(ctx, node, users)
}

// stuckSessionStore blocks SessionByID, once armed, until released: a
// store too slow for the periodic session recheck.
type stuckSessionStore struct {
	store.Store
	armed   atomic.Bool
	release chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (s *stuckSessionStore) SessionByID(ctx context.Context, id string) (store.Session, error) {
	if s.armed.Load() {
		s.once.Do(func() { close(s.entered) })
		<-s.release
	}
	return s.Store.SessionByID(ctx, id)
}

// A session recheck stuck on the store does not hold up the presence
// refresh, which runs every PresenceTTL/3 (issue 8, defect 6: both ran on
// one loop with a fixed 5 s interval, so a slow round let a healthy node's
// entries expire).
func TestPresenceRefreshIndependentOfSessionRecheck(t *testing.T) {
	e := newTestEnv(t, nil)
	stuck := &stuckSessionStore{release: make(chan struct{}), entered: make(chan struct{})}
	e.wrapStore = func(st store.Store) store.Store { stuck.Store = st; return stuck }
	var pres *countingPresence
	e.wrapPresence = func(p pubsub.Presence) pubsub.Presence { pres = &countingPresence{Presence: p}; return pres }
	n := e.node("node-2", func(c *Config) {
		c.RevocationRecheck = time.Second
		c.PresenceTTL = 3 * time.Second
	})
	t.Cleanup(func() { close(stuck.release) }) // before the node's shutdown
	alice := n.user("alice")
	n.dial(alice)
	stuck.armed.Store(true)
	select {
	case <-stuck.entered:
	case <-time.After(waitTimeout):
		t.Fatal("the session recheck never ran")
	}
	before := pres.refreshes.Load()
	waitUntil(t, "two presence refreshes while the recheck is stuck", func() bool {
		return pres.refreshes.Load() >= before+2
	})
}

// When the registry lost a user this node still holds (its entry expired
// and was swept while the node was slow, or the broker restarted), the
// next refresh connects the user again and announces it online to its
// peers (issue 8, defect 7: a refresh re-added entries silently).
func TestRefreshReconnectsLostUser(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.PresenceTTL = 3 * time.Second })
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.dial(alice), e.dial(bob)
	a.sendOK(bob, "hi", cmid()) // a conversation in which both sent: bob gets alice's presence
	b.sendOK(alice, "hi", cmid())
	// Bob's answer made them contacts: he gets alice's presence at once
	// (chat/contacts.go); the one to wait for below is the refresh's.
	b.until(func(f frame) bool {
		return f.typ() == "presence" && f.str("user_id") == alice.id && f.obj("presence")["online"] == true
	})
	if last, err := e.br.Disconnect(context.Background(), alice.id, "node-1", time.Now()); err != nil || !last {
		t.Fatalf("Disconnect = %v, %v", last, err)
	}
	b.until(func(f frame) bool {
		return f.typ() == "presence" && f.str("user_id") == alice.id && f.obj("presence")["online"] == true
	})
	st, err := e.br.Lookup(context.Background(), []string{alice.id})
	if err != nil || !st[alice.id].Online {
		t.Fatalf("alice %+v, %v; want online again", st, err)
	}
}
