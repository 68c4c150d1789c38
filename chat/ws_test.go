package chat

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
	"github.com/coder/websocket"
)

var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestHello(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.user("alice")
	a := e.dial(alice)
	u := a.hello.obj("user")
	if u.str("id") != alice.id || u.str("username") != "alice" || u.str("display_name") != "Alice" {
		t.Errorf("hello user = %v", u)
	}
	if a.hello.str("node") == "" || a.hello.num("heartbeat_s") != 25 {
		t.Errorf("hello = %v", a.hello)
	}
}

// Two users exchange messages; the sender's other connection sees its own
// message, the sending connection gets the ack instead.
func TestExchangeMessages(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a1, a2, b1 := e.dial(alice), e.dial(alice), e.dial(bob)

	m := a1.sendOK(bob, "hello bob", "a-1")
	if m.str("from") != alice.id || m.str("to") != bob.id || m.str("text") != "hello bob" ||
		m.num("seq") != 1 || m.str("client_msg_id") != "a-1" || m.str("id") == "" ||
		m.str("conversation_id") != store.ConversationID(alice.id, bob.id) || !timeRE.MatchString(m.str("created_at")) {
		t.Fatalf("ack message = %v", m)
	}
	got, _ := b1.nextOf("message")
	if got.obj("message").str("id") != m.str("id") {
		t.Fatalf("bob got %v, want %v", got, m)
	}
	got, _ = a2.nextOf("message")
	if got.obj("message").str("id") != m.str("id") {
		t.Fatalf("alice's other connection got %v, want %v", got, m)
	}

	r := b1.sendOK(alice, "hi alice", "b-1")
	if r.num("seq") != 2 {
		t.Fatalf("reply seq = %d, want 2", r.num("seq"))
	}
	for _, w := range []*wsClient{a1, a2} {
		got, skipped := w.nextOf("message")
		if got.obj("message").str("id") != r.str("id") {
			t.Fatalf("%s got %v, want the reply", w.name, got)
		}
		for _, f := range skipped {
			if f.typ() == "message" || f.typ() == "ack" {
				t.Errorf("%s: unexpected %v", w.name, f)
			}
		}
	}
	// a1's own message never came back to it as a `message`: the first
	// message frame it saw was bob's reply (checked above).

	// A REST send reaches every connection of the sender.
	st, rm := e.restSend(alice, bob, "via rest", "a-rest")
	if st != http.StatusCreated {
		t.Fatalf("rest send status %d", st)
	}
	for _, w := range []*wsClient{a1, a2, b1} {
		got, _ := w.nextOf("message")
		if got.obj("message").str("id") != rm.str("id") || got.obj("message").num("seq") != 3 {
			t.Fatalf("%s got %v, want the REST message", w.name, got)
		}
	}
}

func TestIdempotentResend(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.dial(alice), e.dial(bob)

	m1 := a.sendOK(bob, "once", "dup-1")
	m2 := a.sendOK(bob, "once", "dup-1")
	if m1.str("id") != m2.str("id") || m1.num("seq") != m2.num("seq") || m1.str("created_at") != m2.str("created_at") {
		t.Fatalf("resend gave %v, first %v", m2, m1)
	}
	// REST retry of the same client_msg_id: 200 and the very same message.
	st, rm := e.restSend(alice, bob, "once", "dup-1")
	if st != http.StatusOK || rm.str("id") != m1.str("id") {
		t.Fatalf("REST retry: %d %v", st, rm)
	}
	st1, r1 := e.restSend(alice, bob, "rest", "dup-2")
	st2, r2 := e.restSend(alice, bob, "rest", "dup-2")
	if st1 != http.StatusCreated || st2 != http.StatusOK || r1.str("id") != r2.str("id") || r1.num("seq") != r2.num("seq") {
		t.Fatalf("REST resend: %d %v then %d %v", st1, r1, st2, r2)
	}
	// Bob got each message, keyed by seq as clients do (a retry is published
	// again, issue 8 defect 2): dup-1 (seq 1), dup-2 (seq 2), then the marker.
	marker := a.sendOK(bob, "marker", "dup-3")
	got := b.until(func(f frame) bool { return f.obj("message").str("id") == marker.str("id") })
	var seqs []int64
	for _, m := range uniqueBySeq(got) {
		seqs = append(seqs, m.num("seq"))
	}
	if len(seqs) != 3 || seqs[0] != 1 || seqs[1] != 2 || seqs[2] != 3 {
		t.Fatalf("bob got seqs %v, want [1 2 3]", seqs)
	}
}

