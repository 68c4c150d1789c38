// Package pubsubtest is the contract suite every pubsub backend must pass.
// A backend's contract_test.go calls Run with a factory for its nodes.
package pubsubtest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/pubsub"
)

// waitFor bounds every wait for an event. It is a deadline for something
// that must happen, never a speed assertion.
const waitFor = 10 * time.Second

// NewNode is what Run receives: for one subtest it sets up a fresh backend
// and returns a constructor of nodes attached to it. Each call of the
// constructor returns a node (a Broker and its Presence, which may be the
// same value); a single-process backend may return the same instance every
// time. The factory must release everything it created at t's cleanup.
type NewNode = func(t *testing.T) func() (pubsub.Broker, pubsub.Presence)

// Run runs the contract suite.
func Run(t *testing.T, newNode NewNode) {
	tests := []struct {
		name string
		fn   func(t *testing.T, node func() (pubsub.Broker, pubsub.Presence))
	}{
		{"PublishReachesEveryNode", testPublishReachesEveryNode},
		{"OtherTopicsNotDelivered", testOtherTopicsNotDelivered},
		{"OrderFromOnePublisher", testOrderFromOnePublisher},
		{"ConcurrentPublishersKeepTheirOrder", testConcurrentPublishers},
		{"PublishBatchKeepsOrder", testPublishBatch},
		{"SubscribeActiveOnReturn", testSubscribeActiveOnReturn},
		{"SeveralSubscriptionsOneTopic", testSeveralSubscriptions},
		{"Unsubscribe", testUnsubscribe},
		{"BlockedHandlerDoesNotStallPublish", testBlockedHandler},
		{"PayloadBinarySafe", testBinaryPayload},
		{"CloseEndsSubscriptions", testClose},
		{"Ping", testPing},
		{"PresenceAcrossNodes", testPresenceAcrossNodes},
		{"PresenceConnectTwiceSameNode", testPresenceSameNodeTwice},
		{"PresenceLookup", testPresenceLookup},
		{"PresenceRefresh", testPresenceRefresh},
		{"PresenceStaleRefreshDoesNotResurrect", testPresenceStaleRefresh},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newNode(t))
		})
	}
}

// recorder is a Handler that keeps a copy of every payload.
type recorder struct {
	mu     sync.Mutex
	msgs   [][]byte
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) handle(p []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, bytes.Clone(p))
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.msgs...)
}

// wait returns the payloads once at least n arrived, failing the test at
// the deadline.
func (r *recorder) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		if got := r.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			got := r.snapshot()
			t.Fatalf("got %d payloads within %v, want %d: %q", len(got), waitFor, n, got)
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func subscribe(t *testing.T, b pubsub.Broker, topic string, h pubsub.Handler) pubsub.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxT(t), topic, h)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", topic, err)
	}
	return s
}

func publish(t *testing.T, b pubsub.Broker, topic, payload string) {
	t.Helper()
	if err := b.Publish(ctxT(t), topic, []byte(payload)); err != nil {
		t.Fatalf("Publish(%q, %q): %v", topic, payload, err)
	}
}

func wantPayloads(t *testing.T, what string, got [][]byte, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("%s: got %q, want %q", what, got, want)
		}
	}
}

func testPublishReachesEveryNode(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	b, _ := node()
	topic := pubsub.UserTopic("u1")
	ra, rb := newRecorder(), newRecorder()
	subscribe(t, a, topic, ra.handle)
	subscribe(t, b, topic, rb.handle)

	publish(t, a, topic, "from-a")
	wantPayloads(t, "same node", ra.wait(t, 1), "from-a")
	wantPayloads(t, "other node", rb.wait(t, 1), "from-a")

	publish(t, b, topic, "from-b")
	wantPayloads(t, "other node", ra.wait(t, 2), "from-a", "from-b")
	wantPayloads(t, "same node", rb.wait(t, 2), "from-a", "from-b")
}

func testOtherTopicsNotDelivered(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	b, _ := node()
	rx, ry := newRecorder(), newRecorder()
	subscribe(t, b, "topic.x", rx.handle)
	subscribe(t, b, "topic.y", ry.handle)
	subscribe(t, a, "topic.x", func([]byte) {}) // the publisher's node too

	// Published first from the same publisher: a payload wrongly routed to
	// topic.y would arrive before y1.
	publish(t, a, "topic.x", "x1")
	publish(t, a, "topic.none", "n1")
	publish(t, a, "topic.y", "y1")
	wantPayloads(t, "topic.y", ry.wait(t, 1), "y1")
	wantPayloads(t, "topic.x", rx.wait(t, 1), "x1")
	publish(t, a, "topic.x", "x2")
	wantPayloads(t, "topic.x", rx.wait(t, 2), "x1", "x2")
	wantPayloads(t, "topic.y", ry.snapshot(), "y1")
}

