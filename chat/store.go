package chat

import (
	"context"

	"github.com/chatd/chatd/store"
)

// Store is what the chat service reads and writes: users (lookups,
// search), sessions (the recheck that closes revoked sockets),
// conversations (views, read and delivered pointers), messages,
// attachments (attachments.go), push subscriptions and mutes, and
// Ping for /readyz. A store.Store is one; see the store package for each
// method's errors and guarantees. When it is also a store.AsyncAppender,
// WebSocket sends are pipelined.
type Store interface {
	store.Users
	store.Sessions
	store.Conversations
	store.Messages
	store.Privacy
	store.Attachments
	store.Notifications
	// Ping reports whether the store answers (store.Store.Ping).
	Ping(ctx context.Context) error
}
