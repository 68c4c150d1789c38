package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Upstream kinds, also the "kind" label of the upstream metrics.
const (
	kindAuth = "auth"
	kindChat = "chat"
)

// upstream is one replica behind the gateway.
type upstream struct {
	kind    string
	url     *url.URL
	name    string // url without credentials, for logs and labels
	readyz  string // url + /readyz
	healthz string // url + /healthz

	// healthy is the last active check's verdict; true until the first check
	// so that a gateway that was never started still routes.
	healthy atomic.Bool
	// answering is whether the last active check got any HTTP answer, from
	// /readyz or else /healthz: a replica whose backends are degraded (503
	// from /readyz) or slow (a /readyz that times out) still answers.
	answering atomic.Bool
	// ejected is set by passive ejection and cleared by a good active check.
	ejected atomic.Bool
	fails   atomic.Int32 // consecutive proxy failures
	// slowChecks counts consecutive active checks whose /readyz gave no
	// answer within health_timeout (gateway.timeouts_to_unhealthy).
	slowChecks atomic.Int32
	active     atomic.Int64 // in-flight requests and open WebSockets
	drop       tunnelDrop   // closes the tunnels of an upstream that stopped answering
}

func newUpstream(kind, raw string) (*upstream, error) {
	u, err := parseUpstream(raw)
	if err != nil {
		return nil, err
	}
	up := &upstream{kind: kind, url: u, name: u.Redacted(), readyz: u.JoinPath("readyz").String(),
		healthz: u.JoinPath("healthz").String()}
	up.healthy.Store(true)
	up.answering.Store(true)
	return up, nil
}

// available reports whether requests may go to u.
func (u *upstream) available() bool { return u.healthy.Load() && !u.ejected.Load() }

// pool is the set of replicas of one kind. Its list is replaced whole (by
// DNS discovery) and read without a lock.
type pool struct {
	kind      string
	ups       atomic.Pointer[[]*upstream]
	leastConn bool          // chat: fewest active; auth: round robin
	next      atomic.Uint64 // round-robin cursor, also the tie-break start
}

// pick returns an available upstream other than exclude, or nil.
// Round robin skips unavailable upstreams; least-connections takes the one
// with the fewest active requests, ties going round robin.
//
// When no upstream is ready, pick falls back to those that still answer
// (a "panic mode", as in Envoy): every chat replica reports unready while
// the Redis they share is down, yet each still stores and serves messages,
// so refusing all traffic would turn a broker blip into an outage.
func (p *pool) pick(exclude *upstream) *upstream {
	if u := p.pickWhere(exclude, (*upstream).available); u != nil {
		return u
	}
	return p.pickWhere(exclude, (*upstream).usable)
}

// usable reports whether u may take requests in panic mode: it answers
// HTTP, however its readiness.
func (u *upstream) usable() bool { return u.answering.Load() && !u.ejected.Load() }

func (p *pool) pickWhere(exclude *upstream, ok func(*upstream) bool) *upstream {
	ups := p.list()
	n := len(ups)
	if n == 0 {
		return nil
	}
	start := int(p.next.Add(1) % uint64(n))
	var best *upstream
	var bestActive int64
	for i := range n {
		u := ups[(start+i)%n]
		if u == exclude || !ok(u) {
			continue
		}
		if !p.leastConn {
			return u
		}
		if a := u.active.Load(); best == nil || a < bestActive {
			best, bestActive = u, a
		}
	}
	return best
}

// list returns the pool's current upstreams; the slice is never modified.
func (p *pool) list() []*upstream {
	if l := p.ups.Load(); l != nil {
		return *l
	}
	return nil
}

// set replaces the pool's upstreams.
func (p *pool) set(ups []*upstream) { p.ups.Store(&ups) }

// usableCount is the number of upstreams pick may return, in panic mode too.
func (p *pool) usableCount() int {
	n := 0
	for _, u := range p.list() {
		if u.available() || u.usable() {
			n++
		}
	}
	return n
}

func (p *pool) availableCount() int {
	n := 0
	for _, u := range p.list() {
		if u.available() {
			n++
		}
	}
	return n
}

// proxyFailed records a failed proxy attempt on u (connection error or a
// 502 answer) and ejects u after EjectAfter consecutive ones.
func (g *Gateway) proxyFailed(u *upstream, err error) {
	if int(u.fails.Add(1)) < g.cfg.EjectAfter || !u.ejected.CompareAndSwap(false, true) {
		return
	}
	g.metrics.ejections.WithLabelValues(u.kind, u.name).Inc()
	g.log.Warn("upstream ejected after consecutive failures", "kind", u.kind, "upstream", u.name,
		"failures", u.fails.Load(), "err", err)
}

// proxySucceeded resets u's consecutive failure count.
func proxySucceeded(u *upstream) {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
}

// healthLoop runs the active checks every HealthInterval until ctx ends.
func (g *Gateway) healthLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(g.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.checkAll(ctx)
		}
	}
}

// checkAll checks every upstream concurrently and waits for the results.
func (g *Gateway) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range g.pools {
		for _, u := range p.list() {
			wg.Go(func() { g.check(ctx, u) })
		}
	}
	wg.Wait()
}

// check runs one active check of u: GET /readyz, healthy on 200. When
// /readyz gives no answer in time (a replica waiting on a slow backend),
// GET /healthz tells whether u still answers at all, for panic mode: a
// slow readiness answer is not a dead replica.
func (g *Gateway) check(parent context.Context, u *upstream) {
	status, err := g.probe(parent, u.readyz)
	ok, reason := status == http.StatusOK, ""
	slow := false // /readyz gave no answer in time
	if err != nil {
		if parent.Err() != nil {
			return // the gateway is stopping; this says nothing about u
		}
		reason = err.Error()
		slow = errors.Is(err, context.DeadlineExceeded)
		if _, herr := g.probe(parent, u.healthz); herr == nil {
			err = nil // not ready in time, but alive
		} else if parent.Err() != nil {
			return
		}
	} else {
		reason = http.StatusText(status)
	}
	u.answering.Store(err == nil)
	g.noteAnswering(u, err == nil)
	if !slow {
		u.slowChecks.Store(0)
	} else if n := u.slowChecks.Add(1); int(n) < g.cfg.TimeoutsToUnhealthy {
		// A replica that answers late once is busy, not unready: a
		// reconnect storm keeps every core of a node and its run queue
		// full for seconds, and a check is one request among thousands.
		// Taking it out of rotation then would move its load onto the
		// others (issue 13, point 6). An answer that says not ready, a
		// refused connection, or timeouts in a row still take it out.
		g.log.Info("upstream slow to answer its check", "kind", u.kind, "upstream", u.name, "timeouts", n, "reason", reason)
		return
	}
	if ok {
		u.fails.Store(0)
		wasEjected := u.ejected.Swap(false)
		if wasHealthy := u.healthy.Swap(true); !wasHealthy || wasEjected {
			g.log.Info("upstream healthy", "kind", u.kind, "upstream", u.name)
		}
		return
	}
	if u.healthy.Swap(false) {
		g.log.Warn("upstream unhealthy", "kind", u.kind, "upstream", u.name, "reason", reason)
	}
}

// probe GETs url within HealthTimeout and returns the status.
func (g *Gateway) probe(parent context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(parent, g.cfg.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := g.healthClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	_ = res.Body.Close()
	return res.StatusCode, nil
}
