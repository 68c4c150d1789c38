package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/mongostore"
)

// openOn opens a Store on database db of m, closed when t ends.
func openOn(t testing.TB, m *testserver.Mongo, db string) *mongostore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := mongostore.Open(ctx, m.URI(), db, mongostore.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustUser(t *testing.T, s store.Store, name string) store.User {
	t.Helper()
	u := store.User{ID: store.NewID(), Username: name, DisplayName: name, PasswordHash: "x", CreatedAt: time.Now()}
	if err := s.CreateUser(testCtx(t), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u
}

func TestOpenErrors(t *testing.T) {
	ctx := testCtx(t)
	if _, err := mongostore.Open(ctx, "mongodb://127.0.0.1:1/", "x", mongostore.Options{WriteConcern: "2"}); err == nil {
		t.Error("Open with write concern 2 succeeded")
	}
	if _, err := mongostore.Open(ctx, "mongodb://127.0.0.1:1/", "", mongostore.Options{}); err == nil {
		t.Error("Open with an empty database name succeeded")
	}
	if _, err := mongostore.Open(ctx, "not a uri", "x", mongostore.Options{}); err == nil {
		t.Error("Open with a bad URI succeeded")
	}
	// Nothing listens on port 1: Open fails within its connect timeout.
	_, err := mongostore.Open(ctx, "mongodb://127.0.0.1:1/", "x", mongostore.Options{ConnectTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Error("Open of an unreachable server succeeded")
	}
}

// Two stores (two connection pools, two seq caches, as two replicas have)
// append to one conversation while a third polls it the way a client
// catches up: after= the highest seq it holds. If a seq could commit after a
// higher one was visible, the poller would skip it for good.
func TestAppendAcrossStoresCatchUp(t *testing.T) {
	m := testserver.StartMongo(t)
	db := m.Database()
	s1, s2, reader := openOn(t, m, db), openOn(t, m, db), openOn(t, m, db)
	ctx := testCtx(t)
	a, b := mustUser(t, s1, "alice"), mustUser(t, s1, "bob")
	conv := store.ConversationID(a.ID, b.ID)

	const writers, perWriter = 6, 15
	total := writers * perWriter
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		s := s1
		if w%2 == 1 {
			s = s2
		}
		from, to := a, b
		if w%3 == 0 {
			from, to = b, a
		}
		wg.Go(func() {
			for i := range perWriter {
				_, created, err := s.AppendMessage(ctx, store.Message{
					ID: store.NewID(), From: from.ID, To: to.ID, Text: fmt.Sprintf("%d/%d", w, i),
					ClientMsgID: fmt.Sprintf("w%d-%d", w, i), CreatedAt: time.Now(),
				})
				if err == nil && !created {
					err = errors.New("created=false")
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		})
	}

	var got []int64
	var after int64
	deadline := time.Now().Add(90 * time.Second)
	for len(got) < total && time.Now().Before(deadline) {
		msgs, _, err := reader.MessagesAfter(ctx, conv, after, 7)
		if err != nil {
			t.Fatalf("MessagesAfter: %v", err)
		}
		for _, msg := range msgs {
			got = append(got, msg.Seq)
			after = msg.Seq
		}
		if len(msgs) == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(got) != total {
		t.Fatalf("the poller caught %d messages of %d: seqs %v", len(got), total, got)
	}
	// Seqs are unique, ascending and, since nothing else failed, gapless.
	for i, seq := range got {
		if seq != int64(i+1) {
			t.Fatalf("seq %d at position %d, want %d (all: %v)", seq, i, i+1, got)
		}
	}
}

// A store whose remembered seq is stale (another replica appended since)
// still appends after the newest message.
func TestAppendStaleSeqHint(t *testing.T) {
	m := testserver.StartMongo(t)
	db := m.Database()
	s1, s2 := openOn(t, m, db), openOn(t, m, db)
	ctx := testCtx(t)
	a, b := mustUser(t, s1, "alice"), mustUser(t, s1, "bob")
	send := func(s store.Store, text string) store.Message {
		t.Helper()
		msg, created, err := s.AppendMessage(ctx, store.Message{
			ID: store.NewID(), From: a.ID, To: b.ID, Text: text, ClientMsgID: store.NewID(), CreatedAt: time.Now(),
		})
		if err != nil || !created {
			t.Fatalf("AppendMessage(%s) = %v, %v", text, created, err)
		}
		return msg
	}
	var seqs []int64
	for _, s := range []store.Store{s1, s2, s2, s1, s2, s1, s1} {
		seqs = append(seqs, send(s, "x").Seq)
	}
	if want := []int64{1, 2, 3, 4, 5, 6, 7}; !slices.Equal(seqs, want) {
		t.Fatalf("seqs %v, want %v", seqs, want)
	}
}

// Messages without a client_msg_id are never deduplicated.
func TestAppendWithoutClientMsgID(t *testing.T) {
	m := testserver.StartMongo(t)
	s := openOn(t, m, m.Database())
	ctx := testCtx(t)
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	for i := range 3 {
		msg, created, err := s.AppendMessage(ctx, store.Message{
			ID: store.NewID(), From: a.ID, To: b.ID, Text: fmt.Sprint(i), CreatedAt: time.Now(),
		})
		if err != nil || !created || msg.Seq != int64(i+1) || msg.ClientMsgID != "" {
			t.Fatalf("append %d = %+v, %v, %v", i, msg, created, err)
		}
	}
	// Reusing a message id is a conflict, not a retry or a new message.
	first, _, err := s.MessagesAfter(ctx, store.ConversationID(a.ID, b.ID), 0, 1)
	if err != nil || len(first) != 1 {
		t.Fatalf("MessagesAfter = %v, %v", first, err)
	}
	_, _, err = s.AppendMessage(ctx, store.Message{
		ID: first[0].ID, From: a.ID, To: b.ID, Text: "again", ClientMsgID: "fresh", CreatedAt: time.Now(),
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("AppendMessage with a used id: %v, want ErrConflict", err)
	}
}

// Racing moves of one pointer, from two stores: it ends at the highest seq
// and never reads lower than a value a call returned before.
func TestMarkReadConcurrent(t *testing.T) {
	m := testserver.StartMongo(t)
	db := m.Database()
	s1, s2 := openOn(t, m, db), openOn(t, m, db)
	ctx := testCtx(t)
	a, b := mustUser(t, s1, "alice"), mustUser(t, s1, "bob")
	const n = 30
	for i := range n {
		if _, _, err := s1.AppendMessage(ctx, store.Message{
			ID: store.NewID(), From: b.ID, To: a.ID, Text: "m", ClientMsgID: fmt.Sprint(i), CreatedAt: time.Now(),
		}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var highest int64 // the highest pointer some call reported
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		s := s1
		if i%2 == 0 {
			s = s2
		}
		wg.Go(func() {
			mark := s.MarkRead
			if i%3 == 0 {
				mark = s.MarkDelivered
			}
			ptr, _, err := mark(ctx, a.ID, b.ID, int64(i))
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			highest = max(highest, ptr)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, err := s2.Conversation(ctx, a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantRead := int64(n - 1) // n is a multiple of 3: a delivered mark
	if v.ReadSeq != wantRead || v.DeliveredSeq != n || v.Unread != 1 {
		t.Fatalf("after racing marks: read %d delivered %d unread %d; want %d, %d, 1", v.ReadSeq, v.DeliveredSeq, v.Unread, wantRead, n)
	}
	if highest > n {
		t.Fatalf("a mark reported %d, beyond the last seq %d", highest, n)
	}
	// Moving back is refused, moving to the end works once.
	if ptr, moved, err := s1.MarkRead(ctx, a.ID, b.ID, 3); err != nil || moved || ptr != wantRead {
		t.Fatalf("MarkRead(3) = %d, %v, %v", ptr, moved, err)
	}
	if ptr, moved, err := s2.MarkRead(ctx, a.ID, b.ID, n); err != nil || !moved || ptr != n {
		t.Fatalf("MarkRead(n) = %d, %v, %v", ptr, moved, err)
	}
}

// Concurrent rotations from two stores: one winner; and a revocation that
// races rotations is never undone.
func TestRotateAndRevokeAcrossStores(t *testing.T) {
	m := testserver.StartMongo(t)
	db := m.Database()
	s1, s2 := openOn(t, m, db), openOn(t, m, db)
	ctx := testCtx(t)
	u := mustUser(t, s1, "alice")
	for round := range 5 {
		sess := store.Session{ID: store.NewID(), UserID: u.ID, RefreshHash: "h0", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if err := s1.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		results := make([]error, 8)
		for i := range results {
			s := s1
			if i%2 == 1 {
				s = s2
			}
			wg.Go(func() {
				results[i] = s.RotateRefresh(ctx, sess.ID, store.Rotation{OldHash: "h0", NewHash: fmt.Sprintf("h1-%d", i), Generation: 1, ExpiresAt: time.Now().Add(2 * time.Hour), At: time.Now()})
			})
		}
		revokedAt := time.Now().Truncate(time.Millisecond)
		wg.Go(func() {
			if err := s2.RevokeSession(ctx, sess.ID, revokedAt); err != nil {
				t.Errorf("RevokeSession: %v", err)
			}
		})
		wg.Wait()
		wins := 0
		for _, err := range results {
			if err == nil {
				wins++
			} else if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("round %d: RotateRefresh: %v", round, err)
			}
		}
		if wins > 1 {
			t.Fatalf("round %d: %d rotations won", round, wins)
		}
		got, err := s1.SessionByID(ctx, sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Revoked() || !got.RevokedAt.Equal(revokedAt) {
			t.Fatalf("round %d: session %+v, want revoked at %v", round, got, revokedAt)
		}
		if err := s2.RotateRefresh(ctx, sess.ID, store.Rotation{OldHash: got.RefreshHash, NewHash: "h2", Generation: 2, ExpiresAt: time.Now(), At: time.Now()}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("round %d: rotation after revocation: %v, want ErrConflict", round, err)
		}
	}
}
