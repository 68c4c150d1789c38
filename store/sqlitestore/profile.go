package sqlitestore

import (
	"context"
	"fmt"
	"strings"

	"github.com/chatd/chatd/store"
)

// SetDisplayName replaces the user's display name, its search fold and
// keys, and its look-alike key.
func (s *Store) SetDisplayName(ctx context.Context, id, displayName, displayNameKey string) error {
	err := s.write(ctx, func(b *batch) error {
		res, err := b.execSQL(`UPDATE users SET display_name = ?, display_fold = ?, display_key = ? WHERE id = ?`,
			displayName, strings.ToLower(displayName), displayNameKey, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("no user %q: %w", id, store.ErrNotFound)
		}
		var username string
		if err := b.queryRowSQL(`SELECT username FROM users WHERE id = ?`, id).Scan(&username); err != nil {
			return err
		}
		return setSearchKeys(b, id, username, displayName)
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: set display name: %w", err)
	}
	return nil
}
