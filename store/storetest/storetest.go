// Package storetest is the contract suite every store.Store backend must
// pass. A backend's contract_test.go calls Run with a factory for fresh,
// empty stores:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "chatd.db"), sqlitestore.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite uses only the store.Store interface. Every subtest gets its own
// store from newStore, so the factory must return an empty store each time
// and register its own cleanup. The "Close" subtest calls Close itself, so the
// factory's cleanup must tolerate a second Close (its error may be ignored).
// The suite runs its subtests one after the other, and the goroutine-leak
// check assumes no other test of the package runs in parallel with it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// Run runs the contract suite, each subtest on a fresh store from newStore.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Users/CreateAndGet", testUserCreateAndGet},
		{"Users/DuplicateUsername", testUserDuplicate},
		{"Users/NotFound", testUserNotFound},
		{"Users/UsersByIDs", testUsersByIDs},
		{"Users/Search", testSearchUsers},
		{"Users/SearchSpecialCharacters", testSearchSpecialCharacters},
		{"Users/SearchLimit", testSearchLimit},
		{"Sessions/CreateAndGet", testSessionCreateAndGet},
		{"Sessions/RotateRefresh", testRotateRefresh},
		{"Sessions/RotateRefreshRevoked", testRotateRefreshRevoked},
		{"Sessions/RotateRefreshConcurrent", testRotateRefreshConcurrent},
		{"Sessions/Revoke", testRevokeSession},
		{"Messages/Append", testAppend},
		{"Messages/Idempotent", testAppendIdempotent},
		{"Messages/SameClientIDOtherSender", testAppendClientIDOtherSender},
		{"Messages/ConcurrentAppend", testAppendConcurrent},
		{"Messages/ConcurrentDuplicates", testAppendConcurrentDuplicates},
		{"Messages/TextExact", testTextExact},
		{"Messages/CreatedAtPrecision", testCreatedAtPrecision},
		{"Messages/PagingBefore", testPagingBefore},
		{"Messages/PagingAfter", testPagingAfter},
		{"Messages/EmptyConversation", testEmptyConversation},
		{"Conversations/Order", testConversationsOrder},
		{"Conversations/View", testConversationView},
		{"Conversations/Unread", testUnread},
		{"Conversations/MarkRead", testMarkRead},
		{"Conversations/MarkDelivered", testMarkDelivered},
		{"Conversations/NotFound", testConversationNotFound},
		{"Conversations/PeerIDs", testPeerIDs},
		{"Context/Canceled", testContextCanceled},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
	t.Run("Close", func(t *testing.T) { testClose(t, newStore) })
}

// ---- fixtures ----

// base is the time the fixtures start from; tests step it forward so that
// orderings by time are deterministic.
var base = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// at returns base plus n seconds.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newUser(t *testing.T, s store.Store, username, displayName string) store.User {
	t.Helper()
	u := store.User{
		ID:           store.NewID(),
		Username:     username,
		DisplayName:  displayName,
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$" + username,
		CreatedAt:    at(0),
	}
	if err := s.CreateUser(ctxFor(t), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", username, err)
	}
	return u
}

// send appends a message from → to at time n with a fresh client_msg_id.
func send(t *testing.T, s store.Store, from, to store.User, text string, n int) store.Message {
	t.Helper()
	m, created, err := s.AppendMessage(ctxFor(t), store.Message{
		ID:          store.NewID(),
		From:        from.ID,
		To:          to.ID,
		Text:        text,
		ClientMsgID: store.NewID(),
		CreatedAt:   at(n),
	})
	if err != nil {
		t.Fatalf("AppendMessage(%s→%s, %q): %v", from.Username, to.Username, text, err)
	}
	if !created {
		t.Fatalf("AppendMessage(%s→%s, %q): created=false for a fresh client_msg_id", from.Username, to.Username, text)
	}
	return m
}

func mustConversation(t *testing.T, s store.Store, user, peer store.User) store.ConversationView {
	t.Helper()
	v, err := s.Conversation(ctxFor(t), user.ID, peer.ID)
	if err != nil {
		t.Fatalf("Conversation(%s, %s): %v", user.Username, peer.Username, err)
	}
	return v
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

func checkUser(t *testing.T, got, want store.User) {
	t.Helper()
	if got.ID != want.ID || got.Username != want.Username || got.DisplayName != want.DisplayName ||
		got.PasswordHash != want.PasswordHash || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("user = %+v, want %+v", got, want)
	}
}

