package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// usersTests: the Users aggregate, accounts and search.
var usersTests = []contractTest{
	{"CreateAndGet", testUserCreateAndGet},
	{"DuplicateUsername", testUserDuplicate},
	{"NotFound", testUserNotFound},
	{"UsersByIDs", testUsersByIDs},
	{"Search", testSearchUsers},
	{"SearchSpecialCharacters", testSearchSpecialCharacters},
	{"SearchLimit", testSearchLimit},
	{"SearchWords", testSearchWords},
	{"UserByNameKey", testUserByNameKey},
	{"Delete", testDeleteUser},
	{"SetPasswordHash", testSetPasswordHash},
}

func testSetPasswordHash(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	if err := s.SetPasswordHash(ctx, alice.ID, "$argon2id$new"); err != nil {
		t.Fatalf("SetPasswordHash: %v", err)
	}
	got, err := s.UserByID(ctx, alice.ID)
	if err != nil || got.PasswordHash != "$argon2id$new" || got.Username != "alice" || got.DisplayName != "Alice" {
		t.Fatalf("after SetPasswordHash: %+v, %v", got, err)
	}
	if other, _ := s.UserByID(ctx, bob.ID); other.PasswordHash != bob.PasswordHash {
		t.Fatal("another user's hash changed")
	}
	wantErr(t, "SetPasswordHash(unknown)", s.SetPasswordHash(ctx, store.NewID(), "h"), store.ErrNotFound)
}

// Look-alike keys round-trip and are found by either name's key, never for
// the excluded user, and an empty key matches nothing.
func testUserByNameKey(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	mk := func(username, display, ukey, dkey string) store.User {
		u := store.User{ID: store.NewID(), Username: username, DisplayName: display, PasswordHash: "h",
			CreatedAt: at(0), UsernameKey: ukey, DisplayNameKey: dkey}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatalf("CreateUser(%s): %v", username, err)
		}
		return u
	}
	alice := mk("alice", "Alice Liddell", "alice", "alice liddell")
	bob := mk("bob", "Bob", "bob", "bob")
	newUser(t, s, "carol", "Carol") // stored without keys
	got, err := s.UserByID(ctx, alice.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	checkUser(t, got, alice)

	for _, tc := range []struct {
		what    string
		keys    []string
		exclude string
		want    store.User
	}{
		{"username key", []string{"alice"}, "", alice},
		{"display-name key", []string{"alice liddell"}, "", alice},
		{"one of several keys", []string{"nobody", "bob"}, "", bob},
		{"excluding another user", []string{"bob"}, alice.ID, bob},
	} {
		got, err := s.UserByNameKey(ctx, tc.keys, tc.exclude)
		if err != nil {
			t.Fatalf("%s: UserByNameKey(%q, %q): %v", tc.what, tc.keys, tc.exclude, err)
		}
		checkUser(t, got, tc.want)
	}
	for _, tc := range []struct {
		what    string
		keys    []string
		exclude string
	}{
		{"unknown key", []string{"mallory"}, ""},
		{"the excluded user's own key", []string{"alice", "alice liddell"}, alice.ID},
		{"an empty key, which the keyless account has", []string{""}, ""},
		{"no keys", nil, ""},
		{"a prefix of a key", []string{"ali"}, ""},
	} {
		_, err := s.UserByNameKey(ctx, tc.keys, tc.exclude)
		wantErr(t, tc.what, err, store.ErrNotFound)
	}
	if got, err := s.UserByUsername(ctx, "carol"); err != nil || got.UsernameKey != "" || got.DisplayNameKey != "" {
		t.Fatalf("keyless account: %+v, %v; want empty keys", got, err)
	}
}

