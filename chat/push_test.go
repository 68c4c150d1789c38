package chat

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/pubsub/redispubsub"
	"github.com/chatd/chatd/push"
	"github.com/chatd/chatd/store"
)

const testPushSubject = "mailto:ops@chat.example"

// pushEnv is a chat node whose Notifier is a real push.Sender with one
// worker (so pushes leave in queue order), talking to a local push service.
type pushEnv struct {
	*testEnv
	ps  *pushService
	key *push.Key
}

func newPushEnv(t testing.TB, mod func(*push.Config), setup func(*testEnv)) *pushEnv {
	t.Helper()
	key, err := push.LoadOrCreateKey(filepath.Join(t.TempDir(), "vapid.key"))
	if err != nil {
		t.Fatal(err)
	}
	pe := &pushEnv{key: key, ps: newPushService(t, key.PublicKey(), testPushSubject)}
	pe.testEnv = newTestEnvWith(t, nil, func(e *testEnv) {
		e.notifier = func(st store.Store, pres pubsub.Presence) Notifier {
			cfg := push.DefaultConfig()
			cfg.Workers, cfg.Subject, cfg.AllowInsecureEndpoints = 1, testPushSubject, true
			cfg.RetryBackoff, cfg.Timeout = 10*time.Millisecond, 2*time.Second
			if mod != nil {
				mod(&cfg)
			}
			s, err := push.New(cfg, push.Deps{Store: st, Presence: pres, Key: key})
			if err != nil {
				t.Fatalf("push.New: %v", err)
			}
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Stop(context.Background()) })
			return s
		}
		if setup != nil {
			setup(e)
		}
	})
	return pe
}

func (pe *pushEnv) send(from, to *testUser, text string) frame {
	pe.t.Helper()
	st, m := pe.restSend(from, to, text, cmid())
	if st != http.StatusCreated {
		pe.t.Fatalf("send: status %d", st)
	}
	return m
}

// A message to a user with no connection is pushed to each subscription,
// encrypted, VAPID-signed, collapsed per conversation, without the text.
func TestPushToOfflineRecipient(t *testing.T) {
	pe := newPushEnv(t, nil, nil)
	alice, bob := pe.user("alice"), pe.user("bob")
	var key struct {
		PublicKey string `json:"public_key"`
	}
	if st := pe.call(bob.token, "GET", "/api/push/key", nil, &key); st != 200 || key.PublicKey != pe.key.PublicKey() {
		t.Fatalf("GET /api/push/key = %d %q, want 200 %q", st, key.PublicKey, pe.key.PublicKey())
	}
	pe.ps.subscribe(pe.testEnv, bob, "bob-1")
	pe.ps.subscribe(pe.testEnv, bob, "bob-2")
	m := pe.send(alice, bob, "secret words")
	for _, id := range []string{"bob-1", "bob-2"} {
		p := pe.ps.next(id)
		want := push.Payload{ConversationID: m.str("conversation_id"), From: alice.id, Seq: m.num("seq")}
		if p.payload != want {
			t.Fatalf("payload %s, want %+v (no text without push.include_text)", p.raw, want)
		}
		if p.topic != push.Topic(want.ConversationID) || p.urgency != "high" || p.ttl != "43200" {
			t.Fatalf("headers Topic=%q Urgency=%q TTL=%q", p.topic, p.urgency, p.ttl)
		}
	}
	// The sender gets no push for its own message.
	pe.ps.subscribe(pe.testEnv, alice, "alice-1")
	pe.send(bob, alice, "hello")
	if p := pe.ps.next("alice-1"); p.payload.From != bob.id {
		t.Fatalf("alice's push is from %s, want bob", p.payload.From)
	}
	pe.ps.none()
}

func TestPushIncludeText(t *testing.T) {
	pe := newPushEnv(t, func(c *push.Config) { c.IncludeText = true }, nil)
	alice, bob := pe.user("alice"), pe.user("bob")
	pe.ps.subscribe(pe.testEnv, bob, "bob-1")
	pe.send(alice, bob, "héllo <b>")
	if p := pe.ps.next("bob-1"); p.payload.Text != "héllo <b>" {
		t.Fatalf("text %q, want the message's", p.payload.Text)
	}
	long := ""
	for len(long) < 2000 {
		long += "ü"
	}
	pe.send(alice, bob, long)
	if p := pe.ps.next("bob-1"); len(p.payload.Text) > push.MaxTextBytes || p.payload.Text[len(p.payload.Text)-3:] != "…" {
		t.Fatalf("a long text is pushed as %d bytes %q…, want at most %d ending in …", len(p.payload.Text), p.payload.Text[:10], push.MaxTextBytes)
	}
}

