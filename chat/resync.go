package chat

import (
	"context"
	"time"
)

// resyncFrame is api.md 1.1's `resync`: the connection may have missed live
// events and its client runs the catch-up rule now. Every connection
// queues this same slice.
var resyncFrame = []byte(`{"type":"resync"}`)

// A node sends resync
//   - to each of its connections once its broker link is back (the broker
//     lost what was published meanwhile): Service.onBrokerReconnect;
//   - to a user's connections on this node when an event for that user
//     could not be published (Service.publishTo), and through the broker
//     to that user's connections on other nodes once it takes a
//     publication again (owedresync.go).
//
// Delivery to a local connection drops an event only when the connection
// is closing (a slow consumer is closed with 1013), so nothing else needs one.

// enqueueResync queues a resync frame unless one is queued and not yet
// written: that one already makes the client catch up after everything
// stored so far. A full queue closes the connection as enqueue does.
func (c *conn) enqueueResync() {
	c.mu.Lock()
	for _, it := range c.queue {
		if len(it.frame) > 0 && &it.frame[0] == &resyncFrame[0] {
			c.mu.Unlock()
			return
		}
	}
	c.mu.Unlock()
	if c.enqueue(resyncFrame, 0) {
		c.s.m.resyncs.Inc()
	}
}

// resyncUser queues a resync on every local connection of userID.
func (r *registry) resyncUser(userID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.byUser[userID]; l != nil {
		for _, c := range l.load() {
			c.enqueueResync()
		}
	}
}

// resyncAll queues a resync on every local connection.
func (r *registry) resyncAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.all {
		c.enqueueResync()
	}
}

// onBrokerReconnect runs when the broker link is back with every
// subscription active: each connection catches up on what the broker lost,
// and the presence entries the backend may have lost with it (a Redis
// restart) are connected again.
func (s *Service) onBrokerReconnect() {
	s.log.Info("broker link restored: sending resync to every connection")
	s.hub.conns.resyncAll()
	s.owed.wake() // the resyncs owed to other nodes' connections
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
		defer cancel()
		if err := s.hub.topics.refresh(ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("presence refresh after reconnect failed", "err", err)
		}
	}()
}

// publishFailureLogEvery bounds the WARN lines of failed publishes (one per
// failed publish during a broker outage would flood the log).
const publishFailureLogEvery = 5 * time.Second
