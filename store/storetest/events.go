package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/chatd/chatd/store"
)

// eventsTests: message events (reply, edit, delete, reaction) and the
// fields of store.Message they brought.
var eventsTests = []contractTest{
	{"FieldsRoundTrip", testEventFieldsRoundTrip},
	{"Edit", testEventEdit},
	{"Author", testEventAuthor},
	{"Delete", testEventDelete},
	{"Reactions", testEventReactions},
	{"Targets", testEventTargets},
	{"Counts", testEventCounts},
	{"RaceWithSends", testEventRace},
	{"CatchUp", testEventCatchUp},
	{"Erase", testEventErase},
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

// event appends an event of kind by from on the message target (of the
// conversation of from and to) at time n, with a fresh client_msg_id.
func event(t *testing.T, s store.Store, from, to store.User, kind string, target store.Message, text, emoji string, n int) (store.Message, error) {
	t.Helper()
	m, created, err := s.AppendMessage(ctxFor(t), store.Message{
		ID: store.NewID(), From: from.ID, To: to.ID, ClientMsgID: store.NewID(), CreatedAt: at(n),
		Kind: kind, Target: target.Seq, Text: text, Emoji: emoji,
	})
	if err == nil && !created {
		t.Fatalf("%s by %s: created=false for a fresh client_msg_id", kind, from.Username)
	}
	return m, err
}

func mustEvent(t *testing.T, s store.Store, from, to store.User, kind string, target store.Message, text, emoji string, n int) store.Message {
	t.Helper()
	m, err := event(t, s, from, to, kind, target, text, emoji, n)
	if err != nil {
		t.Fatalf("%s by %s of %d: %v", kind, from.Username, target.Seq, err)
	}
	return m
}

// allMessages returns every message of conv, ascending (MessagesAfter from 0).
func allMessages(t *testing.T, s store.Store, conv string) []store.Message {
	t.Helper()
	var out []store.Message
	after := int64(0)
	for {
		msgs, more, err := s.MessagesAfter(ctxFor(t), conv, after, 50)
		if err != nil {
			t.Fatalf("MessagesAfter(%d): %v", after, err)
		}
		out = append(out, msgs...)
		if !more {
			return out
		}
		after = msgs[len(msgs)-1].Seq
	}
}

// bySeq returns the message with seq among msgs (failing when absent).
func bySeq(t *testing.T, msgs []store.Message, seq int64) store.Message {
	t.Helper()
	for _, m := range msgs {
		if m.Seq == seq {
			return m
		}
	}
	t.Fatalf("no message %d among %v", seq, seqs(msgs))
	return store.Message{}
}

// An edit is a message of its own (next seq, kind, target, text) and the
// target reads with the new text and the edit's time from every read; a
// retry returns the edit.
func testEventEdit(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	m1 := send(t, s, alice, bob, "helo", 1)
	ev := store.Message{ID: store.NewID(), From: alice.ID, To: bob.ID, ClientMsgID: "edit-1", CreatedAt: at(2),
		Kind: store.KindEdit, Target: m1.Seq, Text: "hello"}
	got, created, err := s.AppendMessage(ctx, ev)
	if err != nil || !created {
		t.Fatalf("edit: %v, created=%v", err, created)
	}
	if got.Seq != m1.Seq+1 || got.Kind != store.KindEdit || got.Target != m1.Seq || got.Text != "hello" ||
		got.ConversationID != m1.ConversationID || got.From != alice.ID || !got.CreatedAt.Equal(at(2)) {
		t.Fatalf("edit event = %+v", got)
	}
	again, created, err := s.AppendMessage(ctx, ev)
	if err != nil || created || again.ID != got.ID || again.Seq != got.Seq || again.Kind != store.KindEdit || again.Target != m1.Seq {
		t.Fatalf("edit retry = %+v, created=%v, %v", again, created, err)
	}
	wantEdited := func(what string, m store.Message) {
		t.Helper()
		if m.Seq != m1.Seq || m.Text != "hello" || !m.EditedAt.Equal(at(2)) || m.Deleted || m.Kind != "" || !m.CreatedAt.Equal(at(1)) {
			t.Fatalf("%s: the edited message = %+v", what, m)
		}
	}
	before, _, err := s.MessagesBefore(ctx, m1.ConversationID, 0, 10)
	if err != nil || len(before) != 2 {
		t.Fatalf("MessagesBefore: %v %v", seqs(before), err)
	}
	wantEdited("MessagesBefore", before[0])
	if e := before[1]; e.ID != got.ID || e.Kind != store.KindEdit || e.Target != m1.Seq || e.Text != "hello" {
		t.Fatalf("MessagesBefore's event = %+v", e)
	}
	after, _, err := s.MessagesAfter(ctx, m1.ConversationID, 0, 10)
	if err != nil || len(after) != 2 {
		t.Fatalf("MessagesAfter: %v %v", seqs(after), err)
	}
	wantEdited("MessagesAfter", after[0])
	v := mustConversation(t, s, bob, alice)
	if v.LastMessage == nil || v.LastSeq != got.Seq {
		t.Fatalf("bob's view: %+v", v)
	}
	wantEdited("last message", *v.LastMessage)
	// A second edit wins.
	mustEvent(t, s, alice, bob, store.KindEdit, m1, "hello!", "", 3)
	if m := bySeq(t, allMessages(t, s, m1.ConversationID), m1.Seq); m.Text != "hello!" || !m.EditedAt.Equal(at(3)) {
		t.Fatalf("after the second edit: %+v", m)
	}
}

// Only the author edits or deletes; either member reacts. A refused event
// stores nothing.
func testEventAuthor(t *testing.T, s store.Store) {
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	m1 := send(t, s, alice, bob, "mine", 1)
	_, err := event(t, s, bob, alice, store.KindEdit, m1, "yours", "", 2)
	wantErr(t, "bob edits alice's message", err, store.ErrForbidden)
	_, err = event(t, s, bob, alice, store.KindDelete, m1, "", "", 3)
	wantErr(t, "bob deletes alice's message", err, store.ErrForbidden)
	if v := mustConversation(t, s, alice, bob); v.LastSeq != m1.Seq {
		t.Fatalf("a refused event took a seq: %+v", v)
	}
	r := mustEvent(t, s, bob, alice, store.KindReaction, m1, "", "👍", 4)
	if r.Seq != m1.Seq+1 || r.From != bob.ID || r.Emoji != "👍" {
		t.Fatalf("bob's reaction = %+v", r)
	}
	mustEvent(t, s, alice, bob, store.KindReaction, m1, "", "😂", 5)
	m := bySeq(t, allMessages(t, s, m1.ConversationID), m1.Seq)
	if m.Text != "mine" || !reflect.DeepEqual(m.Reactions, map[string][]string{"👍": {bob.ID}, "😂": {alice.ID}}) {
		t.Fatalf("after both reactions: %+v", m)
	}
}

// A delete blanks the message for everyone (text, attachments, reactions,
// edit time); a deleted message cannot be edited, reacted to or deleted
// again, but the delete's retry still returns it.
func testEventDelete(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	m1, _, err := s.AppendMessage(ctx, store.Message{From: alice.ID, To: bob.ID, Text: "oops", ClientMsgID: "m1", CreatedAt: at(1),
		Attachments: []store.Attachment{{ID: store.NewID(), Name: "a.pdf", Type: "application/pdf", Size: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	mustEvent(t, s, alice, bob, store.KindEdit, m1, "oops!", "", 2)
	mustEvent(t, s, bob, alice, store.KindReaction, m1, "", "😮", 3)
	del := store.Message{From: alice.ID, To: bob.ID, ClientMsgID: "del-1", CreatedAt: at(4), Kind: store.KindDelete, Target: m1.Seq}
	d, created, err := s.AppendMessage(ctx, del)
	if err != nil || !created || d.Kind != store.KindDelete || d.Target != m1.Seq || d.Text != "" {
		t.Fatalf("delete = %+v, created=%v, %v", d, created, err)
	}
	all := allMessages(t, s, m1.ConversationID)
	if m := bySeq(t, all, m1.Seq); !m.Deleted || m.Text != "" || len(m.Attachments) != 0 || len(m.Reactions) != 0 || !m.EditedAt.IsZero() {
		t.Fatalf("the deleted message = %+v", m)
	}
	if len(all) != 4 {
		t.Fatalf("messages %v, want the text and its three events", seqs(all))
	}
	if v := mustConversation(t, s, bob, alice); v.LastMessage == nil || !v.LastMessage.Deleted || v.LastMessage.Text != "" {
		t.Fatalf("bob's view of the deleted message: %+v", v.LastMessage)
	}
	_, err = event(t, s, alice, bob, store.KindEdit, m1, "again", "", 5)
	wantErr(t, "edit of a deleted message", err, store.ErrDeleted)
	_, err = event(t, s, bob, alice, store.KindReaction, m1, "", "👍", 6)
	wantErr(t, "reaction to a deleted message", err, store.ErrDeleted)
	_, err = event(t, s, alice, bob, store.KindDelete, m1, "", "", 7)
	wantErr(t, "second delete", err, store.ErrDeleted)
	again, created, err := s.AppendMessage(ctx, del)
	if err != nil || created || again.ID != d.ID || again.Seq != d.Seq {
		t.Fatalf("delete retry = %+v, created=%v, %v", again, created, err)
	}
	if v := mustConversation(t, s, alice, bob); v.LastSeq != d.Seq {
		t.Fatalf("refused events took seqs: last_seq %d, want %d", v.LastSeq, d.Seq)
	}
}

// Reactions: one per user, a new one replaces the old, "" removes it
// (removing none is stored and changes nothing); users keep the order they
// reacted in.
func testEventReactions(t *testing.T, s store.Store) {
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	m1 := send(t, s, alice, bob, "party?", 1)
	state := func() map[string][]string {
		t.Helper()
		return bySeq(t, allMessages(t, s, m1.ConversationID), m1.Seq).Reactions
	}
	want := func(what string, w map[string][]string) {
		t.Helper()
		if got := state(); !reflect.DeepEqual(got, w) {
			t.Fatalf("%s: reactions %v, want %v", what, got, w)
		}
	}
	mustEvent(t, s, alice, bob, store.KindReaction, m1, "", "👍", 2)
	want("alice 👍", map[string][]string{"👍": {alice.ID}})
	mustEvent(t, s, bob, alice, store.KindReaction, m1, "", "❤️", 3)
	want("bob ❤️", map[string][]string{"👍": {alice.ID}, "❤️": {bob.ID}})
	mustEvent(t, s, alice, bob, store.KindReaction, m1, "", "❤️", 4)
	want("alice replaces 👍 by ❤️", map[string][]string{"❤️": {bob.ID, alice.ID}})
	mustEvent(t, s, bob, alice, store.KindReaction, m1, "", "", 5)
	want("bob removes his", map[string][]string{"❤️": {alice.ID}})
	mustEvent(t, s, bob, alice, store.KindReaction, m1, "", "", 6)
	want("bob removes none", map[string][]string{"❤️": {alice.ID}})
	mustEvent(t, s, alice, bob, store.KindReaction, m1, "", "", 7)
	if got := state(); len(got) != 0 {
		t.Fatalf("all removed: reactions %v", got)
	}
	if m := bySeq(t, allMessages(t, s, m1.ConversationID), m1.Seq); m.Text != "party?" || !m.EditedAt.IsZero() {
		t.Fatalf("reactions changed the text: %+v", m)
	}
}

// An event's target must be a text message of the event's conversation; a
// reply_to a text message of the message's conversation; each kind carries
// only its own fields.
func testEventTargets(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	carol := newUser(t, s, "carol", "Carol")
	_, err := event(t, s, alice, carol, store.KindReaction, store.Message{Seq: 1}, "", "👍", 1)
	wantErr(t, "an event in a conversation that does not exist", err, store.ErrNotFound)
	m1 := send(t, s, alice, bob, "one", 2)
	m2 := send(t, s, bob, alice, "two", 3)
	_, err = event(t, s, alice, bob, store.KindReaction, store.Message{Seq: m2.Seq + 10}, "", "👍", 4)
	wantErr(t, "a target past the last seq", err, store.ErrNotFound)
	r := mustEvent(t, s, alice, bob, store.KindReaction, m2, "", "👍", 5)
	_, err = event(t, s, alice, bob, store.KindReaction, r, "", "👍", 6)
	wantErr(t, "a reaction to a reaction", err, store.ErrNotFound)
	_, err = event(t, s, bob, alice, store.KindDelete, r, "", "", 6)
	wantErr(t, "a delete of an event", err, store.ErrNotFound)
	// Seq 1 exists in alice–bob, not in alice–carol, which has seq 1 too
	// only once carol writes: target one past its end.
	c1 := send(t, s, carol, alice, "hi", 7)
	_, err = event(t, s, alice, carol, store.KindReaction, store.Message{Seq: m2.Seq}, "", "👍", 8)
	wantErr(t, "a seq of another conversation", err, store.ErrNotFound)
	_, err = event(t, s, alice, carol, store.KindEdit, m1, "x", "", 8)
	if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrForbidden) {
		t.Fatalf("alice edits carol's seq 1 as if it were her message in another conversation: %v", err)
	}
	if got := bySeq(t, allMessages(t, s, c1.ConversationID), c1.Seq); got.Text != "hi" {
		t.Fatalf("carol's message changed: %+v", got)
	}

	reply := func(replyTo int64, from, to store.User) (store.Message, error) {
		m, _, err := s.AppendMessage(ctx, store.Message{From: from.ID, To: to.ID, Text: "re", ClientMsgID: store.NewID(), ReplyTo: replyTo, CreatedAt: at(9)})
		return m, err
	}
	got, err := reply(m1.Seq, bob, alice)
	if err != nil || got.ReplyTo != m1.Seq {
		t.Fatalf("reply to m1: %+v, %v", got, err)
	}
	_, err = reply(r.Seq, bob, alice)
	wantErr(t, "a reply to a reaction", err, store.ErrInvalid)
	_, err = reply(999, bob, alice)
	wantErr(t, "a reply to a seq that does not exist", err, store.ErrInvalid)
	dave := newUser(t, s, "dave", "Dave")
	_, err = reply(1, dave, alice)
	wantErr(t, "a reply as a conversation's first message", err, store.ErrInvalid)

	for _, bad := range []store.Message{
		{Kind: store.KindEdit, Text: "no target"},
		{Kind: store.KindReaction, Target: m1.Seq, Emoji: "👍", ReplyTo: m1.Seq},
		{Kind: store.KindDelete, Target: m1.Seq, Text: "text on a delete"},
		{Kind: store.KindEdit, Target: m1.Seq, Text: "x", Emoji: "👍"},
		{Kind: "poke", Target: m1.Seq},
		{Text: "a text with a target", Target: m1.Seq},
		{Kind: store.KindEdit, Target: m1.Seq, Text: "x", Attachments: []store.Attachment{{ID: "a"}}},
	} {
		bad.From, bad.To, bad.ClientMsgID = alice.ID, bob.ID, store.NewID()
		_, _, err := s.AppendMessage(ctx, bad)
		wantErr(t, fmt.Sprintf("%+v", bad), err, store.ErrInvalid)
	}
}

// Only text messages count for unread, last_message, the time of activity
// and contacts; events count for last_seq (so the catch-up rule fetches
// them) and a read pointer may pass them.
func testEventCounts(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	m1 := send(t, s, alice, bob, "first", 1)
	mustEvent(t, s, bob, alice, store.KindReaction, m1, "", "👍", 2)
	e := mustEvent(t, s, alice, bob, store.KindEdit, m1, "first!", "", 3)
	if ids, err := s.ContactIDs(ctx, alice.ID); err != nil || len(ids) != 0 {
		t.Fatalf("a reaction made bob a contact: %v, %v", ids, err)
	}
	bv := mustConversation(t, s, bob, alice)
	if bv.Unread != 1 || bv.LastSeq != e.Seq || bv.LastMessage == nil || bv.LastMessage.Seq != m1.Seq ||
		bv.LastMessage.Text != "first!" || !bv.UpdatedAt.Equal(at(1)) {
		t.Fatalf("bob's view: %+v (last %+v)", bv, bv.LastMessage)
	}
	if av := mustConversation(t, s, alice, bob); av.Unread != 0 || av.LastMessage == nil || av.LastMessage.Seq != m1.Seq {
		t.Fatalf("alice's view (bob's reaction is not unread): %+v", av)
	}
	if seq, _, err := s.MarkRead(ctx, bob.ID, alice.ID, e.Seq); err != nil || seq != e.Seq {
		t.Fatalf("MarkRead past the events = %d, %v", seq, err)
	}
	if bv := mustConversation(t, s, bob, alice); bv.Unread != 0 {
		t.Fatalf("bob read everything: unread %d", bv.Unread)
	}
	m2 := send(t, s, alice, bob, "second", 4)
	mustEvent(t, s, alice, bob, store.KindEdit, m2, "second!", "", 5)
	mustEvent(t, s, alice, bob, store.KindReaction, m1, "", "🎉", 6)
	mustEvent(t, s, bob, alice, store.KindReaction, m2, "", "👍", 7)
	bv = mustConversation(t, s, bob, alice)
	if bv.Unread != 1 || bv.LastMessage == nil || bv.LastMessage.Seq != m2.Seq || bv.LastMessage.Text != "second!" ||
		!reflect.DeepEqual(bv.LastMessage.Reactions, map[string][]string{"👍": {bob.ID}}) || !bv.UpdatedAt.Equal(at(4)) {
		t.Fatalf("bob's view after the second message: %+v (last %+v)", bv, bv.LastMessage)
	}
	// Bob reads up to his own reaction's seq: alice's messages below it are read.
	if _, _, err := s.MarkRead(ctx, bob.ID, alice.ID, bv.LastSeq); err != nil {
		t.Fatal(err)
	}
	if bv := mustConversation(t, s, bob, alice); bv.Unread != 0 {
		t.Fatalf("unread %d after reading to the end", bv.Unread)
	}
	send(t, s, bob, alice, "reply", 8)
	if ids, err := s.ContactIDs(ctx, alice.ID); err != nil || !slices.Equal(ids, []string{bob.ID}) {
		t.Fatalf("contacts once bob wrote: %v, %v", ids, err)
	}
	// The conversation list orders by the last text message.
	carol := newUser(t, s, "carol", "Carol")
	c1 := send(t, s, carol, alice, "hey", 9)
	mustEvent(t, s, alice, bob, store.KindReaction, bySeq(t, allMessages(t, s, m1.ConversationID), m1.Seq), "", "👀", 10)
	views, err := s.Conversations(ctx, alice.ID)
	if err != nil || len(views) != 2 || views[0].ID != c1.ConversationID {
		t.Fatalf("alice's list: %+v, %v (a reaction must not bring a conversation up)", views, err)
	}
}

// Edits and reactions racing sends in one conversation: every seq unique,
// every event stored, and the final state that of the last event of each
// kind by seq.
func testEventRace(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	m1 := send(t, s, alice, bob, "v0", 1)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Go(func() {
			_, _, err := s.AppendMessage(ctx, store.Message{From: alice.ID, To: bob.ID, ClientMsgID: fmt.Sprintf("e%d", i),
				Kind: store.KindEdit, Target: m1.Seq, Text: fmt.Sprintf("v%d", i+1)})
			errs <- err
		})
		wg.Go(func() {
			_, _, err := s.AppendMessage(ctx, store.Message{From: bob.ID, To: alice.ID, ClientMsgID: fmt.Sprintf("s%d", i), Text: fmt.Sprintf("b%d", i)})
			errs <- err
		})
		wg.Go(func() {
			_, _, err := s.AppendMessage(ctx, store.Message{From: bob.ID, To: alice.ID, ClientMsgID: fmt.Sprintf("r%d", i),
				Kind: store.KindReaction, Target: m1.Seq, Emoji: []string{"👍", "❤️", "😂"}[i%3]})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("racing append: %v", err)
		}
	}
	all := allMessages(t, s, m1.ConversationID)
	if len(all) != 1+3*n {
		t.Fatalf("%d messages, want %d", len(all), 1+3*n)
	}
	var lastEdit, lastReaction store.Message
	seen := map[int64]bool{}
	for i, m := range all {
		if seen[m.Seq] || (i > 0 && m.Seq <= all[i-1].Seq) {
			t.Fatalf("seqs not unique and ascending: %v", seqs(all))
		}
		seen[m.Seq] = true
		switch m.Kind {
		case store.KindEdit:
			lastEdit = m
		case store.KindReaction:
			lastReaction = m
		}
	}
	got := bySeq(t, all, m1.Seq)
	if got.Text != lastEdit.Text || !reflect.DeepEqual(got.Reactions, map[string][]string{lastReaction.Emoji: {bob.ID}}) {
		t.Fatalf("final state %q %v; the last edit says %q, the last reaction %q", got.Text, got.Reactions, lastEdit.Text, lastReaction.Emoji)
	}
	if v := mustConversation(t, s, alice, bob); v.Unread != n || v.LastSeq != all[len(all)-1].Seq {
		t.Fatalf("alice's view: unread %d (want %d), last_seq %d", v.Unread, n, v.LastSeq)
	}
}

// A catch-up that starts between a message and its edit: the client holds
// seq 1 as first sent; the page after it brings the edit (which the client
// applies), and a page that reaches the message shows it edited already.
func testEventCatchUp(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	m1 := send(t, s, alice, bob, "draft", 1)
	held, _, err := s.MessagesAfter(ctx, m1.ConversationID, 0, 50)
	if err != nil || len(held) != 1 || held[0].Text != "draft" {
		t.Fatalf("first read: %+v, %v", held, err)
	}
	m2 := send(t, s, bob, alice, "ok", 2)
	e := mustEvent(t, s, alice, bob, store.KindEdit, m1, "final", "", 3)
	v := mustConversation(t, s, bob, alice)
	if v.LastSeq != e.Seq {
		t.Fatalf("last_seq %d, want the edit's %d (so the catch-up rule fetches it)", v.LastSeq, e.Seq)
	}
	page, more, err := s.MessagesAfter(ctx, m1.ConversationID, m1.Seq, 50)
	if err != nil || more || !slices.Equal(seqs(page), []int64{m2.Seq, e.Seq}) {
		t.Fatalf("catch-up after %d: %v more=%v %v", m1.Seq, seqs(page), more, err)
	}
	if got := page[1]; got.Kind != store.KindEdit || got.Target != m1.Seq || got.Text != "final" || !got.CreatedAt.Equal(at(3)) {
		t.Fatalf("the edit in the catch-up = %+v", got)
	}
	applied := held[0].Apply(page[1])
	if applied.Text != "final" || !applied.EditedAt.Equal(at(3)) {
		t.Fatalf("the client's copy after applying the edit: %+v", applied)
	}
	// A page that ends before the edit already shows its target edited.
	first, more, err := s.MessagesAfter(ctx, m1.ConversationID, 0, 1)
	if err != nil || !more || len(first) != 1 || first[0].Text != "final" || !first[0].EditedAt.Equal(at(3)) {
		t.Fatalf("a page of one: %+v more=%v %v", first, more, err)
	}
	if mb, _, err := s.MessagesBefore(ctx, m1.ConversationID, e.Seq, 1); err != nil || len(mb) != 1 || mb[0].Seq != m2.Seq {
		t.Fatalf("MessagesBefore(%d, 1): %+v %v", e.Seq, mb, err)
	}
}

// Erasing an account's messages leaves them as a delete would, whatever
// events they had.
func testEventErase(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	m1 := send(t, s, alice, bob, "hi", 1)
	mustEvent(t, s, alice, bob, store.KindEdit, m1, "hi!", "", 2)
	mustEvent(t, s, bob, alice, store.KindReaction, m1, "", "👋", 3)
	b1 := send(t, s, bob, alice, "yo", 4)
	mustEvent(t, s, alice, bob, store.KindReaction, b1, "", "👍", 5)
	if _, err := s.EraseMessagesFrom(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	all := allMessages(t, s, m1.ConversationID)
	if m := bySeq(t, all, m1.Seq); !m.Deleted || m.Text != "" || len(m.Reactions) != 0 || !m.EditedAt.IsZero() {
		t.Fatalf("alice's erased message: %+v", m)
	}
	if m := bySeq(t, all, b1.Seq); m.Deleted || m.Text != "yo" || !reflect.DeepEqual(m.Reactions, map[string][]string{"👍": {alice.ID}}) {
		t.Fatalf("bob's message after alice's erase: %+v", m)
	}
	_, err := event(t, s, bob, alice, store.KindReaction, m1, "", "👍", 6)
	wantErr(t, "reaction to an erased message", err, store.ErrDeleted)
}