func testOrderFromOnePublisher(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	b, _ := node()
	const n = 500
	topic := "order"
	ra, rb := newRecorder(), newRecorder()
	subscribe(t, a, topic, ra.handle)
	subscribe(t, b, topic, rb.handle)
	want := make([]string, n)
	for i := range n {
		want[i] = strconv.Itoa(i)
		publish(t, a, topic, want[i])
	}
	wantPayloads(t, "same node", ra.wait(t, n), want...)
	wantPayloads(t, "other node", rb.wait(t, n), want...)
}

// testPublishBatch: a BatchPublisher's batches, mixed with single
// publishes from the same goroutine, arrive in order on every node, each
// topic getting its own; after Close every publication of a batch fails.
func testPublishBatch(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	bp, ok := a.(pubsub.BatchPublisher)
	if !ok {
		t.Skip("not a BatchPublisher")
	}
	b, _ := node()
	rx, ry := newRecorder(), newRecorder()
	subscribe(t, b, "batch.x", rx.handle)
	subscribe(t, b, "batch.y", ry.handle)
	var wantX, wantY []string
	for round := range 50 {
		var ps []pubsub.Publication
		for i := range round % 7 {
			x, y := fmt.Sprintf("x%d.%d", round, i), fmt.Sprintf("y%d.%d", round, i)
			ps = append(ps, pubsub.Publication{Topic: "batch.x", Payload: []byte(x)}, pubsub.Publication{Topic: "batch.y", Payload: []byte(y)})
			wantX, wantY = append(wantX, x), append(wantY, y)
		}
		if errs := bp.PublishBatch(ctxT(t), ps); errs != nil {
			t.Fatalf("PublishBatch: %v", errs)
		}
		single := fmt.Sprintf("x%d", round)
		publish(t, a, "batch.x", single)
		wantX = append(wantX, single)
	}
	wantPayloads(t, "batch.x", rx.wait(t, len(wantX)), wantX...)
	wantPayloads(t, "batch.y", ry.wait(t, len(wantY)), wantY...)

	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	errs := bp.PublishBatch(ctxT(t), []pubsub.Publication{{Topic: "batch.x", Payload: []byte("late")}, {Topic: "batch.y", Payload: []byte("late")}})
	if len(errs) != 2 || errs[0] == nil || errs[1] == nil {
		t.Fatalf("PublishBatch after Close = %v, want two errors", errs)
	}
}

