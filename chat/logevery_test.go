package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/store"
)

// failingStore fails every append at once, as a full disk does.
type failingStore struct{ store.Store }

func (failingStore) AppendMessage(context.Context, store.Message) (store.Message, bool, error) {
	return store.Message{}, false, errors.New("database or disk is full")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A store that fails every append is logged once per interval, not once
// per send: the sends are refused (503) and the log shows one line.
func TestFailingAppendsAreLoggedOnce(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	logs := &syncBuffer{}
	cfg := DefaultConfig()
	cfg.SendRate, cfg.SendBurst = 10000, 10000 // the send limit is not what this test is about
	svc, err := New(cfg, Deps{
		Store: failingStore{e.st}, Broker: e.br, Presence: e.br,
		Verifier: token.NewVerifier(e.key.KeySet(), "chatd", "chatd"),
		NodeID:   "node-failing",
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Shutdown(context.Background()) }()
	n := &testEnv{t: t, srv: srv, st: e.st}
	for i := range 200 {
		if code, _ := n.restSend(alice, bob, "hi", fmt.Sprintf("m%d", i)); code != http.StatusServiceUnavailable {
			t.Fatalf("send %d on a failing store: %d, want 503", i, code)
		}
	}
	if got := strings.Count(logs.String(), "backend error"); got > 2 {
		t.Errorf("%d \"backend error\" lines for 200 failed sends, want at most 2:\n%s", got, logs.String())
	}
}