func TestConcurrentSends(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	const n = 200
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = map[int64]string{}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from, to := alice, bob
			if i%2 == 1 {
				from, to = bob, alice
			}
			st, m := e.restSend(from, to, "concurrent", cmid())
			if st != http.StatusCreated {
				t.Errorf("send %d: status %d", i, st)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := seqs[m.num("seq")]; ok {
				t.Errorf("seq %d given twice (%s and %s)", m.num("seq"), prev, m.str("id"))
			}
			seqs[m.num("seq")] = m.str("id")
		}()
	}
	wg.Wait()
	if len(seqs) != n {
		t.Fatalf("%d distinct seqs, want %d", len(seqs), n)
	}
	var hist struct {
		Messages []frame `json:"messages"`
		HasMore  bool    `json:"has_more"`
	}
	if st := e.call(alice.token, "GET", "/api/conversations/"+bob.id+"/messages?after=0&limit=200", nil, &hist); st != 200 {
		t.Fatalf("history status %d", st)
	}
	if len(hist.Messages) != n || hist.HasMore {
		t.Fatalf("history has %d messages (has_more %v), want %d", len(hist.Messages), hist.HasMore, n)
	}
	for i, m := range hist.Messages {
		if seqs[m.num("seq")] != m.str("id") {
			t.Errorf("history message %d: %v does not match its send", i, m)
		}
		if i > 0 && m.num("seq") <= hist.Messages[i-1].num("seq") {
			t.Errorf("history not ascending at %d", i)
		}
	}

	// Pipelined sends on one connection: acks in order with increasing seqs.
	a := e.dial(alice)
	for i := range n {
		a.send(bob, "pipelined", "pipe-"+itoa(i))
	}
	last := int64(0)
	for i := range n {
		ack, _ := a.nextOf("ack")
		if ack.str("client_msg_id") != "pipe-"+itoa(i) {
			t.Fatalf("ack %d for %q", i, ack.str("client_msg_id"))
		}
		if s := ack.obj("message").num("seq"); s <= last {
			t.Fatalf("ack %d: seq %d after %d", i, s, last)
		} else {
			last = s
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func newShortSigner(e *testEnv, ttl time.Duration) *token.Signer {
	return token.NewSigner(e.key, "chatd", "chatd", ttl)
}

func TestReceipts(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.dial(alice), e.dial(bob)
	for i := range 3 {
		a.sendOK(bob, "m", "r-"+itoa(i))
	}
	conv := store.ConversationID(alice.id, bob.id)

	var list struct {
		Conversations []frame `json:"conversations"`
	}
	e.call(bob.token, "GET", "/api/conversations", nil, &list)
	if len(list.Conversations) != 1 {
		t.Fatalf("bob has %d conversations", len(list.Conversations))
	}
	c := list.Conversations[0]
	if c.str("id") != conv || c.num("unread") != 3 || c.num("last_seq") != 3 || c.num("read_seq") != 0 ||
		c.obj("last_message").num("seq") != 3 || c.obj("peer").str("id") != alice.id ||
		c["presence"] != nil { // bob never wrote to alice: not a contact (api.md 1.1 "Privacy")
		t.Fatalf("bob's conversation = %v", c)
	}

	checkReceipt := func(w *wsClient, kind string, seq int64) {
		t.Helper()
		r, _ := w.nextOf("receipt")
		if r.str("conversation_id") != conv || r.str("user_id") != bob.id || r.str("kind") != kind || r.num("seq") != seq {
			t.Fatalf("%s got receipt %v, want %s %d", w.name, r, kind, seq)
		}
	}
	b.write(map[string]any{"type": "received", "peer": alice.id, "seq": 3})
	checkReceipt(a, "delivered", 3)
	checkReceipt(b, "delivered", 3)

	if st := e.call(bob.token, "POST", "/api/conversations/"+alice.id+"/read", map[string]any{"seq": 2}, nil); st != http.StatusNoContent {
		t.Fatalf("read status %d", st)
	}
	checkReceipt(a, "read", 2)
	checkReceipt(b, "read", 2)
	// A lower seq changes nothing and sends no receipt: the next receipt is seq 3.
	if st := e.call(bob.token, "POST", "/api/conversations/"+alice.id+"/read", map[string]any{"seq": 1}, nil); st != http.StatusNoContent {
		t.Fatalf("lower read status %d", st)
	}
	b.write(map[string]any{"type": "read", "peer": alice.id, "seq": 3})
	checkReceipt(a, "read", 3)
	checkReceipt(b, "read", 3)

	e.call(alice.token, "GET", "/api/conversations", nil, &list)
	c = list.Conversations[0]
	if c.num("peer_read_seq") != 3 || c.num("peer_delivered_seq") != 3 || c.num("unread") != 0 {
		t.Fatalf("alice's conversation = %v", c)
	}
	e.call(bob.token, "GET", "/api/conversations", nil, &list)
	if c := list.Conversations[0]; c.num("unread") != 0 || c.num("read_seq") != 3 {
		t.Fatalf("bob's conversation after read = %v", c)
	}

	// received for an unknown peer: an error event, the connection lives.
	b.write(map[string]any{"type": "received", "peer": "nobody", "seq": 1})
	if f, _ := b.nextOf("error"); f.obj("error").str("code") != "not_found" || f["ref"] != nil {
		t.Fatalf("got %v", f)
	}
}

func TestTyping(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.TypingInterval = 500 * time.Millisecond })
	alice, bob := e.user("alice"), e.user("bob")
	e.contacts(alice, bob) // typing reaches contacts only
	a, b := e.dial(alice), e.dial(bob)

	for range 5 {
		a.write(map[string]any{"type": "typing", "to": bob.id})
	}
	f, _ := b.nextOf("typing")
	if f.str("from") != alice.id {
		t.Fatalf("typing = %v", f)
	}
	marker := a.sendOK(bob, "marker", "t-1")
	for _, f := range b.until(func(f frame) bool { return f.obj("message").str("id") == marker.str("id") }) {
		if f.typ() == "typing" {
			t.Fatalf("a second typing event was forwarded within the interval")
		}
	}
	time.Sleep(600 * time.Millisecond) // let the rate-limit interval pass
	a.write(map[string]any{"type": "typing", "to": bob.id})
	if f, _ := b.nextOf("typing"); f.str("from") != alice.id {
		t.Fatalf("typing = %v", f)
	}
	// Alice's own connection never sees her typing.
	a.send(bob, "second marker", "t-2")
	for _, f := range a.until(func(f frame) bool { return f.typ() == "ack" }) {
		if f.typ() == "typing" {
			t.Fatalf("sender got its own typing event")
		}
	}

	a.write(map[string]any{"type": "typing", "to": "nobody"})
	if f, _ := a.nextOf("error"); f.obj("error").str("code") != "not_found" {
		t.Fatalf("typing to unknown: %v", f)
	}
}

