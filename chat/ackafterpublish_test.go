package chat

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/pubsub"
)

// slowPublishBroker takes a while over each publication, as a broker one
// round trip away does (Redis), and records each payload once the
// underlying broker took it. It is a pubsub.BatchPublisher, as Redis is.
type slowPublishBroker struct {
	pubsub.Broker
	mu   sync.Mutex
	done [][]byte
}

// publishDelay only makes the defect show: an ack queued before the
// publish would reach its sender well within it. Nothing is timed.
const publishDelay = 30 * time.Millisecond

func (b *slowPublishBroker) Publish(ctx context.Context, topic string, payload []byte) error {
	time.Sleep(publishDelay)
	err := b.Broker.Publish(ctx, topic, payload)
	b.mu.Lock()
	b.done = append(b.done, payload)
	b.mu.Unlock()
	return err
}

func (b *slowPublishBroker) PublishBatch(ctx context.Context, ps []pubsub.Publication) []error {
	time.Sleep(publishDelay)
	var errs []error
	for i, p := range ps {
		if err := b.Broker.Publish(ctx, p.Topic, p.Payload); err != nil {
			if errs == nil {
				errs = make([]error, len(ps))
			}
			errs[i] = err
		}
	}
	b.mu.Lock()
	for _, p := range ps {
		b.done = append(b.done, p.Payload)
	}
	b.mu.Unlock()
	return errs
}

// published reports how many recorded payloads name cmid.
func (b *slowPublishBroker) published(cmid string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, p := range b.done {
		if bytes.Contains(p, []byte(`"client_msg_id":"`+cmid+`"`)) {
			n++
		}
	}
	return n
}

// A WebSocket ack reaches its sender only after the broker took the
// message for both members' topics. Otherwise a node killed between the
// two leaves a live gap that nothing reports: the sender holds its ack and
// never retries, and the other nodes' broker links never broke, so no
// resync comes (docs/reliability.md, ReplicaKill; seen once in CI). Pipelined
// (SQLite) and one-at-a-time (mongostore) sends alike; REST always
// published before answering.
func TestAckAfterPublish(t *testing.T) {
	for _, syncStore := range []bool{false, true} {
		t.Run(fmt.Sprintf("syncStore=%v", syncStore), func(t *testing.T) {
			slow := &slowPublishBroker{}
			e := newTestEnvWith(t, nil, func(e *testEnv) {
				e.syncStore = syncStore
				e.wrapBroker = func(b pubsub.Broker) pubsub.Broker { slow.Broker = b; return slow }
			})
			alice, bob := e.user("alice"), e.user("bob")
			a, b := e.dial(alice), e.dial(bob)
			const count = 20
			for i := range count {
				a.send(bob, "first the broker", fmt.Sprintf("aap-%d", i))
			}
			for range count {
				ack, _ := a.nextOf("ack")
				cmid := ack.str("client_msg_id")
				if n := slow.published(cmid); n != 2 {
					t.Fatalf("ack of %s came with %d of its 2 publications done", cmid, n)
				}
			}
			got := b.until(func(f frame) bool {
				return f.typ() == "message" && f.obj("message").str("client_msg_id") == fmt.Sprintf("aap-%d", count-1)
			})
			if msgs := uniqueBySeq(got); len(msgs) != count {
				t.Fatalf("bob got %d messages, want %d", len(msgs), count)
			}
		})
	}
}
