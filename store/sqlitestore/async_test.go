package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

type asyncResult struct {
	i       int
	msg     store.Message
	created bool
	err     error
}

// AppendMessageAsync answers every message once, after its commit, in queue
// order; seqs increase in that order; a retry inside the same batch returns
// the first message; after Close it fails at once. storetest checks the
// same promises of store.AsyncAppender through the interface; this test
// holds the writer so that they hold within one large batch too.
func TestAppendMessageAsync(t *testing.T) {
	t.Run("commit at once", func(t *testing.T) { testAppendMessageAsync(t, Options{BatchMax: 16, QueueSize: 200}) })
	// With the writer lingering for more requests after a busy batch.
	t.Run("linger", func(t *testing.T) {
		testAppendMessageAsync(t, Options{BatchMax: 16, QueueSize: 200, BatchWait: 500 * time.Microsecond, BatchTarget: 8})
	})
}

func testAppendMessageAsync(t *testing.T, opts Options) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	a, b := mkUser(t, s, "alice"), mkUser(t, s, "bob")
	release := blockWriter(t, s) // the first batch then holds many messages
	const n = 100
	var (
		mu  sync.Mutex
		got []asyncResult
		all = make(chan struct{})
	)
	done := func(i int) func(store.Message, bool, error) {
		return func(m store.Message, created bool, err error) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, asyncResult{i, m, created, err})
			if len(got) == n+1 {
				close(all)
			}
		}
	}
	for i := range n {
		s.AppendMessageAsync(context.Background(), msg(a, b, fmt.Sprint(i)), done(i))
		if i == 10 { // a retry right behind the first
			s.AppendMessageAsync(context.Background(), msg(a, b, "10"), done(-1))
		}
	}
	mu.Lock()
	if len(got) != 0 {
		t.Errorf("%d answers before the commit", len(got))
	}
	mu.Unlock()
	release()
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("not every message was answered")
	}
	want := []int{}
	for i := range n {
		want = append(want, i)
		if i == 10 {
			want = append(want, -1)
		}
	}
	var first store.Message
	last := int64(0)
	for k, r := range got {
		if r.i != want[k] || r.err != nil {
			t.Fatalf("answer %d: message %d (err %v), want message %d", k, r.i, r.err, want[k])
		}
		if r.i == -1 {
			if r.created || r.msg.ID != first.ID || r.msg.Seq != first.Seq {
				t.Fatalf("retry: %+v created=%v, want %+v", r.msg, r.created, first)
			}
			continue
		}
		if !r.created || r.msg.Seq <= last || r.msg.ClientMsgID != fmt.Sprint(r.i) {
			t.Fatalf("answer %d: %+v created=%v after seq %d", k, r.msg, r.created, last)
		}
		last = r.msg.Seq
		if r.i == 10 {
			first = r.msg
		}
	}
	// Durable: a fresh read sees them all.
	msgs, _, err := s.MessagesAfter(t.Context(), store.ConversationID(a.ID, b.ID), 0, 1000)
	if err != nil || len(msgs) != n {
		t.Fatalf("read back %d messages (%v), want %d", len(msgs), err, n)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var lateErr error
	called := 0
	s.AppendMessageAsync(context.Background(), msg(a, b, "late"), func(_ store.Message, _ bool, err error) {
		called++
		lateErr = err
	})
	if called != 1 || !errors.Is(lateErr, errClosed) {
		t.Fatalf("after Close: called %d times, err %v", called, lateErr)
	}
}

