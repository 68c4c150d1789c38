package chat

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// history returns the messages of me's conversation with peer (newest page).
func (e *testEnv) history(me, peer *testUser) []frame {
	e.t.Helper()
	var out struct {
		Messages []frame `json:"messages"`
	}
	if st := e.call(me.token, "GET", "/api/conversations/"+peer.id+"/messages", nil, &out); st != http.StatusOK {
		e.t.Fatalf("history: %d", st)
	}
	return out.Messages
}

// atSeq returns the message with seq among msgs.
func atSeq(t *testing.T, msgs []frame, seq int64) frame {
	t.Helper()
	for _, m := range msgs {
		if m.num("seq") == seq {
			return m
		}
	}
	t.Fatalf("no message %d among %v", seq, msgs)
	return nil
}

// eventCall makes a REST event request and returns its status, message and
// error code.
func (e *testEnv) eventCall(u *testUser, method, path string, body any) (int, frame, string) {
	e.t.Helper()
	var out struct {
		Message frame `json:"message"`
		apiError
	}
	st := e.call(u.token, method, path, body, &out)
	return st, out.Message, out.Error.Code
}

func msgPath(peer *testUser, seq int64) string {
	return fmt.Sprintf("/api/conversations/%s/messages/%d", peer.id, seq)
}

