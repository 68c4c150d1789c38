package redispubsub_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/pubsub/redispubsub"
)

// A process without the chat role (auth, in the compose topology) has a
// broker with no OnExpired listener. Its sweeper must leave a dead node's
// expired users to a broker that has a listener, which reports them (issue
// 8, defect 4: the listener-less sweeper removed them and told nobody, so
// a crashed replica's users stayed online for their peers).
func TestSweeperWithoutListenerLeavesExpiriesToChatNodes(t *testing.T) {
	r := testserver.StartRedis(t)
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	opt := func(node string) redispubsub.Options {
		return redispubsub.Options{URL: r.URL(), PresenceTTL: ttl, NodeID: node}
	}
	newBroker(t, opt("auth")) // sweeps every ttl/3, reports to nobody
	dead := newBroker(t, opt("dead"))
	if first, err := dead.Connect(ctx, "ivan", "dead"); err != nil || !first {
		t.Fatalf("Connect = %v, %v", first, err)
	}
	_ = dead.Close() // the replica crashes: no more Refresh
	// Leave the auth process's sweeper many rounds past ivan's expiry.
	time.Sleep(10 * ttl)

	chat := newBroker(t, opt("chat"))
	var (
		mu  sync.Mutex
		got []string
	)
	chat.OnExpired(func(u string, _ time.Time) {
		mu.Lock()
		got = append(got, u)
		mu.Unlock()
	})
	eventually(t, "ivan reported offline to the chat node", ttl/10, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1 && got[0] == "ivan"
	})
}
