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

// ErrBlocked: the recipient blocks the sender, so a BlockCheckingAppender
// stored nothing.
var ErrBlocked = &Error{kind: KindConflict, msg: "store: the recipient blocks the sender"}

// BlockCheckingAppender is implemented by a Store whose AppendMessage (and
// AppendMessageAsync, if it has it) refuses a message of any kind whose
// recipient blocks its sender: nothing is stored and the error is
// ErrBlocked (this error, unlike others, says the message was not
// stored). The block is read after the message was handed over, so every
// block acknowledged before the call refuses it, as an IsBlocked of the
// caller's just before it would; the caller need not ask IsBlocked first.
// mongostore does this so that the blocks of a whole batch of its writer
// take one find instead of one per message.
type BlockCheckingAppender interface {
	// AppendRefusesBlocked is true when the appends refuse as above.
	AppendRefusesBlocked() bool
}
