package auth

import (
	"strconv"
	"testing"
	"time"
)

func testGuard(maxPair, maxAddr int) *loginGuard {
	cfg := DefaultConfig()
	cfg.MaxFailedLogins, cfg.MaxFailedLoginsPerAddress = maxPair, maxAddr
	cfg.FailedLoginWindow, cfg.LoginBackoffMax = time.Minute, 8*time.Second
	return newLoginGuard(cfg, 100)
}

func TestLoginGuardPerAccountAndAddress(t *testing.T) {
	g := testGuard(3, 100)
	t0 := time.Unix(1_000_000, 0)
	for i := range 3 {
		if _, ok, _, _ := g.begin("alice", "a1", t0.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	_, ok, wait, limit := g.begin("alice", "a1", t0.Add(10*time.Second))
	if ok || wait != 50*time.Second || limit != limitAccountAddr {
		t.Fatalf("4th attempt from a1: ok=%v wait=%v limit=%s, want refused for 50s by %s", ok, wait, limit, limitAccountAddr)
	}
	// Another account from a1, and alice from an address that never failed.
	if _, ok, _, _ := g.begin("bob", "a1", t0); !ok {
		t.Fatal("another account is limited too")
	}
	a, ok, _, _ := g.begin("alice", "owner", t0.Add(10*time.Second))
	if !ok {
		t.Fatal("the owner's fresh address was refused")
	}
	g.succeed(a)
	// Once the oldest failure leaves the window, one more attempt from a1.
	if _, ok, _, _ := g.begin("alice", "a1", t0.Add(time.Minute+500*time.Millisecond)); !ok {
		t.Fatal("attempt after the window refused")
	}
}

func TestLoginGuardPerAddress(t *testing.T) {
	g := testGuard(10, 5)
	t0 := time.Unix(1_000_000, 0)
	for i := range 5 {
		if _, ok, _, _ := g.begin("user"+strconv.Itoa(i), "sprayer", t0); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if _, ok, _, limit := g.begin("fresh", "sprayer", t0); ok || limit != limitAddress {
		t.Fatalf("spraying address: ok=%v limit=%s, want refused by %s", ok, limit, limitAddress)
	}
	if _, ok, _, _ := g.begin("fresh", "other", t0); !ok {
		t.Fatal("another address refused")
	}
}

func TestLoginGuardBackoffSparesFreshAddresses(t *testing.T) {
	g := testGuard(3, 100)
	t0 := time.Unix(1_000_000, 0)
	// Three attackers fail once each: the account reaches the threshold.
	for i := range 3 {
		if _, ok, _, _ := g.begin("alice", "atk"+strconv.Itoa(i), t0); !ok {
			t.Fatalf("attacker %d's first attempt refused", i)
		}
	}
	// Every address that failed now waits the account's backoff (1 s after
	// the third failure).
	_, ok, wait, limit := g.begin("alice", "atk0", t0)
	if ok || limit != limitBackoff || wait != time.Second {
		t.Fatalf("failed address during backoff: ok=%v wait=%v limit=%s", ok, wait, limit)
	}
	// An address without a failure is never delayed: the owner.
	a, ok, _, _ := g.begin("alice", "owner", t0)
	if !ok {
		t.Fatal("the owner was refused by the account's backoff")
	}
	g.undo(a)
	// After the wait one failed address gets one more guess, and the wait doubles.
	if _, ok, _, _ := g.begin("alice", "atk1", t0.Add(time.Second)); !ok {
		t.Fatal("attempt after the backoff refused")
	}
	_, ok, wait, _ = g.begin("alice", "atk2", t0.Add(time.Second))
	if ok || wait != 2*time.Second {
		t.Fatalf("next backoff: ok=%v wait=%v, want 2s", ok, wait)
	}
	// The backoff is capped.
	at := t0.Add(time.Second)
	for range 10 {
		at = at.Add(time.Minute / 2)
		g.begin("alice", "atk"+strconv.Itoa(int(at.Unix()%3)), at)
	}
	if _, _, wait, _ := g.begin("alice", "atk0", at); wait > 8*time.Second {
		t.Fatalf("backoff %v over its cap of 8s", wait)
	}
}

func TestLoginGuardSuccessForgetsThatAddress(t *testing.T) {
	g := testGuard(3, 100)
	t0 := time.Unix(1_000_000, 0)
	g.begin("alice", "atk", t0)
	g.begin("alice", "home", t0)
	a, _, _, _ := g.begin("alice", "home", t0)
	g.succeed(a)
	if n := len(g.accounts["alice"].fails); n != 1 {
		t.Fatalf("account keeps %d failures after home's success, want atk's 1", n)
	}
	if _, ok := g.pairs[pairKey("alice", "home")]; ok {
		t.Fatal("home's failures kept after its success")
	}
	b, _, _, _ := g.begin("bob", "x", t0)
	g.undo(b)
	if n := len(g.pairs[pairKey("bob", "x")].times) + len(g.addrs["x"].times) + len(g.accounts["bob"].fails); n != 0 {
		t.Fatalf("undo left %d records", n)
	}
}

func TestLoginGuardBounded(t *testing.T) {
	g := testGuard(5, 1000)
	g.maxKeys = 64
	t0 := time.Unix(1_000_000, 0)
	for i := range 1000 {
		g.begin("user"+strconv.Itoa(i), "addr"+strconv.Itoa(i), t0)
	}
	if len(g.pairs) > 64 || len(g.addrs) > 64 || len(g.accounts) > 64 {
		t.Fatalf("maps grew to %d/%d/%d, bound 64", len(g.pairs), len(g.addrs), len(g.accounts))
	}
	// The newest key is still counted.
	if e := g.pairs[pairKey("user999", "addr999")]; e == nil || len(e.times) != 1 {
		t.Fatal("the latest attempt was evicted")
	}
}

// failures counts the failures g holds, in all three maps.
func (g *loginGuard) failures() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, e := range g.pairs {
		n += len(e.times)
	}
	for _, e := range g.addrs {
		n += len(e.times)
	}
	for _, e := range g.accounts {
		n += len(e.fails)
	}
	return n
}