func checkMessage(t *testing.T, what string, got, want store.Message) {
	t.Helper()
	if got.ID != want.ID || got.ConversationID != want.ConversationID || got.Seq != want.Seq ||
		got.From != want.From || got.To != want.To || got.Text != want.Text ||
		got.ClientMsgID != want.ClientMsgID || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("%s: message = %+v, want %+v", what, got, want)
	}
}

func usernames(users []store.User) []string {
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Username
	}
	return names
}

func seqs(msgs []store.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// ---- users ----

func testUserCreateAndGet(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := store.User{
		ID:           store.NewID(),
		Username:     "alice",
		DisplayName:  "Alice Liddell",
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA",
		CreatedAt:    time.Date(2026, 11, 27, 10, 0, 0, 123_000_000, time.UTC),
	}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	checkUser(t, got, u)
	got, err = s.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	checkUser(t, got, u)
}

func testUserDuplicate(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	first := newUser(t, s, "alice", "First")
	err := s.CreateUser(ctx, store.User{
		ID: store.NewID(), Username: "alice", DisplayName: "Second", PasswordHash: "x", CreatedAt: at(1),
	})
	wantErr(t, "CreateUser with a taken username", err, store.ErrConflict)
	got, err := s.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	checkUser(t, got, first)
	// Another username is still fine after the conflict.
	newUser(t, s, "alice2", "Third")
}

func testUserNotFound(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	newUser(t, s, "alice", "Alice")
	_, err := s.UserByID(ctx, store.NewID())
	wantErr(t, "UserByID(unknown)", err, store.ErrNotFound)
	_, err = s.UserByUsername(ctx, "bob")
	wantErr(t, "UserByUsername(unknown)", err, store.ErrNotFound)
}

func testUsersByIDs(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	newUser(t, s, "carol", "Carol")

	got, err := s.UsersByIDs(ctx, []string{b.ID, store.NewID(), a.ID, "no-such-id"})
	if err != nil {
		t.Fatalf("UsersByIDs: %v", err)
	}
	slices.SortFunc(got, func(x, y store.User) int { return strings.Compare(x.Username, y.Username) })
	if len(got) != 2 {
		t.Fatalf("UsersByIDs = %v, want alice and bob", usernames(got))
	}
	checkUser(t, got[0], a)
	checkUser(t, got[1], b)

	got, err = s.UsersByIDs(ctx, []string{store.NewID()})
	if err != nil || len(got) != 0 {
		t.Fatalf("UsersByIDs(unknown) = %v, %v; want none, nil", usernames(got), err)
	}
	got, err = s.UsersByIDs(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("UsersByIDs(nil) = %v, %v; want none, nil", usernames(got), err)
	}
}

func testSearchUsers(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	me := newUser(t, s, "alex", "Me Myself") // the caller, matches "al"
	newUser(t, s, "alice", "Alice Liddell")
	newUser(t, s, "albert", "Bert")
	newUser(t, s, "zed", "ALfred Zed") // display name matches "al"
	newUser(t, s, "bob", "Bob Alder")  // "al" only inside the display name: no match
	newUser(t, s, "carol", "Carol")
	newUser(t, s, "malory", "Mal") // "al" inside the username: no match

	cases := []struct {
		prefix string
		want   []string
	}{
		{"al", []string{"albert", "alice", "zed"}},
		{"AL", []string{"albert", "alice", "zed"}},
		{"Ali", []string{"alice"}},
		{"alice", []string{"alice"}},
		{"alice liddell", []string{"alice"}},
		{"alicex", nil},
		{"bert", []string{"albert"}},
		{"m", []string{"malory"}}, // "Me Myself" is the caller
		{"lid", nil},              // not a prefix
		{"x", nil},
		{"", []string{"albert", "alice", "bob", "carol", "malory", "zed"}},
	}
	for _, c := range cases {
		got, err := s.SearchUsers(ctx, c.prefix, me.ID, 50)
		if err != nil {
			t.Fatalf("SearchUsers(%q): %v", c.prefix, err)
		}
		if names := usernames(got); !slices.Equal(names, c.want) {
			t.Errorf("SearchUsers(%q) = %v, want %v", c.prefix, names, c.want)
		}
	}
	// The result carries whole users.
	got, err := s.SearchUsers(ctx, "alice", me.ID, 50)
	if err != nil || len(got) != 1 {
		t.Fatalf("SearchUsers(alice) = %v, %v", usernames(got), err)
	}
	if got[0].ID == "" || got[0].DisplayName != "Alice Liddell" {
		t.Errorf("SearchUsers(alice) = %+v, want id and display name set", got[0])
	}
	// Without an exclusion the caller is found too.
	got, err = s.SearchUsers(ctx, "ale", "", 50)
	if err != nil {
		t.Fatalf("SearchUsers(ale): %v", err)
	}
	if names := usernames(got); !slices.Equal(names, []string{"alex"}) {
		t.Errorf("SearchUsers(ale, no exclusion) = %v, want [alex]", names)
	}
}

// Username characters that are special to LIKE, GLOB or regular expressions
// must match literally.
func testSearchSpecialCharacters(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for _, name := range []string{"a.b", "axb", "a_b", "acb", "a-b", "a%b", "a*b", "a[b"} {
		newUser(t, s, name, "User "+name)
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"a.", []string{"a.b"}},
		{"a_", []string{"a_b"}},
		{"a-", []string{"a-b"}},
		{"a%", []string{"a%b"}},
		{"a*", []string{"a*b"}},
		{"a[", []string{"a[b"}},
		{".", nil},
		{"user a.", []string{"a.b"}},
	}
	for _, c := range cases {
		got, err := s.SearchUsers(ctx, c.prefix, "", 50)
		if err != nil {
			t.Fatalf("SearchUsers(%q): %v", c.prefix, err)
		}
		if names := usernames(got); !slices.Equal(names, c.want) {
			t.Errorf("SearchUsers(%q) = %v, want %v", c.prefix, names, c.want)
		}
	}
}

