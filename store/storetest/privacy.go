package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/chatd/chatd/store"
)

var privacyTests = []contractTest{
	{"ContactIDs", testContactIDs},
	{"Blocks", testBlocks},
	{"BlockInvalid", testBlockInvalid},
	{"AppendRefusesBlocked", testAppendRefusesBlocked},
	{"SetDisplayName", testSetDisplayName},
}

func wantIDs(t *testing.T, what string, got []string, err error, want ...store.User) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	ids := []string{}
	for _, u := range want {
		ids = append(ids, u.ID)
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("%s = %v, want %v", what, got, ids)
	}
}

func sortedUsers(us ...store.User) []store.User {
	slices.SortFunc(us, func(a, b store.User) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return us
}

// A contact is a peer of a conversation in which both members sent.
func testContactIDs(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice, bob, carol, dave := newUser(t, s, "alice", "Alice"), newUser(t, s, "bob", "Bob"), newUser(t, s, "carol", "Carol"), newUser(t, s, "dave", "Dave")
	got, err := s.ContactIDs(ctx, alice.ID)
	wantIDs(t, "ContactIDs before any message", got, err)

	send(t, s, carol, alice, "hi, stranger", 1) // only carol sent: no contact either way
	got, err = s.ContactIDs(ctx, alice.ID)
	wantIDs(t, "ContactIDs(alice) with a one-sided conversation", got, err)
	got, err = s.ContactIDs(ctx, carol.ID)
	wantIDs(t, "ContactIDs(carol) with a one-sided conversation", got, err)

	send(t, s, alice, bob, "hi", 2)
	send(t, s, alice, bob, "there?", 3)
	got, err = s.ContactIDs(ctx, bob.ID)
	wantIDs(t, "ContactIDs(bob) before bob answered", got, err)
	send(t, s, bob, alice, "yes", 4)
	send(t, s, dave, alice, "hello", 5)
	send(t, s, alice, dave, "hello", 6)

	got, err = s.ContactIDs(ctx, alice.ID)
	wantIDs(t, "ContactIDs(alice)", got, err, sortedUsers(bob, dave)...)
	got, err = s.ContactIDs(ctx, bob.ID)
	wantIDs(t, "ContactIDs(bob)", got, err, alice)
	// Erasing the messages (account deletion) keeps the contact.
	if _, err := s.EraseMessagesFrom(ctx, bob.ID); err != nil {
		t.Fatalf("EraseMessagesFrom: %v", err)
	}
	got, err = s.ContactIDs(ctx, alice.ID)
	wantIDs(t, "ContactIDs(alice) after bob's messages were erased", got, err, sortedUsers(bob, dave)...)
}

func testBlocks(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice, bob, carol := newUser(t, s, "alice", "Alice"), newUser(t, s, "bob", "Bob"), newUser(t, s, "carol", "Carol")
	got, err := s.BlockedIDs(ctx, alice.ID)
	wantIDs(t, "BlockedIDs before any block", got, err)
	// Asked before the block too, so that a store answering from memory
	// must see the Block that follows.
	if ok, err := s.IsBlocked(ctx, alice.ID, bob.ID); err != nil || ok {
		t.Fatalf("IsBlocked before any block = %v, %v, want false", ok, err)
	}

	if err := s.Block(ctx, alice.ID, bob.ID, at(1)); err != nil {
		t.Fatalf("Block: %v", err)
	}
	if err := s.Block(ctx, alice.ID, carol.ID, at(2)); err != nil {
		t.Fatalf("Block: %v", err)
	}
	if err := s.Block(ctx, alice.ID, bob.ID, at(3)); err != nil { // again: keeps the first time
		t.Fatalf("Block again: %v", err)
	}
	if err := s.Block(ctx, carol.ID, alice.ID, at(4)); err != nil {
		t.Fatalf("Block: %v", err)
	}
	got, err = s.BlockedIDs(ctx, alice.ID)
	wantIDs(t, "BlockedIDs(alice), most recent first", got, err, carol, bob)
	got, err = s.BlockedIDs(ctx, bob.ID)
	wantIDs(t, "BlockedIDs(bob)", got, err)
	got, err = s.BlockedEither(ctx, bob.ID)
	wantIDs(t, "BlockedEither(bob)", got, err, alice)
	got, err = s.BlockedEither(ctx, alice.ID)
	wantIDs(t, "BlockedEither(alice)", got, err, sortedUsers(bob, carol)...)

	for _, c := range []struct {
		a, b store.User
		want bool
	}{{alice, bob, true}, {bob, alice, false}, {carol, alice, true}, {bob, carol, false}} {
		got, err := s.IsBlocked(ctx, c.a.ID, c.b.ID)
		if err != nil || got != c.want {
			t.Fatalf("IsBlocked(%s, %s) = %v, %v, want %v", c.a.Username, c.b.Username, got, err, c.want)
		}
	}

	if err := s.Unblock(ctx, alice.ID, bob.ID); err != nil {
		t.Fatalf("Unblock: %v", err)
	}
	if err := s.Unblock(ctx, alice.ID, bob.ID); err != nil {
		t.Fatalf("Unblock again: %v", err)
	}
	if ok, err := s.IsBlocked(ctx, alice.ID, bob.ID); err != nil || ok {
		t.Fatalf("IsBlocked after Unblock = %v, %v, want false", ok, err)
	}
	got, err = s.BlockedIDs(ctx, alice.ID)
	wantIDs(t, "BlockedIDs(alice) after Unblock", got, err, carol)
	got, err = s.BlockedEither(ctx, bob.ID)
	wantIDs(t, "BlockedEither(bob) after Unblock", got, err)
}

func testBlockInvalid(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	wantErr(t, "Block(self)", s.Block(ctx, alice.ID, alice.ID, at(1)), store.ErrInvalid)
	wantErr(t, "Block(\"\")", s.Block(ctx, alice.ID, "", at(1)), store.ErrInvalid)
}

// SetDisplayName changes the name, its key (UserByNameKey) and what search finds.
func testSetDisplayName(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	other := newUser(t, s, "bob", "Bob")
	if err := s.SetDisplayName(ctx, alice.ID, "Queen Bee", "queenbee-key"); err != nil {
		t.Fatalf("SetDisplayName: %v", err)
	}
	got, err := s.UserByID(ctx, alice.ID)
	if err != nil || got.DisplayName != "Queen Bee" || got.DisplayNameKey != "queenbee-key" || got.Username != "alice" {
		t.Fatalf("UserByID after SetDisplayName = %+v, %v", got, err)
	}
	if u, err := s.UserByNameKey(ctx, []string{"queenbee-key"}, other.ID); err != nil || u.ID != alice.ID {
		t.Fatalf("UserByNameKey(new key) = %+v, %v", u, err)
	}
	users, err := s.SearchUsers(ctx, "queen", other.ID, 10)
	if err != nil || len(users) != 1 || users[0].ID != alice.ID {
		t.Fatalf("SearchUsers(queen) = %+v, %v", users, err)
	}
	if users, err := s.SearchUsers(ctx, "Alic", other.ID, 10); err != nil || len(users) != 1 { // the username still matches
		t.Fatalf("SearchUsers(Alic) = %+v, %v", users, err)
	}
	wantErr(t, "SetDisplayName(unknown)", s.SetDisplayName(ctx, "nobody", "X", "x"), store.ErrNotFound)
}

// testAppendRefusesBlocked checks store.BlockCheckingAppender on a store
// that says it refuses blocked senders: every kind of append, sync and
// queued, a retry of a stored message too, is ErrBlocked and stores
// nothing while the block holds, and goes through once it is lifted.
func testAppendRefusesBlocked(t *testing.T, s store.Store) {
	if b, ok := s.(store.BlockCheckingAppender); !ok || !b.AppendRefusesBlocked() {
		t.Skip("the store's appends do not refuse blocked senders")
	}
	ctx := ctxFor(t)
	alice, bob := newUser(t, s, "alice", "Alice"), newUser(t, s, "bob", "Bob")
	first := send(t, s, bob, alice, "before", 1)
	if err := s.Block(ctx, alice.ID, bob.ID, at(2)); err != nil {
		t.Fatalf("Block: %v", err)
	}
	msg := func(kind string, target int64, clientMsgID string) store.Message {
		return store.Message{ID: store.NewID(), From: bob.ID, To: alice.ID, Text: "let me in", Kind: kind, Target: target,
			ClientMsgID: clientMsgID, CreatedAt: at(3)}
	}
	appends := []struct {
		what string
		m    store.Message
	}{
		{"a text", msg("", 0, store.NewID())},
		{"a retry of a stored text", msg("", 0, first.ClientMsgID)},
		{"an edit", msg(store.KindEdit, first.Seq, store.NewID())},
	}
	for _, a := range appends {
		if _, _, err := s.AppendMessage(ctx, a.m); !errors.Is(err, store.ErrBlocked) {
			t.Errorf("AppendMessage of %s from a blocked sender: %v, want store.ErrBlocked", a.what, err)
		}
		if as, ok := s.(store.AsyncAppender); ok {
			done := make(chan error, 1)
			as.AppendMessageAsync(ctx, a.m, func(_ store.Message, _ bool, err error) { done <- err })
			if err := <-done; !errors.Is(err, store.ErrBlocked) {
				t.Errorf("AppendMessageAsync of %s from a blocked sender: %v, want store.ErrBlocked", a.what, err)
			}
		}
	}
	// The other way round is not blocked.
	send(t, s, alice, bob, "you are blocked", 4)
	msgs, _, err := s.MessagesAfter(ctx, first.ConversationID, 0, 10)
	if err != nil {
		t.Fatalf("MessagesAfter: %v", err)
	}
	if len(msgs) != 2 || msgs[0].Text != "before" || msgs[1].Text != "you are blocked" || !msgs[0].EditedAt.IsZero() {
		t.Fatalf("the conversation holds %+v, want bob's first message untouched and alice's", msgs)
	}
	if err := s.Unblock(ctx, alice.ID, bob.ID); err != nil {
		t.Fatalf("Unblock: %v", err)
	}
	send(t, s, bob, alice, "thanks", 5)
}
