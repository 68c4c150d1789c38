package gateway

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/chatd/chatd/auth/token"
)

// Edge verification costs an Ed25519 signature check (tens of µs) per
// request; the gateway remembers the tokens it verified, keyed by the whole
// token string (so no other token can match), for at most verifiedTTL and
// never past their exp. A key that disappears from the key set is thus still
// honoured at the edge for up to verifiedTTL; the chat replicas verify every
// request themselves and also check revocation.
const (
	verifiedTTL       = time.Minute
	maxVerifiedTokens = 65536
	maxCachedTokenLen = 4 << 10
)

type tokenCache struct {
	mu  sync.RWMutex
	m   map[string]time.Time // token → trusted until
	max int
}

func newTokenCache(maxEntries int) *tokenCache {
	return &tokenCache{m: make(map[string]time.Time), max: maxEntries}
}

func (c *tokenCache) valid(tok string, now time.Time) bool {
	c.mu.RLock()
	until, ok := c.m[tok]
	c.mu.RUnlock()
	return ok && now.Before(until)
}

func (c *tokenCache) add(tok string, until, now time.Time) {
	if len(tok) > maxCachedTokenLen || !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, u := range c.m { // the stale ones first
			if !now.Before(u) {
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
	c.m[tok] = until
}

// authenticate checks that r carries a valid access token, taken as
// token.Verifier.FromRequest takes it: from "Authorization: Bearer" if
// present, else from the session cookie. It returns nil, token.ErrNoToken,
// the verification error (wrapping token.ErrInvalidToken), or one wrapping
// token.ErrKeysUnavailable when auth's key set could not be fetched.
func (g *Gateway) authenticate(r *http.Request) error {
	tok := requestToken(r)
	if tok == "" {
		return token.ErrNoToken
	}
	now := time.Now()
	if g.tokens.valid(tok, now) {
		return nil
	}
	c, err := g.verifier.Verify(r.Context(), tok)
	if err != nil {
		return err
	}
	until := now.Add(verifiedTTL)
	if c.ExpiresAt.Before(until) {
		until = c.ExpiresAt
	}
	g.tokens.add(tok, until, now)
	return nil
}

func requestToken(r *http.Request) string {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		if tok = strings.TrimSpace(tok); tok != "" {
			return tok
		}
	}
	return token.CookieToken(r)
}
