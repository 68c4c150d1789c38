package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

func TestPrepareMessage(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	m, err := store.PrepareMessage(store.Message{ID: "id1", From: "b", To: "a", Text: "hi", CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 12, 1, 9, 0, 0, 123000000, time.UTC)
	if m.ConversationID != "a.b" || m.ID != "id1" || m.Text != "hi" || !m.CreatedAt.Equal(want) || m.CreatedAt.Location() != time.UTC {
		t.Fatalf("PrepareMessage = %+v; want conversation a.b, id id1, created %v", m, want)
	}

	before := time.Now().Add(-time.Millisecond)
	m, err = store.PrepareMessage(store.Message{From: "a", To: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID == "" || m.CreatedAt.Before(before) || m.CreatedAt.Location() != time.UTC || m.CreatedAt.Nanosecond()%1e6 != 0 {
		t.Fatalf("defaults: %+v; want a fresh id and now in UTC to the millisecond", m)
	}

	for _, bad := range []store.Message{{From: "a", To: "a"}, {From: "a"}, {To: "b"}, {}} {
		if _, err := store.PrepareMessage(bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PrepareMessage(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

// steps returns the apply and current functions of a conditional write,
// each recording its call.
func steps(changed bool, applyErr error, sess store.Session, readErr error, calls *[]string) (func() (bool, error), func() (store.Session, error)) {
	return func() (bool, error) {
			*calls = append(*calls, "apply")
			return changed, applyErr
		}, func() (store.Session, error) {
			*calls = append(*calls, "read")
			return sess, readErr
		}
}

func TestRunRotation(t *testing.T) {
	boom := errors.New("boom")
	revoked := store.Session{RefreshHash: "old", RevokedAt: time.Unix(1, 0)}
	for _, tc := range []struct {
		name      string
		changed   bool
		applyErr  error
		sess      store.Session
		readErr   error
		want      error // nil: success
		wantCalls int
	}{
		{"applied", true, nil, store.Session{}, nil, nil, 1},
		{"apply failed", false, boom, store.Session{}, nil, boom, 1},
		{"no session", false, nil, store.Session{}, store.ErrNotFound, store.ErrNotFound, 2},
		{"read failed", false, nil, store.Session{}, boom, boom, 2},
		{"revoked", false, nil, revoked, nil, store.ErrConflict, 2},
		{"hash replaced", false, nil, store.Session{RefreshHash: "new"}, nil, store.ErrConflict, 2},
		{"hash still current", false, nil, store.Session{RefreshHash: "old"}, nil, store.ErrConflict, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			apply, current := steps(tc.changed, tc.applyErr, tc.sess, tc.readErr, &calls)
			err := store.RunRotation(apply, current, "old")
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("RunRotation = %v, want %v", err, tc.want)
			}
			if len(calls) != tc.wantCalls {
				t.Fatalf("steps run: %v, want %d", calls, tc.wantCalls)
			}
		})
	}
}

func TestRunRevocation(t *testing.T) {
	boom := errors.New("boom")
	revoked := store.Session{RevokedAt: time.Unix(1, 0)}
	for _, tc := range []struct {
		name      string
		changed   bool
		applyErr  error
		sess      store.Session
		readErr   error
		wantErr   bool
		wantIs    error
		wantCalls int
	}{
		{"applied", true, nil, store.Session{}, nil, false, nil, 1},
		{"apply failed", false, boom, store.Session{}, nil, true, boom, 1},
		{"revoked already", false, nil, revoked, nil, false, nil, 2},
		{"no session", false, nil, store.Session{}, store.ErrNotFound, true, store.ErrNotFound, 2},
		{"read failed", false, nil, store.Session{}, boom, true, boom, 2},
		// A backend whose apply changed nothing on an active session broke
		// its contract: that must not pass for a revocation.
		{"active and unchanged", false, nil, store.Session{}, nil, true, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			apply, current := steps(tc.changed, tc.applyErr, tc.sess, tc.readErr, &calls)
			err := store.RunRevocation(apply, current)
			if (err != nil) != tc.wantErr || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) {
				t.Fatalf("RunRevocation = %v, want error %v (%v)", err, tc.wantErr, tc.wantIs)
			}
			if len(calls) != tc.wantCalls {
				t.Fatalf("steps run: %v, want %d", calls, tc.wantCalls)
			}
		})
	}
}

func TestSearchKeys(t *testing.T) {
	for _, c := range []struct {
		username, display string
		want              []string
	}{
		{"bob", "Bob Builder", []string{"bob", "bob builder", "builder"}},
		{"bob_b", "Bob", []string{"bob_b", "b", "bob"}},
		{"dave", "داود 🚀 Dave", []string{"dave", "داود 🚀 dave"}},
		{"a.b", "User a.b", []string{"a.b", "b", "user a.b"}},
		{"x", "", []string{"x"}},
		{"émile", "Émile Zola", []string{"émile", "émile zola", "zola"}},
	} {
		if got := store.SearchKeys(c.username, c.display); !slices.Equal(got, c.want) {
			t.Errorf("SearchKeys(%q, %q) = %q, want %q", c.username, c.display, got, c.want)
		}
	}
	many := store.SearchKeys("u", strings.Repeat("w ", 100))
	if len(many) != store.MaxSearchKeys {
		t.Errorf("%d keys for a name of 100 words, want %d", len(many), store.MaxSearchKeys)
	}
}