func testSearchLimit(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for i := 9; i >= 0; i-- { // created out of order on purpose
		newUser(t, s, fmt.Sprintf("user%02d", i), fmt.Sprintf("User %d", i))
	}
	got, err := s.SearchUsers(ctx, "user", "", 3)
	if err != nil {
		t.Fatalf("SearchUsers: %v", err)
	}
	if names := usernames(got); !slices.Equal(names, []string{"user00", "user01", "user02"}) {
		t.Errorf("SearchUsers(limit 3) = %v, want the first three by username", names)
	}
	got, err = s.SearchUsers(ctx, "", "", 4)
	if err != nil {
		t.Fatalf("SearchUsers: %v", err)
	}
	if names := usernames(got); !slices.Equal(names, []string{"user00", "user01", "user02", "user03"}) {
		t.Errorf("SearchUsers(\"\", limit 4) = %v", names)
	}
}

// ---- sessions ----

func newSession(t *testing.T, s store.Store, u store.User, hash string) store.Session {
	t.Helper()
	sess := store.Session{
		ID:          store.NewID(),
		UserID:      u.ID,
		RefreshHash: hash,
		CreatedAt:   at(10).Add(456 * time.Millisecond),
		ExpiresAt:   at(3600).Add(789 * time.Millisecond),
	}
	if err := s.CreateSession(ctxFor(t), sess); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return sess
}

func getSession(t *testing.T, s store.Store, id string) store.Session {
	t.Helper()
	got, err := s.SessionByID(ctxFor(t), id)
	if err != nil {
		t.Fatalf("SessionByID: %v", err)
	}
	return got
}

func testSessionCreateAndGet(t *testing.T, s store.Store) {
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-1")
	got := getSession(t, s, sess.ID)
	if got.ID != sess.ID || got.UserID != u.ID || got.RefreshHash != "hash-1" || got.PrevRefreshHash != "" ||
		!got.CreatedAt.Equal(sess.CreatedAt) || !got.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("SessionByID = %+v, want %+v", got, sess)
	}
	if got.Revoked() || !got.RevokedAt.IsZero() {
		t.Fatalf("new session revoked: %+v", got)
	}
	_, err := s.SessionByID(ctxFor(t), store.NewID())
	wantErr(t, "SessionByID(unknown)", err, store.ErrNotFound)
}

