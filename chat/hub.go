package chat

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// hub is this node's connections and what they hold, in parts with their
// own locks:
//   - conns (registry.go): the local connections, by user, by session, all;
//   - topics (topics.go): per user with a local connection, the node's one
//     broker subscription to the user's topic and the user's presence, with
//     the offline grace;
//   - typing: the rate of typing events per user and peer.
//
// register and unregister tie them together: a connection is in the
// registry only while it holds its user's topic entry.
type hub struct {
	s      *Service
	conns  *registry
	topics *userTopics
	typing *typingLimiter
}

func newHub(s *Service) *hub {
	conns := newRegistry(s.m)
	return &hub{
		s: s, conns: conns, topics: newUserTopics(s, conns),
		typing: &typingLimiter{interval: s.cfg.TypingInterval, last: make(map[string]map[string]time.Time)},
	}
}

// register makes sure the node is subscribed to c's user's topic, then adds
// c with hello as its first frame. When it returns nil every event
// published afterwards reaches c.
func (h *hub) register(ctx context.Context, c *conn, hello []byte) error {
	e, err := h.topics.acquire(ctx, c.userID)
	if err != nil {
		return err
	}
	c.topic = e
	h.conns.add(c, e.list, hello)
	if h.s.isClosing() { // Shutdown's closeAll may have run already
		c.requestClose(websocket.StatusGoingAway, "server shutting down")
	}
	return nil
}

// unregister removes c and releases its user's topic entry.
func (h *hub) unregister(c *conn) {
	if c.topic != nil && h.conns.remove(c, c.topic.list) {
		h.topics.release(c.topic)
	}
}

// typingLimiter forwards at most one typing event per user and peer per
// interval.
type typingLimiter struct {
	interval time.Duration

	mu   sync.Mutex
	last map[string]map[string]time.Time // user → peer → last forwarded
}

// allow reports whether a typing event of userID to peer may be forwarded
// now, and records it.
func (l *typingLimiter) allow(userID, peer string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	byPeer := l.last[userID]
	if byPeer == nil {
		byPeer = make(map[string]time.Time)
		l.last[userID] = byPeer
	}
	if t, ok := byPeer[peer]; ok && now.Sub(t) < l.interval {
		return false
	}
	byPeer[peer] = now
	return true
}

// prune forgets typing times older than the interval.
func (l *typingLimiter) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for user, byPeer := range l.last {
		for p, t := range byPeer {
			if now.Sub(t) >= l.interval {
				delete(byPeer, p)
			}
		}
		if len(byPeer) == 0 {
			delete(l.last, user)
		}
	}
}
