package chat

import (
	"net/http"
	"sync"
	"time"

	"github.com/chatd/chatd/httpapi"
)

// Limits against abuse (api.md 1.1), all per node: a user or an address
// spread over several replicas by the gateway gets each node's allowance.

// maxLimiterKeys bounds the send limiter's map (one bucket per user that
// sent recently).
const maxLimiterKeys = 100_000

// allowSend takes one of userID's send tokens. Every kind of send (REST and
// WebSocket) asks before anything is validated or stored; a refused one is
// 429 rate_limited with the wait, and stores nothing.
func (s *Service) allowSend(userID string) *httpapi.Error {
	ok, wait := s.sendLimit.Allow(userID, time.Now())
	if ok {
		return nil
	}
	s.refusedBy("send_rate", "user", userID, "retry_after", wait)
	return &httpapi.Error{Status: http.StatusTooManyRequests, Code: httpapi.CodeRateLimited,
		Message: "too many messages, slow down", RetryAfter: wait}
}

// refusedBy counts a refusal by limit and logs it as a security event, at
// most a few lines a second per limit (the counter counts every one), so
// that a flood is not also a flood of log lines.
func (s *Service) refusedBy(limit string, attrs ...any) {
	s.m.refused.WithLabelValues(limit).Inc()
	if ok, _ := s.logLimit.Allow(limit, time.Now()); ok {
		s.log.Info("security: refused by a limit", append([]any{"limit", limit}, attrs...)...)
	}
}

// socketCounts caps the WebSockets of this node per user and per client
// address. acquire happens before the upgrade, release when the
// connection's handler ends.
type socketCounts struct {
	maxUser, maxAddr int

	mu     sync.Mutex
	byUser map[string]int
	byAddr map[string]int
}

func newSocketCounts(maxUser, maxAddr int) *socketCounts {
	return &socketCounts{maxUser: maxUser, maxAddr: maxAddr, byUser: make(map[string]int), byAddr: make(map[string]int)}
}

// acquire counts one more socket of user from addr, or reports which cap
// refuses it ("user" or "address").
func (c *socketCounts) acquire(user, addr string) (refusedBy string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.byUser[user] >= c.maxUser:
		return "user"
	case c.byAddr[addr] >= c.maxAddr:
		return "address"
	}
	c.byUser[user]++
	c.byAddr[addr]++
	return ""
}

func (c *socketCounts) release(user, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byUser[user]--; c.byUser[user] <= 0 {
		delete(c.byUser, user)
	}
	if c.byAddr[addr]--; c.byAddr[addr] <= 0 {
		delete(c.byAddr, addr)
	}
}

// errTooManySockets is the 429 of a refused upgrade: the client should
// close one of its other connections, not retry soon.
func errTooManySockets(by string) *httpapi.Error {
	return &httpapi.Error{Status: http.StatusTooManyRequests, Code: httpapi.CodeRateLimited,
		Message: "too many open connections for this " + by, RetryAfter: 30 * time.Second}
}

// clientKey is r's client address as the per-address limits count it.
func (s *Service) clientKey(r *http.Request) string {
	return httpapi.AddrKey(httpapi.ClientAddr(r, s.trusted))
}