func testRotateRefresh(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-1")
	exp2 := at(7200).Add(321 * time.Millisecond)
	if err := s.RotateRefresh(ctx, sess.ID, "hash-1", "hash-2", exp2); err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	got := getSession(t, s, sess.ID)
	if got.RefreshHash != "hash-2" || got.PrevRefreshHash != "hash-1" || !got.ExpiresAt.Equal(exp2) {
		t.Fatalf("after rotation: %+v; want hash-2, prev hash-1, expires %v", got, exp2)
	}
	if !got.CreatedAt.Equal(sess.CreatedAt) || got.UserID != u.ID || got.Revoked() {
		t.Fatalf("rotation changed other fields: %+v", got)
	}

	// The replaced hash is no longer current.
	err := s.RotateRefresh(ctx, sess.ID, "hash-1", "hash-x", at(9000))
	wantErr(t, "RotateRefresh with the previous hash", err, store.ErrConflict)
	err = s.RotateRefresh(ctx, sess.ID, "never-issued", "hash-x", at(9000))
	wantErr(t, "RotateRefresh with a wrong hash", err, store.ErrConflict)
	got = getSession(t, s, sess.ID)
	if got.RefreshHash != "hash-2" || got.PrevRefreshHash != "hash-1" || !got.ExpiresAt.Equal(exp2) {
		t.Fatalf("a failed rotation changed the session: %+v", got)
	}

	// The chain goes on.
	exp3 := at(10800)
	if err := s.RotateRefresh(ctx, sess.ID, "hash-2", "hash-3", exp3); err != nil {
		t.Fatalf("second RotateRefresh: %v", err)
	}
	got = getSession(t, s, sess.ID)
	if got.RefreshHash != "hash-3" || got.PrevRefreshHash != "hash-2" || !got.ExpiresAt.Equal(exp3) {
		t.Fatalf("after the second rotation: %+v", got)
	}

	err = s.RotateRefresh(ctx, store.NewID(), "hash-1", "hash-2", exp2)
	wantErr(t, "RotateRefresh(unknown session)", err, store.ErrNotFound)
}

func testRotateRefreshRevoked(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-1")
	if err := s.RevokeSession(ctx, sess.ID, at(100)); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	err := s.RotateRefresh(ctx, sess.ID, "hash-1", "hash-2", at(7200))
	wantErr(t, "RotateRefresh on a revoked session", err, store.ErrConflict)
	got := getSession(t, s, sess.ID)
	if got.RefreshHash != "hash-1" || !got.Revoked() {
		t.Fatalf("after a refused rotation: %+v", got)
	}
}

// Of concurrent rotations from the same hash exactly one wins.
func testRotateRefreshConcurrent(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-0")
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.RotateRefresh(ctx, sess.ID, "hash-0", fmt.Sprintf("hash-new-%d", i), at(7200))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("rotations %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("rotation %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation succeeded")
	}
	got := getSession(t, s, sess.ID)
	if want := fmt.Sprintf("hash-new-%d", winner); got.RefreshHash != want || got.PrevRefreshHash != "hash-0" {
		t.Fatalf("session = %+v, want refresh %s and prev hash-0", got, want)
	}
}

func testRevokeSession(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-1")
	other := newSession(t, s, u, "hash-other")
	first := at(100).Add(250 * time.Millisecond)
	if err := s.RevokeSession(ctx, sess.ID, first); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	got := getSession(t, s, sess.ID)
	if !got.Revoked() || !got.RevokedAt.Equal(first) {
		t.Fatalf("after revocation: %+v, want revoked at %v", got, first)
	}
	if err := s.RevokeSession(ctx, sess.ID, at(200)); err != nil {
		t.Fatalf("second RevokeSession: %v, want nil", err)
	}
	got = getSession(t, s, sess.ID)
	if !got.RevokedAt.Equal(first) {
		t.Fatalf("second revocation changed the time: %v, want %v", got.RevokedAt, first)
	}
	if getSession(t, s, other.ID).Revoked() {
		t.Fatal("revoking one session revoked another")
	}
	err := s.RevokeSession(ctx, store.NewID(), at(100))
	wantErr(t, "RevokeSession(unknown)", err, store.ErrNotFound)
}

// ---- messages ----

