package redispubsub_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/pubsub/redispubsub"
)

// The readiness ping answers while every pooled connection waits on a
// command: under a reconnect storm through the gateway the node's
// /readyz failed with "redispubsub: ping: context deadline exceeded" (the
// ping queued for one of the pool's connections behind the storm's
// presence writes and publishes) and the gateway marked the replica
// unhealthy. Here the pool has two connections, CLIENT PAUSE WRITE holds
// the publishes on both (PING is not a write, so Redis itself answers
// it), and Ping must come back within /readyz's 0.5 s.
func TestPingWithPoolBusy(t *testing.T) {
	r := testserver.StartRedis(t)
	b := newBroker(t, redispubsub.Options{URL: r.URL() + "?pool_size=2&pool_timeout=5s", ChannelPrefix: "ping:"})
	admin := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer admin.Close()
	ctx := context.Background()
	const pause = 3 * time.Second
	if err := admin.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	defer admin.Do(ctx, "CLIENT", "UNPAUSE") // also when the test fails early

	var wg sync.WaitGroup
	for range 4 { // more than the pool holds
		wg.Go(func() {
			if err := b.Publish(ctx, "t", []byte("x")); err != nil {
				t.Errorf("publish: %v", err)
			}
		})
	}
	// Wait until Redis holds both of the pool's connections in the pause.
	for deadline := time.Now().Add(5 * time.Second); ; {
		info, err := admin.Info(ctx, "clients").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "blocked_clients:2\r\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the publishes did not reach the pause:\n%s", info)
		}
		time.Sleep(10 * time.Millisecond)
	}

	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := b.Ping(pctx); err != nil {
		t.Errorf("Ping with the pool busy: %v", err)
	}
	if err := admin.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	wg.Wait() // the publishes go through once the pause ends
}
