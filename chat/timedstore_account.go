package chat

import (
	"context"

	"github.com/chatd/chatd/store"
)

// The account operations of the auth role (session list, account
// deletion) pass through untimed: chat never calls them, they are here
// because timedStore is a whole store.

func (t *timedStore) SessionsByUser(ctx context.Context, userID string) ([]store.Session, error) {
	return t.st.SessionsByUser(ctx, userID)
}

func (t *timedStore) SetPasswordHash(ctx context.Context, id, hash string) error {
	return t.st.SetPasswordHash(ctx, id, hash)
}

func (t *timedStore) DeleteUser(ctx context.Context, id string) error {
	return t.st.DeleteUser(ctx, id)
}

func (t *timedStore) EraseMessagesFrom(ctx context.Context, userID string) (int64, error) {
	return t.st.EraseMessagesFrom(ctx, userID)
}
