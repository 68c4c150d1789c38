package chat

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/textpolicy"
	"github.com/coder/websocket"
)

// keyedUser is e.user with the look-alike keys signup stores.
func (e *testEnv) keyedUser(name string) *testUser {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now()
	u := store.User{ID: store.NewID(), Username: name, DisplayName: name, PasswordHash: "unused", CreatedAt: now,
		UsernameKey: textpolicy.NameKey(name), DisplayNameKey: textpolicy.NameKey(name)}
	if err := e.st.CreateUser(ctx, u); err != nil {
		e.t.Fatalf("create user: %v", err)
	}
	tu := &testUser{id: u.ID, name: name}
	tu.sid, tu.token = e.session(u.ID)
	return tu
}

func TestPatchMe(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.keyedUser("alice"), e.keyedUser("bob")
	var out struct {
		User frame `json:"user"`
	}
	if st := e.call(alice.token, "PATCH", "/api/me", map[string]any{"display_name": "  Queen Alice "}, &out); st != 200 || out.User.str("display_name") != "Queen Alice" || out.User.str("username") != "alice" {
		t.Fatalf("PATCH /api/me = %d %v", st, out)
	}
	var u struct {
		User frame `json:"user"`
	}
	if e.call(bob.token, "GET", "/api/users/"+alice.id, nil, &u); u.User.str("display_name") != "Queen Alice" {
		t.Fatalf("GET user after the change = %v", u)
	}
	for _, c := range []struct {
		name, code string
		status     int
	}{
		{"аlice", "display_name_taken", http.StatusConflict}, // Cyrillic а: looks like alice's username
		{"QUEEN ALICE", "display_name_taken", http.StatusConflict},
		{"b\u200bob", "invalid_request", http.StatusBadRequest},
		{"\u3164", "invalid_request", http.StatusBadRequest},
	} {
		var ae apiError
		if st := e.call(bob.token, "PATCH", "/api/me", map[string]any{"display_name": c.name}, &ae); st != c.status || ae.Error.Code != c.code {
			t.Errorf("display_name %q: %d %+v, want %d %s", c.name, st, ae, c.status, c.code)
		}
	}
	// The caller's own names are not a conflict.
	if st := e.call(alice.token, "PATCH", "/api/me", map[string]any{"display_name": "Alice"}, &out); st != 200 {
		t.Fatalf("back to her own username: %d", st)
	}
}

func TestExport(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	for i := range 250 { // more than one page
		e.restSend(alice, bob, "m"+itoa(i), cmid())
	}
	e.restSend(carol, alice, "hi", cmid())
	e.restSend(bob, carol, "not alice's", cmid())
	var out struct {
		User          frame `json:"user"`
		Conversations []struct {
			ID       string  `json:"id"`
			Peer     frame   `json:"peer"`
			Messages []frame `json:"messages"`
		} `json:"conversations"`
	}
	if st := e.call(alice.token, "GET", "/api/me/export", nil, &out); st != 200 {
		t.Fatalf("export: %d", st)
	}
	if out.User.str("id") != alice.id || len(out.Conversations) != 2 {
		t.Fatalf("export: user %v, %d conversations", out.User, len(out.Conversations))
	}
	counts := map[string]int{}
	for _, c := range out.Conversations {
		counts[c.Peer.str("username")] = len(c.Messages)
		for i, m := range c.Messages {
			if m.num("seq") != int64(i+1) || (m.str("from") != alice.id && m.str("to") != alice.id) {
				t.Fatalf("message %d of %s: %v", i, c.ID, m)
			}
		}
	}
	if counts["bob"] != 250 || counts["carol"] != 1 {
		t.Fatalf("messages per peer = %v", counts)
	}
}

func TestInvalidUTF8TextFrameCloses1007(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	a := e.dial(alice)
	a.writeRaw([]byte(`{"type":"send","to":"` + bob.id + `","text":"` + "\xff\xfe" + `","client_msg_id":"u-1"}`))
	if code := a.closed(); code != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("close code %d, want 1007", code)
	}
	msgs, _, err := e.st.MessagesAfter(context.Background(), store.ConversationID(alice.id, bob.id), 0, 10)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("stored %d messages, %v", len(msgs), err)
	}
}
