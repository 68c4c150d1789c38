package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store"
)

// A full disk: writes fail and Ping says so while they do (readiness
// follows), and when space comes back the store recovers without a restart
// and goes on writing well beyond the space freed, because the write-ahead
// log is checkpointed and truncated rather than left to grow into it.
func TestDiskFullRecovers(t *testing.T) {
	// Room for the database and a log of WALLimit and a batch.
	dir := testserver.SmallFS(t, 32<<20)
	s, err := Open(filepath.Join(dir, "chatd.db"), Options{CheckpointInterval: 10 * time.Millisecond, WALLimit: 4 << 20})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice, bob := store.NewID(), store.NewID()
	for _, id := range []string{alice, bob} {
		if err := s.CreateUser(ctx, store.User{ID: id, Username: id, DisplayName: id, PasswordHash: "x", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	text := strings.Repeat("x", 2000)
	var n atomic.Int64
	send := func() error {
		_, _, err := s.AppendMessage(ctx, store.Message{From: alice, To: bob, Text: text, ClientMsgID: fmt.Sprintf("m%d", n.Add(1))})
		return err
	}
	for range 10 {
		if err := send(); err != nil {
			t.Fatalf("AppendMessage before the disk is full: %v", err)
		}
	}

	filler := filepath.Join(dir, "filler")
	testserver.FillFS(t, filler)
	var failed error
	for range 10000 {
		if failed = send(); failed != nil {
			break
		}
	}
	if failed == nil {
		t.Fatal("every write succeeded on a full disk")
	}
	t.Logf("write on a full disk: %v", failed)
	waitFor(t, "Ping to fail while writes fail", func() bool { return s.Ping(ctx) != nil })
	if !errors.Is(s.Ping(ctx), ErrWritesFailing) {
		t.Errorf("Ping = %v, want ErrWritesFailing", s.Ping(ctx))
	}
	// Still full: still failing, still not ready.
	if err := send(); err == nil {
		t.Fatal("a write succeeded on a disk still full")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a write to succeed once space is back", func() bool { return send() == nil })
	waitFor(t, "Ping to succeed once writes succeed", func() bool { return s.Ping(ctx) == nil })
	text = "after the disk was full"
	// Go on for longer than the freed space would hold as log frames
	// (each commit writes several 4 KiB pages to the log), from four
	// senders that never pause: on tmpfs, where a commit costs nothing, the
	// writer always finds the next requests queued and begins each batch
	// before the background checkpointer has caught up, so only its own
	// truncation past WALLimit (wal.go) keeps the log fitting.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 3000 {
				if err := send(); err != nil {
					t.Errorf("write %d after recovery: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after recovery: %v", err)
	}
	msgs, _, err := s.MessagesBefore(ctx, store.ConversationID(alice, bob), 0, 1)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("read after recovery: %v, %v", msgs, err)
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
