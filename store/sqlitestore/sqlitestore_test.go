package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func mkUser(t *testing.T, s *Store, name string) store.User {
	t.Helper()
	u := store.User{ID: store.NewID(), Username: name, DisplayName: strings.ToUpper(name), PasswordHash: "h", CreatedAt: t0}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u
}

func msg(from, to store.User, cmid string) store.Message {
	return store.Message{ID: store.NewID(), From: from.ID, To: to.ID, Text: "text " + cmid, ClientMsgID: cmid, CreatedAt: t0}
}

// blockWriter occupies the writer with a request that waits for the
// returned release function, so that requests sent meanwhile queue up and
// are committed together in the next batch.
func blockWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.write(context.Background(), func(*batch) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	var once sync.Once
	release = func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	return release
}

// waitQueued waits until n requests wait for the writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(s.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	a, b := mkUser(t, s, "alice"), mkUser(t, s, "bob")
	m1, _, err := s.AppendMessage(t.Context(), msg(a, b, "1"))
	if err != nil {
		t.Fatalf("AppendMessage: %v", err)
	}
	if _, _, err := s.MarkRead(t.Context(), b.ID, a.ID, m1.Seq); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.UserByUsername(t.Context(), "alice"); err != nil {
		t.Fatalf("UserByUsername after reopen: %v", err)
	}
	v, err := s.Conversation(t.Context(), b.ID, a.ID)
	if err != nil {
		t.Fatalf("Conversation after reopen: %v", err)
	}
	if v.LastSeq != m1.Seq || v.ReadSeq != m1.Seq || v.LastMessage == nil || v.LastMessage.ID != m1.ID {
		t.Fatalf("conversation after reopen: %+v", v)
	}
	// The sequence goes on where it was, and retries are still recognised.
	again, created, err := s.AppendMessage(t.Context(), msg(a, b, "1"))
	if err != nil || created || again.ID != m1.ID {
		t.Fatalf("retry after reopen = %+v, %v, %v", again, created, err)
	}
	m2, _, err := s.AppendMessage(t.Context(), msg(a, b, "2"))
	if err != nil || m2.Seq <= m1.Seq {
		t.Fatalf("append after reopen = seq %d, %v; want > %d", m2.Seq, err, m1.Seq)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	s, path := openTemp(t, Options{})
	mkUser(t, s, "alice")
	var version int64
	if err := s.write(t.Context(), func(b *batch) error {
		return b.queryRowSQL("PRAGMA user_version").Scan(&version)
	}); err != nil {
		t.Fatal(err)
	}
	if version != int64(len(migrations)) {
		t.Fatalf("user_version = %d, want %d", version, len(migrations))
	}
	// Running them again on another connection changes nothing and fails
	// nothing.
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := migrate(t.Context(), db); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	// Opening the file a second time (beside the first) migrates nothing.
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if _, err := s2.UserByUsername(t.Context(), "alice"); err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	s, path := openTemp(t, Options{})
	if err := s.write(t.Context(), func(b *batch) error {
		var v int64
		err := b.queryRowSQL(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(path, Options{}); err == nil {
		s2.Close()
		t.Fatal("Open of a database from a newer binary succeeded")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		path string
		opts Options
	}{
		{"", Options{}},
		{filepath.Join(dir, "a?b.db"), Options{}},
		{filepath.Join(dir, "ok.db"), Options{Synchronous: "sometimes"}},
		{filepath.Join(dir, "missing", "dir", "x.db"), Options{}},
	} {
		if s, err := Open(c.path, c.opts); err == nil {
			s.Close()
			t.Errorf("Open(%q, %+v) succeeded", c.path, c.opts)
		}
	}
}

func TestPragmas(t *testing.T) {
	for _, sync := range []string{"", "normal", "FULL"} {
		s, _ := openTemp(t, Options{Synchronous: sync})
		var mode string
		var syncLevel, fk int64
		err := s.write(t.Context(), func(b *batch) error {
			if err := b.queryRowSQL("PRAGMA journal_mode").Scan(&mode); err != nil {
				return err
			}
			if err := b.queryRowSQL("PRAGMA synchronous").Scan(&syncLevel); err != nil {
				return err
			}
			return b.queryRowSQL("PRAGMA foreign_keys").Scan(&fk)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := int64(2) // FULL
		if sync == "normal" {
			want = 1
		}
		if mode != "wal" || syncLevel != want || fk != 1 {
			t.Errorf("Synchronous %q: journal_mode %s synchronous %d foreign_keys %d; want wal %d 1", sync, mode, syncLevel, fk, want)
		}
		// Read connections cannot write.
		if _, err := s.rdb.Exec("INSERT INTO conversations (id, last_seq, updated_at) VALUES ('x', 1, 1)"); err == nil {
			t.Error("a read connection wrote")
		}
	}
}

// One failing request does not fail the others committed in the same batch.
func TestBatchIsolatesFailures(t *testing.T) {
	s, _ := openTemp(t, Options{})
	a, b := mkUser(t, s, "alice"), mkUser(t, s, "bob")
	release := blockWriter(t, s)

	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	var errDup, errFail error
	results := make([]error, 10)
	seqs := make([]int64, 10)
	for i := range 10 {
		wg.Go(func() {
			m, _, err := s.AppendMessage(t.Context(), msg(a, b, fmt.Sprint(i)))
			results[i], seqs[i] = err, m.Seq
		})
	}
	wg.Go(func() {
		errDup = s.CreateUser(t.Context(), store.User{ID: store.NewID(), Username: "alice", DisplayName: "x", PasswordHash: "h"})
	})
	wg.Go(func() {
		errFail = s.write(t.Context(), func(bt *batch) error {
			// Writes something, then fails: the write must be undone.
			if _, err := bt.exec(wInsertUser, store.NewID(), "ghost", "Ghost", "ghost", "h", 1, "", ""); err != nil {
				return err
			}
			return errBoom
		})
	})
	waitQueued(t, s, 12)
	batchesBefore := s.batches.Load()
	release()
	wg.Wait()

	if got := s.batches.Load() - batchesBefore; got != 2 { // the blocker's and ours
		t.Logf("the requests took %d batches (expected 2); isolation is still checked", got)
	}
	for i, err := range results {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if !errors.Is(errDup, store.ErrConflict) {
		t.Fatalf("duplicate user: %v, want ErrConflict", errDup)
	}
	if !errors.Is(errFail, errBoom) {
		t.Fatalf("failing request: %v, want boom", errFail)
	}
	if _, err := s.UserByUsername(t.Context(), "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the failed request's write survived: %v", err)
	}
	msgs, _, err := s.MessagesAfter(t.Context(), store.ConversationID(a.ID, b.ID), 0, 100)
	if err != nil || len(msgs) != 10 {
		t.Fatalf("MessagesAfter = %d, %v; want 10", len(msgs), err)
	}
}

// A message to a user that does not exist fails alone.
func TestAppendUnknownUser(t *testing.T) {
	s, _ := openTemp(t, Options{})
	a := mkUser(t, s, "alice")
	ghost := store.User{ID: store.NewID()}
	_, _, err := s.AppendMessage(t.Context(), msg(a, ghost, "1"))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AppendMessage to an unknown user: %v, want ErrNotFound", err)
	}
	if _, err := s.Conversation(t.Context(), a.ID, ghost.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a conversation was left behind: %v", err)
	}
	if err := s.CreateSession(t.Context(), store.Session{ID: store.NewID(), UserID: ghost.ID, RefreshHash: "h"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateSession for an unknown user: %v, want ErrNotFound", err)
	}
}

// Close commits what was queued before it and answers every waiter.
func TestCloseDrainsQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	s, err := Open(path, Options{BatchMax: 16, QueueSize: 200})
	if err != nil {
		t.Fatal(err)
	}
	a, b := mkUser(t, s, "alice"), mkUser(t, s, "bob")
	release := blockWriter(t, s)
	const n = 100
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, _, errs[i] = s.AppendMessage(context.Background(), msg(a, b, fmt.Sprint(i)))
		})
	}
	waitQueued(t, s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	release()
	wg.Wait()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if _, _, err := s.AppendMessage(t.Context(), msg(a, b, "late")); err == nil {
		t.Fatal("AppendMessage after Close succeeded")
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs, _, err := s.MessagesAfter(t.Context(), store.ConversationID(a.ID, b.ID), 0, 1000)
	if err != nil || len(msgs) != n {
		t.Fatalf("after reopen %d messages, %v; want %d", len(msgs), err, n)
	}
}

// A request whose context ends while it waits in the queue is not run.
func TestCanceledWhileQueued(t *testing.T) {
	s, _ := openTemp(t, Options{})
	a, b := mkUser(t, s, "alice"), mkUser(t, s, "bob")
	release := blockWriter(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := s.AppendMessage(ctx, msg(a, b, "1"))
		done <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("AppendMessage: %v, want context.Canceled", err)
	}
	release()
	// Wait for the writer to pass the canceled request.
	if err := s.write(t.Context(), func(*batch) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Conversation(t.Context(), a.ID, b.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the canceled message was written: %v", err)
	}
}

// The background checkpointer copies the log into the database file while
// the store runs (the writer itself checkpoints only past WALLimit, 64 MiB).
func TestCheckpointer(t *testing.T) {
	s, path := openTemp(t, Options{CheckpointInterval: 10 * time.Millisecond})
	a, b := mkUser(t, s, "alice"), mkUser(t, s, "bob")
	text := strings.Repeat("x", 1000)
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Go(func() {
			m := msg(a, b, fmt.Sprint(i))
			m.Text = text
			if _, _, err := s.AppendMessage(t.Context(), m); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= 500*1000 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file is %d bytes after 500 KB of messages: no checkpoint", fi.Size())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
