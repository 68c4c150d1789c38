package chat

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chatd/chatd/pubsub"
)

// userTopics is the lifecycle of what this node holds in the cluster for
// each user with a local connection: one broker subscription to the user's
// topic, delivering to the user's connection list (registry.go), and the
// user's presence on this node.
//
// The first acquire of a user subscribes and reports the user connected
// (presence.Connect, and an online event when the user came online). When
// the last holder releases the entry a timer waits OfflineGrace, then
// retires it (unsubscribe, presence.Disconnect, offline event when it was
// the user's last node). An acquire meanwhile cancels the timer and reuses
// the entry; one during the retirement waits for it to finish, then starts
// afresh.
type userTopics struct {
	s     *Service
	conns *registry

	mu      sync.Mutex
	entries map[string]*topicEntry
}

// topicEntry is one user's subscription and presence on this node.
type topicEntry struct {
	userID string
	list   *connList // where the subscription delivers

	// Guarded by userTopics.mu.
	refs    int // holders: connections registered or waiting for ready
	gen     uint64
	timer   *time.Timer
	closing bool          // being retired: acquires wait for retired
	retired chan struct{} // closed once the entry left the map
	ready   chan struct{} // closed once setup finished (err set)
	err     error
	sub     pubsub.Subscription

	// presMu orders this entry's presence calls (Connect in setup and
	// reconnect, Disconnect in finish), so a late Connect never lands after
	// the Disconnect that retired the entry.
	presMu sync.Mutex
}

func newUserTopics(s *Service, conns *registry) *userTopics {
	return &userTopics{s: s, conns: conns, entries: make(map[string]*topicEntry)}
}

