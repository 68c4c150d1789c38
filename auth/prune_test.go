package auth

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/sqlitestore"
)

// The pruner deletes, round after round, the sessions that ended more than
// session_retention ago, keeps the others, and stops when asked.
func TestSessionPrunerDeletesEndedSessions(t *testing.T) {
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "chatd.db"), sqlitestore.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := t.Context()
	now := time.Now()
	u := store.User{ID: store.NewID(), Username: "alice", DisplayName: "Alice", PasswordHash: "x", CreatedAt: now}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	session := func(expires time.Time) string {
		s := store.Session{ID: store.NewID(), UserID: u.ID, RefreshHash: store.NewID(), CreatedAt: now.Add(-30 * 24 * time.Hour), ExpiresAt: expires}
		if err := st.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	cfg := DefaultConfig()
	cfg.SessionRetention = 24 * time.Hour
	cfg.SessionPruneInterval = 20 * time.Millisecond
	active := session(now.Add(time.Hour))
	expiredYesterdayMorning := session(now.Add(-25 * time.Hour))
	expiredAnHourAgo := session(now.Add(-time.Hour)) // within the retention: kept
	revokedLongAgo := session(now.Add(time.Hour))
	if err := st.RevokeSession(ctx, revokedLongAgo, now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}

	p := NewSessionPruner(st, cfg, nil)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	gone := func(id string) bool {
		_, err := st.SessionByID(ctx, id)
		return errors.Is(err, store.ErrNotFound)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !gone(expiredYesterdayMorning) || !gone(revokedLongAgo) {
		if time.Now().After(deadline) {
			t.Fatal("the pruner did not delete the sessions that ended before the retention")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A session that ends later is pruned by a later round.
	late := session(now.Add(-30 * time.Hour))
	for !gone(late) {
		if time.Now().After(deadline) {
			t.Fatal("a later round did not delete a session that ended before the retention")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Stop(stopCtx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, id := range []string{active, expiredAnHourAgo} {
		if gone(id) {
			t.Errorf("session %s within the retention was deleted", id)
		}
	}
}
