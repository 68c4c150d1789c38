package chat

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// contacts makes a and b contacts (a conversation in which both sent),
// through the store so that no frame is involved.
func (e *testEnv) contacts(a, b *testUser) {
	e.t.Helper()
	for _, p := range [][2]*testUser{{a, b}, {b, a}} {
		if _, _, err := e.st.AppendMessage(context.Background(), store.Message{
			ID: store.NewID(), From: p[0].id, To: p[1].id, Text: "hello", ClientMsgID: cmid(), CreatedAt: time.Now(),
		}); err != nil {
			e.t.Fatalf("append: %v", err)
		}
	}
}

func TestSearchNeedsTwoCharactersAndReturnsAtMost20(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.user("alice")
	for i := range 22 {
		e.user("ab" + itoa(100+i))
	}
	for _, q := range []string{"", "a", "%00a", "a%00"} {
		var ae apiError
		if st := e.call(alice.token, "GET", "/api/users?q="+q, nil, &ae); st != http.StatusBadRequest || ae.Error.Code != "invalid_request" {
			t.Fatalf("q=%q: %d %+v, want 400 invalid_request", q, st, ae)
		}
	}
	var out struct {
		Users []frame `json:"users"`
	}
	if st := e.call(alice.token, "GET", "/api/users?q=ab&limit=50", nil, &out); st != 200 || len(out.Users) != 20 {
		t.Fatalf("q=ab&limit=50: %d, %d users, want 200 and 20", st, len(out.Users))
	}
}

func TestPresenceAndTypingOnlyForContacts(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob, mallory := e.user("alice"), e.user("bob"), e.user("mallory")
	e.contacts(alice, bob)
	if st, _ := e.restSend(mallory, alice, "hi, stranger", cmid()); st != http.StatusCreated { // one-sided: no contact
		t.Fatalf("send %d", st)
	}
	b, m := e.dial(bob), e.dial(mallory)
	a := e.dial(alice)

	// The contact gets alice's online event; the stranger does not.
	if p, _ := b.nextOf("presence"); p.str("user_id") != alice.id || p.obj("presence")["online"] != true {
		t.Fatalf("bob's presence event = %v", p)
	}
	// Typing from the stranger is dropped; the marker after it arrives alone.
	m.write(map[string]any{"type": "typing", "to": alice.id})
	marker := m.sendOK(alice, "marker", cmid())
	for _, f := range a.until(func(f frame) bool { return f.obj("message").str("id") == marker.str("id") }) {
		if f.typ() == "typing" {
			t.Fatalf("alice got a stranger's typing: %v", f)
		}
	}
	a.sendOK(mallory, "marker back", cmid()) // a barrier for mallory (alice online was announced before they became contacts)
	// mallory's frames up to alice's marker: no presence of alice among them.
	for _, f := range m.until(func(f frame) bool { return f.typ() == "message" && f.obj("message").str("from") == alice.id }) {
		if f.typ() == "presence" {
			t.Fatalf("a stranger got alice's presence: %v", f)
		}
	}

	// REST: the contact sees presence, a non-contact gets null.
	carol := e.user("carol")
	for _, c := range []struct {
		who     *testUser
		visible bool
	}{{bob, true}, {carol, false}} {
		var u map[string]any
		if st := e.call(c.who.token, "GET", "/api/users/"+alice.id, nil, &u); st != 200 || (u["presence"] != nil) != c.visible {
			t.Fatalf("%s: GET /api/users/alice = %d %v, want presence shown %v", c.who.name, st, u, c.visible)
		}
		var s struct {
			Users []map[string]any `json:"users"`
		}
		if st := e.call(c.who.token, "GET", "/api/users?q=al", nil, &s); st != 200 || len(s.Users) != 1 || (s.Users[0]["presence"] != nil) != c.visible {
			t.Fatalf("%s: search al = %d %v, want presence shown %v", c.who.name, st, s, c.visible)
		}
	}
}

func TestBlock(t *testing.T) { testBlock(t, newTestEnv(t, nil)) }

// With a store whose appends refuse blocked senders themselves
// (store.BlockCheckingAppender, as mongostore's), the service spares its
// own block read on a send, and the refusals are the same 403 blocked;
// a send with attachments still reads first (it references them before
// the append).
func TestBlockRefusedByTheStore(t *testing.T) {
	var st *blockRefusingStore
	e := newTestEnvWith(t, nil, func(e *testEnv) {
		e.wrapStore = func(s store.Store) store.Store {
			st = &blockRefusingStore{Store: s, async: s.(store.AsyncAppender)}
			return st
		}
	})
	testBlock(t, e)
	if n := st.isBlocked.Load(); n != 0 {
		t.Fatalf("the service asked IsBlocked %d times for plain sends, want 0: the store refuses", n)
	}
	alice, bob := e.user("dora"), e.user("erin")
	att := e.uploadOK(alice, "a.txt", "text/plain", "hello")
	if st, _, ae := e.sendWith(alice, bob, "file", cmid(), att.str("id")); st != http.StatusCreated {
		t.Fatalf("send with an attachment: %d %+v", st, ae)
	}
	if n := st.isBlocked.Load(); n != 1 {
		t.Fatalf("a send with an attachment asked IsBlocked %d times, want 1", n)
	}
}

