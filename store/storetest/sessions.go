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
	{"AccountFields", testSessionAccountFields},
	{"ByUser", testSessionsByUser},
}

// rotation is a Rotation from oldHash to newHash expiring at exp, one
// generation on, at base+1h.
func rotation(oldHash, newHash string, exp time.Time) store.Rotation {
	return store.Rotation{OldHash: oldHash, NewHash: newHash, Generation: 1, ExpiresAt: exp, At: at(3600)}
}

func newSession(t *testing.T, s store.Store, u store.User, hash string) store.Session {
	t.Helper()
	sess := store.Session{
		ID:          store.NewID(),
		UserID:      u.ID,
		RefreshHash: hash,
		CreatedAt:   at(10).Add(456 * time.Millisecond),
		ExpiresAt:   at(3600).Add(789 * time.Millisecond),
		LastUsedAt:  at(10).Add(456 * time.Millisecond),
		UserAgent:   "Mozilla/5.0 (test)",
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
	if err := s.RotateRefresh(ctx, sess.ID, rotation("hash-1", "hash-2", exp2)); err != nil {
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
	err := s.RotateRefresh(ctx, sess.ID, rotation("hash-1", "hash-x", at(9000)))
	wantErr(t, "RotateRefresh with the previous hash", err, store.ErrConflict)
	err = s.RotateRefresh(ctx, sess.ID, rotation("never-issued", "hash-x", at(9000)))
	wantErr(t, "RotateRefresh with a wrong hash", err, store.ErrConflict)
	got = getSession(t, s, sess.ID)
	if got.RefreshHash != "hash-2" || got.PrevRefreshHash != "hash-1" || !got.ExpiresAt.Equal(exp2) {
		t.Fatalf("a failed rotation changed the session: %+v", got)
	}

	// The chain goes on.
	exp3 := at(10800)
	if err := s.RotateRefresh(ctx, sess.ID, rotation("hash-2", "hash-3", exp3)); err != nil {
		t.Fatalf("second RotateRefresh: %v", err)
	}
	got = getSession(t, s, sess.ID)
	if got.RefreshHash != "hash-3" || got.PrevRefreshHash != "hash-2" || !got.ExpiresAt.Equal(exp3) {
		t.Fatalf("after the second rotation: %+v", got)
	}

	err = s.RotateRefresh(ctx, store.NewID(), rotation("hash-1", "hash-2", exp2))
	wantErr(t, "RotateRefresh(unknown session)", err, store.ErrNotFound)
}

func testRotateRefreshRevoked(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-1")
	if err := s.RevokeSession(ctx, sess.ID, at(100)); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	err := s.RotateRefresh(ctx, sess.ID, rotation("hash-1", "hash-2", at(7200)))
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
			errs[i] = s.RotateRefresh(ctx, sess.ID, rotation("hash-0", fmt.Sprintf("hash-new-%d", i), at(7200)))
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

// The session list's fields: Generation, LastUsedAt and UserAgent are kept
// as created, and a rotation sets Generation and LastUsedAt.
func testSessionAccountFields(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := newUser(t, s, "alice", "Alice")
	sess := newSession(t, s, u, "hash-1")
	got := getSession(t, s, sess.ID)
	if got.Generation != 0 || !got.LastUsedAt.Equal(sess.LastUsedAt) || got.UserAgent != sess.UserAgent {
		t.Fatalf("SessionByID = %+v, want generation 0, last used %v, user agent %q", got, sess.LastUsedAt, sess.UserAgent)
	}
	used := at(5000).Add(123 * time.Millisecond)
	err := s.RotateRefresh(ctx, sess.ID, store.Rotation{OldHash: "hash-1", NewHash: "hash-2", Generation: 1, ExpiresAt: at(9000), At: used})
	if err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	err = s.RotateRefresh(ctx, sess.ID, store.Rotation{OldHash: "hash-2", NewHash: "hash-3", Generation: 2, ExpiresAt: at(9500), At: used.Add(time.Second)})
	if err != nil {
		t.Fatalf("second RotateRefresh: %v", err)
	}
	got = getSession(t, s, sess.ID)
	if got.Generation != 2 || !got.LastUsedAt.Equal(used.Add(time.Second)) || got.UserAgent != sess.UserAgent ||
		!got.CreatedAt.Equal(sess.CreatedAt) || got.RefreshHash != "hash-3" || got.PrevRefreshHash != "hash-2" {
		t.Fatalf("after two rotations: %+v", got)
	}
	// A refused rotation changes none of them.
	err = s.RotateRefresh(ctx, sess.ID, store.Rotation{OldHash: "hash-1", NewHash: "hash-x", Generation: 9, ExpiresAt: at(9999), At: at(9999)})
	wantErr(t, "RotateRefresh with an old hash", err, store.ErrConflict)
	if again := getSession(t, s, sess.ID); again.Generation != 2 || !again.LastUsedAt.Equal(got.LastUsedAt) {
		t.Fatalf("a refused rotation changed the session: %+v", again)
	}
}

func testSessionsByUser(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	a1 := newSession(t, s, alice, "a1")
	a2 := newSession(t, s, alice, "a2")
	newSession(t, s, bob, "b1")
	if err := s.RevokeSession(ctx, a2.ID, at(100)); err != nil {
		t.Fatal(err)
	}
	got, err := s.SessionsByUser(ctx, alice.ID)
	if err != nil {
		t.Fatalf("SessionsByUser: %v", err)
	}
	byID := map[string]store.Session{}
	for _, sess := range got {
		byID[sess.ID] = sess
	}
	if len(got) != 2 || len(byID) != 2 {
		t.Fatalf("SessionsByUser(alice) = %+v, want her 2 sessions", got)
	}
	if g := byID[a1.ID]; g.UserID != alice.ID || g.Revoked() || g.UserAgent != a1.UserAgent || !g.CreatedAt.Equal(a1.CreatedAt) {
		t.Fatalf("active session listed as %+v", g)
	}
	if g := byID[a2.ID]; !g.Revoked() || !g.RevokedAt.Equal(at(100)) {
		t.Fatalf("revoked session listed as %+v", g)
	}
	none, err := s.SessionsByUser(ctx, store.NewID())
	if err != nil || len(none) != 0 {
		t.Fatalf("SessionsByUser(unknown) = %v, %v; want an empty list", none, err)
	}
}
