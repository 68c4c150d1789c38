package mempubsub_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/pubsub/mempubsub"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// The in-process presence map forgets offline users once their last-seen
// time is older than the retention, instead of keeping every user ever
// seen (issue 8, defect 9); online users and recent ones stay.
func TestOfflineUsersExpire(t *testing.T) {
	clk := &fakeClock{now: testTime}
	b := mempubsub.NewWithOptions(mempubsub.Options{LastSeenRetention: time.Hour, Now: clk.Now})
	ctx := context.Background()
	const n = 1000
	var old []string
	for i := range n {
		u := "old" + strconv.Itoa(i)
		old = append(old, u)
		if _, err := b.Connect(ctx, u, "n1"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Disconnect(ctx, u, "n1", clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Connect(ctx, "online", "n1"); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Hour)
	// Activity after the retention passed prunes the old entries.
	if _, err := b.Connect(ctx, "recent", "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Disconnect(ctx, "recent", "n1", clk.Now()); err != nil {
		t.Fatal(err)
	}
	st, err := b.Lookup(ctx, append(old, "online", "recent"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range old {
		if !st[u].LastSeen.IsZero() || st[u].Online {
			t.Fatalf("%s: %+v, want forgotten (offline, zero last seen)", u, st[u])
		}
	}
	if !st["online"].Online || !st["recent"].LastSeen.Equal(clk.Now()) {
		t.Fatalf("online %+v, recent %+v: want kept", st["online"], st["recent"])
	}
	if got := b.PresenceEntries(); got != 2 {
		t.Fatalf("%d presence entries, want 2 (online, recent)", got)
	}
}
