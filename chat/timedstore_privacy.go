package chat

import (
	"context"
	"time"

	"github.com/chatd/chatd/store"
)

// store.Privacy passes through untimed, but for the reads a send may
// make (a contact check, the block check): a store's cost per message
// shows in chatd_store_latency_seconds only if they are counted there.

func (t *timedStore) ContactIDs(ctx context.Context, userID string) ([]string, error) {
	defer since(t.op.contactIDs, time.Now())
	return t.st.ContactIDs(ctx, userID)
}

func (t *timedStore) Block(ctx context.Context, userID, otherID string, at time.Time) error {
	return t.st.Block(ctx, userID, otherID, at)
}

func (t *timedStore) Unblock(ctx context.Context, userID, otherID string) error {
	return t.st.Unblock(ctx, userID, otherID)
}

func (t *timedStore) BlockedIDs(ctx context.Context, userID string) ([]string, error) {
	return t.st.BlockedIDs(ctx, userID)
}

func (t *timedStore) BlockedEither(ctx context.Context, userID string) ([]string, error) {
	return t.st.BlockedEither(ctx, userID)
}

func (t *timedStore) IsBlocked(ctx context.Context, userID, otherID string) (bool, error) {
	defer since(t.op.isBlocked, time.Now())
	return t.st.IsBlocked(ctx, userID, otherID)
}

var _ store.Privacy = (*timedStore)(nil)

func (t *timedStore) SetDisplayName(ctx context.Context, id, displayName, displayNameKey string) error {
	return t.st.SetDisplayName(ctx, id, displayName, displayNameKey)
}
