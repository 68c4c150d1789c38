package redispubsub_test

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/pubsub/redispubsub"
)

// inbox records payloads for a handler.
type inbox struct {
	mu   sync.Mutex
	msgs []string
	ch   chan struct{}
}

func newInbox() *inbox { return &inbox{ch: make(chan struct{}, 1)} }

func (in *inbox) handle(p []byte) {
	in.mu.Lock()
	in.msgs = append(in.msgs, string(p))
	in.mu.Unlock()
	select {
	case in.ch <- struct{}{}:
	default:
	}
}

func (in *inbox) has(want string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, m := range in.msgs {
		if m == want {
			return true
		}
	}
	return false
}

// eventually calls cond until it holds, failing at the deadline.
func eventually(t *testing.T, what string, every time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(every)
	}
}

func TestResubscribeAfterRedisRestart(t *testing.T) {
	r := testserver.StartRedis(t)
	a := newBroker(t, redispubsub.Options{URL: r.URL(), NodeID: "a"})
	b := newBroker(t, redispubsub.Options{URL: r.URL(), NodeID: "b"})
	ctx := context.Background()
	inA, inB := newInbox(), newInbox()
	if _, err := a.Subscribe(ctx, "restart", inA.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(ctx, "restart", inB.handle); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "restart", []byte("before")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery before restart", 10*time.Millisecond, func() bool { return inA.has("before") && inB.has("before") })

	r.Stop()
	eventually(t, "Ping failing while Redis is down", 50*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return b.Ping(ctx) != nil
	})
	// A subscription made while Redis is down completes once it is back.
	inLate := newInbox()
	subscribed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := b.Subscribe(ctx, "late", inLate.handle)
		subscribed <- err
	}()
	r.Start()

	// Payloads published before the nodes resubscribed are lost (best
	// effort), so keep publishing until deliveries come back.
	i := 0
	eventually(t, "delivery after restart", 100*time.Millisecond, func() bool {
		i++
		_ = a.Publish(ctx, "restart", []byte("after"+strconv.Itoa(i)))
		return inA.has("after"+strconv.Itoa(i)) && inB.has("after"+strconv.Itoa(i))
	})
	if err := <-subscribed; err != nil {
		t.Fatalf("Subscribe across the restart: %v", err)
	}
	if err := a.Publish(ctx, "late", []byte("late1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery to the late subscription", 10*time.Millisecond, func() bool { return inLate.has("late1") })
	eventually(t, "Ping after restart", 50*time.Millisecond, func() bool { return b.Ping(ctx) == nil && a.Ping(ctx) == nil })
}

type expiry struct {
	user     string
	lastSeen time.Time
}

