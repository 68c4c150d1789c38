package chat

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/chatd/chatd/pubsub"
)

// A publication that failed leaves a gap for every connection of its user,
// on every node: this node's connections get a resync at once
// (publishFailed), but another node's broker link may be fine (this node's
// PUBLISH timed out, or only its own link broke), so nothing would tell
// its connections. The node therefore owes those users a resync through
// the broker: an envResync envelope on each one's topic, which every node
// turns into a resync on that user's connections (connList.deliver). The
// owed users are published again once a second until the broker takes
// them, and at once when the broker link comes back.

// owedRetry is how often owed resyncs are published again while the
// broker refuses them.
const owedRetry = time.Second

// resyncEnvelope is the payload of an owed resync: a header, no frame.
var resyncEnvelope = newEnvelope(envResync, 0, 0)

// owedResyncs is the set of users whose topic a publication failed on and
// who have not been sent a resync through the broker since.
type owedResyncs struct {
	mu    sync.Mutex
	users map[string]struct{}
	kick  chan struct{} // capacity 1: something to publish
}

func newOwedResyncs() *owedResyncs {
	return &owedResyncs{users: make(map[string]struct{}), kick: make(chan struct{}, 1)}
}

// add records that userID is owed a resync and wakes the publisher.
func (o *owedResyncs) add(userID string) {
	o.mu.Lock()
	o.users[userID] = struct{}{}
	o.mu.Unlock()
	o.wake()
}

func (o *owedResyncs) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// addAll records ids as owed again, without a wake-up (publishOwed's retry).
func (o *owedResyncs) addAll(ids []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		o.users[id] = struct{}{}
	}
}

// take empties the set and returns what it held.
func (o *owedResyncs) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := slices.Collect(maps.Keys(o.users))
	clear(o.users)
	return ids
}

// owedResyncLoop publishes the owed resyncs until the service's context
// ends: on a wake-up, and again owedRetry later while some are refused (no
// timer runs while nothing is owed).
func (s *Service) owedResyncLoop() {
	retry := time.NewTimer(owedRetry)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.owed.kick:
		case <-retry.C:
		}
		if s.publishOwed() {
			retry.Reset(owedRetry)
		}
	}
}

// publishOwed publishes a resync on the topic of each owed user, in one
// batch when the broker takes batches. One at a time, it stops at the
// first refusal: that user and the ones not tried yet stay owed
// for the next round (a broker that is down refuses them all, each after
// up to opTimeout). It does not call publishFailed: the user's local
// connections had their resync when the gap began. It reports whether
// some stay owed.
func (s *Service) publishOwed() (left bool) {
	ids := s.owed.take()
	if len(ids) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	defer cancel()
	if bp, ok := s.broker.(pubsub.BatchPublisher); ok && len(ids) > 1 {
		// One round trip (Redis) for all: after an outage they may be many.
		ps := make([]pubsub.Publication, len(ids))
		for i, id := range ids {
			ps[i] = pubsub.Publication{Topic: pubsub.UserTopic(id), Payload: resyncEnvelope}
		}
		var again []string
		for i, err := range bp.PublishBatch(ctx, ps) {
			if err != nil {
				again = append(again, ids[i])
			}
		}
		s.owed.addAll(again)
		return len(again) > 0
	}
	for i, id := range ids {
		if err := s.broker.Publish(ctx, pubsub.UserTopic(id), resyncEnvelope); err != nil {
			s.owed.addAll(ids[i:])
			return true
		}
	}
	return false
}
