package auth

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// from returns an HTTP client whose connections leave from the loopback
// address ip (127.0.0.2, 127.0.0.3, …: all of 127/8 is loopback on Linux),
// so the server sees a distinct client address per client.
func (h *harness) from(ip string) *sourceClient {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &sourceClient{h: h, c: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}}
}

type sourceClient struct {
	h *harness
	c *http.Client
}

func (sc *sourceClient) post(path, body string, opts ...reqOpt) response {
	sc.h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, sc.h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		sc.h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, o := range opts {
		o(req)
	}
	resp, err := sc.c.Do(req)
	if err != nil {
		sc.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp, data}
}

func wantRateLimited(t *testing.T, what string, r response) {
	t.Helper()
	if r.StatusCode != http.StatusTooManyRequests || r.errCode() != "rate_limited" {
		t.Fatalf("%s: %d %s, want 429 rate_limited", what, r.StatusCode, r.body)
	}
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("%s: Retry-After %q", what, r.Header.Get("Retry-After"))
	}
}

// TestLoginFloodDoesNotLockOutTheOwner is weakness 1 of issue 9: an
// address flooding wrong passwords gets 429, and so do other addresses
// once they have failed, while the owner logs in at once from an address
// that has not failed.
func TestLoginFloodDoesNotLockOutTheOwner(t *testing.T) {
	h := newHarness(t, nil)
	h.signup("alice", "correct-horse-1")
	attacker := h.from("127.0.0.2")
	refused := false
	for i := range 30 {
		r := attacker.post("/auth/login", creds("alice", "guess-"+strconv.Itoa(i)))
		if r.StatusCode == http.StatusTooManyRequests {
			wantRateLimited(t, "flood", r)
			refused = true
			break
		}
		if r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	if !refused {
		t.Fatal("30 wrong passwords from one address were never refused")
	}
	// Even the right password from the flooding address is refused now.
	wantRateLimited(t, "right password from the flooding address", attacker.post("/auth/login", creds("alice", "correct-horse-1")))

	// More attackers: each fails once, then waits the account's backoff.
	for _, ip := range []string{"127.0.0.4", "127.0.0.5"} {
		a := h.from(ip)
		if r := a.post("/auth/login", creds("alice", "guess")); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s's first guess: %d %s", ip, r.StatusCode, r.body)
		}
		wantRateLimited(t, ip+"'s second guess", a.post("/auth/login", creds("alice", "guess-2")))
	}

	// The owner, from an address that has not failed: at once, both ways.
	owner := h.from("127.0.0.3")
	if r := owner.post("/auth/login", creds("alice", "correct-horse-1"), h.sameOrigin()); r.StatusCode != http.StatusOK {
		t.Fatalf("owner's login while under attack: %d %s", r.StatusCode, r.body)
	}
	if r := owner.post("/auth/token", creds("alice", "correct-horse-1")); r.StatusCode != http.StatusOK {
		t.Fatalf("owner's token while under attack: %d %s", r.StatusCode, r.body)
	}
	// The refusals are security events with the address, never the password.
	logs := h.logs.String()
	if !strings.Contains(logs, "security=login_rate_limited") || !strings.Contains(logs, "client_addr=127.0.0.2") ||
		!strings.Contains(logs, "security=login_failed") {
		t.Errorf("security events missing from the log:\n%s", logs)
	}
	if strings.Contains(logs, "guess-") || strings.Contains(logs, "correct-horse-1") {
		t.Error("a password reached the log")
	}
}

