package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/chatd/chatd/store"
)

// conversationsTests: the Conversations aggregate, views, unread counts,
// read and delivered pointers, peers.
var conversationsTests = []contractTest{
	{"Order", testConversationsOrder},
	{"View", testConversationView},
	{"Unread", testUnread},
	{"MarkRead", testMarkRead},
	{"MarkDelivered", testMarkDelivered},
	{"NotFound", testConversationNotFound},
	{"PeerIDs", testPeerIDs},
}

func testConversationsOrder(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	c := newUser(t, s, "carol", "Carol")
	d := newUser(t, s, "dave", "Dave")
	e := newUser(t, s, "eve", "Eve")
	send(t, s, b, c, "not alice's", 0)
	send(t, s, a, b, "to bob", 1)
	send(t, s, c, a, "from carol", 2)
	send(t, s, a, d, "to dave", 3)

	peers := func(user store.User) []string {
		t.Helper()
		views, err := s.Conversations(ctx, user.ID)
		if err != nil {
			t.Fatalf("Conversations: %v", err)
		}
		var ids []string
		for _, v := range views {
			ids = append(ids, v.PeerID)
		}
		return ids
	}
	if got, want := peers(a), []string{d.ID, c.ID, b.ID}; !slices.Equal(got, want) {
		t.Fatalf("alice's conversations %v, want dave, carol, bob %v", got, want)
	}
	// A new message brings a conversation to the top, whoever sent it.
	send(t, s, b, a, "bob again", 4)
	if got, want := peers(a), []string{b.ID, d.ID, c.ID}; !slices.Equal(got, want) {
		t.Fatalf("after bob's message: %v, want bob, dave, carol %v", got, want)
	}
	send(t, s, a, c, "carol again", 5)
	if got, want := peers(a), []string{c.ID, b.ID, d.ID}; !slices.Equal(got, want) {
		t.Fatalf("after alice's message to carol: %v, want carol, bob, dave %v", got, want)
	}
	if got, want := peers(b), []string{a.ID, c.ID}; !slices.Equal(got, want) {
		t.Fatalf("bob's conversations %v, want alice, carol %v", got, want)
	}
	if got := peers(e); len(got) != 0 {
		t.Fatalf("eve's conversations %v, want none", got)
	}
	if got := peers(store.User{ID: store.NewID()}); len(got) != 0 {
		t.Fatalf("an unknown user's conversations %v, want none", got)
	}
}

func testConversationView(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	send(t, s, a, b, "one", 1)
	last := send(t, s, b, a, "two", 2)

	check := func(what string, v store.ConversationView, peer store.User) {
		t.Helper()
		if v.ID != store.ConversationID(a.ID, b.ID) || v.PeerID != peer.ID {
			t.Fatalf("%s: id %q peer %q", what, v.ID, v.PeerID)
		}
		if v.LastSeq != last.Seq || !v.UpdatedAt.Equal(last.CreatedAt) {
			t.Fatalf("%s: last seq %d updated %v, want %d %v", what, v.LastSeq, v.UpdatedAt, last.Seq, last.CreatedAt)
		}
		if v.LastMessage == nil {
			t.Fatalf("%s: LastMessage nil", what)
		}
		checkMessage(t, what+" LastMessage", *v.LastMessage, last)
		if v.ReadSeq != 0 || v.DeliveredSeq != 0 || v.PeerReadSeq != 0 || v.PeerDeliveredSeq != 0 {
			t.Fatalf("%s: pointers %+v, want all 0", what, v)
		}
	}
	check("alice's view", mustConversation(t, s, a, b), b)
	check("bob's view", mustConversation(t, s, b, a), a)
	views, err := s.Conversations(ctx, a.ID)
	if err != nil || len(views) != 1 {
		t.Fatalf("Conversations = %d, %v", len(views), err)
	}
	check("alice's list", views[0], b)
}