func testAppend(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	c := newUser(t, s, "carol", "Carol")

	in := store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "hello bob", ClientMsgID: "c-1",
		CreatedAt: at(1).Add(5 * time.Millisecond),
	}
	m1, created, err := s.AppendMessage(ctx, in)
	if err != nil || !created {
		t.Fatalf("AppendMessage = created %v, %v; want true, nil", created, err)
	}
	want := in
	want.ConversationID = store.ConversationID(a.ID, b.ID)
	want.Seq = m1.Seq
	checkMessage(t, "AppendMessage result", m1, want)
	if m1.Seq <= 0 {
		t.Fatalf("seq = %d, want > 0", m1.Seq)
	}
	if m1.ConversationID != store.ConversationID(b.ID, a.ID) {
		t.Fatalf("conversation id depends on the order of the members")
	}

	m2 := send(t, s, b, a, "hi alice", 2)
	m3 := send(t, s, a, b, "how are you?", 3)
	if m2.ConversationID != m1.ConversationID || m3.ConversationID != m1.ConversationID {
		t.Fatalf("conversation ids differ: %s %s %s", m1.ConversationID, m2.ConversationID, m3.ConversationID)
	}
	if m1.Seq >= m2.Seq || m2.Seq >= m3.Seq {
		t.Fatalf("seqs %d %d %d are not increasing", m1.Seq, m2.Seq, m3.Seq)
	}

	// Another conversation has its own sequence and id.
	other := send(t, s, a, c, "hello carol", 4)
	if other.ConversationID != store.ConversationID(a.ID, c.ID) || other.ConversationID == m1.ConversationID {
		t.Fatalf("conversation id %q, want %q", other.ConversationID, store.ConversationID(a.ID, c.ID))
	}
	if other.Seq <= 0 {
		t.Fatalf("seq = %d, want > 0", other.Seq)
	}

	msgs, more, err := s.MessagesAfter(ctx, m1.ConversationID, 0, 10)
	if err != nil || more {
		t.Fatalf("MessagesAfter = more %v, %v", more, err)
	}
	if len(msgs) != 3 {
		t.Fatalf("MessagesAfter = %d messages, want 3", len(msgs))
	}
	for i, want := range []store.Message{m1, m2, m3} {
		checkMessage(t, fmt.Sprintf("message %d", i), msgs[i], want)
	}
}

func testAppendIdempotent(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	first, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "once", ClientMsgID: "retry-me", CreatedAt: at(1),
	})
	if err != nil || !created {
		t.Fatalf("AppendMessage = %v, %v", created, err)
	}
	again, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "twice?", ClientMsgID: "retry-me", CreatedAt: at(2),
	})
	if err != nil {
		t.Fatalf("AppendMessage (retry): %v", err)
	}
	if created {
		t.Fatal("AppendMessage (retry): created=true, want false")
	}
	checkMessage(t, "retry", again, first)

	msgs, _, err := s.MessagesAfter(ctx, first.ConversationID, 0, 10)
	if err != nil {
		t.Fatalf("MessagesAfter: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("after a retry there are %d messages, want 1", len(msgs))
	}
	checkMessage(t, "stored", msgs[0], first)
	v := mustConversation(t, s, a, b)
	if v.LastSeq != first.Seq || !v.UpdatedAt.Equal(first.CreatedAt) {
		t.Fatalf("a retry changed the conversation: last seq %d updated %v", v.LastSeq, v.UpdatedAt)
	}

	// A new client_msg_id after the retry is a new message.
	next := send(t, s, a, b, "next", 3)
	if next.Seq <= first.Seq {
		t.Fatalf("next seq %d <= %d", next.Seq, first.Seq)
	}
}

func testAppendClientIDOtherSender(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	c := newUser(t, s, "carol", "Carol")
	ma, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "from alice", ClientMsgID: "same", CreatedAt: at(1),
	})
	if err != nil || !created {
		t.Fatalf("AppendMessage(alice) = %v, %v", created, err)
	}
	mb, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: b.ID, To: a.ID, Text: "from bob", ClientMsgID: "same", CreatedAt: at(2),
	})
	if err != nil || !created {
		t.Fatalf("AppendMessage(bob, same client_msg_id) = created %v, %v; want a new message", created, err)
	}
	if mb.ID == ma.ID || mb.Seq == ma.Seq || mb.Text != "from bob" {
		t.Fatalf("bob's message %+v collides with alice's %+v", mb, ma)
	}
	// The same sender and client_msg_id to another peer is still a retry.
	mc, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: c.ID, To: a.ID, Text: "from carol", ClientMsgID: "same", CreatedAt: at(3),
	})
	if err != nil || !created || mc.From != c.ID {
		t.Fatalf("AppendMessage(carol, same client_msg_id) = %+v, %v, %v", mc, created, err)
	}
	msgs, _, err := s.MessagesAfter(ctx, ma.ConversationID, 0, 10)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("MessagesAfter = %d messages, %v; want 2", len(msgs), err)
	}
}

