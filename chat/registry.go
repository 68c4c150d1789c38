package chat

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// registry is this node's local WebSocket connections: by user (the list
// each user's topic delivers to), by session (revocations) and all (sweeps,
// shutdown). It knows nothing of the broker or presence: the hub adds a
// connection once it holds its user's topic entry (topics.go) and removes
// it before releasing that entry.
type registry struct {
	m *metrics

	mu        sync.Mutex
	byUser    map[string]*connList
	bySession map[string]map[*conn]struct{}
	all       map[*conn]struct{}
}

func newRegistry(m *metrics) *registry {
	return &registry{
		m:         m,
		byUser:    make(map[string]*connList),
		bySession: make(map[string]map[*conn]struct{}),
		all:       make(map[*conn]struct{}),
	}
}

// connList is one user's local connections, copy on write: the delivery
// handler of the user's topic reads it without a lock.
type connList struct {
	conns atomic.Pointer[[]*conn]
}

func (l *connList) load() []*conn {
	if p := l.conns.Load(); p != nil {
		return *p
	}
	return nil
}

// deliver hands a broker payload's frame to every connection of the list
// but the one it names. It never blocks: every enqueue is non-blocking.
func (l *connList) deliver(m *metrics, tr trace.Tracer, payload []byte) {
	kind, except, frame, ok := parseEnvelope(payload)
	if !ok {
		return
	}
	if kind == envResync { // another node failed to publish to this user (owedresync.go)
		for _, c := range l.load() {
			c.enqueueResync()
		}
		return
	}
	ctx, span := traceDeliver(tr, payload) // nil unless a traced message (tracing.go)
	n := 0
	for _, c := range l.load() {
		if c.id == except {
			continue
		}
		if ctx == nil {
			if c.enqueue(frame, 0) {
				n++
			}
			continue
		}
		ws := startWrite(tr, ctx, c.id)
		if c.enqueueSpan(frame, 0, ws) {
			n++
		} else {
			endWrite(ws, "connection closing")
		}
	}
	if span != nil {
		span.SetAttributes(attribute.Int("chat.connections", n))
		span.End()
	}
	if kind == envMessage && n > 0 {
		m.delivered.Add(float64(n))
	}
}

// list returns userID's connection list, making it on first use. It stays
// the same list, empty or not, until drop: a topic subscription delivers to
// it from before the user's first connection is added until after the last
// is gone.
func (r *registry) list(userID string) *connList {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.byUser[userID]
	if l == nil {
		l = new(connList)
		r.byUser[userID] = l
	}
	return l
}

// drop forgets l, userID's list, once nothing delivers to it any more.
func (r *registry) drop(userID string, l *connList) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byUser[userID] == l && len(l.load()) == 0 {
		delete(r.byUser, userID)
	}
}

// add queues hello as c's first frame, adds c to l, its user's list, and to
// the session and node sets, and only then starts c's writer: once the
// client has hello, every event published reaches c (api.md), and none is
// queued before hello.
func (r *registry) add(c *conn, l *connList, hello []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.queueFirst(hello)
	defer c.startWriter()
	old := l.load()
	list := make([]*conn, 0, len(old)+1)
	list = append(list, old...)
	list = append(list, c)
	l.conns.Store(&list)
	if r.bySession[c.sessionID] == nil {
		r.bySession[c.sessionID] = make(map[*conn]struct{})
	}
	r.bySession[c.sessionID][c] = struct{}{}
	r.all[c] = struct{}{}
	r.m.connections.Inc()
}

// remove removes c from l and the sets; it reports false when c was not
// there (its registration failed).
func (r *registry) remove(c *conn, l *connList) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.all[c]; !ok {
		return false
	}
	delete(r.all, c)
	if set := r.bySession[c.sessionID]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(r.bySession, c.sessionID)
		}
	}
	r.m.connections.Dec()
	old := l.load()
	list := make([]*conn, 0, len(old))
	for _, x := range old {
		if x != c {
			list = append(list, x)
		}
	}
	l.conns.Store(&list)
	return true
}

// closeSession closes every local connection of session sid.
func (r *registry) closeSession(sid string, code websocket.StatusCode, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.bySession[sid] {
		c.requestClose(code, reason)
	}
}

// closeAll closes every local connection.
func (r *registry) closeAll(code websocket.StatusCode, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.all {
		c.requestClose(code, reason)
	}
}

// sweep runs every second: it pings connections due for one (every hb),
// and closes idle connections (nothing received for 2 hb) and connections
// whose token expired. nowMono is now as Service.mono.
func (r *registry) sweep(now time.Time, nowMono int64, hb time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.all {
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

// sessions lists the sessions that have a connection on this node.
func (r *registry) sessions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.bySession))
	for sid := range r.bySession {
		out = append(out, sid)
	}
	return out
}
