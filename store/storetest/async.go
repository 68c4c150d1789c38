package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// runAsync checks the promises of store.AsyncAppender, on a store that
// implements it (the subtests skip on one that does not).
func runAsync(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("AsyncAppender", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			fn   func(t *testing.T, s store.Store, a store.AsyncAppender)
		}{
			{"Order", testAsyncOrder},
			{"NotQueued", testAsyncNotQueued},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := newStore(t)
				a, ok := s.(store.AsyncAppender)
				if !ok {
					t.Skip("the store does not implement store.AsyncAppender")
				}
				tc.fn(t, s, a)
			})
		}
	})
}

// asyncAnswer is one call of an AppendMessageAsync done function.
type asyncAnswer struct {
	i       int // index of the queued message
	msg     store.Message
	created bool
	err     error
}

// asyncRecorder collects done calls in the order they happen.
type asyncRecorder struct {
	mu      sync.Mutex
	answers []asyncAnswer
	want    int
	all     chan struct{}
}

func newAsyncRecorder(want int) *asyncRecorder {
	return &asyncRecorder{want: want, all: make(chan struct{})}
}

func (r *asyncRecorder) done(i int) func(store.Message, bool, error) {
	return func(m store.Message, created bool, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.answers = append(r.answers, asyncAnswer{i, m, created, err})
		if len(r.answers) == r.want {
			close(r.all)
		}
	}
}

func (r *asyncRecorder) snapshot() []asyncAnswer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]asyncAnswer(nil), r.answers...)
}

// Messages queued one after another by one goroutine, into two
// conversations and with retries among them, are answered once each, in
// queue order, with what AppendMessage would have returned: increasing seqs
// per conversation, a retry answered with the first message and
// created=false. Every answered message is durable: a read returns it.
func testAsyncOrder(t *testing.T, s store.Store, async store.AsyncAppender) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	c := newUser(t, s, "carol", "Carol")

	const n = 120
	var queued []store.Message // queue order; a retry repeats a ClientMsgID
	retryOf := map[int]int{}   // index of a retry → index of its first
	for i := range n {
		from, to := a, b
		switch i % 3 {
		case 1:
			from, to = b, a
		case 2:
			from, to = a, c
		}
		queued = append(queued, store.Message{
			ID: store.NewID(), From: from.ID, To: to.ID, Text: fmt.Sprintf("async %d", i),
			ClientMsgID: fmt.Sprintf("async-%d", i), CreatedAt: at(i).Add(time.Duration(i) * time.Millisecond),
		})
		if i == 10 || i == 40 { // a retry right behind its first, and one much later
			first := i
			if i == 40 {
				first = 5
			}
			retry := queued[first]
			retry.ID, retry.Text = store.NewID(), "retry"
			retryOf[len(queued)] = first
			queued = append(queued, retry)
		}
	}
	rec := newAsyncRecorder(len(queued))
	for i, m := range queued {
		async.AppendMessageAsync(ctx, m, rec.done(i))
	}
	select {
	case <-rec.all:
	case <-time.After(time.Minute):
		t.Fatalf("%d of %d messages answered within a minute", len(rec.snapshot()), len(queued))
	}

	got := rec.snapshot()
	if len(got) != len(queued) {
		t.Fatalf("%d answers for %d messages", len(got), len(queued))
	}
	stored := make([]store.Message, len(queued))
	lastSeq := map[string]int64{}
	for k, r := range got {
		if r.i != k {
			t.Fatalf("answer %d is for message %d: answers out of queue order", k, r.i)
		}
		if r.err != nil {
			t.Fatalf("message %d: %v", k, r.err)
		}
		if first, ok := retryOf[k]; ok {
			if r.created {
				t.Fatalf("retry %d of message %d: created=true", k, first)
			}
			checkMessage(t, fmt.Sprintf("retry %d", k), r.msg, stored[first])
			continue
		}
		if !r.created {
			t.Fatalf("message %d: created=false for a fresh client_msg_id", k)
		}
		want := queued[k]
		want.ConversationID = store.ConversationID(want.From, want.To)
		want.CreatedAt = want.CreatedAt.Truncate(time.Millisecond)
		want.Seq = r.msg.Seq
		checkMessage(t, fmt.Sprintf("message %d", k), r.msg, want)
		if r.msg.Seq <= lastSeq[want.ConversationID] {
			t.Fatalf("message %d: seq %d after %d in its conversation", k, r.msg.Seq, lastSeq[want.ConversationID])
		}
		lastSeq[want.ConversationID] = r.msg.Seq
		stored[k] = r.msg
	}

	// Durable and as answered: each conversation reads back exactly the
	// answered messages, in queue order.
	for _, peer := range []store.User{b, c} {
		conv := store.ConversationID(a.ID, peer.ID)
		var want []store.Message
		for k, m := range stored {
			if _, retry := retryOf[k]; !retry && m.ConversationID == conv {
				want = append(want, m)
			}
		}
		msgs, more, err := s.MessagesAfter(ctx, conv, 0, 1000)
		if err != nil || more || len(msgs) != len(want) {
			t.Fatalf("MessagesAfter(%s) = %d messages, more %v, %v; want %d", conv, len(msgs), more, err, len(want))
		}
		for i := range want {
			checkMessage(t, fmt.Sprintf("read back %d of %s", i, conv), msgs[i], want[i])
		}
	}
}

// A message that cannot be queued (invalid, ctx ended, store closed) is
// answered exactly once with an error, on the caller's goroutine before
// AppendMessageAsync returns.
func testAsyncNotQueued(t *testing.T, s store.Store, async store.AsyncAppender) {
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	try := func(what string, ctx context.Context, m store.Message) error {
		t.Helper()
		calls := 0
		var got error
		async.AppendMessageAsync(ctx, m, func(_ store.Message, _ bool, err error) {
			calls++
			got = err
		})
		if calls != 1 || got == nil {
			t.Fatalf("%s: done called %d times before AppendMessageAsync returned, err %v; want once with an error", what, calls, got)
		}
		return got
	}
	msg := func(from, to store.User) store.Message {
		return store.Message{ID: store.NewID(), From: from.ID, To: to.ID, Text: "x", ClientMsgID: store.NewID(), CreatedAt: at(1)}
	}

	err := try("a message to its sender", ctxFor(t), msg(a, a))
	wantErr(t, "a message to its sender", err, store.ErrInvalid)

	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	err = try("a canceled context", canceled, msg(a, b))
	wantErr(t, "a canceled context", err, context.Canceled)

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err = try("after Close", ctxFor(t), msg(a, b))
	if errors.Is(err, store.ErrInvalid) {
		t.Fatalf("after Close: %v, want the store's closed error", err)
	}
}
