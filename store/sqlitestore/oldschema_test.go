package sqlitestore

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// oldDatabase makes a database file of the schema version before the
// migration whose text contains marker, runs stmts on it, and returns the
// file's path and that version, for the migration tests.
func oldDatabase(t *testing.T, marker string, stmts ...string) (string, int) {
	t.Helper()
	at := -1
	for i, m := range migrations {
		if strings.Contains(m, marker) {
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("no migration contains %q", marker)
	}
	path := filepath.Join(t.TempDir(), "chatd.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	queries := append(append([]string{}, migrations[:at]...), fmt.Sprintf("PRAGMA user_version = %d", at))
	for _, q := range append(queries, stmts...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, at
}
