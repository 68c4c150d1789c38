package chat

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chatd/chatd/pubsub"
)

// flakyBroker fails Publish while failing is set, and lets the test play
// the backend's link coming back (OnReconnect).
type flakyBroker struct {
	pubsub.Broker
	failing atomic.Bool

	mu          sync.Mutex
	onReconnect []func()
}

func (b *flakyBroker) Publish(ctx context.Context, topic string, p []byte) error {
	if b.failing.Load() {
		return errors.New("broker link down")
	}
	return b.Broker.Publish(ctx, topic, p)
}

func (b *flakyBroker) OnReconnect(fn func()) {
	b.mu.Lock()
	b.onReconnect = append(b.onReconnect, fn)
	b.mu.Unlock()
}

func (b *flakyBroker) reconnected() {
	b.mu.Lock()
	fns := append([]func(){}, b.onReconnect...)
	b.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

func newFlakyNode(t *testing.T) (*testEnv, *flakyBroker) {
	e := newTestEnv(t, nil)
	fb := &flakyBroker{}
	e.wrapBroker = func(b pubsub.Broker) pubsub.Broker { fb.Broker = b; return fb }
	return e.node("node-2", nil), fb
}

// A message stored while its publish failed: the recipient's socket on this
// node gets resync, and its catch-up read has the message (issue 8, defect
// 1: the socket stayed open with a silent gap).
func TestResyncWhenPublishFails(t *testing.T) {
	n, fb := newFlakyNode(t)
	alice, bob := n.user("alice"), n.user("bob")
	b := n.dial(bob)
	fb.failing.Store(true)
	st, m := n.restSend(alice, bob, "while the broker is down", cmid())
	if st != http.StatusCreated {
		t.Fatalf("send: %d, want 201 (the store is the record)", st)
	}
	wantResyncThenCatchUp(t, n, b, bob, alice, m.num("seq"))
}

// wantResyncThenCatchUp reads b (reader's socket) up to a resync, none of
// the frames before it a live message, then pages reader's conversation
// with peer on e: it must hold the one message, seq.
func wantResyncThenCatchUp(t *testing.T, e *testEnv, b *wsClient, reader, peer *testUser, seq int64) {
	t.Helper()
	skipped := b.until(func(f frame) bool { return f.typ() == "resync" })
	for _, f := range skipped {
		if f.typ() == "message" {
			t.Fatalf("%s got %v live although its publish failed", reader.name, f)
		}
	}
	var page struct {
		Messages []frame `json:"messages"`
	}
	if code := e.call(reader.token, "GET", "/api/conversations/"+peer.id+"/messages?after=0", nil, &page); code != http.StatusOK ||
		len(page.Messages) != 1 || page.Messages[0].num("seq") != seq {
		t.Fatalf("catch-up: %d %v, want the message", code, page.Messages)
	}
}

// batchingFlakyBroker is a flakyBroker that also takes batches
// (pubsub.BatchPublisher, as Redis does), failing all of one while failing
// is set.
type batchingFlakyBroker struct {
	*flakyBroker
	batches atomic.Int64
}

func (b *batchingFlakyBroker) PublishBatch(ctx context.Context, ps []pubsub.Publication) []error {
	b.batches.Add(1)
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = b.Publish(ctx, p.Topic, p.Payload)
	}
	if !b.failing.Load() {
		return nil
	}
	return errs
}

// WebSocket sends are published per completion batch; a batch that fails
// gives the recipient's socket resync, as a single failed publish does, and
// a working batch delivers the messages in order.
func TestResyncWhenABatchPublishFails(t *testing.T) {
	e := newTestEnv(t, nil)
	fb := &batchingFlakyBroker{flakyBroker: &flakyBroker{}}
	e.wrapBroker = func(b pubsub.Broker) pubsub.Broker { fb.Broker = b; return fb }
	n := e.node("node-2", nil)
	alice, bob := n.user("alice"), n.user("bob")
	a, b := n.dial(alice), n.dial(bob)
	const burst = 50
	for i := range burst {
		a.send(bob, itoa(i), cmid())
	}
	for i := range burst {
		if m, _ := b.nextOf("message"); m.obj("message").str("text") != itoa(i) {
			t.Fatalf("message %d: %v", i, m)
		}
	}
	if fb.batches.Load() == 0 {
		t.Fatal("no send went through PublishBatch")
	}
	fb.failing.Store(true)
	for range burst {
		a.send(bob, "while the broker is down", cmid())
	}
	skipped := b.until(func(f frame) bool { return f.typ() == "resync" })
	for _, f := range skipped {
		if f.typ() == "message" {
			t.Fatalf("bob got %v live although its publish failed", f)
		}
	}
}

// The broker link comes back: every connection of the node gets resync.
func TestResyncOnBrokerReconnect(t *testing.T) {
	n, fb := newFlakyNode(t)
	alice, bob := n.user("alice"), n.user("bob")
	a1, a2, b := n.dial(alice), n.dial(alice), n.dial(bob)
	fb.reconnected()
	for _, w := range []*wsClient{a1, a2, b} {
		w.until(func(f frame) bool { return f.typ() == "resync" })
	}
}

// A publish that fails on one node while the broker works for the others
// (its PUBLISH timed out, or only its own link broke): the recipient's
// socket on another node gets resync once the failing node's broker takes
// publications again, and its catch-up has the message. Before, only the
// failing node's own sockets got one and the other node's stayed open with
// a silent gap (api.md 1.1, resync).
func TestResyncReachesOtherNodesWhenPublishFails(t *testing.T) {
	for _, batching := range []bool{false, true} { // batching: as Redis, one round trip for the owed
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			e := newTestEnv(t, nil) // node-1: bob, its broker link fine
			fb := &flakyBroker{}
			e.wrapBroker = func(b pubsub.Broker) pubsub.Broker {
				fb.Broker = b
				if batching {
					return &batchingFlakyBroker{flakyBroker: fb}
				}
				return fb
			}
			n := e.node("node-2", nil) // node-2: alice, whose publishes fail for a while
			alice, bob := e.user("alice"), e.user("bob")
			a, b := n.dial(alice), e.dial(bob)

			fb.failing.Store(true)
			m := a.sendOK(bob, "lost on the way", cmid()) // alice's own resync came before the ack
			// The broker takes publications again: the owed resyncs (alice's
			// and bob's topics) go out on the next try, to bob's socket on node-1.
			fb.failing.Store(false)
			wantResyncThenCatchUp(t, e, b, bob, alice, m.num("seq"))
		})
	}
}
