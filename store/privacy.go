package store

import (
	"context"
	"time"
)

// Privacy is who may see whom (api.md 1.1 "Privacy"): contacts, who get a
// user's presence and typing, and blocks.
type Privacy interface {
	// ContactIDs returns, sorted, the ids of userID's contacts: the users
	// with whom userID shares a conversation in which both have sent a
	// text message (one that AppendMessage stored; erasing it later changes
	// nothing; an event such as a reaction makes no contact). Blocks are not applied here.
	ContactIDs(ctx context.Context, userID string) ([]string, error)
	// Block records that userID blocks otherID, at at. Blocking again keeps
	// the first time and returns nil. ErrInvalid if they are the same user
	// or either id is empty; the users' existence is the caller's to check.
	Block(ctx context.Context, userID, otherID string, at time.Time) error
	// Unblock removes that block; unblocking someone not blocked is nil.
	Unblock(ctx context.Context, userID, otherID string) error
	// BlockedIDs returns the ids userID blocks, most recently blocked first.
	BlockedIDs(ctx context.Context, userID string) ([]string, error)
	// BlockedEither returns, sorted, the ids in a block with userID in
	// either direction (userID blocks them or they block userID).
	BlockedEither(ctx context.Context, userID string) ([]string, error)
	// IsBlocked reports whether userID blocks otherID.
	IsBlocked(ctx context.Context, userID, otherID string) (bool, error)
}