// The REST rules of api.md 1.1's message events, one after the other on
// one conversation.
func TestRESTMessageEvents(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxTextBytes = 16 })
	alice, bob := e.user("alice"), e.user("bob")
	st, m1 := e.restSend(alice, bob, "helo", cmid())
	if st != http.StatusCreated || m1.str("kind") != "text" || m1["reply_to"] != nil || m1["edited_at"] != nil ||
		m1["deleted"] != false || len(m1.obj("reactions")) != 0 || fmt.Sprint(m1["attachments"]) != "[]" {
		t.Fatalf("send: %d %v", st, m1)
	}
	if _, ok := m1["target"]; ok {
		t.Fatalf("a text message with a target: %v", m1)
	}
	seq := m1.num("seq")

	// Edit: author only, text rules, retry.
	edit := map[string]any{"text": "hello", "client_msg_id": "edit-1"}
	st, ev, _ := e.eventCall(alice, "PATCH", msgPath(bob, seq), edit)
	if st != http.StatusOK || ev.str("kind") != "edit" || ev.num("target") != seq || ev.str("text") != "hello" || ev.num("seq") != seq+1 {
		t.Fatalf("edit: %d %v", st, ev)
	}
	if _, ok := ev["reactions"]; ok {
		t.Fatalf("an event with a text message's state: %v", ev)
	}
	st, again, _ := e.eventCall(alice, "PATCH", msgPath(bob, seq), edit)
	if st != http.StatusOK || again.str("id") != ev.str("id") {
		t.Fatalf("edit retry: %d %v, want the first edit %v", st, again, ev)
	}
	for _, c := range []struct {
		who    *testUser
		path   string
		body   any
		status int
		code   string
	}{
		{bob, msgPath(alice, seq), map[string]any{"text": "mine now", "client_msg_id": cmid()}, 403, "forbidden"},
		{alice, msgPath(bob, seq), map[string]any{"text": " \u200b ", "client_msg_id": cmid()}, 400, "text_empty"},
		{alice, msgPath(bob, seq), map[string]any{"text": strings.Repeat("é", 9), "client_msg_id": cmid()}, 400, "text_too_long"},
		{alice, msgPath(bob, seq), map[string]any{"text": "x"}, 400, "invalid_request"},
		{alice, msgPath(bob, 99), map[string]any{"text": "x", "client_msg_id": cmid()}, 404, "not_found"},
		{alice, msgPath(bob, seq+1), map[string]any{"text": "x", "client_msg_id": cmid()}, 404, "not_found"}, // an event
		{alice, "/api/conversations/" + bob.id + "/messages/0", map[string]any{"text": "x", "client_msg_id": cmid()}, 400, "invalid_request"},
		{alice, "/api/conversations/" + bob.id + "/messages/x", map[string]any{"text": "x", "client_msg_id": cmid()}, 400, "invalid_request"},
		{alice, msgPath(&testUser{id: "nobody"}, seq), map[string]any{"text": "x", "client_msg_id": cmid()}, 404, "not_found"},
		{alice, msgPath(alice, seq), map[string]any{"text": "x", "client_msg_id": cmid()}, 400, "cannot_message_self"},
	} {
		st, _, code := e.eventCall(c.who, "PATCH", c.path, c.body)
		if st != c.status || code != c.code {
			t.Errorf("PATCH %s by %s %v: %d %s, want %d %s", c.path, c.who.name, c.body, st, code, c.status, c.code)
		}
	}

	// Reactions: either member, one per user, emoji checked.
	react := func(u, peer *testUser, emoji any) (int, frame, string) {
		body := map[string]any{"client_msg_id": cmid()}
		if emoji != nil {
			body["emoji"] = emoji
		}
		return e.eventCall(u, "PUT", msgPath(peer, seq)+"/reaction", body)
	}
	if st, r, _ := react(bob, alice, "👍"); st != http.StatusOK || r.str("kind") != "reaction" || r.str("emoji") != "👍" || r.num("target") != seq {
		t.Fatalf("bob's reaction: %d %v", st, r)
	}
	if st, _, _ := react(alice, bob, "👍🏽"); st != http.StatusOK {
		t.Fatalf("alice's reaction: %d", st)
	}
	if st, _, _ := react(bob, alice, "❤️"); st != http.StatusOK {
		t.Fatalf("bob's second reaction: %d", st)
	}
	for _, bad := range []any{nil, "a", "👍 ", "\u0007", strings.Repeat("👍", 9), "\u200d", 5} {
		if st, _, code := react(bob, alice, bad); st != http.StatusBadRequest || (code != "invalid_emoji" && code != "invalid_request") {
			t.Errorf("reaction %q: %d %s, want 400 invalid_emoji", bad, st, code)
		}
	}
	m := atSeq(t, e.history(bob, alice), seq)
	want := map[string]any{"❤️": []any{bob.id}, "👍🏽": []any{alice.id}}
	if m.str("text") != "hello" || m.str("edited_at") == "" || !reflect.DeepEqual(map[string]any(m.obj("reactions")), want) {
		t.Fatalf("the message after the edit and reactions: %v", m)
	}

	// Only text counts for unread and last_message.
	var convs struct {
		Conversations []struct {
			Unread      int64 `json:"unread"`
			LastSeq     int64 `json:"last_seq"`
			LastMessage frame `json:"last_message"`
		} `json:"conversations"`
	}
	e.call(bob.token, "GET", "/api/conversations", nil, &convs)
	if c := convs.Conversations; len(c) != 1 || c[0].Unread != 1 || c[0].LastMessage.num("seq") != seq ||
		c[0].LastMessage.str("text") != "hello" || c[0].LastSeq <= seq {
		t.Fatalf("bob's conversations: %+v", convs)
	}

	// Replies.
	var out struct {
		Message frame `json:"message"`
		apiError
	}
	if st := e.call(bob.token, "POST", "/api/messages", map[string]any{"to": alice.id, "text": "hi", "client_msg_id": cmid(), "reply_to": seq}, &out); st != http.StatusCreated || out.Message.num("reply_to") != seq {
		t.Fatalf("reply: %d %v", st, out)
	}
	for _, r := range []any{seq + 1, 999, 0, -1} {
		out.Error.Code = ""
		if st := e.call(bob.token, "POST", "/api/messages", map[string]any{"to": alice.id, "text": "hi", "client_msg_id": cmid(), "reply_to": r}, &out); st != http.StatusBadRequest || out.Error.Code != "invalid_reply_to" {
			t.Errorf("reply_to %v: %d %s, want 400 invalid_reply_to", r, st, out.Error.Code)
		}
	}

	// Delete: author only, client_msg_id required, then 409 for everything.
	if st, _, code := e.eventCall(bob, "DELETE", msgPath(alice, seq)+"?client_msg_id="+cmid(), nil); st != 403 || code != "forbidden" {
		t.Fatalf("bob deletes alice's message: %d %s", st, code)
	}
	if st, _, code := e.eventCall(alice, "DELETE", msgPath(bob, seq), nil); st != 400 || code != "invalid_request" {
		t.Fatalf("delete without client_msg_id: %d %s", st, code)
	}
	st, del, _ := e.eventCall(alice, "DELETE", msgPath(bob, seq)+"?client_msg_id=del-1", nil)
	if st != http.StatusOK || del.str("kind") != "delete" || del.num("target") != seq || del.str("text") != "" {
		t.Fatalf("delete: %d %v", st, del)
	}
	if st, again, _ := e.eventCall(alice, "DELETE", msgPath(bob, seq)+"?client_msg_id=del-1", nil); st != http.StatusOK || again.str("id") != del.str("id") {
		t.Fatalf("delete retry: %d %v", st, again)
	}
	m = atSeq(t, e.history(alice, bob), seq)
	if m["deleted"] != true || m.str("text") != "" || fmt.Sprint(m["attachments"]) != "[]" || len(m.obj("reactions")) != 0 {
		t.Fatalf("the deleted message: %v", m)
	}
	if st, _, code := e.eventCall(alice, "PATCH", msgPath(bob, seq), map[string]any{"text": "back", "client_msg_id": cmid()}); st != 409 || code != "deleted" {
		t.Fatalf("edit of a deleted message: %d %s", st, code)
	}
	if st, _, code := react(bob, alice, "👍"); st != 409 || code != "deleted" {
		t.Fatalf("reaction to a deleted message: %d %s", st, code)
	}
	if st, _, code := e.eventCall(alice, "DELETE", msgPath(bob, seq)+"?client_msg_id="+cmid(), nil); st != 409 || code != "deleted" {
		t.Fatalf("second delete: %d %s", st, code)
	}

	// A block stops events as it stops sends.
	st2, m2 := e.restSend(bob, alice, "still here", cmid())
	if st2 != http.StatusCreated {
		t.Fatal(st2)
	}
	if st := e.call(alice.token, "PUT", "/api/users/"+bob.id+"/block", nil, nil); st != http.StatusNoContent {
		t.Fatalf("block: %d", st)
	}
	if st, _, code := e.eventCall(bob, "PATCH", msgPath(alice, m2.num("seq")), map[string]any{"text": "edit", "client_msg_id": cmid()}); st != 403 || code != "blocked" {
		t.Fatalf("edit to a blocker: %d %s", st, code)
	}
}

