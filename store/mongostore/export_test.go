package mongostore

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/event"
)

// WithCommandMonitor returns o with a driver command monitor, so that a test
// can see the commands the store sends.
func WithCommandMonitor(o Options, m *event.CommandMonitor) Options {
	o.monitor = m
	return o
}

// WithBatchHook returns o with a function the writer calls before each
// batch, so that a test can hold it while messages queue.
func WithBatchHook(o Options, hook func()) Options {
	o.batchHook = hook
	return o
}

// WithFoldAfter returns o with reads folding the events into cached
// states once they read n (n = 1: every read that reads one), so that a
// test can exercise the cache.
func WithFoldAfter(o Options, n int) Options {
	o.foldAfter = n
	return o
}

// WithLookupHook returns o with a function IsBlocked's workers call before
// each find with the number of lookups it answers, so that a test can hold
// them while lookups queue.
func WithLookupHook(o Options, hook func(n int)) Options {
	o.lookupHook = hook
	return o
}

// LookupWorkers is how many finds IsBlocked has in flight at most.
const LookupWorkers = lookupWorkers

// LookupsQueued is how many IsBlocked calls wait for a worker.
func (s *Store) LookupsQueued() int { return len(s.lookups.queue) }

// BlockIDsIn is blockIDsIn: which block documents of ids exist.
func (s *Store) BlockIDsIn(ctx context.Context, ids []string) (map[string]bool, error) {
	return s.blockIDsIn(ctx, ids)
}