func TestPresence(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.OfflineGrace = time.Second })
	alice, bob := e.user("alice"), e.user("bob")
	if st, _ := e.restSend(alice, bob, "hi", "p-1"); st != http.StatusCreated {
		t.Fatalf("send %d", st)
	}
	if st, _ := e.restSend(bob, alice, "hi", "p-0"); st != http.StatusCreated { // contacts: both sent
		t.Fatalf("send %d", st)
	}
	// That send's first-contact presence (contacts.go) is published after
	// it returned: once it is out, bob's first presence frame is alice
	// coming online (CI saw the first contact's "alice offline" first).
	waitFirstContact(t, e, alice, bob)
	b := e.dial(bob)
	a := e.dial(alice)
	p, _ := b.nextOf("presence")
	if p.str("user_id") != alice.id || p.obj("presence")["online"] != true || p.obj("presence")["last_seen"] != nil {
		t.Fatalf("online event = %v", p)
	}
	var u struct {
		User     frame `json:"user"`
		Presence frame `json:"presence"`
	}
	if st := e.call(bob.token, "GET", "/api/users/"+alice.id, nil, &u); st != 200 || u.Presence["online"] != true || u.User.str("username") != "alice" {
		t.Fatalf("GET user: %d %v", st, u)
	}

	// A reconnect within the grace period announces nothing.
	_ = a.c.Close(websocket.StatusNormalClosure, "")
	a = e.dial(alice)
	_ = a.c.Close(websocket.StatusNormalClosure, "")

	p, _ = b.nextOf("presence")
	if p.str("user_id") != alice.id || p.obj("presence")["online"] != false || !timeRE.MatchString(p.obj("presence").str("last_seen")) {
		t.Fatalf("offline event = %v", p)
	}
	marker, _ := e.restSend(alice, bob, "marker", "p-2")
	_ = marker
	for _, f := range b.until(func(f frame) bool { return f.typ() == "message" }) {
		if f.typ() == "presence" {
			t.Fatalf("extra presence event %v", f)
		}
	}
	if st := e.call(bob.token, "GET", "/api/users/"+alice.id, nil, &u); st != 200 || u.Presence["online"] != false || !timeRE.MatchString(u.Presence.str("last_seen")) {
		t.Fatalf("GET user after offline: %d %v", st, u)
	}
}