// 200 concurrent appends into one conversation, from both members: distinct
// seqs, increasing in each sender's order of completion, all readable.
func testAppendConcurrent(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	const workers, perWorker = 20, 10 // 200 messages
	results := make([][]store.Message, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		from, to := a, b
		if w%2 == 1 {
			from, to = b, a
		}
		wg.Go(func() {
			for i := range perWorker {
				m, created, err := s.AppendMessage(ctx, store.Message{
					ID: store.NewID(), From: from.ID, To: to.ID,
					Text:        fmt.Sprintf("worker %d message %d", w, i),
					ClientMsgID: fmt.Sprintf("w%d-m%d", w, i),
					CreatedAt:   at(w*perWorker + i),
				})
				if err == nil && !created {
					err = errors.New("created=false for a fresh client_msg_id")
				}
				if err != nil {
					errs[w] = err
					return
				}
				results[w] = append(results[w], m)
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}
	byID := map[string]store.Message{}
	seen := map[int64]string{}
	for w, ms := range results {
		for i, m := range ms {
			if other, dup := seen[m.Seq]; dup {
				t.Fatalf("seq %d given to %s and %s", m.Seq, other, m.ID)
			}
			seen[m.Seq] = m.ID
			byID[m.ID] = m
			// Each worker appends one after the other: its commits are
			// ordered, so its seqs must be.
			if i > 0 && m.Seq <= ms[i-1].Seq {
				t.Fatalf("worker %d: seq %d after %d", w, m.Seq, ms[i-1].Seq)
			}
		}
	}
	convID := store.ConversationID(a.ID, b.ID)
	msgs, more, err := s.MessagesAfter(ctx, convID, 0, 500)
	if err != nil || more {
		t.Fatalf("MessagesAfter = more %v, %v", more, err)
	}
	if len(msgs) != workers*perWorker {
		t.Fatalf("read %d messages, want %d", len(msgs), workers*perWorker)
	}
	for i, m := range msgs {
		if i > 0 && m.Seq <= msgs[i-1].Seq {
			t.Fatalf("read seqs not ascending: %d after %d", m.Seq, msgs[i-1].Seq)
		}
		checkMessage(t, "read back", m, byID[m.ID])
	}
	v := mustConversation(t, s, a, b)
	if v.LastSeq != msgs[len(msgs)-1].Seq {
		t.Fatalf("LastSeq = %d, want %d", v.LastSeq, msgs[len(msgs)-1].Seq)
	}
}

// Concurrent retries of one client_msg_id create exactly one message.
func testAppendConcurrentDuplicates(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	const n = 24
	type result struct {
		m       store.Message
		created bool
		err     error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m, created, err := s.AppendMessage(ctx, store.Message{
				ID: store.NewID(), From: a.ID, To: b.ID, Text: "only once", ClientMsgID: "dup", CreatedAt: at(1),
			})
			results[i] = result{m, created, err}
		})
	}
	wg.Wait()
	var winner *store.Message
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("append %d: %v", i, r.err)
		}
		if r.created {
			if winner != nil {
				t.Fatalf("two appends of one client_msg_id created messages: %s and %s", winner.ID, r.m.ID)
			}
			winner = &results[i].m
		}
	}
	if winner == nil {
		t.Fatal("no append created the message")
	}
	for _, r := range results {
		checkMessage(t, "duplicate", r.m, *winner)
	}
	msgs, _, err := s.MessagesAfter(ctx, winner.ConversationID, 0, 100)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("MessagesAfter = %d messages, %v; want 1", len(msgs), err)
	}
}