func testUnread(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	var fromB []store.Message
	fromB = append(fromB, send(t, s, b, a, "b1", 1))
	send(t, s, a, b, "a1", 2)
	fromB = append(fromB, send(t, s, b, a, "b2", 3))
	send(t, s, a, b, "a2", 4)
	fromB = append(fromB, send(t, s, b, a, "b3", 5))

	unread := func(user, peer store.User) int64 {
		t.Helper()
		return mustConversation(t, s, user, peer).Unread
	}
	if got := unread(a, b); got != 3 {
		t.Fatalf("alice's unread = %d, want 3 (bob's messages only)", got)
	}
	if got := unread(b, a); got != 2 {
		t.Fatalf("bob's unread = %d, want 2", got)
	}
	if _, _, err := s.MarkRead(ctx, a.ID, b.ID, fromB[1].Seq); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}
	if got := unread(a, b); got != 1 {
		t.Fatalf("alice's unread after reading b2 = %d, want 1", got)
	}
	views, err := s.Conversations(ctx, a.ID)
	if err != nil || len(views) != 1 || views[0].Unread != 1 {
		t.Fatalf("Conversations = %+v, %v; want unread 1", views, err)
	}
	if got := unread(b, a); got != 2 {
		t.Fatalf("bob's unread changed to %d by alice's read", got)
	}
	// Delivered does not count as read.
	if _, _, err := s.MarkDelivered(ctx, a.ID, b.ID, fromB[2].Seq); err != nil {
		t.Fatalf("MarkDelivered: %v", err)
	}
	if got := unread(a, b); got != 1 {
		t.Fatalf("alice's unread after delivery = %d, want 1", got)
	}
	if _, _, err := s.MarkRead(ctx, a.ID, b.ID, fromB[2].Seq); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}
	if got := unread(a, b); got != 0 {
		t.Fatalf("alice's unread after reading all = %d, want 0", got)
	}
	send(t, s, b, a, "b4", 6)
	send(t, s, a, b, "a3", 7)
	if got := unread(a, b); got != 1 {
		t.Fatalf("alice's unread after a new message = %d, want 1", got)
	}
}

func testMarkRead(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	var m []store.Message
	for i := range 5 {
		from, to := b, a
		if i == 2 {
			from, to = a, b
		}
		m = append(m, send(t, s, from, to, fmt.Sprintf("m%d", i), i))
	}
	last := m[4].Seq

	mark := func(seq int64, wantPtr int64, wantMoved bool) {
		t.Helper()
		ptr, moved, err := s.MarkRead(ctx, a.ID, b.ID, seq)
		if err != nil || ptr != wantPtr || moved != wantMoved {
			t.Fatalf("MarkRead(%d) = %d, %v, %v; want %d, %v, nil", seq, ptr, moved, err, wantPtr, wantMoved)
		}
	}
	mark(m[2].Seq, m[2].Seq, true)
	mark(m[1].Seq, m[2].Seq, false) // backwards: nothing changes
	mark(m[2].Seq, m[2].Seq, false) // same: not moved
	mark(0, m[2].Seq, false)
	mark(-5, m[2].Seq, false)

	v := mustConversation(t, s, a, b)
	if v.ReadSeq != m[2].Seq || v.DeliveredSeq != m[2].Seq {
		t.Fatalf("after MarkRead: read %d delivered %d, want both %d", v.ReadSeq, v.DeliveredSeq, m[2].Seq)
	}
	p := mustConversation(t, s, b, a)
	if p.PeerReadSeq != m[2].Seq || p.PeerDeliveredSeq != m[2].Seq || p.ReadSeq != 0 || p.DeliveredSeq != 0 {
		t.Fatalf("bob's view %+v: want peer pointers %d and his own 0", p, m[2].Seq)
	}

	mark(last+1000, last, true) // clamped to the last seq
	mark(last+2000, last, false)
	v = mustConversation(t, s, a, b)
	if v.ReadSeq != last || v.DeliveredSeq != last || v.Unread != 0 {
		t.Fatalf("after reading past the end: %+v, want read = delivered = %d, unread 0", v, last)
	}
	p = mustConversation(t, s, b, a)
	if p.PeerReadSeq != last || p.PeerDeliveredSeq != last {
		t.Fatalf("bob's view %+v: want peer pointers %d", p, last)
	}
	// A new message is above the pointer.
	n := send(t, s, b, a, "new", 10)
	v = mustConversation(t, s, a, b)
	if v.ReadSeq != last || v.Unread != 1 || v.LastSeq != n.Seq {
		t.Fatalf("after a new message: %+v", v)
	}
	mark(n.Seq, n.Seq, true)
}

