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
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// Run runs the contract suite, each subtest on a fresh store from newStore:
// one group of subtests per aggregate (Users, Sessions, Messages,
// Conversations, each in its own file), the lifecycle (context, Ping,
// Close), and, when the store is a store.AsyncAppender, AsyncAppender.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	for _, g := range []struct {
		name  string
		tests []contractTest
	}{
		{"Users", usersTests},
		{"Sessions", sessionsTests},
		{"Messages", messagesTests},
		{"Conversations", conversationsTests},
		{"Privacy", privacyTests},
		{"Events", eventsTests},
		{"Attachments", attachmentsTests},
		{"Push", pushTests},
		{"Context", contextTests},
	} {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
			}
		})
	}
	t.Run("Ping", func(t *testing.T) { testPing(t, newStore(t)) })
	runAsync(t, newStore)
	t.Run("Close", func(t *testing.T) { testClose(t, newStore) })
}

// contractTest is one subtest of an aggregate's group.
type contractTest struct {
	name string
	fn   func(t *testing.T, s store.Store)
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
		got.PasswordHash != want.PasswordHash || !got.CreatedAt.Equal(want.CreatedAt) ||
		got.UsernameKey != want.UsernameKey || got.DisplayNameKey != want.DisplayNameKey {
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