// A batch's first run skips the lookup for retries (appendMessage): a
// retry inside a batch of new messages, even one whose replay fails a
// check (a second delete of the same message), must still return the
// stored message, and the batch's new messages must keep contiguous seqs,
// none taken by the run that was rolled back.
func TestRetriesInABatchOfNewMessages(t *testing.T) {
	s, _ := openTemp(t, Options{BatchMax: 64, QueueSize: 200})
	a, b := mkUser(t, s, "alice"), mkUser(t, s, "bob")
	ctx := t.Context()
	m1, _, err := s.AppendMessage(ctx, msg(a, b, "m1"))
	if err != nil {
		t.Fatal(err)
	}
	del := store.Message{ID: store.NewID(), From: a.ID, To: b.ID, ClientMsgID: "del", CreatedAt: t0,
		Kind: store.KindDelete, Target: m1.Seq}
	d, _, err := s.AppendMessage(ctx, del)
	if err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s)
	const n = 40
	results := make(chan asyncResult, n+2)
	answer := func(i int) func(store.Message, bool, error) {
		return func(m store.Message, created bool, err error) { results <- asyncResult{i, m, created, err} }
	}
	for i := range n {
		s.AppendMessageAsync(ctx, msg(a, b, fmt.Sprint("new", i)), answer(i))
		switch i {
		case 10:
			s.AppendMessageAsync(ctx, del, answer(-1)) // its replay would fail with ErrDeleted
		case 30:
			s.AppendMessageAsync(ctx, msg(a, b, "m1"), answer(-2))
		}
	}
	release()
	last := d.Seq
	for range n + 2 {
		var r asyncResult
		select {
		case r = <-results:
		case <-time.After(10 * time.Second):
			t.Fatal("not every message was answered")
		}
		switch {
		case r.err != nil:
			t.Fatalf("message %d: %v", r.i, r.err)
		case r.i == -1:
			if r.created || r.msg.ID != d.ID || r.msg.Seq != d.Seq || r.msg.Kind != store.KindDelete {
				t.Fatalf("the delete's retry = %+v created=%v, want %+v", r.msg, r.created, d)
			}
		case r.i == -2:
			if r.created || r.msg.ID != m1.ID || r.msg.Seq != m1.Seq {
				t.Fatalf("m1's retry = %+v created=%v, want %+v", r.msg, r.created, m1)
			}
		default:
			if !r.created || r.msg.Seq != last+1 {
				t.Fatalf("message %d: seq %d created=%v, want seq %d", r.i, r.msg.Seq, r.created, last+1)
			}
			last = r.msg.Seq
		}
	}
	msgs, _, err := s.MessagesAfter(ctx, m1.ConversationID, 0, 1000)
	if err != nil || len(msgs) != n+2 {
		t.Fatalf("read back %d messages (%v), want %d", len(msgs), err, n+2)
	}
	// The counters the writer keeps for the conversation (batch.convs)
	// were not left at what the rolled-back run wrote: the next message
	// takes the next seq, and bob's unread count is alice's n+1 texts.
	next, _, err := s.AppendMessage(ctx, msg(a, b, "after"))
	if err != nil || next.Seq != last+1 {
		t.Fatalf("the next message: seq %d (%v), want %d", next.Seq, err, last+1)
	}
	convs, err := s.Conversations(ctx, b.ID)
	if err != nil || len(convs) != 1 || convs[0].Unread != n+2 || convs[0].LastSeq != next.Seq {
		t.Fatalf("bob's conversations = %+v (%v), want unread %d and last seq %d", convs, err, n+2, next.Seq)
	}
}

// A sender whose retry sent a batch to the careful run looks for retries
// first for a while: its next retries cost no batch a second run, so a
// client replaying old client_msg_ids cannot make every batch run twice.
func TestRetriesOfOneSenderCostOneRerun(t *testing.T) {
	s, _ := openTemp(t, Options{BatchMax: 64, QueueSize: 200})
	a, b := mkUser(t, s, "alice"), mkUser(t, s, "bob")
	ctx := t.Context()
	var old []store.Message
	for i := range 3 {
		m, _, err := s.AppendMessage(ctx, msg(a, b, fmt.Sprint("old", i)))
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, m)
	}
	for round, m := range old {
		release := blockWriter(t, s)
		results := make(chan asyncResult, 3)
		answer := func(i int) func(store.Message, bool, error) {
			return func(m store.Message, created bool, err error) { results <- asyncResult{i, m, created, err} }
		}
		s.AppendMessageAsync(ctx, msg(b, a, fmt.Sprint("new-b", round)), answer(0))
		s.AppendMessageAsync(ctx, msg(a, b, m.ClientMsgID), answer(1)) // a retry of an old one
		s.AppendMessageAsync(ctx, msg(a, b, fmt.Sprint("new-a", round)), answer(2))
		release()
		for range 3 {
			r := <-results
			switch {
			case r.err != nil:
				t.Fatalf("round %d, message %d: %v", round, r.i, r.err)
			case r.i == 1 && (r.created || r.msg.ID != m.ID):
				t.Fatalf("round %d: the retry = %+v created=%v, want %+v", round, r.msg, r.created, m)
			case r.i != 1 && !r.created:
				t.Fatalf("round %d: message %d not created", round, r.i)
			}
		}
		if n := s.reruns.Load(); n != 1 {
			t.Fatalf("after %d rounds with a retry of alice's, %d batches ran twice, want 1", round+1, n)
		}
	}
}
