package httpapi

import (
	"math"
	"net/http"
	"sync"
	"time"
)

// Limiter is a token bucket per key (a client address from AddrKey, a user
// id) in a map of at most maxKeys buckets, for api.md's "Limits against
// abuse". Safe for concurrent use.
//
// When the map is full, the buckets that have refilled are forgotten first
// (that changes nothing for their keys), then arbitrary ones down to 7/8 of
// the bound: a flood of new keys can make the limiter forget a key's debt,
// never refuse a key that is within its limit.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int

	mu      sync.Mutex
	buckets map[string]bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a Limiter allowing burst requests at once per key and
// rate per second after that. rate and burst must be > 0.
func NewLimiter(rate float64, burst, maxKeys int) *Limiter {
	return &Limiter{rate: rate, burst: float64(burst), max: max(maxKeys, 1), buckets: make(map[string]bucket)}
}

// NewLimiterPer returns a Limiter allowing n requests per period per key,
// all of them at once if need be (burst n, refilled evenly over period).
func NewLimiterPer(n int, period time.Duration, maxKeys int) *Limiter {
	return NewLimiter(float64(n)/period.Seconds(), n, maxKeys)
}

// Allow takes a token from key's bucket. When there is none it takes
// nothing and returns false and how long until there is one.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[key]
	if found {
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
	return false, time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
}

// Refund gives back a token Allow took (the request turned out not to
// count, such as one a backend failure ended).
func (l *Limiter) Refund(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		b.tokens = min(l.burst, b.tokens+1)
		l.buckets[key] = b
	}
}

func (l *Limiter) refill(b bucket, now time.Time) float64 {
	return min(l.burst, b.tokens+max(now.Sub(b.last).Seconds(), 0)*l.rate)
}

func (l *Limiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if l.refill(b, now) >= l.burst {
			delete(l.buckets, k)
		}
	}
	target := l.max - l.max/8 - 1
	for k := range l.buckets { // map order is random
		if len(l.buckets) <= target {
			break
		}
		delete(l.buckets, k)
	}
}

// RateLimited is the 429 rate_limited answer, with Retry-After (at least a
// second).
func RateLimited(retryAfter time.Duration, message string) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: message, RetryAfter: max(retryAfter, time.Second)}
}
