package storetest

import (
	"reflect"
	"testing"

	"github.com/chatd/chatd/store"
)

// eventsTests: message events (reply, edit, delete, reaction) and the
// fields of store.Message they brought.
var eventsTests = []contractTest{
	{"FieldsRoundTrip", testEventFieldsRoundTrip},
}

// A text message's reply_to and attachments come back from every read:
// the append, a retry, both pages and the conversation view; the state a
// caller sets (EditedAt, Reactions, Deleted) is the store's and ignored.
func testEventFieldsRoundTrip(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	first := send(t, s, alice, bob, "look", 1)
	m := store.Message{
		ID: store.NewID(), From: bob.ID, To: alice.ID, Text: "", ClientMsgID: store.NewID(), CreatedAt: at(2),
		Kind: store.KindText, ReplyTo: first.Seq,
		Attachments: []store.Attachment{
			{ID: store.NewID(), Name: "cat.png", Type: "image/png", Size: 1234},
			{ID: store.NewID(), Name: "notes — été.txt", Type: "text/plain; charset=utf-8", Size: 0},
		},
		EditedAt: at(3), Reactions: map[string][]string{"👍": {alice.ID}}, Deleted: true,
	}
	want := m
	check := func(what string, got store.Message) {
		t.Helper()
		checkMessage(t, what, got, want)
		if got.Kind != "" || got.ReplyTo != first.Seq || got.Target != 0 || got.Emoji != "" ||
			!reflect.DeepEqual(got.Attachments, m.Attachments) ||
			!got.EditedAt.IsZero() || len(got.Reactions) != 0 || got.Deleted {
			t.Fatalf("%s: %+v", what, got)
		}
	}
	got, created, err := s.AppendMessage(ctx, m)
	if err != nil || !created {
		t.Fatalf("AppendMessage: %v, created=%v", err, created)
	}
	want.ConversationID, want.Seq = first.ConversationID, first.Seq+1
	check("append", got)
	again, created, err := s.AppendMessage(ctx, m)
	if err != nil || created {
		t.Fatalf("retry: %v, created=%v", err, created)
	}
	check("retry", again)
	after, _, err := s.MessagesAfter(ctx, first.ConversationID, first.Seq, 10)
	if err != nil || len(after) != 1 {
		t.Fatalf("MessagesAfter: %+v, %v", after, err)
	}
	check("MessagesAfter", after[0])
	before, _, err := s.MessagesBefore(ctx, first.ConversationID, 0, 10)
	if err != nil || len(before) != 2 {
		t.Fatalf("MessagesBefore: %+v, %v", before, err)
	}
	check("MessagesBefore", before[1])
	if before[0].ReplyTo != 0 || before[0].Attachments != nil {
		t.Fatalf("the first message: %+v", before[0])
	}
	v := mustConversation(t, s, alice, bob)
	if v.LastMessage == nil {
		t.Fatal("no last message")
	}
	check("last message", *v.LastMessage)
}
