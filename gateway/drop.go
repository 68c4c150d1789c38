package gateway

import (
	"context"
	"sync"
	"time"
)

// statusGoingAway is the WebSocket close code sent on the tunnels of an
// upstream that stopped answering: api.md's 1001, "reconnect elsewhere";
// the gateway routes the reconnection to a replica that answers.
const statusGoingAway = 1001

// tunnelDrop is an upstream's signal to close its WebSocket tunnels: done
// once the upstream has not answered its checks for TunnelDropAfter, and
// replaced by a fresh one when it answers again.
type tunnelDrop struct {
	mu          sync.Mutex
	silentSince time.Time // zero while it answers
	ctx         context.Context
	cancel      context.CancelFunc
}

// signal returns the context whose end closes the tunnels opened now.
func (d *tunnelDrop) signal() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil {
		d.ctx, d.cancel = context.WithCancel(context.Background())
	}
	return d.ctx
}

// noteAnswering records whether u answered its latest check and closes
// u's tunnels once it has not answered for TunnelDropAfter. A replica that
// answers, ready or not, keeps its tunnels: unready replicas still serve
// (panic mode).
func (g *Gateway) noteAnswering(u *upstream, answering bool) {
	d := &u.drop
	now := time.Now()
	d.mu.Lock()
	if answering {
		d.silentSince = time.Time{}
		if d.ctx != nil && d.ctx.Err() != nil {
			d.ctx, d.cancel = nil, nil // back: tunnels opened from now on stay
		}
		d.mu.Unlock()
		return
	}
	if d.silentSince.IsZero() {
		d.silentSince = now
	}
	silent := now.Sub(d.silentSince)
	if silent < g.cfg.TunnelDropAfter {
		d.mu.Unlock()
		return
	}
	if d.ctx == nil {
		d.ctx, d.cancel = context.WithCancel(context.Background())
	}
	dropping := d.ctx.Err() == nil
	d.cancel()
	d.mu.Unlock()
	if dropping {
		g.log.Warn("closing the websockets of an upstream that stopped answering", "kind", u.kind,
			"upstream", u.name, "silent_for", silent.Round(time.Millisecond))
	}
}
