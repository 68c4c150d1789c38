package token

import (
	"crypto/ed25519"
	"strings"
	"sync"
	"time"
)

// A verification costs an Ed25519 signature check and the JWT's JSON (tens
// of µs); a reconnecting client presents the same token on its upgrade and
// on each REST call of the catch-up rule. A Verifier therefore remembers the
// tokens it verified, keyed by the whole token string (so no other token,
// however close, can match), for at most VerifiedTTL and never past their
// exp. An entry also remembers the key that verified it: a hit looks that
// kid up in the key set again and, unless the set still holds the same key,
// the whole cache is dropped and the token verified anew, so a key removed
// from (or replaced in) the key set stops being accepted at once, as without
// the cache. Revocation is not the Verifier's business: callers check the
// session as before, on hits too.
const (
	// VerifiedTTL bounds how long a verified token is remembered.
	VerifiedTTL       = time.Minute
	maxVerifiedTokens = 65536
)

type verifiedToken struct {
	claims Claims
	kid    string
	key    ed25519.PublicKey
	until  time.Time
}

type verifiedCache struct {
	mu  sync.RWMutex
	m   map[string]verifiedToken // token → what verified it and its claims
	max int
}

func newVerifiedCache(maxEntries int) *verifiedCache {
	return &verifiedCache{m: make(map[string]verifiedToken), max: maxEntries}
}

func (c *verifiedCache) get(tok string, now time.Time) (verifiedToken, bool) {
	c.mu.RLock()
	e, ok := c.m[tok]
	c.mu.RUnlock()
	return e, ok && now.Before(e.until)
}

// add remembers tok until until (not kept if that is already past).
func (c *verifiedCache) add(tok string, e verifiedToken, now time.Time) {
	if len(tok) > MaxTokenBytes || !now.Before(e.until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, old := range c.m { // the stale ones first
			if !now.Before(old.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // then arbitrary ones, down to 7/8
			if len(c.m) <= c.max-c.max/8-1 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[strings.Clone(tok)] = e // not the request header's backing string
}

// drop forgets every verified token (the key set changed).
func (c *verifiedCache) drop() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

func (c *verifiedCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
