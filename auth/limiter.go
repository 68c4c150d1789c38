package auth

import (
	"sync"
	"time"
)

// loginGuard limits failed logins (api.md 1.1, "Limits against abuse") in
// memory, three ways within a sliding window:
//
//   - per (account, address): maxPair failures, then that address is
//     refused for that account until the oldest leaves the window;
//   - per address: maxAddr failures whatever the accounts (spraying);
//   - per account: once it has accountAfter failures from all addresses
//     together, an address that has itself failed for it waits a backoff
//     (1 s doubling per further failure, at most backoffMax) between
//     attempts. An address without a failure for the account is never
//     held back by it, so the owner logs in from their own device.
//
// An attempt is recorded before the password is checked (so that
// concurrent guesses cannot overshoot) and then either stays a failure,
// or is taken back: succeed (the password was right; it also forgets the
// account's failures from that address) or undo (neither, a backend
// failure). Each map holds at most maxKeys keys; when full, keys whose
// failures have all left the window go first, then arbitrary ones.
type loginGuard struct {
	maxPair, maxAddr, accountAfter int
	window, backoffMax             time.Duration
	maxKeys                        int

	mu       sync.Mutex
	pairs    map[string]*failEntry
	addrs    map[string]*failEntry
	accounts map[string]*accountEntry
}

// failEntry holds the times of recent failures, oldest first.
type failEntry struct {
	times []time.Time
}

// accountEntry holds an account's recent failures with their addresses,
// oldest first. Its backoff runs from the latest of them.
type accountEntry struct {
	fails []accountFail
}

type accountFail struct {
	at   time.Time
	addr string
}

// attempt is one recorded login attempt, to take back by succeed or undo.
type attempt struct {
	account, addr string
	at            time.Time
}

// Reasons a login is refused, for the security log.
const (
	limitAccountAddr = "account_address"
	limitAddress     = "address"
	limitBackoff     = "account_backoff"
)

// maxAccountFails bounds one account's list of failures (each from another
// address, at worst); the count saturates there, above any accountAfter.
const maxAccountFails = 1024

func newLoginGuard(cfg Config, maxKeys int) *loginGuard {
	return &loginGuard{
		maxPair: cfg.MaxFailedLogins, maxAddr: cfg.MaxFailedLoginsPerAddress, accountAfter: cfg.MaxFailedLogins,
		window: cfg.FailedLoginWindow, backoffMax: cfg.LoginBackoffMax, maxKeys: maxKeys,
		pairs: make(map[string]*failEntry), addrs: make(map[string]*failEntry), accounts: make(map[string]*accountEntry),
	}
}

func pairKey(account, addr string) string { return account + "\x00" + addr }

// begin records an attempt on account from addr at now, counted as a
// failure until succeed or undo. When a limit refuses it, it records
// nothing and returns how long to wait and which limit it was.
func (g *loginGuard) begin(account, addr string, now time.Time) (a attempt, ok bool, wait time.Duration, limit string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cutoff := now.Add(-g.window)
	pair := g.entry(g.pairs, pairKey(account, addr), now)
	pair.prune(cutoff)
	if len(pair.times) >= g.maxPair {
		return attempt{}, false, pair.times[0].Add(g.window).Sub(now), limitAccountAddr
	}
	byAddr := g.entry(g.addrs, addr, now)
	byAddr.prune(cutoff)
	if len(byAddr.times) >= g.maxAddr {
		return attempt{}, false, byAddr.times[0].Add(g.window).Sub(now), limitAddress
	}
	acct := g.accounts[account]
	if acct == nil {
		if len(g.accounts) >= g.maxKeys {
			g.evictAccounts(cutoff)
		}
		acct = &accountEntry{}
		g.accounts[account] = acct
	}
	acct.prune(cutoff)
	if over := len(acct.fails) - g.accountAfter; len(pair.times) > 0 && over >= 0 {
		if next := acct.fails[len(acct.fails)-1].at.Add(g.backoff(over)); now.Before(next) {
			return attempt{}, false, next.Sub(now), limitBackoff
		}
	}
	pair.times = append(pair.times, now)
	byAddr.times = append(byAddr.times, now)
	if len(acct.fails) >= maxAccountFails {
		acct.fails = append(acct.fails[:0], acct.fails[1:]...)
	}
	acct.fails = append(acct.fails, accountFail{at: now, addr: addr})
	return attempt{account: account, addr: addr, at: now}, true, 0, ""
}

// backoff is 1 s × 2^n, at most backoffMax.
func (g *loginGuard) backoff(n int) time.Duration {
	if n > 30 {
		return g.backoffMax
	}
	return min(time.Second<<n, g.backoffMax)
}

// succeed takes a back as a success: the account's failures from that
// address are forgotten.
func (g *loginGuard) succeed(a attempt) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.pairs, pairKey(a.account, a.addr))
	if e := g.addrs[a.addr]; e != nil {
		e.remove(a.at)
	}
	if e := g.accounts[a.account]; e != nil {
		kept := e.fails[:0]
		for _, f := range e.fails {
			if f.addr != a.addr {
				kept = append(kept, f)
			}
		}
		e.fails = kept
		if len(e.fails) == 0 {
			delete(g.accounts, a.account)
		}
	}
}

// undo takes a back as neither a failure nor a success.
func (g *loginGuard) undo(a attempt) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.pairs[pairKey(a.account, a.addr)]; e != nil {
		e.remove(a.at)
	}
	if e := g.addrs[a.addr]; e != nil {
		e.remove(a.at)
	}
	if e := g.accounts[a.account]; e != nil {
		for i := len(e.fails) - 1; i >= 0; i-- {
			if e.fails[i].addr == a.addr && e.fails[i].at.Equal(a.at) {
				e.fails = append(e.fails[:i], e.fails[i+1:]...)
				break
			}
		}
	}
}

// entry returns m's entry for key, creating it (after making room).
func (g *loginGuard) entry(m map[string]*failEntry, key string, now time.Time) *failEntry {
	e := m[key]
	if e == nil {
		if len(m) >= g.maxKeys {
			g.evict(m, now.Add(-g.window))
		}
		e = &failEntry{}
		m[key] = e
	}
	return e
}

// evict makes room in m: entries with no failure in the window go first,
// then, if that freed less than a tenth of the capacity, arbitrary ones.
func (g *loginGuard) evict(m map[string]*failEntry, cutoff time.Time) {
	for k, e := range m {
		if e.prune(cutoff); len(e.times) == 0 {
			delete(m, k)
		}
	}
	target := g.maxKeys - max(g.maxKeys/10, 1)
	for k := range m { // map order is random
		if len(m) <= target {
			break
		}
		delete(m, k)
	}
}

func (g *loginGuard) evictAccounts(cutoff time.Time) {
	for k, e := range g.accounts {
		if e.prune(cutoff); len(e.fails) == 0 {
			delete(g.accounts, k)
		}
	}
	target := g.maxKeys - max(g.maxKeys/10, 1)
	for k := range g.accounts {
		if len(g.accounts) <= target {
			break
		}
		delete(g.accounts, k)
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

// remove drops one failure at t, the latest such.
func (e *failEntry) remove(t time.Time) {
	for i := len(e.times) - 1; i >= 0; i-- {
		if e.times[i].Equal(t) {
			e.times = append(e.times[:i], e.times[i+1:]...)
			return
		}
	}
}

func (e *accountEntry) prune(cutoff time.Time) {
	i := 0
	for i < len(e.fails) && !e.fails[i].at.After(cutoff) {
		i++
	}
	if i > 0 {
		e.fails = append(e.fails[:0], e.fails[i:]...)
	}
}
