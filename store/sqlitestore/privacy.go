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
func (s *Store) ContactIDs(ctx context.Context, userID string) ([]string, error) {
	ids, err := s.queryIDs(ctx, rContactIDs, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: contact ids: %w", err)
	}
	return ids, nil
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

// BlockedEither returns the ids in a block with userID either way.
func (s *Store) BlockedEither(ctx context.Context, userID string) ([]string, error) {
	ids, err := s.queryIDs(ctx, rBlockedEither, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: blocked either: %w", err)
	}
	return ids, nil
}

// IsBlocked reports whether userID blocks otherID (from memory once
// userID's blocks were read: blockcache.go).
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