// blockRefusingStore gives the SQLite store the appends of a
// store.BlockCheckingAppender: they read the block themselves and refuse
// with store.ErrBlocked. isBlocked counts the service's own IsBlocked calls.
type blockRefusingStore struct {
	store.Store
	async     store.AsyncAppender
	isBlocked atomic.Int64
}

func (s *blockRefusingStore) AppendRefusesBlocked() bool { return true }

func (s *blockRefusingStore) IsBlocked(ctx context.Context, userID, otherID string) (bool, error) {
	s.isBlocked.Add(1)
	return s.Store.IsBlocked(ctx, userID, otherID)
}

func (s *blockRefusingStore) refuse(ctx context.Context, m store.Message) error {
	blocked, err := s.Store.IsBlocked(ctx, m.To, m.From)
	if err == nil && blocked {
		err = store.ErrBlocked
	}
	return err
}

func (s *blockRefusingStore) AppendMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	if err := s.refuse(ctx, m); err != nil {
		return store.Message{}, false, err
	}
	return s.Store.AppendMessage(ctx, m)
}

func (s *blockRefusingStore) AppendMessageAsync(ctx context.Context, m store.Message, done func(store.Message, bool, error)) {
	if err := s.refuse(ctx, m); err != nil {
		done(store.Message{}, false, err)
		return
	}
	s.async.AppendMessageAsync(ctx, m, done)
}

func testBlock(t *testing.T, e *testEnv) {
	alice, bob := e.user("alice"), e.user("bob")
	e.contacts(alice, bob)
	if st := e.call(alice.token, "PUT", "/api/users/"+bob.id+"/block", nil, nil); st != http.StatusNoContent {
		t.Fatalf("block: %d", st)
	}
	if st := e.call(alice.token, "PUT", "/api/users/"+bob.id+"/block", nil, nil); st != http.StatusNoContent {
		t.Fatalf("block again: %d", st)
	}
	if st := e.call(alice.token, "PUT", "/api/users/nobody/block", nil, nil); st != http.StatusNotFound {
		t.Fatalf("block an unknown user: %d", st)
	}
	var blocks struct {
		Users []frame `json:"users"`
	}
	if st := e.call(alice.token, "GET", "/api/blocks", nil, &blocks); st != 200 || len(blocks.Users) != 1 || blocks.Users[0].str("id") != bob.id || blocks.Users[0].str("username") != "bob" {
		t.Fatalf("GET /api/blocks = %d %v", st, blocks)
	}
	conv := store.ConversationID(alice.id, bob.id)
	before, _, _ := e.st.MessagesAfter(context.Background(), conv, 0, 100)

	// The blocked user's sends get 403 blocked and store nothing.
	var ae apiError
	if st := e.call(bob.token, "POST", "/api/messages", map[string]any{"to": alice.id, "text": "hey", "client_msg_id": cmid()}, &ae); st != http.StatusForbidden || ae.Error.Code != "blocked" {
		t.Fatalf("REST send to the blocker: %d %+v, want 403 blocked", st, ae)
	}
	b, a := e.dial(bob), e.dial(alice)
	id := cmid()
	b.send(alice, "hey", id)
	if f, _ := b.nextOf("error"); f.obj("error").str("code") != "blocked" || f.str("ref") != id {
		t.Fatalf("WS send to the blocker: %v", f)
	}
	after, _, _ := e.st.MessagesAfter(context.Background(), conv, 0, 100)
	if len(after) != len(before) {
		t.Fatalf("%d messages stored for refused sends", len(after)-len(before))
	}
	// Neither sees the other's presence; typing does not cross.
	for _, p := range [][2]*testUser{{alice, bob}, {bob, alice}} {
		var u map[string]any
		if st := e.call(p[0].token, "GET", "/api/users/"+p[1].id, nil, &u); st != 200 || u["presence"] != nil {
			t.Fatalf("%s sees %s's presence across a block: %v", p[0].name, p[1].name, u)
		}
	}
	b.write(map[string]any{"type": "typing", "to": alice.id})
	marker := a.sendOK(bob, "the blocker may still write", cmid())
	_ = marker
	for _, f := range b.until(func(f frame) bool { return f.typ() == "message" }) {
		if f.typ() == "presence" && f.obj("presence") != nil && f.str("user_id") == alice.id {
			t.Fatalf("bob got alice's presence across the block: %v", f)
		}
	}
	carolMarker := e.user("carol")
	e.contacts(alice, carolMarker)
	c := e.dial(carolMarker)
	c.sendOK(alice, "marker", cmid())
	for _, f := range a.until(func(f frame) bool { return f.typ() == "message" && f.obj("message").str("from") == carolMarker.id }) {
		if f.typ() == "typing" {
			t.Fatalf("alice got the blocked user's typing: %v", f)
		}
	}

	// Unblocked: sends go through again.
	if st := e.call(alice.token, "DELETE", "/api/users/"+bob.id+"/block", nil, nil); st != http.StatusNoContent {
		t.Fatalf("unblock: %d", st)
	}
	if st, _ := e.restSend(bob, alice, "hi again", cmid()); st != http.StatusCreated {
		t.Fatalf("send after unblock: %d", st)
	}
	if st := e.call(alice.token, "GET", "/api/blocks", nil, &blocks); st != 200 || len(blocks.Users) != 0 {
		t.Fatalf("GET /api/blocks after unblock = %d %v", st, blocks)
	}
}
