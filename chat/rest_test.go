package chat

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type historyPage struct {
	Messages []frame `json:"messages"`
	HasMore  bool    `json:"has_more"`
}

func (h historyPage) seqs() []int64 {
	out := make([]int64, 0, len(h.Messages))
	for _, m := range h.Messages {
		out = append(out, m.num("seq"))
	}
	return out
}

func TestHistoryPaging(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	for i := range 7 {
		from, to := alice, bob
		if i%2 == 1 {
			from, to = bob, alice
		}
		if st, _ := e.restSend(from, to, fmt.Sprintf("m%d", i+1), cmid()); st != http.StatusCreated {
			t.Fatalf("send: %d", st)
		}
	}
	for _, tc := range []struct {
		query   string
		want    []int64
		hasMore bool
	}{
		{"?limit=3", []int64{5, 6, 7}, true},
		{"", []int64{1, 2, 3, 4, 5, 6, 7}, false},
		{"?before=5&limit=3", []int64{2, 3, 4}, true},
		{"?before=2&limit=3", []int64{1}, false},
		{"?after=0&limit=3", []int64{1, 2, 3}, true},
		{"?after=3&limit=3", []int64{4, 5, 6}, true},
		{"?after=6&limit=3", []int64{7}, false},
		{"?after=7", []int64{}, false},
		{"?limit=500", []int64{1, 2, 3, 4, 5, 6, 7}, false}, // clamped to history_max
	} {
		for _, who := range []*testUser{alice, bob} {
			peer := bob
			if who == bob {
				peer = alice
			}
			var page historyPage
			if st := e.call(who.token, "GET", "/api/conversations/"+peer.id+"/messages"+tc.query, nil, &page); st != 200 {
				t.Fatalf("%s %s: status %d", who.name, tc.query, st)
			}
			if got := page.seqs(); fmt.Sprint(got) != fmt.Sprint(tc.want) || page.HasMore != tc.hasMore {
				t.Errorf("%s %s: seqs %v has_more %v, want %v %v", who.name, tc.query, got, page.HasMore, tc.want, tc.hasMore)
			}
		}
	}
	var page historyPage
	if st := e.call(alice.token, "GET", "/api/conversations/"+bob.id+"/messages?limit=1", nil, &page); st != 200 ||
		page.Messages[0].str("text") != "m7" || page.Messages[0].str("from") != alice.id || !timeRE.MatchString(page.Messages[0].str("created_at")) {
		t.Fatalf("newest message = %v", page.Messages)
	}
	// A known peer without messages: 200 and an empty list (not null).
	var raw map[string]any
	if st := e.call(carol.token, "GET", "/api/conversations/"+alice.id+"/messages", nil, &raw); st != 200 ||
		fmt.Sprint(raw["messages"]) != "[]" || raw["has_more"] != false {
		t.Fatalf("empty history: %d %v", st, raw)
	}
	var ae apiError
	if st := e.call(carol.token, "GET", "/api/conversations/nobody/messages", nil, &ae); st != 404 || ae.Error.Code != "not_found" {
		t.Fatalf("unknown peer: %d %v", st, ae)
	}
}