// DeleteUser leaves a tombstone with the id, frees the username, and no
// password matches it any more.
func testDeleteUser(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	if err := s.DeleteUser(ctx, alice.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	got, err := s.UserByID(ctx, alice.ID)
	if err != nil {
		t.Fatalf("UserByID(tombstone): %v", err)
	}
	if got.Username != store.DeletedUsername(alice.ID) || got.DisplayName != store.DeletedDisplayName ||
		got.PasswordHash != "" || !got.CreatedAt.Equal(alice.CreatedAt) || got.UsernameKey != "" || got.DisplayNameKey != "" {
		t.Fatalf("tombstone = %+v", got)
	}
	_, err = s.UserByUsername(ctx, "alice")
	wantErr(t, "UserByUsername(deleted name)", err, store.ErrNotFound)
	// The name is free again, and a second tombstone does not clash.
	newUser(t, s, "alice", "Alice the second")
	if err := s.DeleteUser(ctx, bob.ID); err != nil {
		t.Fatalf("DeleteUser(bob): %v", err)
	}
	if err := s.DeleteUser(ctx, alice.ID); err != nil {
		t.Fatalf("DeleteUser(tombstone again): %v", err)
	}
	err = s.DeleteUser(ctx, store.NewID())
	wantErr(t, "DeleteUser(unknown)", err, store.ErrNotFound)
}

func testUserCreateAndGet(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := store.User{
		ID:           store.NewID(),
		Username:     "alice",
		DisplayName:  "Alice Liddell",
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA",
		CreatedAt:    time.Date(2026, 11, 27, 10, 0, 0, 123_000_000, time.UTC),
	}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	checkUser(t, got, u)
	got, err = s.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	checkUser(t, got, u)
}

func testUserDuplicate(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	first := newUser(t, s, "alice", "First")
	err := s.CreateUser(ctx, store.User{
		ID: store.NewID(), Username: "alice", DisplayName: "Second", PasswordHash: "x", CreatedAt: at(1),
	})
	wantErr(t, "CreateUser with a taken username", err, store.ErrConflict)
	got, err := s.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	checkUser(t, got, first)
	// Another username is still fine after the conflict.
	newUser(t, s, "alice2", "Third")
}

func testUserNotFound(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	newUser(t, s, "alice", "Alice")
	_, err := s.UserByID(ctx, store.NewID())
	wantErr(t, "UserByID(unknown)", err, store.ErrNotFound)
	_, err = s.UserByUsername(ctx, "bob")
	wantErr(t, "UserByUsername(unknown)", err, store.ErrNotFound)
}

func testUsersByIDs(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	newUser(t, s, "carol", "Carol")

	got, err := s.UsersByIDs(ctx, []string{b.ID, store.NewID(), a.ID, "no-such-id"})
	if err != nil {
		t.Fatalf("UsersByIDs: %v", err)
	}
	slices.SortFunc(got, func(x, y store.User) int { return strings.Compare(x.Username, y.Username) })
	if len(got) != 2 {
		t.Fatalf("UsersByIDs = %v, want alice and bob", usernames(got))
	}
	checkUser(t, got[0], a)
	checkUser(t, got[1], b)

	got, err = s.UsersByIDs(ctx, []string{store.NewID()})
	if err != nil || len(got) != 0 {
		t.Fatalf("UsersByIDs(unknown) = %v, %v; want none, nil", usernames(got), err)
	}
	got, err = s.UsersByIDs(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("UsersByIDs(nil) = %v, %v; want none, nil", usernames(got), err)
	}
}

func testSearchUsers(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	me := newUser(t, s, "alex", "Me Myself") // the caller, matches "al"
	newUser(t, s, "alice", "Alice Liddell")
	newUser(t, s, "albert", "Bert")
	newUser(t, s, "zed", "ALfred Zed") // display name matches "al"
	newUser(t, s, "bob", "Bob Alder")  // "al" starts the display name's second word
	newUser(t, s, "carol", "Carol")
	newUser(t, s, "malory", "Mal") // "al" inside the username and the display name: no match

	cases := []struct {
		prefix string
		want   []string
	}{
		{"al", []string{"albert", "alice", "bob", "zed"}},
		{"AL", []string{"albert", "alice", "bob", "zed"}},
		{"Ali", []string{"alice"}},
		{"alice", []string{"alice"}},
		{"alice liddell", []string{"alice"}},
		{"alicex", nil},
		{"bert", []string{"albert"}},
		{"m", []string{"malory"}},  // "Me Myself" is the caller
		{"lid", []string{"alice"}}, // the start of a word
		{"iddell", nil},            // inside a word
		{"lory", nil},
		{"x", nil},
		{"", []string{"albert", "alice", "bob", "carol", "malory", "zed"}},
	}
	for _, c := range cases {
		got, err := s.SearchUsers(ctx, c.prefix, me.ID, 50)
		if err != nil {
			t.Fatalf("SearchUsers(%q): %v", c.prefix, err)
		}
		if names := usernames(got); !slices.Equal(names, c.want) {
			t.Errorf("SearchUsers(%q) = %v, want %v", c.prefix, names, c.want)
		}
	}
	// The result carries whole users.
	got, err := s.SearchUsers(ctx, "alice", me.ID, 50)
	if err != nil || len(got) != 1 {
		t.Fatalf("SearchUsers(alice) = %v, %v", usernames(got), err)
	}
	if got[0].ID == "" || got[0].DisplayName != "Alice Liddell" {
		t.Errorf("SearchUsers(alice) = %+v, want id and display name set", got[0])
	}
	// Without an exclusion the caller is found too.
	got, err = s.SearchUsers(ctx, "ale", "", 50)
	if err != nil {
		t.Fatalf("SearchUsers(ale): %v", err)
	}
	if names := usernames(got); !slices.Equal(names, []string{"alex"}) {
		t.Errorf("SearchUsers(ale, no exclusion) = %v, want [alex]", names)
	}
}

// Username characters that are special to LIKE, GLOB or regular expressions
// must match literally.
func testSearchSpecialCharacters(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for _, name := range []string{"a.b", "axb", "a_b", "acb", "a-b", "a%b", "a*b", "a[b"} {
		newUser(t, s, name, "User "+name)
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"a.", []string{"a.b"}},
		{"a_", []string{"a_b"}},
		{"a-", []string{"a-b"}},
		{"a%", []string{"a%b"}},
		{"a*", []string{"a*b"}},
		{"a[", []string{"a[b"}},
		{".", nil},
		{"user a.", []string{"a.b"}},
	}
	for _, c := range cases {
		got, err := s.SearchUsers(ctx, c.prefix, "", 50)
		if err != nil {
			t.Fatalf("SearchUsers(%q): %v", c.prefix, err)
		}
		if names := usernames(got); !slices.Equal(names, c.want) {
			t.Errorf("SearchUsers(%q) = %v, want %v", c.prefix, names, c.want)
		}
	}
}