// A third user never gets anything of a conversation it is not in.
func TestNonMember(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob, carol, dave := e.user("alice"), e.user("bob"), e.user("carol"), e.user("dave")
	a, b, c := e.dial(alice), e.dial(bob), e.dial(carol)
	m := a.sendOK(bob, "secret", "s-1")
	b.nextOf("message")
	b.write(map[string]any{"type": "read", "peer": alice.id, "seq": 1})
	b.nextOf("receipt")
	b.sendOK(alice, "re", "s-0") // contacts now: typing reaches bob
	a.write(map[string]any{"type": "typing", "to": bob.id})
	b.nextOf("typing")

	// Barrier: something for carol, sent after all of the above.
	if st, _ := e.restSend(dave, carol, "for carol", "s-2"); st != http.StatusCreated {
		t.Fatalf("send %d", st)
	}
	for _, f := range c.until(func(f frame) bool { return f.typ() == "message" }) {
		if f.typ() == "message" && f.obj("message").str("from") != dave.id || f.typ() == "receipt" || f.typ() == "typing" {
			t.Fatalf("carol got %v", f)
		}
	}

	// Addressing bob gives carol only her own (empty) conversation with bob.
	var hist struct {
		Messages []frame `json:"messages"`
		HasMore  bool    `json:"has_more"`
	}
	if st := e.call(carol.token, "GET", "/api/conversations/"+bob.id+"/messages", nil, &hist); st != 200 || len(hist.Messages) != 0 || hist.HasMore {
		t.Fatalf("carol's history with bob: %d %v", st, hist)
	}
	var list struct {
		Conversations []frame `json:"conversations"`
	}
	e.call(carol.token, "GET", "/api/conversations", nil, &list)
	for _, cv := range list.Conversations {
		if cv.str("id") == m.str("conversation_id") {
			t.Fatalf("carol sees alice and bob's conversation")
		}
	}
	if len(list.Conversations) != 1 || list.Conversations[0].obj("peer").str("id") != dave.id {
		t.Fatalf("carol's conversations = %v", list.Conversations)
	}
	// Reading "alice's conversation" as carol moves only carol's own pointer (none exists).
	if st := e.call(carol.token, "POST", "/api/conversations/"+alice.id+"/read", map[string]any{"seq": 1}, nil); st != http.StatusNoContent {
		t.Fatalf("carol read: %d", st)
	}
	e.call(alice.token, "GET", "/api/conversations", nil, &list)
	if list.Conversations[0].num("peer_read_seq") != 1 { // bob's read, untouched by carol
		t.Fatalf("alice's view = %v", list.Conversations[0])
	}
}