// Two chat replicas share a real redis-server: while the recipient has a
// socket on the other replica nothing is pushed; after its last socket
// closed (and the offline grace passed) the next message is.
func TestPushOnlyWhenOfflineOnEveryReplica(t *testing.T) {
	redis := testserver.StartRedis(t)
	newBroker := func(node string) *redispubsub.Broker {
		b, err := redispubsub.New(context.Background(), redispubsub.Options{URL: redis.URL(), NodeID: node, PresenceTTL: 5 * time.Second})
		if err != nil {
			t.Fatalf("redispubsub: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	b1, b2 := newBroker("node-1"), newBroker("node-2")
	use := func(e *testEnv, b *redispubsub.Broker) {
		e.wrapBroker = func(pubsub.Broker) pubsub.Broker { return b }
		e.wrapPresence = func(pubsub.Presence) pubsub.Presence { return b }
	}
	pe := newPushEnv(t, nil, func(e *testEnv) { use(e, b1) })
	use(pe.testEnv, b2)
	node2 := pe.node("node-2", nil)

	alice, bob, carol := pe.user("alice"), pe.user("bob"), pe.user("carol")
	pe.ps.subscribe(pe.testEnv, bob, "bob-1")
	pe.ps.subscribe(pe.testEnv, carol, "carol-1")
	bobWS := node2.dial(bob) // bob is online on node 2 only

	pe.send(alice, bob, "you are online") // stored by node 1
	if _, skipped := bobWS.nextOf("message"); len(skipped) > 0 && skipped[0].typ() == "error" {
		t.Fatalf("bob: %v", skipped)
	}
	// carol's push is queued after bob's message on node 1's one worker:
	// once it arrived, bob's was decided, and it must not have been pushed.
	pe.send(alice, carol, "you are not")
	pe.ps.next("carol-1")
	pe.ps.none()

	_ = bobWS.c.Close(1000, "bye")
	waitUntil(t, "bob offline in the cluster presence", func() bool {
		st, err := b1.Lookup(context.Background(), []string{bob.id})
		return err == nil && !st[bob.id].Online
	})
	m := pe.send(alice, bob, "now you are offline")
	if p := pe.ps.next("bob-1"); p.payload.Seq != m.num("seq") {
		t.Fatalf("push for seq %d, want %d", p.payload.Seq, m.num("seq"))
	}
}

// A 410 (or 404) from the push service removes the subscription.
func TestPushGoneRemovesSubscription(t *testing.T) {
	pe := newPushEnv(t, nil, nil)
	alice, bob := pe.user("alice"), pe.user("bob")
	pe.ps.answer = func(id string, _ int) int {
		if id == "bob-old" {
			return http.StatusGone
		}
		return http.StatusCreated
	}
	pe.ps.subscribe(pe.testEnv, bob, "bob-old")
	pe.ps.subscribe(pe.testEnv, bob, "bob-new")
	pe.send(alice, bob, "hi")
	pe.ps.next("bob-new")
	waitSubs(t, pe.testEnv, bob, 1)
	subs, _ := pe.st.PushSubscriptions(context.Background(), bob.id)
	if subs[0].Endpoint != pe.ps.subs["bob-new"].endpoint {
		t.Fatalf("kept %s, want bob-new", subs[0].Endpoint)
	}
}

// A 503 or 429 is tried again (bounded); the push arrives on a later try.
func TestPushRetriesServerErrors(t *testing.T) {
	pe := newPushEnv(t, nil, nil)
	alice, bob := pe.user("alice"), pe.user("bob")
	pe.ps.answer = func(_ string, n int) int {
		switch n {
		case 1:
			return http.StatusServiceUnavailable
		case 2:
			return http.StatusTooManyRequests
		}
		return http.StatusCreated
	}
	pe.ps.subscribe(pe.testEnv, bob, "bob-1")
	pe.send(alice, bob, "hi")
	pe.ps.next("bob-1")
	pe.ps.mu.Lock()
	n := pe.ps.counts["bob-1"]
	pe.ps.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d requests, want 3 (503, 429, then accepted)", n)
	}
	waitSubs(t, pe.testEnv, bob, 1) // a retryable answer keeps the subscription
}

// A muted conversation is not pushed until it is unmuted; the mute shows
// in the conversation list as muted_until.
func TestMuteSuppressesPushes(t *testing.T) {
	pe := newPushEnv(t, nil, nil)
	alice, bob, carol := pe.user("alice"), pe.user("bob"), pe.user("carol")
	pe.ps.subscribe(pe.testEnv, bob, "bob-1")
	pe.ps.subscribe(pe.testEnv, carol, "carol-1")
	pe.send(alice, bob, "first")
	pe.ps.next("bob-1")

	until := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	if st := pe.call(bob.token, "PUT", "/api/conversations/"+alice.id+"/mute", map[string]any{"until": until.Format(time.RFC3339Nano)}, nil); st != http.StatusNoContent {
		t.Fatalf("mute: %d", st)
	}
	var convs struct {
		Conversations []struct {
			MutedUntil *string `json:"muted_until"`
		} `json:"conversations"`
	}
	pe.call(bob.token, "GET", "/api/conversations", nil, &convs)
	if len(convs.Conversations) != 1 || convs.Conversations[0].MutedUntil == nil || *convs.Conversations[0].MutedUntil != until.Format("2006-01-02T15:04:05.000Z") {
		t.Fatalf("bob's conversations after the mute: %+v", convs)
	}
	pe.send(alice, bob, "muted")
	pe.send(alice, carol, "not muted") // queued after bob's on the one worker
	pe.ps.next("carol-1")
	pe.ps.none()

	if st := pe.call(bob.token, "PUT", "/api/conversations/"+alice.id+"/mute", `{"until": null}`, nil); st != http.StatusNoContent {
		t.Fatalf("unmute: %d", st)
	}
	pe.call(bob.token, "GET", "/api/conversations", nil, &convs)
	if convs.Conversations[0].MutedUntil != nil {
		t.Fatalf("muted_until after unmute = %q, want null", *convs.Conversations[0].MutedUntil)
	}
	pe.send(alice, bob, "unmuted")
	pe.ps.next("bob-1")
}

func TestMuteRequests(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	for _, c := range []struct {
		path, body string
		want       int
		code       string
	}{
		{"/api/conversations/" + bob.id + "/mute", `{}`, 400, "invalid_request"},
		{"/api/conversations/" + bob.id + "/mute", `{"until": "tomorrow"}`, 400, "invalid_request"},
		{"/api/conversations/" + bob.id + "/mute", `{"until": 5}`, 400, "invalid_request"},
		{"/api/conversations/" + alice.id + "/mute", `{"until": null}`, 400, "cannot_message_self"},
		{"/api/conversations/nobody/mute", `{"until": null}`, 404, "not_found"},
		{"/api/conversations/" + bob.id + "/mute", `{"until": "2020-01-01T00:00:00Z"}`, 204, ""}, // ended already: unmuted
		{"/api/conversations/" + bob.id + "/mute", `{"until": "9999-12-31T23:59:59.999Z"}`, 204, ""},
	} {
		var out apiError
		if st := e.call(alice.token, "PUT", c.path, c.body, &out); st != c.want || out.Error.Code != c.code {
			t.Errorf("PUT %s %s = %d %q, want %d %q", c.path, c.body, st, out.Error.Code, c.want, c.code)
		}
	}
	if until, err := e.st.MutedUntil(context.Background(), alice.id, bob.id); err != nil || until.Year() != 9999 {
		t.Fatalf("MutedUntil = %v, %v", until, err)
	}
}

// The subscription endpoints validate what they store and keep at most
// maxPushSubscriptions per user.
func TestPushSubscriptionRequests(t *testing.T) {
	pe := newPushEnv(t, func(c *push.Config) { c.AllowInsecureEndpoints = false }, nil)
	alice, bob := pe.user("alice"), pe.user("bob")
	good := pe.ps.newSub("x").body()
	keys := good["keys"].(map[string]string)
	for _, c := range []struct {
		name string
		body any
	}{
		{"http endpoint", map[string]any{"endpoint": "http://push.example/x", "keys": keys}},
		{"loopback endpoint", map[string]any{"endpoint": "https://127.0.0.1/x", "keys": keys}},
		{"private endpoint", map[string]any{"endpoint": "https://10.1.2.3/x", "keys": keys}},
		{"localhost endpoint", map[string]any{"endpoint": "https://localhost/x", "keys": keys}},
		{"user info", map[string]any{"endpoint": "https://u:p@push.example/x", "keys": keys}},
		{"no endpoint", map[string]any{"keys": keys}},
		{"short p256dh", map[string]any{"endpoint": "https://push.example/x", "keys": map[string]string{"p256dh": "BAAA", "auth": keys["auth"]}}},
		{"p256dh off the curve", map[string]any{"endpoint": "https://push.example/x", "keys": map[string]string{"p256dh": "BA" + keys["p256dh"][2:len(keys["p256dh"])-4] + "AAAA", "auth": keys["auth"]}}},
		{"long auth", map[string]any{"endpoint": "https://push.example/x", "keys": map[string]string{"p256dh": keys["p256dh"], "auth": keys["auth"] + "AAAA"}}},
		{"auth not base64url", map[string]any{"endpoint": "https://push.example/x", "keys": map[string]string{"p256dh": keys["p256dh"], "auth": "!!!!!!!!!!!!!!!!!!!!!!"}}},
	} {
		var out apiError
		if st := pe.call(alice.token, "POST", "/api/push/subscriptions", c.body, &out); st != 400 || out.Error.Code != "invalid_request" {
			t.Errorf("%s: %d %q, want 400 invalid_request", c.name, st, out.Error.Code)
		}
	}
	if st := pe.call("", "POST", "/api/push/subscriptions", good, nil); st != 401 {
		t.Errorf("unauthenticated subscribe: %d, want 401", st)
	}
	waitSubs(t, pe.testEnv, alice, 0)

	// Eleven subscriptions: the oldest goes.
	var first string
	for i := range maxPushSubscriptions + 1 {
		b := map[string]any{"endpoint": "https://push.example/alice/" + string(rune('a'+i)), "keys": keys}
		if i == 0 {
			first = b["endpoint"].(string)
		}
		if st := pe.call(alice.token, "POST", "/api/push/subscriptions", b, nil); st != 201 {
			t.Fatalf("subscribe %d: %d", i, st)
		}
		time.Sleep(2 * time.Millisecond) // distinct CreatedAt, so "oldest" is defined
	}
	subs, err := pe.st.PushSubscriptions(context.Background(), alice.id)
	if err != nil || len(subs) != maxPushSubscriptions {
		t.Fatalf("%d subscriptions (%v), want %d", len(subs), err, maxPushSubscriptions)
	}
	for _, s := range subs {
		if s.Endpoint == first {
			t.Fatalf("the oldest subscription %s was kept", first)
		}
	}
	// DELETE removes only the caller's own.
	if st := pe.call(bob.token, "DELETE", "/api/push/subscriptions", map[string]any{"endpoint": subs[0].Endpoint}, nil); st != 204 {
		t.Fatalf("bob's delete of alice's: %d, want 204 (changing nothing)", st)
	}
	waitSubs(t, pe.testEnv, alice, maxPushSubscriptions)
	if st := pe.call(alice.token, "DELETE", "/api/push/subscriptions", map[string]any{"endpoint": subs[0].Endpoint}, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	waitSubs(t, pe.testEnv, alice, maxPushSubscriptions-1)
	var out apiError
	if st := pe.call(alice.token, "DELETE", "/api/push/subscriptions", `{}`, &out); st != 400 || out.Error.Code != "invalid_request" {
		t.Fatalf("delete without endpoint: %d %q", st, out.Error.Code)
	}
}

// Without a Notifier (push off) the key is 404, so clients offer nothing.
func TestPushOff(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.user("alice")
	var out apiError
	if st := e.call(alice.token, "GET", "/api/push/key", nil, &out); st != 404 || out.Error.Code != "not_found" {
		t.Fatalf("GET /api/push/key with push off: %d %q, want 404 not_found", st, out.Error.Code)
	}
}

// A subscription belongs to the session that made it: once that session is
// revoked (log out, "log out everywhere", a lost device), its browser gets
// no more pushes and the subscription is removed.
func TestPushStopsWhenSessionEnds(t *testing.T) {
	pe := newPushEnv(t, nil, nil)
	alice, bob, carol := pe.user("alice"), pe.user("bob"), pe.user("carol")
	pe.ps.subscribe(pe.testEnv, bob, "bob-1")
	pe.ps.subscribe(pe.testEnv, carol, "carol-1")
	subs, err := pe.st.PushSubscriptions(context.Background(), bob.id)
	if err != nil || len(subs) != 1 || subs[0].SessionID != bob.sid {
		t.Fatalf("bob's subscription %+v (%v), want it made by session %s", subs, err, bob.sid)
	}
	pe.send(alice, bob, "before")
	pe.ps.next("bob-1")
	if err := pe.st.RevokeSession(context.Background(), bob.sid, time.Now()); err != nil {
		t.Fatal(err)
	}
	pe.send(alice, bob, "after the logout")
	pe.send(alice, carol, "hi") // queued after bob's on the one worker
	pe.ps.next("carol-1")
	pe.ps.none()
	waitSubs(t, pe.testEnv, bob, 0)
}

// Subscription and mute changes are limited per user (each writes to the
// store): a burst of them ends in 429 rate_limited with Retry-After.
func TestPushChangesAreLimited(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	path := "/api/conversations/" + bob.id + "/mute"
	for i := range 100 {
		req, _ := http.NewRequest("PUT", e.srv.URL+path, strings.NewReader(`{"until": null}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+alice.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusNoContent:
			continue
		case http.StatusTooManyRequests:
			if i < pushBurst || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("429 after %d changes (burst %d), Retry-After %q", i, pushBurst, resp.Header.Get("Retry-After"))
			}
			return
		default:
			t.Fatalf("mute %d: status %d", i, resp.StatusCode)
		}
	}
	t.Fatal("100 mute changes in a row were all accepted")
}
