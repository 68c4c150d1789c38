package storetest

import (
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

var pushTests = []contractTest{
	{"Subscriptions", testPushSubscriptions},
	{"SubscriptionMovesToAnotherUser", testPushSubscriptionMoves},
	{"SubscriptionInvalid", testPushSubscriptionInvalid},
	{"Mutes", testMutes},
	{"DeletedWithAccount", testPushDeletedWithAccount},
}

func pushSub(user store.User, endpoint string, n int) store.PushSubscription {
	return store.PushSubscription{Endpoint: endpoint, UserID: user.ID, P256dh: "p256dh-" + endpoint, Auth: "auth-" + endpoint, SessionID: "session-" + endpoint, CreatedAt: at(n)}
}

func wantSubs(t *testing.T, s store.Store, user store.User, want ...store.PushSubscription) {
	t.Helper()
	got, err := s.PushSubscriptions(ctxFor(t), user.ID)
	if err != nil {
		t.Fatalf("PushSubscriptions(%s): %v", user.Username, err)
	}
	if got == nil {
		t.Fatalf("PushSubscriptions(%s) = nil, want an empty list", user.Username)
	}
	if len(got) != len(want) {
		t.Fatalf("PushSubscriptions(%s) = %+v, want %+v", user.Username, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("PushSubscriptions(%s)[%d] = %+v, want %+v", user.Username, i, got[i], want[i])
		}
	}
}

// Add, re-add (idempotent, keys replaced), list per user oldest first,
// delete by the owner only, remove by endpoint.
func testPushSubscriptions(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice, bob := newUser(t, s, "alice", "Alice"), newUser(t, s, "bob", "Bob")
	wantSubs(t, s, alice)
	a1, a2, b1 := pushSub(alice, "https://push.example/a1", 2), pushSub(alice, "https://push.example/a2", 1), pushSub(bob, "https://push.example/b1", 3)
	for _, sub := range []store.PushSubscription{a1, a2, b1, a1} {
		if err := s.AddPushSubscription(ctx, sub); err != nil {
			t.Fatalf("AddPushSubscription(%s): %v", sub.Endpoint, err)
		}
	}
	wantSubs(t, s, alice, a2, a1)
	wantSubs(t, s, bob, b1)

	// The browser subscribed again with new keys: one subscription, the new keys.
	a1.P256dh, a1.Auth, a1.SessionID, a1.CreatedAt = "p256dh-new", "auth-new", "session-new", at(4)
	if err := s.AddPushSubscription(ctx, a1); err != nil {
		t.Fatalf("AddPushSubscription again: %v", err)
	}
	wantSubs(t, s, alice, a2, a1)

	// Bob cannot delete Alice's subscription; deleting an unknown one is nil.
	if err := s.DeletePushSubscription(ctx, bob.ID, a1.Endpoint); err != nil {
		t.Fatalf("DeletePushSubscription of another user's: %v", err)
	}
	if err := s.DeletePushSubscription(ctx, bob.ID, "https://push.example/unknown"); err != nil {
		t.Fatalf("DeletePushSubscription of an unknown one: %v", err)
	}
	wantSubs(t, s, alice, a2, a1)
	if err := s.DeletePushSubscription(ctx, alice.ID, a2.Endpoint); err != nil {
		t.Fatalf("DeletePushSubscription: %v", err)
	}
	wantSubs(t, s, alice, a1)

	// The push service said gone: removed whoever's it is.
	if err := s.RemovePushSubscription(ctx, a1.Endpoint); err != nil {
		t.Fatalf("RemovePushSubscription: %v", err)
	}
	if err := s.RemovePushSubscription(ctx, a1.Endpoint); err != nil {
		t.Fatalf("RemovePushSubscription again: %v", err)
	}
	wantSubs(t, s, alice)
	wantSubs(t, s, bob, b1)
}

// Another account logging in on the same browser takes the endpoint over.
func testPushSubscriptionMoves(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice, bob := newUser(t, s, "alice", "Alice"), newUser(t, s, "bob", "Bob")
	sub := pushSub(alice, "https://push.example/shared", 1)
	if err := s.AddPushSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	sub.UserID, sub.CreatedAt = bob.ID, at(2)
	if err := s.AddPushSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	wantSubs(t, s, alice)
	wantSubs(t, s, bob, sub)
}

func testPushSubscriptionInvalid(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	good := pushSub(alice, "https://push.example/a", 1)
	for _, bad := range []func(*store.PushSubscription){
		func(p *store.PushSubscription) { p.Endpoint = "" },
		func(p *store.PushSubscription) { p.UserID = "" },
		func(p *store.PushSubscription) { p.P256dh = "" },
		func(p *store.PushSubscription) { p.Auth = "" },
	} {
		sub := good
		bad(&sub)
		wantErr(t, "AddPushSubscription with a field missing", s.AddPushSubscription(ctx, sub), store.ErrInvalid)
	}
	wantSubs(t, s, alice)
}

// A mute is per member, replaced by a later one, removed by a zero time.
func testMutes(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice, bob, carol := newUser(t, s, "alice", "Alice"), newUser(t, s, "bob", "Bob"), newUser(t, s, "carol", "Carol")
	wantMute := func(user, peer store.User, want time.Time) {
		t.Helper()
		got, err := s.MutedUntil(ctx, user.ID, peer.ID)
		if err != nil {
			t.Fatalf("MutedUntil: %v", err)
		}
		if !got.Equal(want) {
			t.Fatalf("MutedUntil(%s, %s) = %v, want %v", user.Username, peer.Username, got, want)
		}
	}
	wantMute(alice, bob, time.Time{})
	send(t, s, alice, bob, "hi", 1)
	until := at(3600).Add(123 * time.Millisecond)
	if err := s.SetMute(ctx, alice.ID, bob.ID, until); err != nil {
		t.Fatalf("SetMute: %v", err)
	}
	// No conversation with carol yet: a mute is kept all the same.
	if err := s.SetMute(ctx, alice.ID, carol.ID, at(10)); err != nil {
		t.Fatalf("SetMute without a conversation: %v", err)
	}
	wantMute(alice, bob, until)
	wantMute(bob, alice, time.Time{}) // per member
	mutes, err := s.Mutes(ctx, alice.ID)
	if err != nil {
		t.Fatalf("Mutes: %v", err)
	}
	if len(mutes) != 2 || !mutes[bob.ID].Equal(until) || !mutes[carol.ID].Equal(at(10)) {
		t.Fatalf("Mutes(alice) = %v", mutes)
	}
	if mutes, err := s.Mutes(ctx, bob.ID); err != nil || mutes == nil || len(mutes) != 0 {
		t.Fatalf("Mutes(bob) = %v, %v; want an empty map", mutes, err)
	}
	if err := s.SetMute(ctx, alice.ID, bob.ID, at(20)); err != nil {
		t.Fatalf("SetMute again: %v", err)
	}
	wantMute(alice, bob, at(20))
	if err := s.SetMute(ctx, alice.ID, bob.ID, time.Time{}); err != nil {
		t.Fatalf("unmute: %v", err)
	}
	if err := s.SetMute(ctx, alice.ID, bob.ID, time.Time{}); err != nil {
		t.Fatalf("unmute again: %v", err)
	}
	wantMute(alice, bob, time.Time{})
	wantErr(t, "SetMute of oneself", s.SetMute(ctx, alice.ID, alice.ID, at(5)), store.ErrInvalid)
	wantErr(t, "SetMute without a peer", s.SetMute(ctx, alice.ID, "", at(5)), store.ErrInvalid)
}

func testPushDeletedWithAccount(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice, bob := newUser(t, s, "alice", "Alice"), newUser(t, s, "bob", "Bob")
	a, b := pushSub(alice, "https://push.example/a", 1), pushSub(bob, "https://push.example/b", 2)
	for _, sub := range []store.PushSubscription{a, b} {
		if err := s.AddPushSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetMute(ctx, alice.ID, bob.ID, at(100)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, alice.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	wantSubs(t, s, alice)
	wantSubs(t, s, bob, b)
	if until, err := s.MutedUntil(ctx, alice.ID, bob.ID); err != nil || !until.IsZero() {
		t.Fatalf("MutedUntil after DeleteUser = %v, %v; want zero", until, err)
	}
}
