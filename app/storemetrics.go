package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/store/sqlitestore"
)

// sqliteMetrics exports, read from the store at each scrape, the SQLite
// writer's group commits (how many, carrying how many requests, how many
// ran again with savepoints) and its own restarts of the write-ahead log
// (store/sqlitestore/wal.go; a restart also cuts the file to half the
// limit, hence "truncations"): those stay 0 while the background
// checkpointer keeps the log restarting, and the stall is what the writes
// waited for them.
func (a *App) sqliteMetrics(s *sqlitestore.Store) {
	wal := func(i int) func() float64 {
		return func() float64 {
			truncates, failed, stall := s.WALStats()
			return [...]float64{float64(truncates), float64(failed), stall.Seconds()}[i]
		}
	}
	write := func(i int) func() float64 {
		return func() float64 {
			batches, writes, reruns := s.WriteStats()
			return [...]float64{float64(batches), float64(writes), float64(reruns)}[i]
		}
	}
	for _, m := range []struct {
		opts  prometheus.CounterOpts
		value func() float64
	}{
		{prometheus.CounterOpts{Name: "chatd_store_write_batches_total", Help: "Transactions the SQLite writer ran (group commits, one fsync each); requests/batches is the mean batch size."}, write(0)},
		{prometheus.CounterOpts{Name: "chatd_store_write_requests_total", Help: "Write requests (a message, a receipt, a sign-up, ...) the SQLite writer's batches carried."}, write(1)},
		{prometheus.CounterOpts{Name: "chatd_store_write_reruns_total", Help: "Batches the SQLite writer ran a second time with a savepoint per request, because one of them failed (or was a retried send)."}, write(2)},
		{prometheus.CounterOpts{Name: "chatd_store_wal_truncations_total", Help: "Write-ahead log restarts (wal_checkpoint RESTART) the SQLite writer ran itself because the log had passed its limit."}, wal(0)},
		{prometheus.CounterOpts{Name: "chatd_store_wal_truncations_failed_total", Help: "Writer restarts of the write-ahead log that could not finish (readers still in the log); retried later."}, wal(1)},
		{prometheus.CounterOpts{Name: "chatd_store_wal_truncation_seconds_total", Help: "Time the SQLite writer stood still for its write-ahead log restarts."}, wal(2)},
	} {
		c := prometheus.NewCounterFunc(m.opts, m.value)
		if err := a.reg.Register(c); err != nil {
			a.log.Warn("register store metric", "err", err)
		}
	}
}
