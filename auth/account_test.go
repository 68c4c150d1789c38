package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/store"
)

// login logs alice in from a client calling itself ua and returns the
// access and refresh cookies.
func (h *harness) loginAs(user, pass, ua string) (access, refresh *http.Cookie) {
	h.t.Helper()
	r := h.post("/auth/login", creds(user, pass), h.sameOrigin(), withHeader("User-Agent", ua))
	if r.StatusCode != http.StatusOK {
		h.t.Fatalf("login %s: %d %s", user, r.StatusCode, r.body)
	}
	return checkSessionCookies(h.t, r, h.cfg)
}

type sessionList struct {
	Sessions []struct {
		ID, CreatedAt, LastUsedAt, UserAgent string
		Current                              bool
	}
}

func (h *harness) sessions(access *http.Cookie) sessionList {
	h.t.Helper()
	r := h.do(http.MethodGet, "/auth/sessions", "", withCookies(access))
	if r.StatusCode != http.StatusOK {
		h.t.Fatalf("GET /auth/sessions: %d %s", r.StatusCode, r.body)
	}
	var raw struct {
		Sessions []struct {
			ID         string `json:"id"`
			CreatedAt  string `json:"created_at"`
			LastUsedAt string `json:"last_used_at"`
			UserAgent  string `json:"user_agent"`
			Current    bool   `json:"current"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil {
		h.t.Fatal(err)
	}
	var out sessionList
	for _, s := range raw.Sessions {
		out.Sessions = append(out.Sessions, struct {
			ID, CreatedAt, LastUsedAt, UserAgent string
			Current                              bool
		}{s.ID, s.CreatedAt, s.LastUsedAt, s.UserAgent, s.Current})
	}
	return out
}

func (h *harness) me(access *http.Cookie) int {
	h.t.Helper()
	return h.do(http.MethodGet, "/auth/me", "", withCookies(access)).StatusCode
}

func TestSessionListAndRevokeOne(t *testing.T) {
	h := newHarness(t, nil)
	h.signup("alice", "correct-horse-1")
	laptop, _ := h.loginAs("alice", "correct-horse-1", "Laptop/1.0")
	h.offset.Add(int64(time.Minute))
	phone, phoneRefresh := h.loginAs("alice", "correct-horse-1", "Phone/2.0")
	bob := h.signup("bob", "correct-horse-1").cookie(token.SessionCookieName(true))

	list := h.sessions(phone)
	if len(list.Sessions) != 3 { // signup, laptop, phone
		t.Fatalf("sessions = %+v, want alice's 3", list)
	}
	first := list.Sessions[0]
	if !first.Current || first.UserAgent != "Phone/2.0" || first.ID != h.claims(phone).SessionID ||
		!strings.HasSuffix(first.CreatedAt, "Z") || first.LastUsedAt != first.CreatedAt {
		t.Fatalf("the current session, most recent first: %+v", first)
	}
	if list.Sessions[1].UserAgent != "Laptop/1.0" || list.Sessions[1].Current {
		t.Fatalf("second session: %+v", list.Sessions[1])
	}
	// A refresh moves last_used_at and the order.
	h.offset.Add(int64(time.Minute))
	lr := h.post("/auth/refresh", "", withCookies(phoneRefresh), h.sameOrigin())
	if lr.StatusCode != 200 {
		t.Fatalf("refresh: %d %s", lr.StatusCode, lr.body)
	}
	if got := h.sessions(laptop).Sessions[0]; got.UserAgent != "Phone/2.0" || got.LastUsedAt == got.CreatedAt || got.Current {
		t.Fatalf("after the phone's refresh, seen from the laptop: %+v", got)
	}

	// Bob cannot revoke (or see) alice's session: 404, like an unknown one.
	laptopID := h.claims(laptop).SessionID
	sameOrigin := h.sameOrigin()
	if r := h.do(http.MethodDelete, "/auth/sessions/"+laptopID, "", withCookies(bob), sameOrigin); r.StatusCode != 404 {
		t.Fatalf("bob deletes alice's session: %d %s", r.StatusCode, r.body)
	}
	if r := h.do(http.MethodDelete, "/auth/sessions/nosuch", "", withCookies(phone), sameOrigin); r.StatusCode != 404 {
		t.Fatalf("unknown session: %d", r.StatusCode)
	}
	// Cross-origin by cookie: 403.
	if r := h.do(http.MethodDelete, "/auth/sessions/"+laptopID, "", withCookies(phone), withHeader("Origin", "https://evil.example")); r.StatusCode != 403 {
		t.Fatalf("cross-origin revoke: %d", r.StatusCode)
	}
	h.expectNoRevocation()
	if r := h.do(http.MethodDelete, "/auth/sessions/"+laptopID, "", withCookies(phone), sameOrigin); r.StatusCode != 204 {
		t.Fatalf("revoke the laptop: %d %s", r.StatusCode, r.body)
	}
	h.expectRevocation(laptopID)
	if h.me(laptop) != 401 || h.me(phone) != 200 {
		t.Fatal("revoking one session did not end exactly that one")
	}
	if n := len(h.sessions(phone).Sessions); n != 2 {
		t.Fatalf("%d sessions listed after revoking one, want 2", n)
	}
	// Revoking the current one by bearer works and ends it.
	phoneID := h.claims(phone).SessionID
	if r := h.do(http.MethodDelete, "/auth/sessions/"+phoneID, "", withHeader("Authorization", "Bearer "+phone.Value)); r.StatusCode != 204 {
		t.Fatalf("revoke the current session: %d %s", r.StatusCode, r.body)
	}
	h.expectRevocation(phoneID)
	if r := h.do(http.MethodGet, "/auth/sessions", ""); r.StatusCode != 401 {
		t.Fatalf("sessions without a token: %d", r.StatusCode)
	}
}

func TestLogoutAll(t *testing.T) {
	h := newHarness(t, nil)
	h.signup("alice", "correct-horse-1")
	a1, _ := h.loginAs("alice", "correct-horse-1", "A")
	a2, r2 := h.loginAs("alice", "correct-horse-1", "B")
	bob := h.signup("bob", "correct-horse-1").cookie(token.SessionCookieName(true))
	// all needs an access token; the refresh cookie alone is refused.
	if r := h.post("/auth/logout", `{"all":true}`, withCookies(r2), h.sameOrigin()); r.StatusCode != 401 {
		t.Fatalf("logout all by refresh cookie: %d %s", r.StatusCode, r.body)
	}
	r := h.post("/auth/logout", `{"all":true}`, withCookies(a2, r2), h.sameOrigin())
	if r.StatusCode != 204 {
		t.Fatalf("logout all: %d %s", r.StatusCode, r.body)
	}
	checkClearedCookies(t, r)
	for range 3 { // signup's, a1's, a2's
		select {
		case <-h.revoked:
		case <-time.After(5 * time.Second):
			t.Fatal("not every session's revocation was published")
		}
	}
	if h.me(a1) != 401 || h.me(a2) != 401 || h.me(bob) != 200 {
		t.Fatal("logout all did not end exactly alice's sessions")
	}
	// {"all": false} is a plain logout.
	a3, _ := h.loginAs("alice", "correct-horse-1", "C")
	a4, _ := h.loginAs("alice", "correct-horse-1", "D")
	if r := h.post("/auth/logout", `{"all":false}`, withCookies(a3), h.sameOrigin()); r.StatusCode != 204 {
		t.Fatalf("logout all=false: %d", r.StatusCode)
	}
	if h.me(a3) != 401 || h.me(a4) != 200 {
		t.Fatal(`{"all":false} ended more than its session`)
	}
}

func TestPasswordChange(t *testing.T) {
	h := newHarness(t, nil)
	h.signup("alice", "correct-horse-1")
	cur, curRefresh := h.loginAs("alice", "correct-horse-1", "Current")
	other, otherRefresh := h.loginAs("alice", "correct-horse-1", "Other")
	for len(h.revoked) > 0 {
		<-h.revoked
	}
	body := func(oldPw, newPw string) string {
		b, _ := json.Marshal(map[string]string{"current_password": oldPw, "new_password": newPw})
		return string(b)
	}
	so := h.sameOrigin()
	if r := h.post("/auth/password", body("wrong-password-1", "brand-new-secret-7"), withCookies(cur), so); r.StatusCode != 403 || r.errCode() != "invalid_credentials" {
		t.Fatalf("wrong current password: %d %s", r.StatusCode, r.body)
	}
	if r := h.post("/auth/password", body("correct-horse-1", "password"), withCookies(cur), so); r.StatusCode != 400 || r.errCode() != "weak_password" {
		t.Fatalf("weak new password: %d %s", r.StatusCode, r.body)
	}
	if r := h.post("/auth/password", body("correct-horse-1", "brand-new-secret-7"), withCookies(cur), withHeader("Origin", "https://evil.example")); r.StatusCode != 403 || r.errCode() != "forbidden" {
		t.Fatalf("cross-origin change: %d %s", r.StatusCode, r.body)
	}
	if r := h.post("/auth/password", body("correct-horse-1", "brand-new-secret-7")); r.StatusCode != 401 {
		t.Fatalf("change without a session: %d", r.StatusCode)
	}
	h.expectNoRevocation()
	if r := h.post("/auth/password", body("correct-horse-1", "brand-new-secret-7"), withCookies(cur), so); r.StatusCode != 204 {
		t.Fatalf("password change: %d %s", r.StatusCode, r.body)
	}
	// Every other session (signup's and Other) is revoked, the current one stays.
	got := map[string]bool{}
	for range 2 {
		select {
		case sid := <-h.revoked:
			got[sid] = true
		case <-time.After(5 * time.Second):
			t.Fatal("other sessions' revocations not published")
		}
	}
	if !got[h.claims(other).SessionID] || got[h.claims(cur).SessionID] {
		t.Fatalf("revoked %v; want Other's and not the current one", got)
	}
	if h.me(other) != 401 || h.me(cur) != 200 {
		t.Fatal("the change did not end exactly the other sessions")
	}
	if r := h.post("/auth/refresh", "", withCookies(otherRefresh), so); r.StatusCode != 401 {
		t.Fatalf("another session's refresh after the change: %d", r.StatusCode)
	}
	if r := h.post("/auth/refresh", "", withCookies(curRefresh), so); r.StatusCode != 200 {
		t.Fatalf("the current session's refresh after the change: %d", r.StatusCode)
	}
	if r := h.post("/auth/login", creds("alice", "correct-horse-1")); r.StatusCode != 401 {
		t.Fatalf("old password after the change: %d", r.StatusCode)
	}
	if r := h.post("/auth/login", creds("alice", "brand-new-secret-7")); r.StatusCode != 200 {
		t.Fatalf("new password: %d %s", r.StatusCode, r.body)
	}
}

// A stolen session cannot guess the password through /auth/password
// faster than a login could.
func TestPasswordChangeGuessesAreLimited(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxFailedLogins = 3 })
	h.signup("alice", "correct-horse-1")
	cur, _ := h.loginAs("alice", "correct-horse-1", "thief")
	b := `{"current_password":"guess","new_password":"brand-new-secret-7"}`
	for range 3 {
		if r := h.post("/auth/password", b, withCookies(cur), h.sameOrigin()); r.StatusCode != 403 {
			t.Fatalf("guess: %d %s", r.StatusCode, r.body)
		}
	}
	wantRateLimited(t, "4th guess", h.post("/auth/password", b, withCookies(cur), h.sameOrigin()))
}

func TestDeleteAccount(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.signup("alice", "correct-horse-1")
	aliceAccess := alice.cookie(token.SessionCookieName(true))
	aliceID := alice.user().ID
	other, _ := h.loginAs("alice", "correct-horse-1", "Other")
	bobID := h.signup("bob", "correct-horse-1").user().ID
	ctx := context.Background()
	for _, m := range []store.Message{
		{From: aliceID, To: bobID, Text: "hello bob", ClientMsgID: "c1"},
		{From: bobID, To: aliceID, Text: "hi alice", ClientMsgID: "c2"},
	} {
		m.ID, m.CreatedAt = store.NewID(), time.Now()
		if _, _, err := h.store.AppendMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for len(h.revoked) > 0 {
		<-h.revoked
	}
	if r := h.do(http.MethodDelete, "/auth/account", `{"password":"wrong-password-1"}`, withCookies(aliceAccess), h.sameOrigin()); r.StatusCode != 403 || r.errCode() != "invalid_credentials" {
		t.Fatalf("wrong password: %d %s", r.StatusCode, r.body)
	}
	r := h.do(http.MethodDelete, "/auth/account", `{"password":"correct-horse-1"}`, withCookies(aliceAccess), h.sameOrigin())
	if r.StatusCode != 204 {
		t.Fatalf("delete account: %d %s", r.StatusCode, r.body)
	}
	checkClearedCookies(t, r)
	for range 2 {
		select {
		case <-h.revoked:
		case <-time.After(5 * time.Second):
			t.Fatal("the account's sessions' revocations were not published")
		}
	}
	if h.me(aliceAccess) != 401 || h.me(other) != 401 {
		t.Fatal("a session of the deleted account still works")
	}
	if r := h.post("/auth/login", creds("alice", "correct-horse-1")); r.StatusCode != 401 {
		t.Fatalf("login to the deleted account: %d", r.StatusCode)
	}
	tomb, err := h.store.UserByID(ctx, aliceID)
	if err != nil || tomb.Username != store.DeletedUsername(aliceID) || tomb.PasswordHash != "" {
		t.Fatalf("tombstone %+v %v", tomb, err)
	}
	msgs, _, err := h.store.MessagesAfter(ctx, store.ConversationID(aliceID, bobID), 0, 10)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("bob's history: %v %v", msgs, err)
	}
	if !msgs[0].Deleted || msgs[0].Text != "" || msgs[1].Deleted || msgs[1].Text != "hi alice" {
		t.Fatalf("after the deletion, bob's history is %+v", msgs)
	}
	// The name is free again.
	h.signup("alice", "another-horse-2")
}

// TestSessionMaxAge: refreshes never carry a session past
// auth.session_max_age after its login.
func TestSessionMaxAge(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SessionMaxAge = 48 * time.Hour; c.RefreshTTL = 30 * time.Hour })
	r := h.signup("alice", "correct-horse-1")
	_, refresh := checkSessionCookies(t, r, h.cfg)
	sid := h.claims(r.cookie(token.SessionCookieName(true))).SessionID
	// Refresh every 20 h: each restarts the 30 h refresh lifetime, but the
	// session still ends 48 h after the login.
	for i := range 2 {
		h.offset.Add(int64(20 * time.Hour))
		rr := h.post("/auth/refresh", "", withCookies(refresh), h.sameOrigin())
		if rr.StatusCode != 200 {
			t.Fatalf("refresh %d: %d %s", i, rr.StatusCode, rr.body)
		}
		var access *http.Cookie
		access, refresh = rr.cookie(token.SessionCookieName(true)), rr.cookie(token.RefreshCookie)
		c := h.claims(access)
		sess, _ := h.store.SessionByID(context.Background(), sid)
		end := sess.CreatedAt.Add(48 * time.Hour)
		if sess.ExpiresAt.After(end) || c.ExpiresAt.After(end) {
			t.Fatalf("refresh %d: refresh expiry %v, access exp %v, past the session's end %v", i, sess.ExpiresAt, c.ExpiresAt, end)
		}
	}
	h.offset.Add(int64(9 * time.Hour)) // 49 h after the login
	if rr := h.post("/auth/refresh", "", withCookies(refresh), h.sameOrigin()); rr.StatusCode != 401 {
		t.Fatalf("refresh past session_max_age: %d %s", rr.StatusCode, rr.body)
	}
}

// TestRefreshFamilyReuse: a genuine token two rotations old revokes the
// session at any time; a forged one of the family revokes nothing.
func TestRefreshFamilyReuse(t *testing.T) {
	h := newHarness(t, nil)
	r := h.signup("alice", "correct-horse-1")
	_, t0 := checkSessionCookies(t, r, h.cfg)
	sid := h.claims(r.cookie(token.SessionCookieName(true))).SessionID
	rotate := func(c *http.Cookie) *http.Cookie {
		t.Helper()
		rr := h.post("/auth/refresh", "", withCookies(c), h.sameOrigin())
		if rr.StatusCode != 200 {
			t.Fatalf("refresh: %d %s", rr.StatusCode, rr.body)
		}
		return rr.cookie(token.RefreshCookie)
	}
	t1 := rotate(t0)
	t2 := rotate(t1)
	// A forged token of this session with an old generation: refused, no
	// revocation.
	forged := &http.Cookie{Name: token.RefreshCookie, Value: sid + ".0." + randomSecret() + "." + randomSecret()}
	if rr := h.post("/auth/refresh", "", withCookies(forged), h.sameOrigin()); rr.StatusCode != 401 {
		t.Fatalf("forged token: %d", rr.StatusCode)
	}
	h.expectNoRevocation()
	// t0, two rotations old, within what would be t1's grace: a reuse.
	if rr := h.post("/auth/refresh", "", withCookies(t0), h.sameOrigin()); rr.StatusCode != 401 {
		t.Fatalf("token two rotations old: %d %s", rr.StatusCode, rr.body)
	}
	h.expectRevocation(sid)
	if rr := h.post("/auth/refresh", "", withCookies(t2), h.sameOrigin()); rr.StatusCode != 401 {
		t.Fatalf("the current token after the family's reuse: %d", rr.StatusCode)
	}
}

// TestConcurrentRefreshGrace: two tabs refreshing with the same token at
// once both get 200 and the session lives; only one answer carries cookies.
func TestConcurrentRefreshGrace(t *testing.T) {
	h := newHarness(t, nil)
	_, refresh := checkSessionCookies(t, h.signup("alice", "correct-horse-1"), h.cfg)
	const tabs = 4
	results := make([]response, tabs)
	var wg sync.WaitGroup
	for i := range tabs {
		wg.Go(func() { results[i] = h.post("/auth/refresh", "", withCookies(refresh), h.sameOrigin()) })
	}
	wg.Wait()
	var winner *http.Cookie
	for i, rr := range results {
		if rr.StatusCode != 200 {
			t.Fatalf("tab %d: %d %s", i, rr.StatusCode, rr.body)
		}
		if c := rr.cookie(token.RefreshCookie); c != nil {
			if winner != nil {
				t.Fatal("two tabs got a new refresh token")
			}
			winner = c
		} else if len(rr.Header.Values("Set-Cookie")) != 0 {
			t.Fatalf("a losing tab got cookies: %v", rr.Header.Values("Set-Cookie"))
		}
	}
	if winner == nil {
		t.Fatal("no tab got the new pair")
	}
	h.expectNoRevocation()
	if rr := h.post("/auth/refresh", "", withCookies(winner), h.sameOrigin()); rr.StatusCode != 200 {
		t.Fatalf("the winner's token: %d %s", rr.StatusCode, rr.body)
	}
}

// TestHugeBearerRefusedBeforeParsing and the __Host- cookie.
func TestHugeBearerAndHostCookie(t *testing.T) {
	h := newHarness(t, nil)
	r := h.signup("alice", "correct-horse-1")
	access := r.cookie(token.SecureSessionCookie)
	if access == nil || access.Path != "/" || access.Domain != "" || !access.Secure {
		t.Fatalf("access cookie %v, want __Host-chatd_session, Path=/, no Domain, Secure", r.Header.Values("Set-Cookie"))
	}
	// Either name is accepted.
	if r := h.do(http.MethodGet, "/auth/me", "", withCookies(&http.Cookie{Name: token.SessionCookie, Value: access.Value})); r.StatusCode != 200 {
		t.Fatalf("me by the unprefixed cookie: %d", r.StatusCode)
	}
	huge := strings.Repeat("A", token.MaxTokenBytes+1)
	if r := h.do(http.MethodGet, "/auth/sessions", "", withHeader("Authorization", "Bearer "+huge)); r.StatusCode != 401 {
		t.Fatalf("huge bearer: %d", r.StatusCode)
	}
	if !strings.Contains(h.logs.String(), "security=invalid_token") {
		t.Error("the invalid token was not logged as a security event")
	}
	if strings.Contains(h.logs.String(), huge[:100]) {
		t.Error("the token reached the log")
	}
}