func TestDeadNodeExpires(t *testing.T) {
	r := testserver.StartRedis(t)
	const ttl = time.Second
	opt := func(node string) redispubsub.Options {
		return redispubsub.Options{URL: r.URL(), NodeID: node, PresenceTTL: ttl}
	}
	dead := newBroker(t, opt("dead"))
	b := newBroker(t, opt("b"))
	c := newBroker(t, opt("c"))
	var mu sync.Mutex
	var reports []expiry
	record := func(u string, ls time.Time) {
		mu.Lock()
		reports = append(reports, expiry{u, ls})
		mu.Unlock()
	}
	b.OnExpired(record)
	c.OnExpired(record)
	snapshot := func() []expiry {
		mu.Lock()
		defer mu.Unlock()
		return append([]expiry(nil), reports...)
	}
	ctx := context.Background()
	start := time.Now()

	mustConnect := func(p pubsub.Presence, user, node string, want bool) {
		t.Helper()
		first, err := p.Connect(ctx, user, node)
		if err != nil || first != want {
			t.Fatalf("Connect(%s, %s) = %v, %v; want %v", user, node, first, err, want)
		}
	}
	mustConnect(dead, "dave", "dead", true) // only on the dead node
	mustConnect(dead, "erin", "dead", true) // on the dead node and on b
	mustConnect(b, "erin", "b", false)      //
	mustConnect(b, "frank", "b", true)      // only on b, which stays alive
	if err := dead.Close(); err != nil {    // the node dies: no more Refresh
		t.Fatal(err)
	}

	refresh := func() {
		if _, err := b.Refresh(ctx, "b", []string{"erin", "frank"}); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
	}
	eventually(t, "dave reported offline", ttl/10, func() bool {
		refresh()
		return len(snapshot()) > 0
	})
	// Keep b alive through several more sweeps: nothing else may expire,
	// and dave must not be reported twice.
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); {
		refresh()
		time.Sleep(ttl / 10)
	}
	got := snapshot()
	if len(got) != 1 || got[0].user != "dave" {
		t.Fatalf("expiry reports = %+v, want dave once", got)
	}
	if ls := got[0].lastSeen; ls.Before(start.Add(-time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("dave last seen %v, before the test started (%v)", ls, start)
	}
	st, err := c.Lookup(ctx, []string{"dave", "erin", "frank"})
	if err != nil {
		t.Fatal(err)
	}
	if st["dave"].Online || !st["dave"].LastSeen.Equal(got[0].lastSeen) {
		t.Fatalf("dave: %+v, want offline, last seen %v", st["dave"], got[0].lastSeen)
	}
	if !st["erin"].Online || !st["frank"].Online {
		t.Fatalf("erin %+v, frank %+v: want online (b refreshes them)", st["erin"], st["frank"])
	}
	// The dead node's late Disconnect does not report dave again.
	if last, err := c.Disconnect(ctx, "dave", "dead", time.Now()); err != nil || last {
		t.Fatalf("late Disconnect(dave, dead) = %v, %v; want false", last, err)
	}
	// erin's entry from the dead node expired too; b's Disconnect is the last.
	if last, err := b.Disconnect(ctx, "erin", "b", time.Now()); err != nil || !last {
		t.Fatalf("Disconnect(erin, b) = %v, %v; want true", last, err)
	}
	// A user back on a live node after the dead node's entry expired is new.
	mustConnect(c, "dave", "c", true)
}

// TestExpiredEntryCountsAsAbsent: before any sweep, an expired entry of a
// dead node counts as absent for Lookup, Connect and Disconnect.
func TestExpiredEntryCountsAsAbsent(t *testing.T) {
	r := testserver.StartRedis(t)
	ctx := context.Background()
	short := newBroker(t, redispubsub.Options{URL: r.URL(), PresenceTTL: 300 * time.Millisecond})
	if first, err := short.Connect(ctx, "gina", "n1"); err != nil || !first {
		t.Fatalf("Connect = %v, %v", first, err)
	}
	_ = short.Close() // dies; its sweeper stops
	// This node's sweeper runs every 20 minutes: not during the test.
	long := newBroker(t, redispubsub.Options{URL: r.URL(), PresenceTTL: time.Hour})
	eventually(t, "gina's entry expired", 50*time.Millisecond, func() bool {
		st, err := long.Lookup(ctx, []string{"gina"})
		return err == nil && !st["gina"].Online
	})
	if first, err := long.Connect(ctx, "gina", "n2"); err != nil || !first {
		t.Fatalf("Connect after the other entry expired = %v, %v; want true", first, err)
	}
	if last, err := long.Disconnect(ctx, "gina", "n2", time.Now()); err != nil || !last {
		t.Fatalf("Disconnect = %v, %v; want true", last, err)
	}
}

// BenchmarkPublishDeliver: a message published on one node and delivered to
// a subscriber on another, through a real redis-server.
func BenchmarkPublishDeliver(b *testing.B) {
	r := testserver.StartRedis(b)
	pub := newBroker(b, redispubsub.Options{URL: r.URL()})
	sub := newBroker(b, redispubsub.Options{URL: r.URL()})
	ctx := context.Background()
	const topics = 100
	got := make(chan struct{}, 1024)
	for i := range topics {
		if _, err := sub.Subscribe(ctx, pubsub.UserTopic(strconv.Itoa(i)), func([]byte) { got <- struct{}{} }); err != nil {
			b.Fatal(err)
		}
	}
	payload := bytes.Repeat([]byte("x"), 200)
	b.ReportAllocs()
	b.SetParallelism(8) // many connections' goroutines publish at once
	b.ResetTimer()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range b.N {
			<-got
		}
	}()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if err := pub.Publish(ctx, pubsub.UserTopic(strconv.Itoa(i%topics)), payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
	wg.Wait()
}