func TestCrossOriginUpgrade(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.user("alice")
	_, resp, err := e.dialRaw(alice.token, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin dial: err %v, resp %v", err, resp)
	}
	// The request's own host is allowed by default.
	c, _, err := e.dialRaw(alice.token, http.Header{"Origin": {e.srv.URL}})
	if err != nil {
		t.Fatalf("same-origin dial: %v", err)
	}
	_ = c.CloseNow()
	// Unauthenticated: 401.
	_, resp, err = e.dialRaw("", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated dial: err %v, resp %v", err, resp)
	}

	// With configured public origins only those are allowed.
	e2 := newTestEnv(t, func(c *Config) { c.PublicOrigins = []string{"https://chat.example"} })
	bob := e2.user("bob")
	c, _, err = e2.dialRaw(bob.token, http.Header{"Origin": {"https://chat.example"}})
	if err != nil {
		t.Fatalf("public origin dial: %v", err)
	}
	_ = c.CloseNow()
	_, resp, err = e2.dialRaw(bob.token, http.Header{"Origin": {e2.srv.URL}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("own-host dial with public origins set: err %v, resp %v", err, resp)
	}
}

func TestOversizedFrame(t *testing.T) {
	e := newTestEnv(t, nil)
	a := e.dial(e.user("alice"))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_ = a.c.Write(ctx, websocket.MessageText, []byte(`{"type":"send","text":"`+strings.Repeat("x", 20<<10)+`"}`))
	if code := a.closed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d, want 1009", code)
	}
}

func TestInvalidFrames(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a := e.dial(alice)
	a.writeRaw([]byte("this is not json"))
	f, _ := a.nextOf("error")
	if f["ref"] != nil || f.obj("error").str("code") != "invalid_request" {
		t.Fatalf("invalid JSON: %v", f)
	}
	a.write(map[string]any{"type": "dance", "client_msg_id": "x-1"})
	f, _ = a.nextOf("error")
	if f.str("ref") != "x-1" || f.obj("error").str("code") != "invalid_request" {
		t.Fatalf("unknown type: %v", f)
	}
	// Refused sends name their client_msg_id.
	for _, tc := range []struct {
		frame map[string]any
		ref   any
		code  string
	}{
		{map[string]any{"type": "send", "to": bob.id, "text": "  \n\t", "client_msg_id": "e-1"}, "e-1", "text_empty"},
		{map[string]any{"type": "send", "to": bob.id, "text": strings.Repeat("é", 2049), "client_msg_id": "e-2"}, "e-2", "text_too_long"},
		{map[string]any{"type": "send", "to": alice.id, "text": "me", "client_msg_id": "e-3"}, "e-3", "cannot_message_self"},
		{map[string]any{"type": "send", "to": "nobody", "text": "hi", "client_msg_id": "e-4"}, "e-4", "not_found"},
		{map[string]any{"type": "send", "to": bob.id, "text": "hi"}, nil, "invalid_request"},
		{map[string]any{"type": "read", "peer": bob.id}, nil, "invalid_request"},
	} {
		a.write(tc.frame)
		f, _ := a.nextOf("error")
		if f["ref"] != tc.ref || f.obj("error").str("code") != tc.code {
			t.Errorf("%v: got %v, want ref %v code %s", tc.frame, f, tc.ref, tc.code)
		}
	}
	// The connection still works.
	a.sendOK(bob, "still here", "ok-1")
}

// A client that stops reading is dropped with 1013; others keep receiving.
func TestSlowConsumer(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.SendQueue = 16 })
	alice, sam, fred := e.user("alice"), e.user("sam"), e.user("fred")
	f := e.dial(fred)
	s, _, err := e.dialRaw(sam.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	s.SetReadLimit(1 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, data, err := s.Read(ctx); err != nil || !strings.Contains(string(data), `"hello"`) {
		t.Fatalf("hello: %q %v", data, err)
	}
	samConn := func() *conn {
		e.svc.hub.conns.mu.Lock()
		defer e.svc.hub.conns.mu.Unlock()
		for c := range e.svc.hub.conns.all {
			if c.userID == sam.id {
				return c
			}
		}
		return nil
	}
	sc := samConn()
	if sc == nil {
		t.Fatal("sam's connection is not registered")
	}
	// Flood sam's topic (as other nodes would) until his queue overflows;
	// sam reads nothing meanwhile.
	big := []byte(`{"type":"typing","from":"` + strings.Repeat("x", 8000) + `"}`)
	env := append(newEnvelope(envEvent, 0, len(big)), big...)
	overflowed := func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.closing
	}
	deadline := time.Now().Add(waitTimeout)
	for !overflowed() {
		if time.Now().After(deadline) {
			t.Fatal("sam's queue never overflowed")
		}
		for range 100 {
			_ = e.br.Publish(ctx, pubsub.UserTopic(sam.id), env)
		}
	}
	// Fred is unaffected.
	if st, _ := e.restSend(alice, fred, "for fred", "slow-1"); st != http.StatusCreated {
		t.Fatalf("send %d", st)
	}
	if m, _ := f.nextOf("message"); m.obj("message").str("text") != "for fred" {
		t.Fatalf("fred got %v", m)
	}
	// Sam, reading again, finds the backlog and then the close.
	for {
		_, _, err := s.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusTryAgainLater {
				t.Fatalf("sam's connection ended with %v (status %d), want 1013", err, code)
			}
			break
		}
	}
}