// Events are sends for the send limit: a refused one stores nothing.
func TestEventsSendLimit(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.SendRate, c.SendBurst = 0.001, 3 })
	alice, bob := e.user("alice"), e.user("bob")
	_, m1 := e.restSend(alice, bob, "one", cmid())
	path := msgPath(bob, m1.num("seq"))
	if st, _, _ := e.eventCall(alice, "PATCH", path, map[string]any{"text": "two", "client_msg_id": cmid()}); st != 200 {
		t.Fatalf("edit: %d", st)
	}
	if st, _, _ := e.eventCall(alice, "PUT", path+"/reaction", map[string]any{"emoji": "👍", "client_msg_id": cmid()}); st != 200 {
		t.Fatalf("reaction: %d", st)
	}
	if st, _, code := e.eventCall(alice, "DELETE", path+"?client_msg_id="+cmid(), nil); st != 429 || code != "rate_limited" {
		t.Fatalf("fourth send: %d %s, want 429", st, code)
	}
	if m := atSeq(t, e.history(bob, alice), m1.num("seq")); m["deleted"] != false {
		t.Fatalf("a refused delete deleted: %v", m)
	}
}

// wsEvent writes an event frame.
func (w *wsClient) event(typ string, peer *testUser, seq int64, cmid string, extra map[string]any) {
	w.t.Helper()
	f := map[string]any{"type": typ, "peer": peer.id, "seq": seq, "client_msg_id": cmid}
	for k, v := range extra {
		f[k] = v
	}
	w.write(f)
}

// nextAnswer returns the next ack or error frame.
func (w *wsClient) nextAnswer() frame {
	w.t.Helper()
	for {
		f := w.next()
		if f.typ() == "ack" || f.typ() == "error" {
			return f
		}
	}
}

