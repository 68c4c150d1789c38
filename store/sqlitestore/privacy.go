package sqlitestore

import (
	"context"
	"fmt"
	"time"

	"github.com/chatd/chatd/store"
)

// Contacts are read from the conversations' per-member sent counts; blocks
// are rare writes through the writer with ad hoc statements.

// ContactIDs returns the peers of userID's conversations in which both
// members sent a message.
// From memory once read (usercache.go); the caller gets its own copy.
func (s *Store) ContactIDs(ctx context.Context, userID string) ([]string, error) {
	ids, err := s.cachedIDs(ctx, &s.contacts, rContactIDs, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: contact ids: %w", err)
	}
	return append([]string{}, ids...), nil
}

// Block records that userID blocks otherID.
func (s *Store) Block(ctx context.Context, userID, otherID string, at time.Time) error {
	if userID == "" || otherID == "" || userID == otherID {
		return fmt.Errorf("sqlitestore: block: %w", store.ErrInvalid)
	}
	err := s.write(ctx, func(b *batch) error {
		_, err := b.execSQL(`INSERT INTO blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?)
			ON CONFLICT (user_id, blocked_id) DO NOTHING`, userID, otherID, at.UnixMilli())
		return err
	})
	s.blocks.forget(userID)
	s.blockers.forget(otherID)
	if err != nil {
		return fmt.Errorf("sqlitestore: block: %w", err)
	}
	return nil
}

// Unblock removes userID's block of otherID.
func (s *Store) Unblock(ctx context.Context, userID, otherID string) error {
	err := s.write(ctx, func(b *batch) error {
		_, err := b.execSQL(`DELETE FROM blocks WHERE user_id = ? AND blocked_id = ?`, userID, otherID)
		return err
	})
	s.blocks.forget(userID)
	s.blockers.forget(otherID)
	if err != nil {
		return fmt.Errorf("sqlitestore: unblock: %w", err)
	}
	return nil
}

// BlockedIDs returns whom userID blocks, most recent first.
func (s *Store) BlockedIDs(ctx context.Context, userID string) ([]string, error) {
	ids, err := s.queryIDs(ctx, rBlockedIDs, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: blocked ids: %w", err)
	}
	return ids, nil
}

// BlockedEither returns the ids in a block with userID either way, sorted
// (from memory once both directions were read: usercache.go).
func (s *Store) BlockedEither(ctx context.Context, userID string) ([]string, error) {
	by, err := s.blockedBy(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: blocked either: %w", err)
	}
	of, err := s.blockersOf(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: blocked either: %w", err)
	}
	// A new slice: the cached ones are shared.
	ids := make([]string, 0, len(by)+len(of))
	for len(by) > 0 || len(of) > 0 {
		switch {
		case len(of) == 0 || (len(by) > 0 && by[0] < of[0]):
			ids, by = append(ids, by[0]), by[1:]
		case len(by) == 0 || of[0] < by[0]:
			ids, of = append(ids, of[0]), of[1:]
		default: // in both
			ids, by, of = append(ids, by[0]), by[1:], of[1:]
		}
	}
	return ids, nil
}

// IsBlocked reports whether userID blocks otherID (from memory once
// userID's blocks were read: usercache.go).
func (s *Store) IsBlocked(ctx context.Context, userID, otherID string) (bool, error) {
	ids, err := s.blockedBy(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: is blocked: %w", err)
	}
	return hasID(ids, otherID), nil
}

// queryIDs runs prepared read i, which returns one text column.
func (s *Store) queryIDs(ctx context.Context, i int, args ...any) ([]string, error) {
	rows, err := s.rstmts[i].QueryContext(ctx, args...)
	if err != nil {
		return nil, wrapCtx(ctx, err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrapCtx(ctx, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	return ids, nil
}
