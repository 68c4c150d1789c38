package chat

// The chat service's caches: users known to exist, and session states
// between store reads (a revocation event updates them at once).

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
)

// userByID returns the user, from a small cache of users known to exist
// (users are never deleted). ErrNotFound when there is none.
func (s *Service) userByID(ctx context.Context, id string) (store.User, error) {
	if u, ok := s.users.get(id); ok {
		return u, nil
	}
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return store.User{}, err
	}
	s.users.put(u)
	return u, nil
}

// lookupUser is userByID with the answer a client gets when it fails: 404
// not_found for an unknown user, 503 (logged) when the store fails.
func (s *Service) lookupUser(ctx context.Context, id string) (store.User, *httpapi.Error) {
	u, err := s.userByID(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.User{}, errNoSuchUser
	case err != nil:
		return store.User{}, httpapi.Fail(s.log, "user lookup", err)
	}
	return u, nil
}

// sessionCache remembers session states for a short while: an active
// session for positiveTTL (a revocation event invalidates it at once), a
// revoked one for revokedTTL.
type sessionCache struct {
	mu sync.Mutex
	m  map[string]sessionState
}

type sessionState struct {
	userID  string
	revoked bool
	expires time.Time
}

const (
	positiveTTL     = 3 * time.Second
	revokedTTL      = time.Hour
	maxSessionCache = 100_000
	maxUserCache    = 100_000
)

func newSessionCache() *sessionCache { return &sessionCache{m: make(map[string]sessionState)} }

func (c *sessionCache) get(sid string, now time.Time) (sessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[sid]
	if !ok || now.After(e.expires) {
		return sessionState{}, false
	}
	return e, true
}

func (c *sessionCache) put(sid, userID string, revoked bool, now time.Time) {
	ttl := positiveTTL
	if revoked {
		ttl = revokedTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[sid]; ok && old.revoked && now.Before(old.expires) {
		return // a revocation event may have raced the store read
	}
	if len(c.m) >= maxSessionCache {
		c.pruneLocked(now)
		if len(c.m) >= maxSessionCache {
			clear(c.m)
		}
	}
	c.m[sid] = sessionState{userID: userID, revoked: revoked, expires: now.Add(ttl)}
}

func (c *sessionCache) markRevoked(sid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[sid]
	e.revoked, e.expires = true, time.Now().Add(revokedTTL)
	c.m[sid] = e
}

func (c *sessionCache) prune(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(now)
}

func (c *sessionCache) pruneLocked(now time.Time) {
	for k, e := range c.m {
		if now.After(e.expires) {
			delete(c.m, k)
		}
	}
}

// userCache holds users known to exist (bounded; reset when full).
type userCache struct {
	mu sync.RWMutex
	m  map[string]store.User
}

func newUserCache() *userCache { return &userCache{m: make(map[string]store.User)} }

func (c *userCache) get(id string) (store.User, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	u, ok := c.m[id]
	return u, ok
}

func (c *userCache) put(u store.User) {
	u.PasswordHash = "" // never kept here
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxUserCache {
		clear(c.m)
	}
	c.m[u.ID] = u
}
