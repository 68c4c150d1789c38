// Package mempubsub is the in-process pubsub backend: a Broker and a Presence
// registry for a single chatd process (`--role=all` on a laptop).
//
// Publish calls the topic's handlers synchronously on the publisher's
// goroutine: no goroutine and no queue per message, and the order of one
// goroutine's Publish calls is kept. Handlers must not block (the pubsub
// contract); they may be called concurrently by different publishing
// goroutines.
package mempubsub

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/chatd/chatd/pubsub"
)

// ErrClosed is returned by Publish and Subscribe after Close.
var ErrClosed = errors.New("mempubsub: broker closed")

var (
	_ pubsub.Broker   = (*Broker)(nil)
	_ pubsub.Presence = (*Broker)(nil)
)

// Broker is an in-process pubsub.Broker that is also a pubsub.Presence.
// The zero value is not usable; call New.
type Broker struct {
	mu     sync.RWMutex
	topics map[string][]*subscription // slices are copy-on-write, never modified in place
	closed bool

	opt Options

	pmu       sync.Mutex
	users     map[string]*presenceEntry
	lastPrune time.Time // guarded by pmu
}

type presenceEntry struct {
	nodes    map[string]struct{}
	lastSeen time.Time
}

// Options configure a Broker; the zero value is the default.
type Options struct {
	// LastSeenRetention is how long an offline user's last-seen time is
	// kept; after it the user is forgotten (Lookup: offline, zero
	// LastSeen), so the map holds only users seen within it, not every
	// user ever seen. Default 30 days.
	LastSeenRetention time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// DefaultLastSeenRetention is Options.LastSeenRetention's default.
const DefaultLastSeenRetention = 30 * 24 * time.Hour

// New returns an empty Broker with the default options.
func New() *Broker { return NewWithOptions(Options{}) }

// NewWithOptions returns an empty Broker.
func NewWithOptions(opt Options) *Broker {
	if opt.LastSeenRetention <= 0 {
		opt.LastSeenRetention = DefaultLastSeenRetention
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Broker{
		topics: make(map[string][]*subscription),
		users:  make(map[string]*presenceEntry),
		opt:    opt,
	}
}

type subscription struct {
	*pubsub.GuardedHandler
	b     *Broker
	topic string
}

// Unsubscribe implements pubsub.Subscription. It waits for running calls
// of the handler to return, so it must not be called from inside the
// subscription's own handler.
func (s *subscription) Unsubscribe() {
	if s.Stop() {
		s.b.remove(s)
	}
}

func (b *Broker) remove(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	subs := b.topics[s.topic]
	for i, x := range subs {
		if x == s {
			if len(subs) == 1 {
				delete(b.topics, s.topic)
				return
			}
			n := make([]*subscription, 0, len(subs)-1)
			n = append(n, subs[:i]...)
			n = append(n, subs[i+1:]...)
			b.topics[s.topic] = n
			return
		}
	}
}

// Publish implements pubsub.Broker: it calls every handler of topic before
// returning. The context is not used (nothing here waits).
func (b *Broker) Publish(_ context.Context, topic string, payload []byte) error {
	b.mu.RLock()
	subs, closed := b.topics[topic], b.closed
	b.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	for _, s := range subs {
		s.Deliver(payload)
	}
	return nil
}

// Subscribe implements pubsub.Broker. The subscription is active at once.
func (b *Broker) Subscribe(_ context.Context, topic string, h pubsub.Handler) (pubsub.Subscription, error) {
	if h == nil {
		return nil, errors.New("mempubsub: subscribe: nil handler")
	}
	s := &subscription{GuardedHandler: pubsub.NewGuardedHandler(h), b: b, topic: topic}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	old := b.topics[topic]
	n := make([]*subscription, len(old), len(old)+1)
	copy(n, old)
	b.topics[topic] = append(n, s)
	return s, nil
}

// Ping implements pubsub.Broker; it fails only after Close.
func (b *Broker) Ping(context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return nil
}

// OnReconnect implements pubsub.Broker; an in-process broker has no link
// to lose, so fn is never called.
func (b *Broker) OnReconnect(func()) {}

// Close ends every subscription: no handler is called after it returns.
// It is idempotent. Presence data stays readable.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	topics := b.topics
	b.topics = make(map[string][]*subscription)
	b.mu.Unlock()
	for _, subs := range topics {
		for _, s := range subs {
			s.Stop()
		}
	}
	return nil
}

// Connect implements pubsub.Presence.
func (b *Broker) Connect(_ context.Context, userID, nodeID string) (bool, error) {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	b.pruneLocked()
	e := b.users[userID]
	if e == nil {
		e = &presenceEntry{}
		b.users[userID] = e
	}
	if e.nodes == nil {
		e.nodes = make(map[string]struct{}, 1)
	}
	first := len(e.nodes) == 0
	e.nodes[nodeID] = struct{}{}
	return first, nil
}

// Disconnect implements pubsub.Presence. last is true only when this call
// removed nodeID's entry and no other node holds the user, so one offline
// transition is reported once.
func (b *Broker) Disconnect(_ context.Context, userID, nodeID string, at time.Time) (bool, error) {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	b.pruneLocked()
	e := b.users[userID]
	if e == nil {
		return false, nil
	}
	if _, ok := e.nodes[nodeID]; !ok {
		return false, nil
	}
	delete(e.nodes, nodeID)
	if len(e.nodes) > 0 {
		return false, nil
	}
	e.lastSeen = at
	return true, nil
}

// Lookup implements pubsub.Presence.
func (b *Broker) Lookup(_ context.Context, userIDs []string) (map[string]pubsub.Status, error) {
	out := make(map[string]pubsub.Status, len(userIDs))
	b.pmu.Lock()
	defer b.pmu.Unlock()
	for _, id := range userIDs {
		if e := b.users[id]; e != nil {
			out[id] = pubsub.Status{Online: len(e.nodes) > 0, LastSeen: e.lastSeen}
		} else {
			out[id] = pubsub.Status{}
		}
	}
	return out, nil
}

// Refresh implements pubsub.Presence. Entries of one process never expire,
// so it only reports the users nodeID holds no entry for.
func (b *Broker) Refresh(_ context.Context, nodeID string, userIDs []string) ([]string, error) {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	var missing []string
	for _, id := range userIDs {
		e := b.users[id]
		if e == nil {
			missing = append(missing, id)
			continue
		}
		if _, ok := e.nodes[nodeID]; !ok {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

// OnExpired implements pubsub.Presence; entries of one process never
// expire, so fn is never called.
func (b *Broker) OnExpired(func(userID string, lastSeen time.Time)) {}

// PresenceEntries is the number of users the presence map holds (tests,
// metrics).
func (b *Broker) PresenceEntries() int {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	return len(b.users)
}

// pruneLocked forgets, at most every tenth of the retention, the offline
// users whose last-seen time is older than the retention. Called with pmu
// held by Connect and Disconnect, the calls that add entries.
func (b *Broker) pruneLocked() {
	now := b.opt.Now()
	if now.Sub(b.lastPrune) < b.opt.LastSeenRetention/10 {
		return
	}
	b.lastPrune = now
	for id, e := range b.users {
		if len(e.nodes) == 0 && now.Sub(e.lastSeen) > b.opt.LastSeenRetention {
			delete(b.users, id)
		}
	}
}
