package pubsub

import "sync"

// GuardedHandler wraps a subscription's Handler for broker backends: Stop
// waits for calls in progress and no call starts after it, which is how a
// backend keeps Subscription.Unsubscribe's promise. Concurrent Deliver
// calls run the handler concurrently.
type GuardedHandler struct {
	h       Handler
	mu      sync.RWMutex // read-held around each call, write-held by Stop
	stopped bool
}

// NewGuardedHandler returns a guard around h.
func NewGuardedHandler(h Handler) *GuardedHandler { return &GuardedHandler{h: h} }

// Deliver calls the handler unless Stop was called.
func (g *GuardedHandler) Deliver(payload []byte) {
	g.mu.RLock()
	if !g.stopped {
		g.h(payload)
	}
	g.mu.RUnlock()
}

// Stop waits for running calls to return and prevents new ones. It reports
// whether this call stopped the guard (false if it was stopped already).
// It must not be called from inside the handler.
func (g *GuardedHandler) Stop() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	first := !g.stopped
	g.stopped = true
	return first
}
