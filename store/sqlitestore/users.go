package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/chatd/chatd/store"
)

// CreateUser inserts u; ErrConflict if the username (or id) is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	err := s.write(ctx, func(b *batch) error {
		_, err := b.exec(wInsertUser, u.ID, u.Username, u.DisplayName, strings.ToLower(u.DisplayName),
			u.PasswordHash, millis(u.CreatedAt), u.UsernameKey, u.DisplayNameKey)
		if isUniqueViolation(err) {
			return fmt.Errorf("username %q (or id) taken: %w", u.Username, store.ErrConflict)
		}
		if err != nil {
			return err
		}
		return setSearchKeys(b, u.ID, u.Username, u.DisplayName)
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: create user: %w", err)
	}
	return nil
}

// SetPasswordHash replaces the user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, id, hash string) error {
	err := s.write(ctx, func(b *batch) error {
		changed, err := b.execChanged(wSetPassword, hash, id)
		if err == nil && !changed {
			err = fmt.Errorf("no user %q: %w", id, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: set password: %w", err)
	}
	return nil
}

// DeleteUser turns the user into its tombstone (store.Users.DeleteUser).
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	err := s.write(ctx, func(b *batch) error {
		changed, err := b.execChanged(wDeleteUser, store.DeletedUsername(id), store.DeletedDisplayName,
			strings.ToLower(store.DeletedDisplayName), id)
		if err == nil && !changed {
			err = fmt.Errorf("no user %q: %w", id, store.ErrNotFound)
		}
		if err == nil {
			_, err = b.execSQL(`DELETE FROM push_subscriptions WHERE user_id = ?`, id)
		}
		if err == nil {
			_, err = b.execSQL(`DELETE FROM mutes WHERE user_id = ?`, id)
		}
		if err != nil {
			return err
		}
		return setSearchKeys(b, id, store.DeletedUsername(id), store.DeletedDisplayName)
	})
	s.pushSubs.forget(id)
	if err != nil {
		return fmt.Errorf("sqlitestore: delete user: %w", err)
	}
	return nil
}

// UserByID returns the user or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.rstmts[rUserByID].QueryRowContext(ctx, id))
	if err != nil {
		return store.User{}, fmt.Errorf("sqlitestore: user by id: %w", wrapCtx(ctx, err))
	}
	return u, nil
}

// UserByUsername returns the user or ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.rstmts[rUserByUsername].QueryRowContext(ctx, username))
	if err != nil {
		return store.User{}, fmt.Errorf("sqlitestore: user by username: %w", wrapCtx(ctx, err))
	}
	return u, nil
}

// UsersByIDs returns the users that exist among ids.
func (s *Store) UsersByIDs(ctx context.Context, ids []string) ([]store.User, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) == 1 {
		// The common list of one conversation: the primary key lookup,
		// without json_each's marshalling and virtual table.
		u, err := scanUser(s.rstmts[rUserByID].QueryRowContext(ctx, ids[0]))
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("sqlitestore: users by ids: %w", wrapCtx(ctx, err))
		}
		return []store.User{u}, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: users by ids: %w", err)
	}
	rows, err := s.rstmts[rUsersByIDs].QueryContext(ctx, string(list))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: users by ids: %w", wrapCtx(ctx, err))
	}
	users, err := scanUsers(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: users by ids: %w", wrapCtx(ctx, err))
	}
	return users, nil
}

// UserByNameKey returns a user other than excludeID with one of keys as
// its username or display-name key, or ErrNotFound.
func (s *Store) UserByNameKey(ctx context.Context, keys []string, excludeID string) (store.User, error) {
	keys = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == "" })
	if len(keys) == 0 {
		return store.User{}, fmt.Errorf("sqlitestore: user by name key: %w", store.ErrNotFound)
	}
	list, err := json.Marshal(keys)
	if err != nil {
		return store.User{}, fmt.Errorf("sqlitestore: user by name key: %w", err)
	}
	u, err := scanUser(s.rstmts[rUserByNameKey].QueryRowContext(ctx, excludeID, string(list)))
	if err != nil {
		return store.User{}, fmt.Errorf("sqlitestore: user by name key: %w", wrapCtx(ctx, err))
	}
	return u, nil
}

// SearchUsers returns at most limit users other than excludeID with a
// search key (store.SearchKeys: the username or the display name from the
// start of any word on) that starts with prefix, case-insensitively,
// ordered by username.
func (s *Store) SearchUsers(ctx context.Context, prefix, excludeID string, limit int) ([]store.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	lo := strings.ToLower(prefix)
	hi := lo + "\xff" // no valid UTF-8 byte is 0xff
	rows, err := s.rstmts[rSearchUsers].QueryContext(ctx, excludeID, lo, hi, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: search users: %w", wrapCtx(ctx, err))
	}
	users, err := scanUsers(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: search users: %w", wrapCtx(ctx, err))
	}
	return users, nil
}

func scanUser(row interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var created int64
	err := row.Scan(&u.ID, &u.Username, &u.DisplayName, &u.PasswordHash, &created, &u.UsernameKey, &u.DisplayNameKey)
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, store.ErrNotFound
	}
	if err != nil {
		return store.User{}, err
	}
	u.CreatedAt = fromMillis(created)
	return u, nil
}

func scanUsers(rows *sql.Rows) ([]store.User, error) {
	defer rows.Close()
	var users []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, rows.Err()
}

// setSearchKeys replaces the user_search rows of user id (in the batch).
func setSearchKeys(b *batch, id, username, displayName string) error {
	if _, err := b.exec(wDeleteSearchKeys, id); err != nil {
		return err
	}
	for _, k := range store.SearchKeys(username, displayName) {
		if _, err := b.exec(wInsertSearchKey, k, id); err != nil {
			return err
		}
	}
	return nil
}