func TestConversationsList(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	var raw map[string]any
	if st := e.call(alice.token, "GET", "/api/conversations", nil, &raw); st != 200 || fmt.Sprint(raw["conversations"]) != "[]" {
		t.Fatalf("no conversations: %d %v", st, raw)
	}
	e.restSend(alice, bob, "to bob", cmid())
	e.restSend(alice, carol, "to carol", cmid()) // carol will answer: a contact, whose presence alice sees
	time.Sleep(5 * time.Millisecond)             // distinct activity times
	e.restSend(carol, alice, "to alice", cmid())
	var list struct {
		Conversations []frame `json:"conversations"`
	}
	e.call(alice.token, "GET", "/api/conversations", nil, &list)
	if len(list.Conversations) != 2 {
		t.Fatalf("%d conversations", len(list.Conversations))
	}
	first, second := list.Conversations[0], list.Conversations[1]
	if first.obj("peer").str("id") != carol.id || second.obj("peer").str("id") != bob.id {
		t.Fatalf("order: %v then %v", first.obj("peer"), second.obj("peer"))
	}
	if first.num("unread") != 1 || second.num("unread") != 0 || first.obj("last_message").str("text") != "to alice" {
		t.Fatalf("conversations = %v", list.Conversations)
	}
	p := first.obj("presence")
	if _, ok := p["online"]; !ok || p["online"] != false {
		t.Fatalf("presence = %v", p)
	}
	if _, ok := p["last_seen"]; !ok {
		t.Fatalf("presence without last_seen: %v", p)
	}
	for _, k := range []string{"id", "peer", "presence", "last_message", "last_seq", "unread", "read_seq", "peer_read_seq", "peer_delivered_seq"} {
		if _, ok := first[k]; !ok {
			t.Errorf("conversation lacks %q", k)
		}
	}
}

func TestSearchUsers(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.user("alice")
	e.user("albert")
	e.user("bob")
	alfred := e.user("alfred")
	e.contacts(alice, alfred) // alice sees alfred's presence
	e.dial(alfred)
	var out struct {
		Users []frame `json:"users"`
	}
	if st := e.call(alice.token, "GET", "/api/users?q=al", nil, &out); st != 200 {
		t.Fatalf("status %d", st)
	}
	var names []string
	for _, u := range out.Users {
		names = append(names, u.str("username"))
		if u.str("username") == "alfred" && u.obj("presence")["online"] != true {
			t.Errorf("alfred presence = %v", u.obj("presence"))
		}
		if u.str("id") == "" || u.str("display_name") == "" {
			t.Errorf("user = %v", u)
		}
	}
	if fmt.Sprint(names) != "[albert alfred]" {
		t.Fatalf("search al = %v (caller excluded)", names)
	}
	e.call(alice.token, "GET", "/api/users?q=al&limit=1", nil, &out)
	if len(out.Users) != 1 {
		t.Fatalf("limit=1 gave %d users", len(out.Users))
	}
	e.call(alice.token, "GET", "/api/users?q=AL", nil, &out)
	if len(out.Users) != 2 {
		t.Fatalf("case-insensitive search gave %d users", len(out.Users))
	}
	if st := e.call(alice.token, "GET", "/api/users?q="+strings.Repeat("a", 65), nil, nil); st != http.StatusBadRequest {
		t.Fatalf("a 65-character prefix: %d, want 400", st)
	}
}

