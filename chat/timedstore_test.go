package chat

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/sqlitestore"
	"github.com/prometheus/client_golang/prometheus"
)

// Every store operation the service makes is observed once under its own
// op label, whether the store appends asynchronously or is adapted.
func TestTimedStoreObservesEachOp(t *testing.T) {
	for _, async := range []bool{true, false} {
		st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "timed.db"), sqlitestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		reg := prometheus.NewRegistry()
		m, err := newMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		var inner Store = st
		if !async {
			inner = syncOnlyStore{st}
		}
		ts := newTimedStore(inner, m.storeLat)
		if _, adapted := ts.async.(syncAppender); adapted == async {
			t.Fatalf("async=%v: adapted=%v", async, adapted)
		}

		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		a := store.User{ID: store.NewID(), Username: "alice", DisplayName: "Alice", PasswordHash: "x", CreatedAt: now}
		b := store.User{ID: store.NewID(), Username: "bob", DisplayName: "Bob", PasswordHash: "x", CreatedAt: now}
		sess := store.Session{ID: store.NewID(), UserID: a.ID, RefreshHash: "h1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		conv := store.ConversationID(a.ID, b.ID)
		must := func(op string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", op, err)
			}
		}
		must("create_user", ts.CreateUser(ctx, a))
		must("create_user", ts.CreateUser(ctx, b))
		_, err = ts.UserByID(ctx, a.ID)
		must("user_by_id", err)
		_, err = ts.UserByUsername(ctx, "bob")
		must("user_by_username", err)
		_, err = ts.UsersByIDs(ctx, []string{a.ID, b.ID})
		must("users_by_ids", err)
		_, err = ts.SearchUsers(ctx, "b", a.ID, 5)
		must("search_users", err)
		if _, err = ts.UserByNameKey(ctx, []string{"nobody"}, ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("user_by_name_key: %v, want ErrNotFound", err)
		}
		must("create_session", ts.CreateSession(ctx, sess))
		_, err = ts.SessionByID(ctx, sess.ID)
		must("session_by_id", err)
		must("rotate_refresh", ts.RotateRefresh(ctx, sess.ID, store.Rotation{OldHash: "h1", NewHash: "h2", Generation: 1, ExpiresAt: now.Add(2 * time.Hour), At: now}))
		must("revoke_session", ts.RevokeSession(ctx, sess.ID, now))
		_, _, err = ts.AppendMessage(ctx, store.Message{ID: store.NewID(), From: a.ID, To: b.ID, Text: "hi", ClientMsgID: "c1", CreatedAt: now})
		must("append_message", err)
		done := make(chan error, 1)
		ts.AppendMessageAsync(ctx, store.Message{ID: store.NewID(), From: b.ID, To: a.ID, Text: "hey", ClientMsgID: "c2", CreatedAt: now},
			func(_ store.Message, _ bool, err error) { done <- err })
		select {
		case err := <-done:
			must("append_message (async)", err)
		case <-time.After(waitTimeout):
			t.Fatal("AppendMessageAsync never called back")
		}
		_, _, err = ts.MessagesBefore(ctx, conv, 0, 10)
		must("messages_before", err)
		_, _, err = ts.MessagesAfter(ctx, conv, 0, 10)
		must("messages_after", err)
		_, err = ts.Conversations(ctx, a.ID)
		must("conversations", err)
		_, err = ts.Conversation(ctx, a.ID, b.ID)
		must("conversation", err)
		_, err = ts.PeerIDs(ctx, a.ID)
		must("peer_ids", err)
		_, _, err = ts.MarkDelivered(ctx, a.ID, b.ID, 2)
		must("mark_delivered", err)
		_, _, err = ts.MarkRead(ctx, a.ID, b.ID, 2)
		must("mark_read", err)
		_, err = ts.ContactIDs(ctx, a.ID)
		must("contact_ids", err)
		_, err = ts.IsBlocked(ctx, b.ID, a.ID)
		must("is_blocked", err)
		must("ping", ts.Ping(ctx))

		want := map[string]uint64{
			"create_user": 2, "user_by_id": 1, "user_by_username": 1, "users_by_ids": 1, "search_users": 1, "user_by_name_key": 1,
			"create_session": 1, "session_by_id": 1, "rotate_refresh": 1, "revoke_session": 1,
			"append_message": 2, "messages_before": 1, "messages_after": 1,
			"conversations": 1, "conversation": 1, "peer_ids": 1, "mark_delivered": 1, "mark_read": 1,
			"contact_ids": 1, "is_blocked": 1,
		}
		got := map[string]uint64{}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "chatd_store_latency_seconds" {
				continue
			}
			for _, mt := range mf.GetMetric() {
				for _, l := range mt.GetLabel() {
					if l.GetName() == "op" {
						got[l.GetValue()] = mt.GetHistogram().GetSampleCount()
					}
				}
			}
		}
		for op, n := range want {
			if got[op] != n {
				t.Errorf("async=%v: op %s observed %d times, want %d", async, op, got[op], n)
			}
		}
		for op := range got {
			if _, ok := want[op]; !ok {
				t.Errorf("async=%v: unexpected op label %q", async, op)
			}
		}
	}
}
