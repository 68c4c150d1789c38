package app

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/sqlitestore"
)

// The auth role runs the session pruner: a session that ended long ago
// is deleted by the running process, an active one is kept.
func TestAuthRolePrunesEndedSessions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chatd.db")
	st, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	u := store.User{ID: store.NewID(), Username: "alice", DisplayName: "Alice", PasswordHash: "x", CreatedAt: now}
	old := store.Session{ID: store.NewID(), UserID: u.ID, RefreshHash: "old", CreatedAt: now.AddDate(0, -2, 0), ExpiresAt: now.AddDate(0, -1, 0)}
	active := store.Session{ID: store.NewID(), UserID: u.ID, RefreshHash: "active", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	for _, s := range []store.Session{old, active} {
		if err := st.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	cfg := DefaultConfig()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.OpsAddr = "127.0.0.1:0" // tests run side by side; the default port would collide
	cfg.DataDir = dir
	cfg.Log.Level = "warn"
	cfg.Auth.SessionPruneInterval = time.Second
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := a.store.SessionByID(ctx, old.ID)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ended session is still there: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := a.store.SessionByID(ctx, active.ID); err != nil {
		t.Fatalf("active session: %v", err)
	}
}
