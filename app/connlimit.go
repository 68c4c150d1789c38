package app

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connRefused returns the callback of httpapi.LimitListener: a counter
// of refused connections, and a security log line at most once a second
// (a flood of connections is not also a flood of log lines).
func (a *App) connRefused() func(key string) {
	refused := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chatd_http_connections_refused_total",
		Help: "Connections closed at accept because a cap (http.max_conns, http.max_conns_per_addr) was reached.",
	})
	if err := a.reg.Register(refused); err != nil {
		a.log.Warn("register connection metric", "err", err)
	}
	var last atomic.Int64
	return func(key string) {
		refused.Inc()
		if now := time.Now().UnixNano(); now-last.Load() >= int64(time.Second) {
			last.Store(now)
			a.log.Info("security: connection refused by a cap", "addr", key)
		}
	}
}