func TestRevocation(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a1, a2 := e.dial(alice), e.dial(alice)
	sid2, tok2 := e.session(alice.id)
	other := e.dialToken("alice-other-session", tok2)
	// The session is cached as valid now, and alice.token is in the
	// verifier's cache of verified tokens (the dials and this call verified
	// it): a cached token must still be refused once its session is revoked.
	if st := e.call(alice.token, "GET", "/api/conversations", nil, nil); st != 200 {
		t.Fatalf("before revocation: %d", st)
	}
	ctx := context.Background()
	if err := e.st.RevokeSession(ctx, alice.sid, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.br.Publish(ctx, pubsub.TopicRevocations, []byte(alice.sid)); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*wsClient{a1, a2} {
		if code := w.closed(); code != 4001 {
			t.Fatalf("%s closed with %d, want 4001", w.name, code)
		}
	}
	if st := e.call(alice.token, "GET", "/api/conversations", nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("REST after revocation: %d", st)
	}
	if st, _ := e.restSend(alice, bob, "x", "rv-1"); st != http.StatusUnauthorized {
		t.Fatalf("REST send after revocation: %d", st)
	}
	if _, resp, err := e.dialRaw(alice.token, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial after revocation: %v", err)
	}
	// The other session is untouched.
	other.sendOK(bob, "still in", "rv-2")
	_ = sid2
}

// A revocation whose event the broker lost still closes the session's
// sockets, at the next recheck against the store.
func TestRevocationWithoutEvent(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.RevocationRecheck = time.Second })
	alice := e.user("alice")
	a := e.dial(alice)
	if err := e.st.RevokeSession(context.Background(), alice.sid, time.Now()); err != nil {
		t.Fatal(err)
	}
	// No event is published.
	if code := a.closed(); code != 4001 {
		t.Fatalf("closed with %d, want 4001", code)
	}
}

// A connection closes with 4001 when its access token expires.
func TestTokenExpiry(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.user("alice")
	signer := newShortSigner(e, 2*time.Second)
	tok, _, err := signer.Sign(alice.id, alice.sid, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := e.dialToken("alice", tok)
	if code := a.closed(); code != 4001 {
		t.Fatalf("closed with %d, want 4001", code)
	}
}

func TestShutdownClosesWith1001(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.dial(alice), e.dial(bob)
	a.sendOK(bob, "before", "sd-1")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*wsClient{a, b} {
		if code := w.closed(); code != websocket.StatusGoingAway {
			t.Fatalf("%s closed with %d, want 1001", w.name, code)
		}
	}
	if st := e.call(alice.token, "GET", "/api/conversations", nil, nil); st != http.StatusServiceUnavailable {
		t.Fatalf("REST after shutdown: %d", st)
	}
}

// A connection that answers no ping is closed after 2 × heartbeat; one that
// does stays open.
func TestHeartbeat(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Heartbeat = time.Second })
	alice, bob := e.user("alice"), e.user("bob")
	live := e.dial(alice)
	silent, _, err := e.dialRaw(bob.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow()
	registered := func() bool {
		e.svc.hub.conns.mu.Lock()
		defer e.svc.hub.conns.mu.Unlock()
		for c := range e.svc.hub.conns.all {
			if c.userID == bob.id {
				return true
			}
		}
		return false
	}
	waitUntil(t, "the silent connection to be registered", registered)
	// silent reads nothing, so it answers no ping.
	waitUntil(t, "the silent connection to be dropped", func() bool { return !registered() })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		_, _, err := silent.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
				t.Fatalf("silent connection ended with %v, want 1008", err)
			}
			break
		}
	}
	if live.hello.num("heartbeat_s") != 1 {
		t.Errorf("heartbeat_s = %v", live.hello["heartbeat_s"])
	}
	live.sendOK(bob, "still alive", "hb-1")
}

