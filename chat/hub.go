package chat

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/pubsub"
	"github.com/coder/websocket"
)

// hub holds this node's connections, grouped by user. Each user with a
// local connection has one userEntry holding the node's single broker
// subscription to the user's topic; its handler hands each payload's frame
// to every local connection of the user without taking the hub lock.
//
// Presence: an entry is created on the user's first local connection
// (presence.Connect); when its last connection goes, a timer waits
// OfflineGrace and then retires the entry (unsubscribe, presence.Disconnect,
// offline event). A connection arriving meanwhile cancels the timer and
// reuses the entry and its subscription.
type hub struct {
	s *Service

	mu       sync.Mutex
	users    map[string]*userEntry
	sessions map[string]map[*conn]struct{}
	all      map[*conn]struct{}
}

type userEntry struct {
	userID string
	// conns is the copy-on-write list the delivery handler reads.
	conns atomic.Pointer[[]*conn]

	// Guarded by hub.mu.
	n        int // len(*conns)
	pending  int // connections waiting for ready
	gen      uint64
	timer    *time.Timer
	closing  bool          // being retired: new connections wait for retired
	retired  chan struct{} // closed once the entry left the map
	ready    chan struct{} // closed once setup finished (err set)
	err      error
	sub      pubsub.Subscription
	typingAt map[string]time.Time // last forwarded typing event per peer
}

func newHub(s *Service) *hub {
	return &hub{
		s:        s,
		users:    make(map[string]*userEntry),
		sessions: make(map[string]map[*conn]struct{}),
		all:      make(map[*conn]struct{}),
	}
}

// deliver is the broker handler of one user's topic. It never blocks: every
// enqueue is non-blocking.
func (e *userEntry) deliver(m *metrics, payload []byte) {
	kind, except, frame, ok := parseEnvelope(payload)
	if !ok {
		return
	}
	p := e.conns.Load()
	if p == nil {
		return
	}
	n := 0
	for _, c := range *p {
		if c.id != except && c.enqueue(frame, 0) {
			n++
		}
	}
	if kind == envMessage && n > 0 {
		m.delivered.Add(float64(n))
	}
}

// register adds c to its user's entry, making sure the node is subscribed
// to the user's topic first, and queues hello as c's first frame. When it
// returns nil every event published afterwards reaches c.
func (h *hub) register(ctx context.Context, c *conn, hello []byte) error {
	for {
		h.mu.Lock()
		e := h.users[c.userID]
		if e != nil && e.closing {
			ch := e.retired
			h.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		created := false
		if e == nil {
			e = &userEntry{userID: c.userID, ready: make(chan struct{}), retired: make(chan struct{})}
			h.users[c.userID] = e
			created = true
		}
		e.pending++
		if e.timer != nil {
			e.timer.Stop()
			e.gen++ // a timer that fired already finds a newer generation
		}
		h.mu.Unlock()

		if created {
			err := h.setup(ctx, e)
			h.mu.Lock()
			e.err = err
			if err != nil && h.users[c.userID] == e {
				delete(h.users, c.userID) // the next connection tries again
				close(e.retired)
			}
			h.mu.Unlock()
			close(e.ready)
		} else {
			select {
			case <-e.ready:
			case <-ctx.Done():
				h.mu.Lock()
				e.pending--
				h.maybeRetireLocked(e)
				h.mu.Unlock()
				return ctx.Err()
			}
		}

		h.mu.Lock()
		e.pending--
		if e.err != nil {
			h.mu.Unlock()
			return e.err
		}
		c.enqueue(hello, 0) // first frame; the writer has not started yet
		old := e.conns.Load()
		var list []*conn
		if old != nil {
			list = make([]*conn, 0, len(*old)+1)
			list = append(list, *old...)
		}
		list = append(list, c)
		e.conns.Store(&list)
		e.n = len(list)
		c.entry = e
		if h.sessions[c.sessionID] == nil {
			h.sessions[c.sessionID] = make(map[*conn]struct{})
		}
		h.sessions[c.sessionID][c] = struct{}{}
		h.all[c] = struct{}{}
		if h.s.isClosing() { // Shutdown's closeAll may have run already
			c.requestClose(websocket.StatusGoingAway, "server shutting down")
		}
		h.mu.Unlock()
		h.s.m.connections.Inc()
		return nil
	}
}

// setup subscribes the node to the user's topic and reports the user
// online to the cluster, announcing it to its peers when it came online.
func (h *hub) setup(ctx context.Context, e *userEntry) error {
	s := h.s
	m := s.m
	sub, err := s.broker.Subscribe(ctx, pubsub.UserTopic(e.userID), func(p []byte) { e.deliver(m, p) })
	if err != nil {
		return fmt.Errorf("chat: subscribe user topic: %w", err)
	}
	e.sub = sub // read by others only after ready is closed or under the lock
	first, err := s.presence.Connect(ctx, e.userID, s.node)
	if err != nil {
		s.log.Warn("presence connect failed", "err", err)
		return nil // presence is best effort; delivery works
	}
	if first {
		s.publishPresence(ctx, e.userID, pubsub.Status{Online: true})
	}
	return nil
}

// unregister removes c; the user's last connection arms the offline timer.
func (h *hub) unregister(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.all[c]; !ok {
		return
	}
	delete(h.all, c)
	if set := h.sessions[c.sessionID]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(h.sessions, c.sessionID)
		}
	}
	h.s.m.connections.Dec()
	e := c.entry
	old := *e.conns.Load()
	list := make([]*conn, 0, len(old))
	for _, x := range old {
		if x != c {
			list = append(list, x)
		}
	}
	e.conns.Store(&list)
	e.n = len(list)
	h.maybeRetireLocked(e)
}

