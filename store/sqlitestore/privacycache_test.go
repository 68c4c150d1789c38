package sqlitestore

import (
	"slices"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// BlockedEither answers from memory too, and follows every Block and
// Unblock of either side: each answer is compared with the query it
// replaced, asked on the database.
func TestBlockedEitherFollowsChanges(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := t.Context()
	union := func(user string) []string {
		rows, err := s.rdb.QueryContext(ctx, `SELECT blocked_id FROM blocks WHERE user_id = ?1
			UNION SELECT user_id FROM blocks WHERE blocked_id = ?1 ORDER BY 1`, user)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		ids := []string{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	steps := []struct {
		block         bool
		blocker, whom string
	}{
		{true, "alice", "bob"}, {true, "carol", "alice"}, {true, "bob", "alice"},
		{false, "alice", "bob"}, {true, "alice", "dave"}, {false, "carol", "alice"},
		{false, "bob", "alice"}, {false, "alice", "dave"},
	}
	for i, st := range steps {
		var err error
		if st.block {
			err = s.Block(ctx, st.blocker, st.whom, time.UnixMilli(int64(i)))
		} else {
			err = s.Unblock(ctx, st.blocker, st.whom)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"alice", "bob", "carol", "dave"} {
			want := union(u)
			for range 2 { // the second answer is the cached one
				got, err := s.BlockedEither(ctx, u)
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("step %d: BlockedEither(%s) = %v, %v, want %v", i, u, got, err, want)
				}
				if len(got) > 0 {
					got[0] = "mutated" // the caller's copy, not the cache's
				}
			}
		}
	}
}

// ContactIDs answers from memory and follows the messages that make
// contacts, synchronous and asynchronous: each answer is compared with
// the query on the database. Events make no contact.
func TestContactIDsFollowMessages(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := t.Context()
	a, b, c := mkUser(t, s, "alice"), mkUser(t, s, "bob"), mkUser(t, s, "carol")
	query := func(user string) []string {
		ids, err := s.queryIDs(ctx, rContactIDs, user)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	check := func(step string) {
		t.Helper()
		for _, u := range []store.User{a, b, c} {
			want := query(u.ID)
			for range 2 { // the second answer is the cached one
				got, err := s.ContactIDs(ctx, u.ID)
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("%s: ContactIDs(%s) = %v, %v, want %v", step, u.Username, got, err, want)
				}
				if len(got) > 0 {
					got[0] = "mutated" // the caller's copy, not the cache's
				}
			}
		}
	}
	sendSync := func(from, to store.User) store.Message {
		m, _, err := s.AppendMessage(ctx, store.Message{ID: store.NewID(), From: from.ID, To: to.ID, Text: "hi", CreatedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	sendAsync := func(from, to store.User) {
		done := make(chan error, 1)
		s.AppendMessageAsync(ctx, store.Message{ID: store.NewID(), From: from.ID, To: to.ID, Text: "hi", CreatedAt: time.Now()},
			func(_ store.Message, _ bool, err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	check("none")
	first := sendSync(a, b)
	check("alice to bob")
	if _, _, err := s.AppendMessage(ctx, store.Message{ID: store.NewID(), From: b.ID, To: a.ID, Kind: store.KindReaction,
		Target: first.Seq, Emoji: "👍", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	check("bob reacts")
	sendSync(b, a)
	check("bob to alice")
	sendAsync(c, a)
	check("carol to alice")
	sendAsync(a, c)
	check("alice to carol")
	sendAsync(a, c)
	check("alice to carol again")
}
