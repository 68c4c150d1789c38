package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  *prometheus.CounterVec // route, code
	retries   *prometheus.CounterVec // kind
	ejections *prometheus.CounterVec // kind, upstream
}

func newMetrics(reg prometheus.Registerer, pools []*pool) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_gateway_requests_total",
			Help: "Requests answered by the gateway, by route kind (auth, api, ws, ui) and status code (101 for a proxied WebSocket, 499 when the client left first).",
		}, []string{"route", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_gateway_retries_total",
			Help: "Requests retried on another upstream after a failed attempt, by upstream kind.",
		}, []string{"kind"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_gateway_upstream_ejections_total",
			Help: "Times an upstream was taken out of rotation after consecutive proxy failures.",
		}, []string{"kind", "upstream"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.retries, m.ejections, newUpstreamCollector(pools)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	return m, nil
}

// upstreamCollector reports each upstream's health and active connections
// when scraped, straight from the atomics the proxy uses.
type upstreamCollector struct {
	pools      []*pool
	up, active *prometheus.Desc
}

func newUpstreamCollector(pools []*pool) *upstreamCollector {
	labels := []string{"kind", "upstream"}
	return &upstreamCollector{
		pools: pools,
		up: prometheus.NewDesc("chatd_gateway_upstream_up",
			"1 when the upstream is in rotation (its last health check passed and it is not ejected), else 0.", labels, nil),
		active: prometheus.NewDesc("chatd_gateway_upstream_active_connections",
			"Requests in flight and WebSockets open through the gateway to the upstream.", labels, nil),
	}
}

func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.active
}

func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.pools {
		for _, u := range p.list() {
			up := 0.0
			if u.available() {
				up = 1
			}
			if m, err := prometheus.NewConstMetric(c.up, prometheus.GaugeValue, up, u.kind, u.name); err == nil {
				ch <- m
			}
			if m, err := prometheus.NewConstMetric(c.active, prometheus.GaugeValue, float64(u.active.Load()), u.kind, u.name); err == nil {
				ch <- m
			}
		}
	}
}