func testMarkDelivered(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	var m []store.Message
	for i := range 4 {
		m = append(m, send(t, s, b, a, fmt.Sprintf("m%d", i), i))
	}
	last := m[3].Seq
	mark := func(seq int64, wantPtr int64, wantMoved bool) {
		t.Helper()
		ptr, moved, err := s.MarkDelivered(ctx, a.ID, b.ID, seq)
		if err != nil || ptr != wantPtr || moved != wantMoved {
			t.Fatalf("MarkDelivered(%d) = %d, %v, %v; want %d, %v, nil", seq, ptr, moved, err, wantPtr, wantMoved)
		}
	}
	mark(m[1].Seq, m[1].Seq, true)
	mark(m[0].Seq, m[1].Seq, false)
	mark(m[1].Seq, m[1].Seq, false)
	v := mustConversation(t, s, a, b)
	if v.DeliveredSeq != m[1].Seq || v.ReadSeq != 0 || v.Unread != 4 {
		t.Fatalf("after MarkDelivered: %+v; want delivered %d, read 0, unread 4", v, m[1].Seq)
	}
	if p := mustConversation(t, s, b, a); p.PeerDeliveredSeq != m[1].Seq || p.PeerReadSeq != 0 {
		t.Fatalf("bob's view %+v: want peer delivered %d, peer read 0", p, m[1].Seq)
	}
	mark(last+50, last, true)
	mark(last+60, last, false)

	// Reading below the delivered pointer leaves it where it is.
	ptr, moved, err := s.MarkRead(ctx, a.ID, b.ID, m[0].Seq)
	if err != nil || ptr != m[0].Seq || !moved {
		t.Fatalf("MarkRead = %d, %v, %v", ptr, moved, err)
	}
	v = mustConversation(t, s, a, b)
	if v.ReadSeq != m[0].Seq || v.DeliveredSeq != last {
		t.Fatalf("after MarkRead below delivered: read %d delivered %d, want %d %d", v.ReadSeq, v.DeliveredSeq, m[0].Seq, last)
	}
	// Bob's pointers are his own.
	if p := mustConversation(t, s, b, a); p.DeliveredSeq != 0 || p.ReadSeq != 0 {
		t.Fatalf("bob's own pointers moved: %+v", p)
	}
}

func testConversationNotFound(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	c := newUser(t, s, "carol", "Carol")
	_, err := s.Conversation(ctx, a.ID, b.ID)
	wantErr(t, "Conversation before any message", err, store.ErrNotFound)
	_, _, err = s.MarkRead(ctx, a.ID, b.ID, 1)
	wantErr(t, "MarkRead without a conversation", err, store.ErrNotFound)
	_, _, err = s.MarkDelivered(ctx, a.ID, b.ID, 1)
	wantErr(t, "MarkDelivered without a conversation", err, store.ErrNotFound)

	send(t, s, a, b, "hi", 1)
	mustConversation(t, s, a, b)
	mustConversation(t, s, b, a)
	_, err = s.Conversation(ctx, a.ID, c.ID)
	wantErr(t, "Conversation with someone else", err, store.ErrNotFound)
	_, err = s.Conversation(ctx, c.ID, a.ID)
	wantErr(t, "Conversation of a non-member", err, store.ErrNotFound)
	_, _, err = s.MarkRead(ctx, c.ID, a.ID, 1)
	wantErr(t, "MarkRead by a non-member", err, store.ErrNotFound)
}

func testPeerIDs(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	c := newUser(t, s, "carol", "Carol")
	d := newUser(t, s, "dave", "Dave")
	send(t, s, a, b, "1", 1)
	send(t, s, c, a, "2", 2)
	send(t, s, a, b, "3", 3)
	send(t, s, b, c, "4", 4)

	peers := func(u store.User) []string {
		t.Helper()
		ids, err := s.PeerIDs(ctx, u.ID)
		if err != nil {
			t.Fatalf("PeerIDs: %v", err)
		}
		slices.Sort(ids)
		return ids
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	if got, want := peers(a), sorted(b.ID, c.ID); !slices.Equal(got, want) {
		t.Errorf("alice's peers %v, want %v", got, want)
	}
	if got, want := peers(b), sorted(a.ID, c.ID); !slices.Equal(got, want) {
		t.Errorf("bob's peers %v, want %v", got, want)
	}
	if got := peers(d); len(got) != 0 {
		t.Errorf("dave's peers %v, want none", got)
	}
}
