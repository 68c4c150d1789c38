package storetest

import (
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// testPruneSessions: PruneSessions deletes the sessions whose refresh token
// expired, or that were revoked, before the cut-off, and nothing else; a
// second run finds nothing; a deleted session is ErrNotFound everywhere.
func testPruneSessions(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	mk := func(hash string, expires time.Time) store.Session {
		t.Helper()
		sess := store.Session{ID: store.NewID(), UserID: u.ID, RefreshHash: hash, CreatedAt: at(10), ExpiresAt: expires}
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		return sess
	}
	revoke := func(sess store.Session, when time.Time) {
		t.Helper()
		if err := s.RevokeSession(ctx, sess.ID, when); err != nil {
			t.Fatalf("RevokeSession: %v", err)
		}
	}
	cutoff := at(900)
	active := mk("active", at(3600))
	expiredLongAgo := mk("expired-old", at(100))
	expiredAtCutoff := mk("expired-at-cutoff", cutoff) // not before it: kept
	expiredRecently := mk("expired-recent", at(950))
	revokedLongAgo := mk("revoked-old", at(3600))
	revoke(revokedLongAgo, at(200))
	revokedRecently := mk("revoked-recent", at(3600))
	revoke(revokedRecently, at(980))
	// A rotated session that then expired: its rotation bookkeeping goes too.
	rotated := mk("rotated-0", at(300))
	if err := s.RotateRefresh(ctx, rotated.ID, rotation("rotated-0", "rotated-1", at(400))); err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}

	n, err := s.PruneSessions(ctx, cutoff)
	if err != nil {
		t.Fatalf("PruneSessions: %v", err)
	}
	if n != 3 {
		t.Errorf("PruneSessions deleted %d sessions, want 3", n)
	}
	for _, gone := range []store.Session{expiredLongAgo, revokedLongAgo, rotated} {
		_, err := s.SessionByID(ctx, gone.ID)
		wantErr(t, "SessionByID(pruned "+gone.RefreshHash+")", err, store.ErrNotFound)
		err = s.RevokeSession(ctx, gone.ID, at(1000))
		wantErr(t, "RevokeSession(pruned "+gone.RefreshHash+")", err, store.ErrNotFound)
	}
	for _, kept := range []store.Session{active, expiredAtCutoff, expiredRecently} {
		if got := getSession(t, s, kept.ID); got.RefreshHash != kept.RefreshHash || got.Revoked() {
			t.Errorf("kept session %s = %+v", kept.RefreshHash, got)
		}
	}
	if got := getSession(t, s, revokedRecently.ID); !got.Revoked() || !got.RevokedAt.Equal(at(980)) {
		t.Errorf("recently revoked session = %+v, want revoked at %v", got, at(980))
	}
	// The kept sessions still work.
	if err := s.RotateRefresh(ctx, active.ID, rotation("active", "active-2", at(7200))); err != nil {
		t.Errorf("RotateRefresh on a kept session: %v", err)
	}

	if n, err := s.PruneSessions(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("second PruneSessions = %d, %v; want 0, nil", n, err)
	}
	// A later cut-off takes the rest that ended before it.
	if n, err := s.PruneSessions(ctx, at(1000)); err != nil || n != 3 {
		t.Errorf("PruneSessions(later) = %d, %v; want 3 (expired at the cut-off, expired and revoked recently)", n, err)
	}
	if got := getSession(t, s, active.ID); got.RefreshHash != "active-2" {
		t.Errorf("active session after the second prune = %+v", got)
	}
}
