package redispubsub_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/pubsub/pubsubtest"
	"github.com/chatd/chatd/pubsub/redispubsub"
)

// newBroker returns a Broker on url, closed at t's cleanup.
func newBroker(t testing.TB, opt redispubsub.Options) *redispubsub.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redispubsub.New(ctx, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestContract(t *testing.T) {
	r := testserver.StartRedis(t)
	var n atomic.Int64
	pubsubtest.Run(t, func(t *testing.T) func() (pubsub.Broker, pubsub.Presence) {
		// A fresh backend per subtest: its own key and channel prefix on
		// the shared server.
		prefix := fmt.Sprintf("test%d:", n.Add(1))
		var nodes atomic.Int64
		return func() (pubsub.Broker, pubsub.Presence) {
			b := newBroker(t, redispubsub.Options{
				URL:           r.URL(),
				ChannelPrefix: prefix,
				NodeID:        fmt.Sprintf("node%d", nodes.Add(1)),
			})
			return b, b
		}
	})
}

// TestContractLinkLoss: redis-server restarted under two nodes.
func TestContractLinkLoss(t *testing.T) {
	r := testserver.StartRedis(t)
	var nodes atomic.Int64
	pubsubtest.RunLinkLoss(t, func() (pubsub.Broker, pubsub.Presence) {
		b := newBroker(t, redispubsub.Options{URL: r.URL(), ChannelPrefix: "link:", NodeID: fmt.Sprintf("node%d", nodes.Add(1))})
		return b, b
	}, func() {
		r.Stop()
		r.Start()
	})
}
