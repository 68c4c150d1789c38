package auth

import (
	"sync"
	"time"
)

// failLimiter counts failed logins per account in a sliding window, in
// memory. An attempt is recorded before the password is checked (so that
// concurrent guesses cannot overshoot the limit) and forgotten on success.
// It holds at most maxKeys accounts: when full it first drops the accounts
// whose failures have all left the window, then arbitrary ones.
type failLimiter struct {
	max     int
	window  time.Duration
	maxKeys int

	mu      sync.Mutex
	entries map[string]*failEntry
}

// failEntry holds the times of an account's recent failures, oldest first,
// at most max of them.
type failEntry struct {
	times []time.Time
}

func newFailLimiter(max int, window time.Duration, maxKeys int) *failLimiter {
	return &failLimiter{max: max, window: window, maxKeys: maxKeys, entries: make(map[string]*failEntry)}
}

// begin records an attempt for key at now, counted as a failure until
// succeed is called. If max attempts already lie within the window it
// records nothing and returns how long until the oldest one leaves it.
func (l *failLimiter) begin(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		if len(l.entries) >= l.maxKeys {
			l.evict(now)
		}
		e = &failEntry{times: make([]time.Time, 0, min(l.max, 4))}
		l.entries[key] = e
	}
	e.prune(now.Add(-l.window))
	if len(e.times) >= l.max {
		return false, e.times[0].Add(l.window).Sub(now)
	}
	e.times = append(e.times, now)
	return true, 0
}

// succeed forgets key's failures.
func (l *failLimiter) succeed(key string) {
	l.mu.Lock()
	delete(l.entries, key)
	l.mu.Unlock()
}

// undo removes the latest attempt of key (one that neither failed nor
// succeeded, such as a store outage).
func (l *failLimiter) undo(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[key]; e != nil && len(e.times) > 0 {
		e.times = e.times[:len(e.times)-1]
		if len(e.times) == 0 {
			delete(l.entries, key)
		}
	}
}

// evict makes room: entries with no failure in the window go first, then,
// if that freed less than a tenth of the capacity, arbitrary entries.
func (l *failLimiter) evict(now time.Time) {
	cutoff := now.Add(-l.window)
	for k, e := range l.entries {
		if e.prune(cutoff); len(e.times) == 0 {
			delete(l.entries, k)
		}
	}
	target := l.maxKeys - max(l.maxKeys/10, 1)
	for k := range l.entries { // map order is random
		if len(l.entries) <= target {
			break
		}
		delete(l.entries, k)
	}
}

// prune drops the failures at or before cutoff.
func (e *failEntry) prune(cutoff time.Time) {
	i := 0
	for i < len(e.times) && !e.times[i].After(cutoff) {
		i++
	}
	if i > 0 {
		e.times = append(e.times[:0], e.times[i:]...)
	}
}
