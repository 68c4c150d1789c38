package auth

import (
	"context"

	"github.com/chatd/chatd/store"
)

// Store is what the auth service keeps: accounts (signup, login, the user
// behind a session, password change, deletion) and sessions (login, refresh
// rotation, logout, the session list), and, of the messages and the
// attachments, only the erasure of a deleted account's
// (store.Messages.EraseMessagesFrom, store.Attachments.DeleteAttachmentsOf). A
// store.Store is one; see the store package for each method's errors and
// guarantees.
type Store interface {
	store.Users
	store.Sessions
	EraseMessagesFrom(ctx context.Context, userID string) (int64, error)
	DeleteAttachmentsOf(ctx context.Context, uploaderID string) (int64, error)
}
