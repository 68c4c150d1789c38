package sqlitestore

import (
	"testing"

	"github.com/chatd/chatd/store"
)

// A database from before message events opens with its conversations'
// last message and unread counts intact, and its messages take events.
func TestMigrationMessageEvents(t *testing.T) {
	path, events := oldDatabase(t, "last_text_seq",
		`INSERT INTO users (id, username, display_name, display_fold, password_hash, created_at) VALUES
			('a', 'alice', 'Alice', 'alice', 'h', 1), ('b', 'bob', 'Bob', 'bob', 'h', 1)`,
		`INSERT INTO conversations (k, id, user_a, user_b, last_seq, updated_at, sent_a, sent_b) VALUES (1, 'a.b', 'a', 'b', 2, 2000, 2, 0)`,
		`INSERT INTO conversation_members (user_id, conv, peer_id) VALUES ('a', 1, 'b'), ('b', 1, 'a')`,
		`INSERT INTO messages (conv, seq, id, from_id, to_id, text, client_msg_id, created_at) VALUES
			(1, 1, 'm1', 'a', 'b', 'one', 'c1', 1000), (1, 2, 'm2', 'a', 'b', 'two', 'c2', 2000)`)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open a version %d database: %v", events, err)
	}
	defer s.Close()
	ctx := t.Context()
	v, err := s.Conversation(ctx, "b", "a")
	if err != nil || v.LastSeq != 2 || v.Unread != 2 || v.LastMessage == nil || v.LastMessage.ID != "m2" || v.LastMessage.Text != "two" {
		t.Fatalf("bob's view after the migration: %+v (last %+v), %v", v, v.LastMessage, err)
	}
	e, _, err := s.AppendMessage(ctx, store.Message{From: "a", To: "b", ClientMsgID: "e1", Kind: store.KindEdit, Target: 1, Text: "uno"})
	if err != nil || e.Seq != 3 {
		t.Fatalf("edit of an old message: %+v, %v", e, err)
	}
	v, err = s.Conversation(ctx, "b", "a")
	if err != nil || v.LastSeq != 3 || v.Unread != 2 || v.LastMessage == nil || v.LastMessage.ID != "m2" {
		t.Fatalf("bob's view after the edit: %+v (last %+v), %v", v, v.LastMessage, err)
	}
	msgs, _, err := s.MessagesAfter(ctx, "a.b", 0, 10)
	if err != nil || len(msgs) != 3 || msgs[0].Text != "uno" || msgs[0].EditedAt.IsZero() || msgs[1].Text != "two" {
		t.Fatalf("messages after the edit: %+v, %v", msgs, err)
	}
}