// Every REST validation error code.
func TestRESTErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	msg := func(kv ...any) map[string]any {
		m := map[string]any{"to": bob.id, "text": "hi", "client_msg_id": cmid()}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		tok    string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"no token", "", "GET", "/api/conversations", nil, 401, "unauthenticated"},
		{"bad token", "not.a.jwt", "GET", "/api/conversations", nil, 401, "unauthenticated"},
		{"no token ws-less post", "", "POST", "/api/messages", msg(), 401, "unauthenticated"},
		{"invalid json", alice.token, "POST", "/api/messages", `{"to":`, 400, "invalid_request"},
		{"wrong type", alice.token, "POST", "/api/messages", `{"to":5,"text":"x","client_msg_id":"a"}`, 400, "invalid_request"},
		{"text empty", alice.token, "POST", "/api/messages", msg("text", " \n\t\u00a0"), 400, "text_empty"},
		{"text missing", alice.token, "POST", "/api/messages", msg("text", nil), 400, "text_empty"},
		{"text too long", alice.token, "POST", "/api/messages", msg("text", strings.Repeat("x", 4097)), 400, "text_too_long"},
		{"text too long multibyte", alice.token, "POST", "/api/messages", msg("text", strings.Repeat("€", 1366)), 400, "text_too_long"},
		{"client_msg_id missing", alice.token, "POST", "/api/messages", msg("client_msg_id", nil), 400, "invalid_request"},
		{"client_msg_id empty", alice.token, "POST", "/api/messages", msg("client_msg_id", ""), 400, "invalid_request"},
		{"client_msg_id too long", alice.token, "POST", "/api/messages", msg("client_msg_id", strings.Repeat("c", 65)), 400, "invalid_request"},
		{"to missing", alice.token, "POST", "/api/messages", msg("to", nil), 400, "invalid_request"},
		{"to unknown", alice.token, "POST", "/api/messages", msg("to", "nobody"), 404, "not_found"},
		{"to self", alice.token, "POST", "/api/messages", msg("to", alice.id), 400, "cannot_message_self"},
		{"body too large", alice.token, "POST", "/api/messages", `{"to":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "too_large"},
		{"history bad limit", alice.token, "GET", "/api/conversations/" + bob.id + "/messages?limit=abc", nil, 400, "invalid_request"},
		{"history zero limit", alice.token, "GET", "/api/conversations/" + bob.id + "/messages?limit=0", nil, 400, "invalid_request"},
		{"history bad before", alice.token, "GET", "/api/conversations/" + bob.id + "/messages?before=x", nil, 400, "invalid_request"},
		{"history zero before", alice.token, "GET", "/api/conversations/" + bob.id + "/messages?before=0", nil, 400, "invalid_request"},
		{"history negative after", alice.token, "GET", "/api/conversations/" + bob.id + "/messages?after=-1", nil, 400, "invalid_request"},
		{"history before and after", alice.token, "GET", "/api/conversations/" + bob.id + "/messages?after=1&before=3", nil, 400, "invalid_request"},
		{"history unknown peer", alice.token, "GET", "/api/conversations/nobody/messages", nil, 404, "not_found"},
		{"read unknown peer", alice.token, "POST", "/api/conversations/nobody/read", map[string]any{"seq": 1}, 404, "not_found"},
		{"read missing seq", alice.token, "POST", "/api/conversations/" + bob.id + "/read", map[string]any{}, 400, "invalid_request"},
		{"read negative seq", alice.token, "POST", "/api/conversations/" + bob.id + "/read", map[string]any{"seq": -1}, 400, "invalid_request"},
		{"read bad seq", alice.token, "POST", "/api/conversations/" + bob.id + "/read", map[string]any{"seq": "one"}, 400, "invalid_request"},
		{"unknown user", alice.token, "GET", "/api/users/nobody", nil, 404, "not_found"},
		{"search bad limit", alice.token, "GET", "/api/users?limit=-3", nil, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ae apiError
			st := e.call(tc.tok, tc.method, tc.path, tc.body, &ae)
			if st != tc.status || ae.Error.Code != tc.code || ae.Error.Message == "" {
				t.Errorf("got %d %+v, want %d %s", st, ae.Error, tc.status, tc.code)
			}
		})
	}

	// 415 without a JSON content type.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/messages", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+alice.token)
	req.Header.Set("Content-Type", "text/plain")
	var ae apiError
	if st := e.do(req, &ae); st != 415 || ae.Error.Code != "unsupported_media_type" {
		t.Errorf("text/plain: %d %v", st, ae)
	}

	// Cookie authentication: unsafe requests must be same-origin.
	cookieReq := func(origin string) *http.Request {
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/messages", strings.NewReader(
			fmt.Sprintf(`{"to":%q,"text":"by cookie","client_msg_id":%q}`, bob.id, cmid())))
		req.Header.Set("Content-Type", "application/json")
		req.AddCookie(&http.Cookie{Name: "chatd_session", Value: alice.token})
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		return req
	}
	if st := e.do(cookieReq("https://evil.example"), &ae); st != 403 || ae.Error.Code != "forbidden" {
		t.Errorf("cross-origin cookie POST: %d %v", st, ae)
	}
	if st := e.do(cookieReq(""), &ae); st != 403 {
		t.Errorf("cookie POST without Origin: %d", st)
	}
	if st := e.do(cookieReq(e.srv.URL), nil); st != 201 {
		t.Errorf("same-origin cookie POST: %d", st)
	}
	// A cookie-authenticated GET needs no Origin.
	req, _ = http.NewRequest("GET", e.srv.URL+"/api/conversations", nil)
	req.AddCookie(&http.Cookie{Name: "chatd_session", Value: alice.token})
	if st := e.do(req, nil); st != 200 {
		t.Errorf("cookie GET: %d", st)
	}

	// `from` is the caller whatever the body says; text is stored as sent;
	// 4096 bytes of multi-byte text is accepted.
	text := strings.Repeat("€", 1365) + "x"
	st, m := e.restSend(alice, bob, text, "exact-limit")
	if st != 201 || m.str("from") != alice.id || m.str("text") != text {
		t.Fatalf("4096-byte send: %d %v", st, m.str("from"))
	}
	var out struct {
		Message frame `json:"message"`
	}
	if st := e.call(alice.token, "POST", "/api/messages", map[string]any{"to": bob.id, "from": bob.id, "text": "  spaced  ", "client_msg_id": "f-1"}, &out); st != 201 ||
		out.Message.str("from") != alice.id || out.Message.str("text") != "  spaced  " {
		t.Fatalf("from override: %d %v", st, out.Message)
	}
	// Read of a known peer without a conversation: 204.
	carol := e.user("carol")
	if st := e.call(carol.token, "POST", "/api/conversations/"+alice.id+"/read", map[string]any{"seq": 5}, nil); st != 204 {
		t.Fatalf("read without conversation: %d", st)
	}
	// Unknown fields are ignored.
	if st := e.call(alice.token, "POST", "/api/messages", map[string]any{"to": bob.id, "text": "x", "client_msg_id": "u-1", "extra": true}, nil); st != 201 {
		t.Fatalf("unknown field: %d", st)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for key, mod := range map[string]func(*Config){
		"max_text_bytes":  func(c *Config) { c.MaxTextBytes = 0 },
		"body_limit":      func(c *Config) { c.BodyLimit = 10 },
		"frame_limit":     func(c *Config) { c.FrameLimit = 0 },
		"heartbeat":       func(c *Config) { c.Heartbeat = 0 },
		"send_queue":      func(c *Config) { c.SendQueue = -1 },
		"send_window":     func(c *Config) { c.SendWindow = 0 },
		"offline_grace":   func(c *Config) { c.OfflineGrace = 6 * time.Second },
		"typing_interval": func(c *Config) { c.TypingInterval = 0 },
		"history_limit":   func(c *Config) { c.HistoryLimit = 500 },
		"history_max":     func(c *Config) { c.HistoryMax = 0 },
		"public_origins":  func(c *Config) { c.PublicOrigins = []string{"chat.example"} },
	} {
		c := DefaultConfig()
		mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: got %v", key, err)
		}
	}
}

// A backend that fails gives 503 unavailable with Retry-After, never internals.
func TestBackendDown(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a := e.dial(alice)
	if err := e.svc.Ready(context.Background()); err != nil {
		t.Fatalf("ready: %v", err)
	}
	_ = e.st.Close()
	if err := e.svc.Ready(context.Background()); err == nil {
		t.Fatal("ready with a closed store")
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/conversations", nil)
	req.Header.Set("Authorization", "Bearer "+bob.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"unavailable"`) || strings.Contains(string(body), "sqlite") {
		t.Fatalf("got %d %q (Retry-After %q)", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	a.send(bob, "lost?", "down-1")
	if f, _ := a.nextOf("error"); f.str("ref") != "down-1" || f.obj("error").str("code") != "unavailable" {
		t.Fatalf("send with the store down: %v", f)
	}
}

// UserWentOffline (a dead replica's user) announces the user offline to its peers.
func TestUserWentOffline(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	e.contacts(alice, bob)
	b := e.dial(bob)
	at := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	e.svc.UserWentOffline(alice.id, at)
	p, _ := b.nextOf("presence")
	if p.str("user_id") != alice.id || p.obj("presence")["online"] != false || p.obj("presence").str("last_seen") != "2026-11-27T10:00:00.123Z" {
		t.Fatalf("presence = %v", p)
	}
}
