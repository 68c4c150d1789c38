package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/store/sqlitestore"
)

// sqliteMetrics exports the SQLite writer's own restarts of the
// write-ahead log (store/sqlitestore/wal.go; a restart also cuts the file
// to half the limit, hence "truncations"), read from the store at each
// scrape: they stay 0 while the background checkpointer keeps the log
// restarting, and the stall is what the writes waited for them.
func (a *App) sqliteMetrics(s *sqlitestore.Store) {
	stat := func(i int) func() float64 {
		return func() float64 {
			truncates, failed, stall := s.WALStats()
			return [...]float64{float64(truncates), float64(failed), stall.Seconds()}[i]
		}
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chatd_store_wal_truncations_total",
			Help: "Write-ahead log restarts (wal_checkpoint RESTART, the file cut to half the limit) the SQLite writer ran itself because the log had passed its limit.",
		}, stat(0)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chatd_store_wal_truncations_failed_total",
			Help: "Writer restarts of the write-ahead log that could not finish (readers still in the log); retried later.",
		}, stat(1)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chatd_store_wal_truncation_seconds_total",
			Help: "Time the SQLite writer stood still for its write-ahead log restarts.",
		}, stat(2)),
	} {
		if err := a.reg.Register(c); err != nil {
			a.log.Warn("register store metric", "err", err)
		}
	}
}
