package chat

import (
	"context"
	"time"
)

// PruneSessions passes through untimed: chat never prunes (the auth role's
// pruner does); it is here because Store embeds store.Sessions.
func (t *timedStore) PruneSessions(ctx context.Context, before time.Time) (int64, error) {
	return t.st.PruneSessions(ctx, before)
}