func testConcurrentPublishers(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	const publishers, each = 4, 200
	sub, _ := node()
	r := newRecorder()
	subscribe(t, sub, "busy", r.handle)
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		b, _ := node()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := b.Publish(context.Background(), "busy", fmt.Appendf(nil, "%d:%d", p, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}
	got := r.wait(t, publishers*each)
	next := make([]int, publishers)
	for _, m := range got {
		var p, i int
		if _, err := fmt.Sscanf(string(m), "%d:%d", &p, &i); err != nil {
			t.Fatalf("bad payload %q", m)
		}
		if i != next[p] {
			t.Fatalf("publisher %d: got message %d, want %d (order not kept)", p, i, next[p])
		}
		next[p]++
	}
	if len(got) != publishers*each {
		t.Fatalf("got %d payloads, want %d", len(got), publishers*each)
	}
}

func testSubscribeActiveOnReturn(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	b, _ := node()
	for i := range 30 {
		topic := "fresh." + strconv.Itoa(i)
		ra, rb := newRecorder(), newRecorder()
		subscribe(t, b, topic, rb.handle)
		publish(t, a, topic, "p") // right after Subscribe returned, from another node
		subscribe(t, a, topic, ra.handle)
		publish(t, a, topic, "q") // and from the same node
		wantPayloads(t, "other node "+topic, rb.wait(t, 2), "p", "q")
		wantPayloads(t, "same node "+topic, ra.wait(t, 1), "q")
	}
}

func testSeveralSubscriptions(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	b, _ := node()
	topic := pubsub.TopicRevocations
	var rs []*recorder
	for range 3 {
		r := newRecorder()
		subscribe(t, b, topic, r.handle)
		rs = append(rs, r)
	}
	publish(t, a, topic, "one")
	publish(t, b, topic, "two")
	for i, r := range rs {
		wantPayloads(t, fmt.Sprintf("subscription %d", i), r.wait(t, 2), "one", "two")
	}
}

func testUnsubscribe(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	b, _ := node()
	topic := "unsub"
	r1, r2 := newRecorder(), newRecorder()
	s1 := subscribe(t, b, topic, r1.handle)
	s2 := subscribe(t, b, topic, r2.handle)
	publish(t, a, topic, "m1")
	r1.wait(t, 1)
	r2.wait(t, 1)

	s1.Unsubscribe()
	s1.Unsubscribe() // idempotent
	publish(t, a, topic, "m2")
	wantPayloads(t, "still subscribed", r2.wait(t, 2), "m1", "m2")
	wantPayloads(t, "unsubscribed", r1.snapshot(), "m1")

	// The last local subscription of the topic goes; a later one works again.
	s2.Unsubscribe()
	r3 := newRecorder()
	s3 := subscribe(t, b, topic, r3.handle)
	publish(t, a, topic, "m4")
	wantPayloads(t, "resubscribed", r3.wait(t, 1), "m4")
	wantPayloads(t, "unsubscribed", r2.snapshot(), "m1", "m2")
	s3.Unsubscribe()
	s2.Unsubscribe()
}

func testBlockedHandler(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	b, _ := node()
	topic := "slow"
	entered := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	r := newRecorder()
	subscribe(t, a, topic, func(p []byte) {
		r.handle(p)
		if calls.Add(1) == 1 {
			close(entered)
			<-release // a misbehaving handler, blocked until released
		}
	})
	rb := newRecorder()
	subscribe(t, b, topic, rb.handle)

	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	go func() { _ = a.Publish(context.Background(), topic, []byte("1")) }()
	select {
	case <-entered:
	case <-time.After(waitFor):
		t.Fatal("handler not called")
	}

	done := make(chan error, 1)
	go func() {
		for _, p := range []string{"2", "3"} {
			if err := a.Publish(context.Background(), topic, []byte(p)); err != nil {
				done <- err
				return
			}
		}
		done <- a.Publish(context.Background(), "elsewhere", []byte("x"))
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("Publish did not return within %v while a handler was blocked", waitFor)
	}
	close(release)
	released = true
	if got := r.wait(t, 3); len(got) != 3 || string(got[0]) != "1" || string(got[1]) != "2" || string(got[2]) != "3" {
		t.Fatalf("blocked subscriber: got %q, want 1, 2, 3", got)
	}
	// "1" and "2", "3" came from two goroutines: only "2" before "3" is kept.
	got := rb.wait(t, 3)
	var order []string
	for _, p := range got {
		if string(p) != "1" {
			order = append(order, string(p))
		}
	}
	if len(got) != 3 || len(order) != 2 || order[0] != "2" || order[1] != "3" {
		t.Fatalf("other subscriber: got %q, want 1, 2, 3 with 2 before 3", got)
	}
}

func testBinaryPayload(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	b, _ := node()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := bytes.Repeat([]byte("\x00\xff\r\n$*é"), 10000)
	payloads := [][]byte{all, {}, []byte("\xc3\x28 invalid utf-8 \x00"), big}
	ra, rb := newRecorder(), newRecorder()
	subscribe(t, a, "bin", ra.handle)
	subscribe(t, b, "bin", rb.handle)
	for _, p := range payloads {
		if err := a.Publish(ctxT(t), "bin", p); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	for _, r := range []*recorder{ra, rb} {
		got := r.wait(t, len(payloads))
		for i := range payloads {
			if !bytes.Equal(got[i], payloads[i]) {
				t.Fatalf("payload %d altered: got %d bytes %q..., want %d bytes", i, len(got[i]), trim(got[i]), len(payloads[i]))
			}
		}
	}
}

func trim(p []byte) []byte {
	if len(p) > 32 {
		return p[:32]
	}
	return p
}

func testClose(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	b, _ := node()
	var closed sync.Mutex // held while checking "called after Close"
	afterClose := false
	calledAfterClose := false
	subscribe(t, a, "closing", func([]byte) {
		closed.Lock()
		if afterClose {
			calledAfterClose = true
		}
		closed.Unlock()
	})
	rb := newRecorder()
	subscribe(t, b, "closing", rb.handle)

	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed.Lock()
	afterClose = true
	closed.Unlock()
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.Subscribe(ctxT(t), "closing", func([]byte) {}); err == nil {
		t.Fatal("Subscribe after Close succeeded")
	}
	if err := a.Publish(ctxT(t), "closing", []byte("x")); err == nil {
		t.Fatal("Publish after Close succeeded")
	}
	// b may be a itself (single-process backends): then it is closed too.
	if err := b.Publish(ctxT(t), "closing", []byte("after")); err == nil {
		wantPayloads(t, "open node", rb.wait(t, 1), "after")
	}
	closed.Lock()
	defer closed.Unlock()
	if calledAfterClose {
		t.Fatal("handler called after Close returned")
	}
}

func testPing(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	a, _ := node()
	if err := a.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func connect(t *testing.T, p pubsub.Presence, user, node string, wantFirst bool) {
	t.Helper()
	first, err := p.Connect(ctxT(t), user, node)
	if err != nil {
		t.Fatalf("Connect(%s, %s): %v", user, node, err)
	}
	if first != wantFirst {
		t.Fatalf("Connect(%s, %s) first = %v, want %v", user, node, first, wantFirst)
	}
}

func disconnect(t *testing.T, p pubsub.Presence, user, node string, at time.Time, wantLast bool) {
	t.Helper()
	last, err := p.Disconnect(ctxT(t), user, node, at)
	if err != nil {
		t.Fatalf("Disconnect(%s, %s): %v", user, node, err)
	}
	if last != wantLast {
		t.Fatalf("Disconnect(%s, %s) last = %v, want %v", user, node, last, wantLast)
	}
}

func lookup(t *testing.T, p pubsub.Presence, users ...string) map[string]pubsub.Status {
	t.Helper()
	st, err := p.Lookup(ctxT(t), users)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if len(st) != len(users) {
		t.Fatalf("Lookup(%q) returned %d entries: %v", users, len(st), st)
	}
	return st
}

// at is a last-seen time with millisecond precision, as api.md shows times.
func at(sec int) time.Time {
	return time.Date(2026, 11, 27, 10, 0, sec, 123e6, time.UTC)
}

func testPresenceAcrossNodes(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	_, pa := node()
	_, pb := node()
	connect(t, pa, "alice", "node-a", true)
	connect(t, pb, "alice", "node-b", false)
	if st := lookup(t, pb, "alice")["alice"]; !st.Online {
		t.Fatalf("alice: %+v, want online", st)
	}
	disconnect(t, pa, "alice", "node-a", at(1), false)
	if st := lookup(t, pa, "alice")["alice"]; !st.Online {
		t.Fatalf("alice after one node left: %+v, want online", st)
	}
	disconnect(t, pb, "alice", "node-b", at(2), true)
	st := lookup(t, pa, "alice")["alice"]
	if st.Online || !st.LastSeen.Equal(at(2)) {
		t.Fatalf("alice after last node left: %+v, want offline, last seen %v", st, at(2))
	}
	connect(t, pb, "alice", "node-b", true)
	if st := lookup(t, pa, "alice")["alice"]; !st.Online {
		t.Fatalf("alice back: %+v, want online", st)
	}
	disconnect(t, pb, "alice", "node-b", at(3), true)
	if st := lookup(t, pa, "alice")["alice"]; st.Online || !st.LastSeen.Equal(at(3)) {
		t.Fatalf("alice gone again: %+v, want offline, last seen %v", st, at(3))
	}
}

func testPresenceSameNodeTwice(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	_, p := node()
	connect(t, p, "bob", "node-a", true)
	connect(t, p, "bob", "node-a", false)
	disconnect(t, p, "bob", "node-a", at(5), true)
	if st := lookup(t, p, "bob")["bob"]; st.Online || !st.LastSeen.Equal(at(5)) {
		t.Fatalf("bob: %+v, want offline, last seen %v", st, at(5))
	}
}

func testPresenceLookup(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	_, pa := node()
	_, pb := node()
	connect(t, pa, "on1", "node-a", true)
	connect(t, pb, "on2", "node-b", true)
	connect(t, pb, "off", "node-b", true)
	disconnect(t, pb, "off", "node-b", at(7), true)

	st := lookup(t, pa, "on1", "on2", "off", "nobody")
	for _, u := range []string{"on1", "on2"} {
		if !st[u].Online {
			t.Fatalf("%s: %+v, want online", u, st[u])
		}
	}
	if st["off"].Online || !st["off"].LastSeen.Equal(at(7)) {
		t.Fatalf("off: %+v, want offline, last seen %v", st["off"], at(7))
	}
	if st["nobody"] != (pubsub.Status{}) {
		t.Fatalf("unknown user: %+v, want offline with zero last seen", st["nobody"])
	}
	if st, err := pa.Lookup(ctxT(t), nil); err != nil || len(st) != 0 {
		t.Fatalf("Lookup(nil) = %v, %v; want empty", st, err)
	}
}

func testPresenceRefresh(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	_, p := node()
	connect(t, p, "carol", "node-a", true)
	connect(t, p, "dave", "node-a", true)
	for range 3 {
		if missing, err := p.Refresh(ctxT(t), "node-a", []string{"carol", "dave"}); err != nil || len(missing) != 0 {
			t.Fatalf("Refresh = %q, %v; want nothing missing", missing, err)
		}
	}
	if missing, err := p.Refresh(ctxT(t), "node-a", nil); err != nil || len(missing) != 0 {
		t.Fatalf("Refresh(no users) = %q, %v", missing, err)
	}
	st := lookup(t, p, "carol", "dave")
	if !st["carol"].Online || !st["dave"].Online {
		t.Fatalf("after Refresh: %+v, want both online", st)
	}
	disconnect(t, p, "carol", "node-a", at(9), true)
	if st := lookup(t, p, "carol")["carol"]; st.Online {
		t.Fatalf("carol after Disconnect: %+v, want offline", st)
	}
}

// A node takes its list of users, one of them leaves (Disconnect, the
// offline transition reported), then the node's Refresh with the stale
// list arrives: it must not bring the user back, so that when the user
// returns Connect reports the online transition again (issue 8, defect 7).
func testPresenceStaleRefresh(t *testing.T, node func() (pubsub.Broker, pubsub.Presence)) {
	_, p := node()
	connect(t, p, "gail", "node-a", true)
	connect(t, p, "hank", "node-a", true)
	snapshot := []string{"gail", "hank"}
	disconnect(t, p, "gail", "node-a", at(11), true)
	missing, err := p.Refresh(ctxT(t), "node-a", snapshot)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if len(missing) != 1 || missing[0] != "gail" {
		t.Fatalf("Refresh missing = %q, want [gail]", missing)
	}
	st := lookup(t, p, "gail", "hank")
	if st["gail"].Online || !st["gail"].LastSeen.Equal(at(11)) {
		t.Fatalf("gail after a stale Refresh: %+v, want offline, last seen %v", st["gail"], at(11))
	}
	if !st["hank"].Online {
		t.Fatalf("hank: %+v, want online (still held and refreshed)", st["hank"])
	}
	connect(t, p, "gail", "node-a", true) // back: announced online again
}

// RunLinkLoss is the contract of a broker whose link to its backend can be
// lost (mempubsub has none): cut makes the backend go away and come back
// (a restart). Each node's OnReconnect listener is called, and once it was,
// each node's subscriptions are active again: a payload published after
// the call reaches every subscriber (api.md 1.1's resync relies on it).
// Nothing published while the link was down is promised.
func RunLinkLoss(t *testing.T, node func() (pubsub.Broker, pubsub.Presence), cut func()) {
	a, _ := node()
	b, _ := node()
	var reconnected [2]atomic.Bool
	a.OnReconnect(func() { reconnected[0].Store(true) })
	b.OnReconnect(func() { reconnected[1].Store(true) })
	ra, rb := newRecorder(), newRecorder()
	subscribe(t, a, "link", ra.handle)
	subscribe(t, b, "link", rb.handle)
	publish(t, a, "link", "before")
	ra.wait(t, 1)
	rb.wait(t, 1)
	if reconnected[0].Load() || reconnected[1].Load() {
		t.Fatal("OnReconnect called while the link was up")
	}
	cut()
	deadline := time.Now().Add(waitFor * 3)
	for !reconnected[0].Load() || !reconnected[1].Load() {
		if time.Now().After(deadline) {
			t.Fatalf("OnReconnect not called on both nodes within %s of the backend's return", waitFor*3)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Both listeners ran: a publish now reaches both subscriptions.
	ctx := ctxT(t)
	for {
		if err := a.Publish(ctx, "link", []byte("after")); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("Publish after the link came back: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // the publishing pool may still redial
	}
	for _, r := range []*recorder{ra, rb} {
		if got := r.wait(t, 2); string(got[len(got)-1]) != "after" {
			t.Fatalf("payloads %q, want the last to be \"after\"", got)
		}
	}
}
