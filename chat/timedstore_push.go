package chat

import (
	"context"
	"time"

	"github.com/chatd/chatd/store"
)

// store.Notifications passes through untimed.

func (t *timedStore) AddPushSubscription(ctx context.Context, sub store.PushSubscription) error {
	return t.st.AddPushSubscription(ctx, sub)
}

func (t *timedStore) PushSubscriptions(ctx context.Context, userID string) ([]store.PushSubscription, error) {
	return t.st.PushSubscriptions(ctx, userID)
}

func (t *timedStore) DeletePushSubscription(ctx context.Context, userID, endpoint string) error {
	return t.st.DeletePushSubscription(ctx, userID, endpoint)
}

func (t *timedStore) RemovePushSubscription(ctx context.Context, endpoint string) error {
	return t.st.RemovePushSubscription(ctx, endpoint)
}

func (t *timedStore) SetMute(ctx context.Context, userID, peerID string, until time.Time) error {
	return t.st.SetMute(ctx, userID, peerID, until)
}

func (t *timedStore) Mutes(ctx context.Context, userID string) (map[string]time.Time, error) {
	return t.st.Mutes(ctx, userID)
}

func (t *timedStore) MutedUntil(ctx context.Context, userID, peerID string) (time.Time, error) {
	return t.st.MutedUntil(ctx, userID, peerID)
}

var _ store.Notifications = (*timedStore)(nil)