func testTextExact(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	texts := []string{
		"  leading and trailing spaces  ",
		"line one\nline two\r\nline three\n",
		"\ttab\t",
		"héllo wörld — «quotes» 你好 😀👍🏽 \u200b zero width",
		`quotes ' " \ backslash; DROP TABLE messages; -- $where {"$gt": ""}`,
		strings.Repeat("é", 2048), // 4096 bytes
	}
	var sent []store.Message
	for i, text := range texts {
		m := send(t, s, a, b, text, i)
		if m.Text != text {
			t.Fatalf("AppendMessage returned text %q, want %q", m.Text, text)
		}
		sent = append(sent, m)
	}
	msgs, _, err := s.MessagesAfter(ctx, sent[0].ConversationID, 0, 100)
	if err != nil || len(msgs) != len(texts) {
		t.Fatalf("MessagesAfter = %d messages, %v", len(msgs), err)
	}
	for i, m := range msgs {
		if m.Text != texts[i] {
			t.Errorf("text %d = %q, want %q", i, m.Text, texts[i])
		}
	}
	v := mustConversation(t, s, b, a)
	if v.LastMessage == nil || v.LastMessage.Text != texts[len(texts)-1] {
		t.Errorf("LastMessage text differs")
	}
}

func testCreatedAtPrecision(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	in := time.Date(2026, 11, 27, 15, 30, 1, 123_456_789, zone)
	want := in.Truncate(time.Millisecond).UTC()
	m, _, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "t", ClientMsgID: "t", CreatedAt: in,
	})
	if err != nil {
		t.Fatalf("AppendMessage: %v", err)
	}
	check := func(what string, got time.Time) {
		t.Helper()
		if !got.Equal(want) {
			t.Errorf("%s: CreatedAt %v, want %v (milliseconds)", what, got, want)
		}
		if got.Location() != time.UTC {
			t.Errorf("%s: CreatedAt in %v, want UTC", what, got.Location())
		}
	}
	check("AppendMessage", m.CreatedAt)
	msgs, _, err := s.MessagesAfter(ctx, m.ConversationID, 0, 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("MessagesAfter = %d, %v", len(msgs), err)
	}
	check("MessagesAfter", msgs[0].CreatedAt)
	msgs, _, err = s.MessagesBefore(ctx, m.ConversationID, 0, 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("MessagesBefore = %d, %v", len(msgs), err)
	}
	check("MessagesBefore", msgs[0].CreatedAt)
	v := mustConversation(t, s, a, b)
	check("Conversation.UpdatedAt", v.UpdatedAt)
	if v.LastMessage == nil {
		t.Fatal("LastMessage is nil")
	}
	check("Conversation.LastMessage", v.LastMessage.CreatedAt)
	// A retry returns the stored time.
	again, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "t", ClientMsgID: "t", CreatedAt: in.Add(time.Hour),
	})
	if err != nil || created {
		t.Fatalf("retry = %v, %v", created, err)
	}
	check("retry", again.CreatedAt)
}

// pagingFixture stores 7 messages between a and b (and one elsewhere) and
// returns them in order.
func pagingFixture(t *testing.T, s store.Store) []store.Message {
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	c := newUser(t, s, "carol", "Carol")
	var msgs []store.Message
	for i := range 7 {
		from, to := a, b
		if i%3 == 1 {
			from, to = b, a
		}
		msgs = append(msgs, send(t, s, from, to, fmt.Sprintf("m%d", i), i))
		if i == 3 {
			send(t, s, a, c, "elsewhere", 100)
		}
	}
	return msgs
}

func checkPage(t *testing.T, what string, got []store.Message, more bool, err error, want []store.Message, wantMore bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !slices.Equal(seqs(got), seqs(want)) || more != wantMore {
		t.Fatalf("%s = seqs %v more %v, want %v more %v", what, seqs(got), more, seqs(want), wantMore)
	}
	for i := range got {
		checkMessage(t, what, got[i], want[i])
	}
}