// maybeRetireLocked arms the offline timer of an entry left without
// connections.
func (h *hub) maybeRetireLocked(e *userEntry) {
	if e.n > 0 || e.pending > 0 || e.closing || h.users[e.userID] != e {
		return
	}
	e.gen++
	gen := e.gen
	grace := h.s.cfg.OfflineGrace
	if e.timer != nil {
		e.timer.Stop()
	}
	e.timer = time.AfterFunc(grace, func() { h.retire(e, gen) })
}

// retire ends an entry whose grace period passed without a reconnect.
func (h *hub) retire(e *userEntry, gen uint64) {
	h.mu.Lock()
	if h.users[e.userID] != e || e.gen != gen || e.n > 0 || e.pending > 0 || e.closing {
		h.mu.Unlock()
		return
	}
	e.closing = true
	h.mu.Unlock()
	h.finish(e)
}

// finish unsubscribes a closing entry, reports the user gone from this node
// and, if it was the last, announces it offline.
func (h *hub) finish(e *userEntry) {
	s := h.s
	if e.sub != nil {
		e.sub.Unsubscribe()
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	now := time.Now()
	last, err := s.presence.Disconnect(ctx, e.userID, s.node, now)
	if err != nil {
		s.log.Warn("presence disconnect failed", "err", err)
	} else if last {
		s.publishPresence(ctx, e.userID, pubsub.Status{Online: false, LastSeen: now})
	}
	h.mu.Lock()
	if h.users[e.userID] == e {
		delete(h.users, e.userID)
	}
	close(e.retired)
	h.mu.Unlock()
}

// flushOffline retires at once every entry waiting for its grace period
// (node shutdown) and waits for those being retired already.
func (h *hub) flushOffline(ctx context.Context) {
	h.mu.Lock()
	var todo []*userEntry
	var busy []chan struct{}
	for _, e := range h.users {
		switch {
		case e.closing:
			busy = append(busy, e.retired)
		case e.n == 0 && e.pending == 0:
			if e.timer != nil {
				e.timer.Stop()
			}
			e.closing = true
			todo = append(todo, e)
		}
	}
	h.mu.Unlock()
	for _, e := range todo {
		if ctx.Err() != nil {
			return
		}
		h.finish(e)
	}
	for _, ch := range busy {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// closeSession closes every local connection of session sid.
func (h *hub) closeSession(sid string, code websocket.StatusCode, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.sessions[sid] {
		c.requestClose(code, reason)
	}
}

// closeAll closes every local connection.
func (h *hub) closeAll(code websocket.StatusCode, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.all {
		c.requestClose(code, reason)
	}
}

// sweep runs every second: it pings connections due for one, and closes
// idle connections and connections whose token expired.
func (h *hub) sweep(now time.Time) {
	hb := h.s.cfg.Heartbeat
	nowMono := h.s.mono(now)
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.all {
		switch {
		case now.After(c.expires):
			c.requestClose(4001, "session expired")
		case nowMono-c.lastSeen.Load() > int64(2*hb):
			c.requestClose(websocket.StatusPolicyViolation, "idle timeout")
		case nowMono-c.lastPing >= int64(hb) && !c.pinging.Load():
			c.lastPing = nowMono
			go c.ping(hb)
		}
	}
}

// localSessions lists the sessions that have a socket on this node.
func (h *hub) localSessions() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.sessions))
	for sid := range h.sessions {
		out = append(out, sid)
	}
	return out
}

// localUsers lists the users this node holds (for presence.Refresh).
func (h *hub) localUsers() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.users))
	for id, e := range h.users {
		if !e.closing {
			out = append(out, id)
		}
	}
	return out
}

// allowTyping reports whether a typing event of userID to peer may be
// forwarded now (at most one per TypingInterval), and records it.
func (h *hub) allowTyping(c *conn, peer string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := c.entry
	if e.typingAt == nil {
		e.typingAt = make(map[string]time.Time)
	}
	if last, ok := e.typingAt[peer]; ok && now.Sub(last) < h.s.cfg.TypingInterval {
		return false
	}
	e.typingAt[peer] = now
	return true
}

// pruneTyping forgets typing times older than the interval.
func (h *hub) pruneTyping(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.users {
		for p, t := range e.typingAt {
			if now.Sub(t) >= h.s.cfg.TypingInterval {
				delete(e.typingAt, p)
			}
		}
	}
}
