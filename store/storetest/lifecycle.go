package storetest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// contextTests: calls with a canceled context. Ping and Close
// have their own subtests.
var contextTests = []contractTest{
	{"Canceled", testContextCanceled},
}

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
