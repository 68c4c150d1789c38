package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// dnsTimeout bounds one lookup of gateway.chat_dns.
const dnsTimeout = 3 * time.Second

// discovery keeps the chat pool in step with the addresses gateway.chat_dns
// resolves to. In Kubernetes that name is a headless Service, whose DNS
// answer lists the ready pods, so replicas that scale out, roll or drain
// join and leave the pool without a restart of the gateway.
//
// A failed lookup keeps the last list: a DNS blip must not empty the pool,
// and addresses that are really gone fail their health checks anyway.
type discovery struct {
	scheme, host, port string
	interval           time.Duration
	resolver           *net.Resolver
	log                *slog.Logger

	failing bool // the last lookup failed (logged once per outage)
	done    chan struct{}
}

// newDiscovery returns nil when cfg has no gateway.chat_dns.
func newDiscovery(cfg Config, r *net.Resolver, log *slog.Logger) (*discovery, error) {
	if cfg.ChatDNS == "" {
		return nil, nil
	}
	scheme, host, port, err := parseDNSTarget(cfg.ChatDNS)
	if err != nil {
		return nil, fmt.Errorf("gateway.chat_dns: %w", err)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	return &discovery{scheme: scheme, host: host, port: port, interval: cfg.DNSInterval, resolver: r, log: log}, nil
}

// parseDNSTarget splits "host:port" or "http(s)://host:port" (http when no
// scheme is given).
func parseDNSTarget(s string) (scheme, host, port string, err error) {
	scheme, hostport := "http", s
	if strings.Contains(s, "://") {
		u, perr := url.Parse(s)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return "", "", "", fmt.Errorf("%q is not a name and port like chat-headless.chatd.svc:8080", s)
		}
		scheme, hostport = u.Scheme, u.Host
	}
	host, port, err = net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return "", "", "", fmt.Errorf("%q is not a name and port like chat-headless.chatd.svc:8080", s)
	}
	if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
		return "", "", "", fmt.Errorf("%q: port must be 1-65535", s)
	}
	return scheme, host, port, nil
}

// start resolves once under startCtx (so that the gateway's first health
// round and Ready see the replicas), then again every interval until
// loopCtx ends. A nil discovery does nothing.
func (d *discovery) start(startCtx, loopCtx context.Context, g *Gateway) {
	if d == nil {
		return
	}
	d.done = make(chan struct{})
	first, cancel := context.WithTimeout(startCtx, dnsTimeout)
	d.refresh(first, loopCtx, g)
	cancel()
	go func() {
		defer close(d.done)
		t := time.NewTicker(d.interval)
		defer t.Stop()
		for {
			select {
			case <-loopCtx.Done():
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(loopCtx, dnsTimeout)
				d.refresh(ctx, loopCtx, g)
				cancel()
			}
		}
	}()
}

// wait returns once the refresh loop has ended (after the loop's context
// was canceled), or with ctx's error.
func (d *discovery) wait(ctx context.Context) error {
	if d == nil || d.done == nil {
		return nil
	}
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dns discovery: %w", ctx.Err())
	}
}

// refresh looks the name up and replaces the chat pool when the answer
// changed. Upstreams already known keep their state (health, ejection,
// active count); new ones are health-checked before they get traffic.
func (d *discovery) refresh(lookupCtx, checkCtx context.Context, g *Gateway) {
	addrs, err := d.resolver.LookupNetIP(lookupCtx, "ip", d.host)
	if err != nil {
		if checkCtx.Err() != nil {
			return // stopping
		}
		if !d.failing {
			d.log.Warn("chat upstream lookup failed; keeping the last list", "name", d.host, "err", err)
		}
		d.failing = true
		return
	}
	if d.failing {
		d.log.Info("chat upstream lookup works again", "name", d.host)
		d.failing = false
	}

	want := make([]string, 0, len(addrs))
	for _, a := range addrs {
		want = append(want, d.scheme+"://"+net.JoinHostPort(a.Unmap().String(), d.port))
	}
	slices.Sort(want)
	want = slices.Compact(want)

	old := g.chat.list()
	byName := make(map[string]*upstream, len(old))
	for _, u := range old {
		byName[u.url.String()] = u
	}
	next := make([]*upstream, 0, len(want))
	var added []*upstream
	for _, w := range want {
		if u, ok := byName[w]; ok {
			next = append(next, u)
			delete(byName, w)
			continue
		}
		u, err := newUpstream(kindChat, w)
		if err != nil { // cannot happen for an address and a valid port
			d.log.Warn("chat upstream from DNS refused", "upstream", w, "err", err)
			continue
		}
		added = append(added, u)
		next = append(next, u)
	}
	if len(added) == 0 && len(byName) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, u := range added {
		wg.Go(func() { g.check(checkCtx, u) })
	}
	wg.Wait()
	g.chat.set(next)
	for _, u := range added {
		d.log.Info("chat upstream discovered", "upstream", u.name, "healthy", u.healthy.Load())
	}
	for name := range byName {
		d.log.Info("chat upstream gone from DNS", "upstream", name)
	}
}
