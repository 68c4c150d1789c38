package chat

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/chatd/chatd/store"
)

// commitThenFailStore commits an append, then reports an error once (as
// SQLite does when ctx ends during its batch's commit, or MongoDB after a
// w:majority timeout): the message is stored although the send failed.
// It hides AppendMessageAsync, so every send takes AppendMessage.
type commitThenFailStore struct {
	store.Store
	failNext atomic.Bool
}

func (s *commitThenFailStore) AppendMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	msg, created, err := s.Store.AppendMessage(ctx, m)
	if err == nil && s.failNext.CompareAndSwap(true, false) {
		return store.Message{}, false, errors.New("commit outcome unknown")
	}
	return msg, created, err
}

// A send whose commit succeeded but reported an error, then its retry
// (created=false): the recipient's open socket gets the message live,
// whether the retry comes by REST or by WebSocket (issue 8, defect 2).
func TestRetryAfterFailedCommitIsPublished(t *testing.T) {
	e := newTestEnv(t, nil)
	var failing *commitThenFailStore
	e.wrapStore = func(st store.Store) store.Store {
		failing = &commitThenFailStore{Store: st}
		return failing
	}
	n := e.node("node-2", nil)
	alice, bob := n.user("alice"), n.user("bob")
	a, b := n.dial(alice), n.dial(bob)

	// REST: 503, stored anyway; the retry gets 200 and bob gets it live.
	failing.failNext.Store(true)
	if st, _ := n.restSend(alice, bob, "rest", "rp-1"); st != http.StatusServiceUnavailable {
		t.Fatalf("first attempt: %d, want 503", st)
	}
	st, rm := n.restSend(alice, bob, "rest", "rp-1")
	if st != http.StatusOK {
		t.Fatalf("retry: %d %v, want 200 (already stored)", st, rm)
	}
	got, _ := b.nextOf("message")
	if got.obj("message").num("seq") != rm.num("seq") || got.obj("message").str("client_msg_id") != "rp-1" {
		t.Fatalf("bob got %v, want the retried message %v", got, rm)
	}

	// WebSocket: an error frame, then the retry's ack; bob gets it live.
	failing.failNext.Store(true)
	a.send(bob, "ws", "rp-2")
	if f, _ := a.nextOf("error"); f.str("ref") != "rp-2" {
		t.Fatalf("first attempt: %v, want an error for rp-2", f)
	}
	m := a.sendOK(bob, "ws", "rp-2")
	got, _ = b.nextOf("message")
	if got.obj("message").num("seq") != m.num("seq") || got.obj("message").str("client_msg_id") != "rp-2" {
		t.Fatalf("bob got %v, want the retried message %v", got, m)
	}
}
