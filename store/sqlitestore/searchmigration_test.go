package sqlitestore

import "testing"

// The users of a database from before the search keys are found by the
// start of any word once it is opened, and the backfill runs once.
func TestMigrationSearchKeys(t *testing.T) {
	path, at := oldDatabase(t, "CREATE TABLE user_search",
		`INSERT INTO users (id, username, display_name, display_fold, password_hash, created_at) VALUES
			('b', 'bob', 'Bob Builder', 'bob builder', 'h', 1), ('c', 'carol_x', 'Carol', 'carol', 'h', 1)`)
	for range 2 { // the second Open finds nothing left to do
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("Open a version %d database: %v", at, err)
		}
		for q, want := range map[string]string{"builder": "bob", "x": "carol_x", "car": "carol_x"} {
			got, err := s.SearchUsers(t.Context(), q, "", 10)
			if err != nil || len(got) != 1 || got[0].Username != want {
				t.Errorf("SearchUsers(%q) after the migration = %+v, %v; want %s", q, got, err, want)
			}
		}
		var left int
		if err := s.rdb.QueryRow(`SELECT count(*) FROM backfills`).Scan(&left); err != nil || left != 0 {
			t.Fatalf("backfills left: %d, %v", left, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
