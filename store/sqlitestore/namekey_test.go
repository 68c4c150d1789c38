package sqlitestore

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/chatd/chatd/store"
)

// A database of schema version 1 (before the look-alike keys) opens, keeps
// its users, and gives them empty keys that match nothing.
func TestMigrationAddsNameKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations[0],
		"PRAGMA user_version = 1",
		`INSERT INTO users (id, username, display_name, display_fold, password_hash, created_at)
			VALUES ('u1', 'alice', 'Alice', 'alice', 'h', 1)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open a version 1 database: %v", err)
	}
	defer s.Close()
	u, err := s.UserByUsername(t.Context(), "alice")
	if err != nil || u.ID != "u1" || u.DisplayName != "Alice" || u.UsernameKey != "" || u.DisplayNameKey != "" {
		t.Fatalf("old user after migration: %+v, %v", u, err)
	}
	if _, err := s.UserByNameKey(t.Context(), []string{"", "alice"}, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserByNameKey on a keyless account: %v, want ErrNotFound", err)
	}
	// New accounts carry their keys.
	if err := s.CreateUser(t.Context(), store.User{ID: "u2", Username: "bob", DisplayName: "Bob", PasswordHash: "h",
		UsernameKey: "bob", DisplayNameKey: "bob"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.UserByNameKey(t.Context(), []string{"bob"}, ""); err != nil || got.ID != "u2" {
		t.Fatalf("UserByNameKey(bob) = %+v, %v", got, err)
	}
}
