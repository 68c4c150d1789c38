package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// sessionsTests: the Sessions aggregate, logins, refresh rotation, revocation.
var sessionsTests = []contractTest{
	{"CreateAndGet", testSessionCreateAndGet},
	{"RotateRefresh", testRotateRefresh},
	{"RotateRefreshRevoked", testRotateRefreshRevoked},
	{"RotateRefreshConcurrent", testRotateRefreshConcurrent},
	{"Revoke", testRevokeSession},
	{"Prune", testPruneSessions},
}

func newSession(t *testing.T, s store.Store, u store.User, hash string) store.Session {
	t.Helper()
	sess := store.Session{
		ID:          store.NewID(),
		UserID:      u.ID,
		RefreshHash: hash,
		CreatedAt:   at(10).Add(456 * time.Millisecond),
		ExpiresAt:   at(3600).Add(789 * time.Millisecond),
	}
	if err := s.CreateSession(ctxFor(t), sess); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return sess
}

func getSession(t *testing.T, s store.Store, id string) store.Session {
	t.Helper()
	got, err := s.SessionByID(ctxFor(t), id)
	if err != nil {
		t.Fatalf("SessionByID: %v", err)
	}
	return got
}

func testSessionCreateAndGet(t *testing.T, s store.Store) {
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-1")
	got := getSession(t, s, sess.ID)
	if got.ID != sess.ID || got.UserID != u.ID || got.RefreshHash != "hash-1" || got.PrevRefreshHash != "" ||
		!got.CreatedAt.Equal(sess.CreatedAt) || !got.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("SessionByID = %+v, want %+v", got, sess)
	}
	if got.Revoked() || !got.RevokedAt.IsZero() {
		t.Fatalf("new session revoked: %+v", got)
	}
	_, err := s.SessionByID(ctxFor(t), store.NewID())
	wantErr(t, "SessionByID(unknown)", err, store.ErrNotFound)
}

func testRotateRefresh(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-1")
	exp2 := at(7200).Add(321 * time.Millisecond)
	if err := s.RotateRefresh(ctx, sess.ID, "hash-1", "hash-2", exp2); err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	got := getSession(t, s, sess.ID)
	if got.RefreshHash != "hash-2" || got.PrevRefreshHash != "hash-1" || !got.ExpiresAt.Equal(exp2) {
		t.Fatalf("after rotation: %+v; want hash-2, prev hash-1, expires %v", got, exp2)
	}
	if !got.CreatedAt.Equal(sess.CreatedAt) || got.UserID != u.ID || got.Revoked() {
		t.Fatalf("rotation changed other fields: %+v", got)
	}

	// The replaced hash is no longer current.
	err := s.RotateRefresh(ctx, sess.ID, "hash-1", "hash-x", at(9000))
	wantErr(t, "RotateRefresh with the previous hash", err, store.ErrConflict)
	err = s.RotateRefresh(ctx, sess.ID, "never-issued", "hash-x", at(9000))
	wantErr(t, "RotateRefresh with a wrong hash", err, store.ErrConflict)
	got = getSession(t, s, sess.ID)
	if got.RefreshHash != "hash-2" || got.PrevRefreshHash != "hash-1" || !got.ExpiresAt.Equal(exp2) {
		t.Fatalf("a failed rotation changed the session: %+v", got)
	}

	// The chain goes on.
	exp3 := at(10800)
	if err := s.RotateRefresh(ctx, sess.ID, "hash-2", "hash-3", exp3); err != nil {
		t.Fatalf("second RotateRefresh: %v", err)
	}
	got = getSession(t, s, sess.ID)
	if got.RefreshHash != "hash-3" || got.PrevRefreshHash != "hash-2" || !got.ExpiresAt.Equal(exp3) {
		t.Fatalf("after the second rotation: %+v", got)
	}

	err = s.RotateRefresh(ctx, store.NewID(), "hash-1", "hash-2", exp2)
	wantErr(t, "RotateRefresh(unknown session)", err, store.ErrNotFound)
}

func testRotateRefreshRevoked(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-1")
	if err := s.RevokeSession(ctx, sess.ID, at(100)); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	err := s.RotateRefresh(ctx, sess.ID, "hash-1", "hash-2", at(7200))
	wantErr(t, "RotateRefresh on a revoked session", err, store.ErrConflict)
	got := getSession(t, s, sess.ID)
	if got.RefreshHash != "hash-1" || !got.Revoked() {
		t.Fatalf("after a refused rotation: %+v", got)
	}
}

// Of concurrent rotations from the same hash exactly one wins.
func testRotateRefreshConcurrent(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-0")
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.RotateRefresh(ctx, sess.ID, "hash-0", fmt.Sprintf("hash-new-%d", i), at(7200))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("rotations %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("rotation %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation succeeded")
	}
	got := getSession(t, s, sess.ID)
	if want := fmt.Sprintf("hash-new-%d", winner); got.RefreshHash != want || got.PrevRefreshHash != "hash-0" {
		t.Fatalf("session = %+v, want refresh %s and prev hash-0", got, want)
	}
}

func testRevokeSession(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-1")
	other := newSession(t, s, u, "hash-other")
	first := at(100).Add(250 * time.Millisecond)
	if err := s.RevokeSession(ctx, sess.ID, first); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	got := getSession(t, s, sess.ID)
	if !got.Revoked() || !got.RevokedAt.Equal(first) {
		t.Fatalf("after revocation: %+v, want revoked at %v", got, first)
	}
	if err := s.RevokeSession(ctx, sess.ID, at(200)); err != nil {
		t.Fatalf("second RevokeSession: %v, want nil", err)
	}
	got = getSession(t, s, sess.ID)
	if !got.RevokedAt.Equal(first) {
		t.Fatalf("second revocation changed the time: %v, want %v", got.RevokedAt, first)
	}
	if getSession(t, s, other.ID).Revoked() {
		t.Fatal("revoking one session revoked another")
	}
	err := s.RevokeSession(ctx, store.NewID(), at(100))
	wantErr(t, "RevokeSession(unknown)", err, store.ErrNotFound)
}