// acquire returns userID's entry once the node is subscribed to the user's
// topic, holding it for the caller until release. When it returns, every
// event published afterwards reaches the entry's list.
func (t *userTopics) acquire(ctx context.Context, userID string) (*topicEntry, error) {
	for {
		t.mu.Lock()
		e := t.entries[userID]
		if e != nil && e.closing {
			ch := e.retired
			t.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		created := false
		if e == nil {
			e = &topicEntry{userID: userID, list: t.conns.list(userID), ready: make(chan struct{}), retired: make(chan struct{})}
			t.entries[userID] = e
			created = true
		}
		e.refs++
		if e.timer != nil {
			e.timer.Stop()
			e.gen++ // a timer that fired already finds a newer generation
		}
		t.mu.Unlock()

		if created {
			err := t.setup(ctx, e)
			t.mu.Lock()
			e.err = err
			if err != nil && t.entries[userID] == e {
				delete(t.entries, userID) // the next connection tries again
				close(e.retired)
			}
			t.mu.Unlock()
			if err != nil {
				t.conns.drop(userID, e.list)
			}
			close(e.ready)
		} else {
			select {
			case <-e.ready:
			case <-ctx.Done():
				t.release(e)
				return nil, ctx.Err()
			}
		}
		if e.err != nil { // set before ready was closed
			t.release(e) // the entry has left the map: nothing to retire
			return nil, e.err
		}
		return e, nil
	}
}

// setup subscribes the node to the user's topic and reports the user
// online to the cluster, announcing it to its peers when it came online.
func (t *userTopics) setup(ctx context.Context, e *topicEntry) error {
	s := t.s
	m, list := s.m, e.list
	sub, err := s.broker.Subscribe(ctx, pubsub.UserTopic(e.userID), func(p []byte) { list.deliver(m, s.tracer, p) })
	if err != nil {
		return fmt.Errorf("chat: subscribe user topic: %w", err)
	}
	e.sub = sub // read by others only after ready is closed or under the lock
	e.presMu.Lock()
	first, err := s.presence.Connect(ctx, e.userID, s.node)
	e.presMu.Unlock()
	if err != nil {
		s.log.Warn("presence connect failed", "err", err)
		return nil // presence is best effort; delivery works
	}
	if first {
		s.publishPresence(ctx, e.userID, pubsub.Status{Online: true})
	}
	return nil
}

// release gives back one hold of e; the last arms the offline timer.
func (t *userTopics) release(e *topicEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e.refs--
	if e.refs > 0 || e.closing || t.entries[e.userID] != e {
		return
	}
	e.gen++
	gen := e.gen
	if e.timer != nil {
		e.timer.Stop()
	}
	e.timer = time.AfterFunc(t.s.cfg.OfflineGrace, func() { t.retire(e, gen) })
}

// retire ends an entry whose grace period passed without a new holder.
func (t *userTopics) retire(e *topicEntry, gen uint64) {
	t.mu.Lock()
	if t.entries[e.userID] != e || e.gen != gen || e.refs > 0 || e.closing {
		t.mu.Unlock()
		return
	}
	e.closing = true
	t.mu.Unlock()
	t.finish(e)
}

// finish unsubscribes a closing entry, reports the user gone from this node
// and, if it was the last, announces it offline.
func (t *userTopics) finish(e *topicEntry) {
	s := t.s
	if e.sub != nil {
		e.sub.Unsubscribe()
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	now := time.Now()
	e.presMu.Lock()
	last, err := s.presence.Disconnect(ctx, e.userID, s.node, now)
	e.presMu.Unlock()
	if err != nil {
		s.log.Warn("presence disconnect failed", "err", err)
	} else if last {
		s.publishPresence(ctx, e.userID, pubsub.Status{Online: false, LastSeen: now})
	}
	t.conns.drop(e.userID, e.list)
	t.mu.Lock()
	if t.entries[e.userID] == e {
		delete(t.entries, e.userID)
	}
	close(e.retired)
	t.mu.Unlock()
}

// flushOffline retires at once every entry waiting for its grace period
// (node shutdown) and waits for those being retired already.
func (t *userTopics) flushOffline(ctx context.Context) {
	t.mu.Lock()
	var todo []*topicEntry
	var busy []chan struct{}
	for _, e := range t.entries {
		switch {
		case e.closing:
			busy = append(busy, e.retired)
		case e.refs == 0:
			if e.timer != nil {
				e.timer.Stop()
			}
			e.closing = true
			todo = append(todo, e)
		}
	}
	t.mu.Unlock()
	for _, e := range todo {
		if ctx.Err() != nil {
			return
		}
		t.finish(e)
	}
	for _, ch := range busy {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// users lists the users this node holds (for presence.Refresh).
func (t *userTopics) users() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.entries))
	for id, e := range t.entries {
		if !e.closing {
			out = append(out, id)
		}
	}
	return out
}

// refresh renews this node's presence entries of the users it holds, and
// connects again those the registry no longer has (expired and swept, or
// lost with a broker restart) while the node still holds them, announcing
// them online when they came back online. A user who left after the list
// was taken is not brought back: the registry renews only existing
// entries, and reconnect skips an entry being retired.
func (t *userTopics) refresh(ctx context.Context) error {
	missing, err := t.s.presence.Refresh(ctx, t.s.node, t.users())
	if err != nil {
		return err
	}
	for _, id := range missing {
		t.reconnect(ctx, id)
	}
	return nil
}

// reconnect reports userID connected on this node again if the node still
// holds it, under the entry's presence lock (see topicEntry.presMu).
func (t *userTopics) reconnect(ctx context.Context, userID string) {
	t.mu.Lock()
	e := t.entries[userID]
	t.mu.Unlock()
	if e == nil {
		return
	}
	select {
	case <-e.ready:
	default:
		return // setup is connecting it
	}
	if e.err != nil {
		return
	}
	e.presMu.Lock()
	defer e.presMu.Unlock()
	t.mu.Lock()
	held := t.entries[userID] == e && !e.closing
	t.mu.Unlock()
	if !held {
		return
	}
	s := t.s
	first, err := s.presence.Connect(ctx, userID, s.node)
	if err != nil {
		s.log.Warn("presence connect failed", "err", err)
		return
	}
	if first {
		s.publishPresence(ctx, userID, pubsub.Status{Online: true})
	}
}
