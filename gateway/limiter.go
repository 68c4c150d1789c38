package gateway

import (
	"math"
	"sync"
	"time"
)

// limiter is a token bucket per key (a client address) in a bounded map.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int // most keys kept

	mu      sync.Mutex
	buckets map[string]bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst, maxKeys int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), max: maxKeys, buckets: make(map[string]bucket)}
}

// allow takes a token from key's bucket. When there is none it returns
// false and how long until there is one.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if ok {
		b.tokens = l.refill(b, now)
	} else {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b.tokens = l.burst
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		l.buckets[key] = b
		return true, 0
	}
	l.buckets[key] = b
	wait := time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
	return false, wait
}

func (l *limiter) refill(b bucket, now time.Time) float64 {
	return min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
}

// evict makes room: first it forgets the buckets that have refilled (that
// changes nothing for their keys), then, if the map is still full, arbitrary
// ones (map order is random) down to 7/8 of the bound, so that a flood of
// new addresses costs one sweep per max/8 of them.
func (l *limiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if l.refill(b, now) >= l.burst {
			delete(l.buckets, k)
		}
	}
	target := l.max - l.max/8 - 1
	for k := range l.buckets {
		if len(l.buckets) <= target {
			break
		}
		delete(l.buckets, k)
	}
}