func testSearchLimit(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for i := 9; i >= 0; i-- { // created out of order on purpose
		newUser(t, s, fmt.Sprintf("user%02d", i), fmt.Sprintf("User %d", i))
	}
	got, err := s.SearchUsers(ctx, "user", "", 3)
	if err != nil {
		t.Fatalf("SearchUsers: %v", err)
	}
	if names := usernames(got); !slices.Equal(names, []string{"user00", "user01", "user02"}) {
		t.Errorf("SearchUsers(limit 3) = %v, want the first three by username", names)
	}
	got, err = s.SearchUsers(ctx, "", "", 4)
	if err != nil {
		t.Fatalf("SearchUsers: %v", err)
	}
	if names := usernames(got); !slices.Equal(names, []string{"user00", "user01", "user02", "user03"}) {
		t.Errorf("SearchUsers(\"\", limit 4) = %v", names)
	}
}

// Search matches the start of any word of the username or the display
// name (api.md 1.1, issue 10: "Builder" finds "Bob Builder"), and follows
// renames and deletions.
func testSearchWords(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	bob := newUser(t, s, "bob", "Bob Builder")
	newUser(t, s, "dan.the.man", "Daniel")
	carol := newUser(t, s, "carol", "Carol Ann Smith")
	newUser(t, s, "dave", "داود 🚀 Dave")
	check := func(prefix string, want ...string) {
		t.Helper()
		got, err := s.SearchUsers(ctx, prefix, "", 50)
		if err != nil {
			t.Fatalf("SearchUsers(%q): %v", prefix, err)
		}
		if names := usernames(got); !slices.Equal(names, want) && (len(names) != 0 || len(want) != 0) {
			t.Errorf("SearchUsers(%q) = %v, want %v", prefix, names, want)
		}
	}
	check("Builder", "bob")
	check("bui", "bob")
	check("uilder")
	check("the", "dan.the.man")
	check("man", "dan.the.man")
	check("ann s", "carol")
	check("smith", "carol")
	check("da", "dan.the.man", "dave")
	check("داو", "dave")
	check("🚀")
	if err := s.SetDisplayName(ctx, bob.ID, "Robert Plant", ""); err != nil {
		t.Fatal(err)
	}
	check("builder")
	check("plant", "bob")
	check("bob", "bob")
	if err := s.DeleteUser(ctx, carol.ID); err != nil {
		t.Fatal(err)
	}
	check("smith")
	check("carol")
}