// The WebSocket frames edit, delete and react: acks in frame order, the
// events live to the peer as `message` frames, and the rules' errors.
func TestWSMessageEvents(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	wa, wb := e.dial(alice), e.dial(bob)
	m1 := wa.sendOK(bob, "first", cmid())
	seq := m1.num("seq")
	if f, _ := wb.nextOf("message"); f.obj("message").num("seq") != seq {
		t.Fatalf("bob got %v", f)
	}
	// Pipelined: edit, send, react, then answers in that order.
	wa.event("edit", bob, seq, "e1", map[string]any{"text": "first!"})
	wa.write(map[string]any{"type": "send", "to": bob.id, "text": "second", "client_msg_id": "s2", "reply_to": seq})
	wa.event("react", bob, seq, "r1", map[string]any{"emoji": "🎉"})
	for _, want := range []string{"e1", "s2", "r1"} {
		f := wa.nextAnswer()
		if f.typ() != "ack" || f.str("client_msg_id") != want {
			t.Fatalf("answer %v, want the ack of %s", f, want)
		}
		m := f.obj("message")
		switch want {
		case "e1":
			if m.str("kind") != "edit" || m.num("target") != seq || m.str("text") != "first!" {
				t.Fatalf("edit ack: %v", m)
			}
		case "s2":
			if m.str("kind") != "text" || m.num("reply_to") != seq {
				t.Fatalf("reply ack: %v", m)
			}
		case "r1":
			if m.str("kind") != "reaction" || m.str("emoji") != "🎉" {
				t.Fatalf("reaction ack: %v", m)
			}
		}
	}
	var kinds []string
	for range 3 {
		f, _ := wb.nextOf("message")
		kinds = append(kinds, f.obj("message").str("kind"))
	}
	if !reflect.DeepEqual(kinds, []string{"edit", "text", "reaction"}) {
		t.Fatalf("bob got kinds %v live", kinds)
	}
	// Bob may react but not edit or delete.
	wb.event("edit", alice, seq, "be", map[string]any{"text": "hijack"})
	if f := wb.nextAnswer(); f.typ() != "error" || f.str("ref") != "be" || f.obj("error").str("code") != "forbidden" {
		t.Fatalf("bob's edit: %v", f)
	}
	wb.event("react", alice, seq, "br", nil)
	if f := wb.nextAnswer(); f.typ() != "error" || f.obj("error").str("code") != "invalid_emoji" {
		t.Fatalf("a react without emoji: %v", f)
	}
	wb.event("react", alice, seq, "br2", map[string]any{"emoji": "👍"})
	if f := wb.nextAnswer(); f.typ() != "ack" {
		t.Fatalf("bob's reaction: %v", f)
	}
	if f, _ := wa.nextOf("message"); f.obj("message").str("kind") != "reaction" || f.obj("message").str("from") != bob.id {
		t.Fatalf("alice got %v", f)
	}
	wa.event("delete", bob, seq, "d1", nil)
	if f := wa.nextAnswer(); f.typ() != "ack" || f.obj("message").str("kind") != "delete" {
		t.Fatalf("delete: %v", f)
	}
	for _, fr := range []struct {
		typ   string
		extra map[string]any
	}{{"edit", map[string]any{"text": "undo"}}, {"react", map[string]any{"emoji": "👍"}}, {"delete", nil}} {
		wa.event(fr.typ, bob, seq, cmid(), fr.extra)
		if f := wa.nextAnswer(); f.typ() != "error" || f.obj("error").str("code") != "deleted" {
			t.Fatalf("%s of a deleted message: %v", fr.typ, f)
		}
	}
	wa.event("edit", bob, 0, cmid(), map[string]any{"text": "x"})
	if f := wa.nextAnswer(); f.typ() != "error" || f.obj("error").str("code") != "invalid_request" {
		t.Fatalf("edit of seq 0: %v", f)
	}
	wa.event("edit", bob, seq, cmid(), map[string]any{"text": "x", "reply_to": seq})
	if f := wa.nextAnswer(); f.typ() != "error" || f.obj("error").str("code") != "invalid_request" {
		t.Fatalf("edit with a reply_to: %v", f)
	}
	wa.write(map[string]any{"type": "edit", "peer": bob.id, "client_msg_id": cmid(), "text": "x"})
	if f := wa.nextAnswer(); f.typ() != "error" || f.obj("error").str("code") != "invalid_request" {
		t.Fatalf("edit without seq: %v", f)
	}
	// The history holds the tombstone and every event.
	msgs := e.history(bob, alice)
	if m := atSeq(t, msgs, seq); m["deleted"] != true || m.str("text") != "" || len(m.obj("reactions")) != 0 {
		t.Fatalf("the deleted message in the history: %v", m)
	}
	if len(msgs) != 6 {
		t.Fatalf("history has %d messages, want 6 (2 texts, 4 events)", len(msgs))
	}
}

func TestValidEmoji(t *testing.T) {
	for _, ok := range []string{"👍", "👍🏽", "❤️", "🇫🇷", "1️⃣", "#️⃣", "👨‍👩‍👧‍👦", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "‼️", "©", "😂", "🙂"} {
		if !validEmoji(ok) {
			t.Errorf("validEmoji(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "a", "1", "#", "👍 ", " 👍", "\u200d👍", "🏽", "\x00", "\n", "<b>", "👍a", strings.Repeat("😀", 9), "\xff", "👍👍", "🇫🇷🇩🇪", "❤️👍", "😂😂😂"} {
		if validEmoji(bad) {
			t.Errorf("validEmoji(%q) = true", bad)
		}
	}
}