func testPagingBefore(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	m := pagingFixture(t, s)
	conv := m[0].ConversationID

	got, more, err := s.MessagesBefore(ctx, conv, 0, 3)
	checkPage(t, "newest page", got, more, err, m[4:7], true)
	got, more, err = s.MessagesBefore(ctx, conv, m[4].Seq, 3)
	checkPage(t, "second page", got, more, err, m[1:4], true)
	got, more, err = s.MessagesBefore(ctx, conv, m[1].Seq, 3)
	checkPage(t, "last page", got, more, err, m[0:1], false)
	got, more, err = s.MessagesBefore(ctx, conv, m[0].Seq, 3)
	checkPage(t, "before the first", got, more, err, nil, false)

	// A page that ends exactly at the first message has no more.
	got, more, err = s.MessagesBefore(ctx, conv, m[3].Seq, 3)
	checkPage(t, "exact page", got, more, err, m[0:3], false)
	got, more, err = s.MessagesBefore(ctx, conv, 0, 7)
	checkPage(t, "everything", got, more, err, m, false)
	got, more, err = s.MessagesBefore(ctx, conv, 0, 100)
	checkPage(t, "large limit", got, more, err, m, false)
	got, more, err = s.MessagesBefore(ctx, conv, m[6].Seq+1000, 2)
	checkPage(t, "before beyond the last", got, more, err, m[5:7], true)
	got, more, err = s.MessagesBefore(ctx, conv, 0, 1)
	checkPage(t, "limit 1", got, more, err, m[6:7], true)
}

func testPagingAfter(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	m := pagingFixture(t, s)
	conv := m[0].ConversationID

	got, more, err := s.MessagesAfter(ctx, conv, 0, 3)
	checkPage(t, "first page", got, more, err, m[0:3], true)
	got, more, err = s.MessagesAfter(ctx, conv, m[2].Seq, 3)
	checkPage(t, "second page", got, more, err, m[3:6], true)
	got, more, err = s.MessagesAfter(ctx, conv, m[5].Seq, 3)
	checkPage(t, "last page", got, more, err, m[6:7], false)
	got, more, err = s.MessagesAfter(ctx, conv, m[6].Seq, 3)
	checkPage(t, "after the last", got, more, err, nil, false)

	got, more, err = s.MessagesAfter(ctx, conv, m[3].Seq, 3)
	checkPage(t, "exact page", got, more, err, m[4:7], false)
	got, more, err = s.MessagesAfter(ctx, conv, 0, 7)
	checkPage(t, "everything", got, more, err, m, false)
	got, more, err = s.MessagesAfter(ctx, conv, m[6].Seq+1000, 3)
	checkPage(t, "after beyond the last", got, more, err, nil, false)
	got, more, err = s.MessagesAfter(ctx, conv, m[4].Seq, 1)
	checkPage(t, "limit 1", got, more, err, m[5:6], true)
}

func testEmptyConversation(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	conv := store.ConversationID(a.ID, b.ID)
	got, more, err := s.MessagesBefore(ctx, conv, 0, 50)
	if err != nil || more || len(got) != 0 {
		t.Fatalf("MessagesBefore(empty) = %d, %v, %v; want none, false, nil", len(got), more, err)
	}
	got, more, err = s.MessagesAfter(ctx, conv, 0, 50)
	if err != nil || more || len(got) != 0 {
		t.Fatalf("MessagesAfter(empty) = %d, %v, %v; want none, false, nil", len(got), more, err)
	}
}

// ---- conversations ----

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

// ---- context, ping, close ----

func testContextCanceled(t *testing.T, s store.Store) {
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "x", ClientMsgID: "x", CreatedAt: at(1),
	})
	wantErr(t, "AppendMessage with a canceled context", err, context.Canceled)
	_, err = s.UserByID(ctx, a.ID)
	wantErr(t, "UserByID with a canceled context", err, context.Canceled)
	_, _, err = s.MessagesAfter(ctx, store.ConversationID(a.ID, b.ID), 0, 10)
	wantErr(t, "MessagesAfter with a canceled context", err, context.Canceled)
	// The store still works with a live context.
	send(t, s, a, b, "after", 2)
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(ctxFor(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// testClose checks that Close waits for writes and leaves no goroutine behind.
func testClose(t *testing.T, newStore func(t *testing.T) store.Store) {
	before := runtime.NumGoroutine()
	s := newStore(t)
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, _, _ = s.AppendMessage(ctx, store.Message{
				ID: store.NewID(), From: a.ID, To: b.ID, Text: "x", ClientMsgID: fmt.Sprint(i), CreatedAt: at(i),
			})
		})
	}
	wg.Wait()
	if _, err := s.Conversations(ctx, a.ID); err != nil {
		t.Fatalf("Conversations: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, _, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "late", ClientMsgID: "late", CreatedAt: at(100),
	}); err == nil {
		t.Error("AppendMessage after Close succeeded")
	}
	// Goroutines of the store (and of its driver) end soon after Close.
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
