package mongostore_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/mongostore"
)

// eventReads counts the documents that the reads of events (the finds on
// messages by target) return, through a command monitor.
type eventReads struct {
	mu      sync.Mutex
	pending map[int64]bool
	docs    int
}

func (r *eventReads) monitor() *event.CommandMonitor {
	r.pending = make(map[int64]bool)
	return &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			if e.CommandName != "find" && e.CommandName != "getMore" {
				return
			}
			filter, _ := e.Command.Lookup("filter").DocumentOK()
			byTarget := filter.Lookup("target").Type != 0 // {$in: seqs}, or one seq itself
			_, byOr := filter.Lookup("$or").ArrayOK()
			r.mu.Lock()
			defer r.mu.Unlock()
			if e.CommandName == "getMore" || byTarget || byOr {
				r.pending[e.RequestID] = true
			}
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if !r.pending[e.RequestID] {
				return
			}
			delete(r.pending, e.RequestID)
			for _, batch := range []string{"firstBatch", "nextBatch"} {
				if a, ok := e.Reply.Lookup("cursor", batch).ArrayOK(); ok {
					vs, _ := a.Values()
					r.docs += len(vs)
				}
			}
		},
	}
}

func (r *eventReads) take() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.docs
	r.docs = 0
	return n
}

// TestHistoryEventsBounded: a message whose reaction was toggled many times
// costs a page only the events since its last fold, not all of them
// (before message_states, every page read all 40).
func TestHistoryEventsBounded(t *testing.T) {
	m := testserver.StartMongo(t)
	var reads eventReads
	s := openStoreWith(t, m, mongostore.WithCommandMonitor(mongostore.Options{}, reads.monitor()))
	ctx := testCtx(t)
	alice, bob := "alice", "bob"
	conv := store.ConversationID(alice, bob)
	n := int64(0)
	at := func() time.Time { n++; return time.UnixMilli(1_800_000_000_000 + n) }
	text, _, err := s.AppendMessage(ctx, store.Message{From: alice, To: bob, Text: "hello", ClientMsgID: store.NewID(), CreatedAt: at()})
	if err != nil {
		t.Fatal(err)
	}
	react := func(from, emoji string) {
		t.Helper()
		if _, _, err := s.AppendMessage(ctx, store.Message{From: from, To: map[string]string{alice: bob, bob: alice}[from], ClientMsgID: store.NewID(),
			CreatedAt: at(), Kind: store.KindReaction, Target: text.Seq, Emoji: emoji}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		react(bob, []string{"👍", ""}[i%2])
	}
	react(bob, "❤️")
	page := func() store.Message {
		t.Helper()
		msgs, _, err := s.MessagesAfter(ctx, conv, 0, 1)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("MessagesAfter: %v, %v", msgs, err)
		}
		return msgs[0]
	}
	if got := page(); !reflect.DeepEqual(got.Reactions, map[string][]string{"❤️": {bob}}) {
		t.Fatalf("reactions %v, want ❤️ by bob", got.Reactions)
	}
	react(alice, "😂")
	react(bob, "")
	reads.take() // what the appends read to check their target
	got := page()
	if !reflect.DeepEqual(got.Reactions, map[string][]string{"😂": {alice}}) {
		t.Fatalf("reactions %v, want 😂 by alice", got.Reactions)
	}
	if docs := reads.take(); docs != 2 {
		t.Fatalf("the page read %d events, want the 2 since the fold", docs)
	}
}

// TestFoldedStatesFollowTheLog: with states cached along the way (default
// threshold), every read gives the state the event log folds to, through
// edits, reaction changes of both users and a final delete.
func TestFoldedStatesFollowTheLog(t *testing.T) {
	m := testserver.StartMongo(t)
	s := openStore(t, m)
	ctx := testCtx(t)
	alice, bob := "alice", "bob"
	conv := store.ConversationID(alice, bob)
	n := int64(0)
	at := func() time.Time { n++; return time.UnixMilli(1_800_000_000_000 + n) }
	want, _, err := s.AppendMessage(ctx, store.Message{From: alice, To: bob, Text: "v0", ClientMsgID: store.NewID(), CreatedAt: at()})
	if err != nil {
		t.Fatal(err)
	}
	emojis := []string{"👍", "❤️", "", "😂"}
	for i := range 60 {
		ev := store.Message{ClientMsgID: store.NewID(), CreatedAt: at(), Target: want.Seq}
		switch {
		case i == 59:
			ev.From, ev.To, ev.Kind = alice, bob, store.KindDelete
		case i%5 == 0:
			ev.From, ev.To, ev.Kind, ev.Text = alice, bob, store.KindEdit, fmt.Sprintf("v%d", i)
		default:
			ev.From, ev.To, ev.Kind, ev.Emoji = bob, alice, store.KindReaction, emojis[i%len(emojis)]
			if i%3 == 0 {
				ev.From, ev.To = alice, bob
			}
		}
		stored, _, err := s.AppendMessage(ctx, ev)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		want = want.Apply(stored)
		if i%2 == 1 { // read every other event, so that folds happen at varied points
			continue
		}
		msgs, _, err := s.MessagesAfter(ctx, conv, 0, 1)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("MessagesAfter: %v, %v", msgs, err)
		}
		got := msgs[0]
		if got.Text != want.Text || got.Deleted != want.Deleted || !got.EditedAt.Equal(want.EditedAt) || !reflect.DeepEqual(got.Reactions, want.Reactions) || len(got.Attachments) != len(want.Attachments) {
			t.Fatalf("after event %d: got %q deleted=%v edited=%v reactions=%v, want %q deleted=%v edited=%v reactions=%v",
				i, got.Text, got.Deleted, got.EditedAt, got.Reactions, want.Text, want.Deleted, want.EditedAt, want.Reactions)
		}
	}
	if !want.Deleted {
		t.Fatal("the last event deletes")
	}
}