// TestLoginSprayingIsLimitedPerAddress: one address failing across many
// accounts is refused for every account.
func TestLoginSprayingIsLimitedPerAddress(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxFailedLogins, c.MaxFailedLoginsPerAddress = 3, 5 })
	h.signup("alice", "correct-horse-1")
	sprayer := h.from("127.0.0.2")
	for i := range 5 {
		if r := sprayer.post("/auth/login", creds("user"+strconv.Itoa(i), "password123")); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("spray %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	wantRateLimited(t, "6th account from the sprayer", sprayer.post("/auth/login", creds("alice", "correct-horse-1")))
	if r := h.from("127.0.0.3").post("/auth/login", creds("alice", "correct-horse-1")); r.StatusCode != http.StatusOK {
		t.Fatalf("alice from elsewhere: %d %s", r.StatusCode, r.body)
	}
}

// TestLoginAttemptsLimitedPerAddress is weakness 5 for logins: every role
// serving /auth (--role=all included) limits attempts per address, right
// or wrong.
func TestLoginAttemptsLimitedPerAddress(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.LoginRateLimit, c.LoginBurst = 0.001, 3 })
	h.signup("alice", "correct-horse-1")
	flood := h.from("127.0.0.2")
	for i := range 3 {
		if r := flood.post("/auth/token", creds("alice", "correct-horse-1")); r.StatusCode != http.StatusOK {
			t.Fatalf("token %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	wantRateLimited(t, "4th login from one address", flood.post("/auth/login", creds("alice", "correct-horse-1")))
	if r := h.from("127.0.0.3").post("/auth/login", creds("alice", "correct-horse-1")); r.StatusCode != http.StatusOK {
		t.Fatalf("login from another address: %d %s", r.StatusCode, r.body)
	}
}

// TestSignupFloodIsLimited is weakness 5 for signups: the 11th signup from
// one address within the hour gets 429 and creates nothing; another address
// signs up.
func TestSignupFloodIsLimited(t *testing.T) {
	h := newHarness(t, nil)
	flood := h.from("127.0.0.2")
	for i := range 10 {
		if r := flood.post("/auth/signup", creds("bot"+strconv.Itoa(i), "correct-horse-1")); r.StatusCode != http.StatusCreated {
			t.Fatalf("signup %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	r := flood.post("/auth/signup", creds("bot10", "correct-horse-1"))
	wantRateLimited(t, "11th signup", r)
	if secs, _ := strconv.Atoi(r.Header.Get("Retry-After")); secs > 3600 {
		t.Errorf("Retry-After %d s, more than the hour", secs)
	}
	if _, err := h.store.UserByUsername(t.Context(), "bot10"); err == nil {
		t.Fatal("the refused signup created its account")
	}
	// Invalid requests do not use the allowance of another address.
	other := h.from("127.0.0.3")
	for range 12 {
		if r := other.post("/auth/signup", creds("x", "correct-horse-1")); r.StatusCode != http.StatusBadRequest {
			t.Fatalf("invalid signup: %d %s", r.StatusCode, r.body)
		}
	}
	if r := other.post("/auth/signup", creds("human", "correct-horse-1")); r.StatusCode != http.StatusCreated {
		t.Fatalf("signup from another address: %d %s", r.StatusCode, r.body)
	}
	if !strings.Contains(h.logs.String(), "security=signup_rate_limited") {
		t.Error("the refused signup was not logged as a security event")
	}
}

// TestClientAddressFromTrustedProxy: X-Forwarded-For names the client only
// when the connection comes from http.trusted_proxies.
func TestClientAddressFromTrustedProxy(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.TrustedProxies = []string{"127.0.0.9"}
		c.SignupLimit, c.SignupWindow = 1, time.Hour
	})
	proxy := h.from("127.0.0.9")
	for i, client := range []string{"198.51.100.1", "198.51.100.2"} {
		r := proxy.post("/auth/signup", creds("viaproxy"+strconv.Itoa(i), "correct-horse-1"), withHeader("X-Forwarded-For", client))
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("signup for client %s via the proxy: %d %s", client, r.StatusCode, r.body)
		}
	}
	wantRateLimited(t, "second signup of one client via the proxy",
		proxy.post("/auth/signup", creds("viaproxy9", "correct-horse-1"), withHeader("X-Forwarded-For", "198.51.100.1")))
	// An untrusted peer's X-Forwarded-For is ignored: it is its own client.
	direct := h.from("127.0.0.2")
	if r := direct.post("/auth/signup", creds("direct1", "correct-horse-1"), withHeader("X-Forwarded-For", "203.0.113.1")); r.StatusCode != http.StatusCreated {
		t.Fatalf("direct signup: %d %s", r.StatusCode, r.body)
	}
	wantRateLimited(t, "forged X-Forwarded-For from an untrusted peer",
		direct.post("/auth/signup", creds("direct2", "correct-horse-1"), withHeader("X-Forwarded-For", "203.0.113.2")))
}