// Two nodes sharing the store and the broker: delivery, presence and
// revocation cross nodes; each node subscribes once per user.
func TestTwoNodes(t *testing.T) {
	n1 := newTestEnv(t, nil)
	n2 := n1.node("node-2", nil)
	alice, bob := n1.user("alice"), n1.user("bob")
	n1.contacts(alice, bob) // they share a conversation in which both sent

	b2 := n2.dial(bob)
	a1, a1b := n1.dial(alice), n1.dial(alice)
	a2 := n2.dial(alice)
	if a1.hello.str("node") != "node-1" || a2.hello.str("node") != "node-2" {
		t.Fatalf("hello nodes: %v %v", a1.hello, a2.hello)
	}
	// One broker subscription per user per node.
	for _, svc := range []*Service{n1.svc, n2.svc} {
		svc.hub.conns.mu.Lock()
		e := svc.hub.conns.byUser[alice.id]
		n := 0
		if e != nil {
			n = len(*e.conns.Load())
		}
		svc.hub.conns.mu.Unlock()
		want := 2
		if svc == n2.svc {
			want = 1
		}
		if n != want {
			t.Fatalf("%s holds %d connections of alice, want %d", svc.node, n, want)
		}
	}
	// alice came online once, although she holds connections on two nodes.
	if p, _ := b2.nextOf("presence"); p.obj("presence")["online"] != true {
		t.Fatalf("presence = %v", p)
	}

	m := a1.sendOK(bob, "across nodes", "x-1")
	for _, w := range []*wsClient{b2, a1b, a2} {
		got, skipped := w.nextOf("message")
		if got.obj("message").str("id") != m.str("id") {
			t.Fatalf("%s got %v", w.name, got)
		}
		for _, f := range skipped {
			if f.typ() == "presence" {
				t.Fatalf("%s: a second presence event %v", w.name, f)
			}
		}
	}

	// Leaving node 1 is no offline event while node 2 still holds alice.
	_ = a1.c.Close(websocket.StatusNormalClosure, "")
	_ = a1b.c.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "node 1 to retire alice", func() bool {
		n1.svc.hub.topics.mu.Lock()
		defer n1.svc.hub.topics.mu.Unlock()
		return n1.svc.hub.topics.entries[alice.id] == nil
	})
	var u struct {
		Presence frame `json:"presence"`
	}
	if n1.call(bob.token, "GET", "/api/users/"+alice.id, nil, &u); u.Presence["online"] != true {
		t.Fatalf("alice offline while connected to node 2: %v", u.Presence)
	}
	// Revoking alice's session closes her socket on node 2.
	if err := n1.br.Publish(context.Background(), pubsub.TopicRevocations, []byte(alice.sid)); err != nil {
		t.Fatal(err)
	}
	if code := a2.closed(); code != 4001 {
		t.Fatalf("node 2 closed alice with %d, want 4001", code)
	}
	p, skipped := b2.nextOf("presence")
	if p.str("user_id") != alice.id || p.obj("presence")["online"] != false {
		t.Fatalf("offline event = %v", p)
	}
	for _, f := range skipped {
		if f.typ() == "presence" {
			t.Fatalf("extra presence event %v", f)
		}
	}
}

// Shutdown announces the node's users offline before it returns.
func TestShutdownAnnouncesOffline(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.OfflineGrace = 4 * time.Second })
	alice, bob := e.user("alice"), e.user("bob")
	e.contacts(alice, bob)
	e.dial(alice)
	var (
		mu  sync.Mutex
		got []string
	)
	sub, err := e.br.Subscribe(context.Background(), pubsub.UserTopic(bob.id), func(p []byte) {
		if _, _, f, ok := parseEnvelope(p); ok {
			mu.Lock()
			got = append(got, string(f))
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], `"type":"presence"`) || !strings.Contains(got[0], `"online":false`) || !strings.Contains(got[0], alice.id) {
		t.Fatalf("bob's topic got %q", got)
	}
}
