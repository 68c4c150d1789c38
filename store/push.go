package store

import (
	"context"
	"time"
)

// PushSubscription is one browser's Web Push subscription (RFC 8030, the
// Push API's PushSubscription): where to POST and the keys the payload is
// encrypted to (RFC 8291). Endpoint identifies it: one browser profile has
// one endpoint per application server key.
type PushSubscription struct {
	Endpoint string // the push service's URL for this subscription
	UserID   string // whose messages it is told about
	P256dh   string // the browser's P-256 public key, base64url as the browser gave it
	Auth     string // the 16-byte authentication secret, base64url
	// SessionID is the session that subscribed ("" for none): a push is
	// only sent while it is active, so a revoked or ended login (a lost
	// device, "log out everywhere") stops receiving the user's pushes.
	SessionID string
	CreatedAt time.Time
}

// Notifications are what Web Push needs kept (api.md 1.1 "Notifications"):
// the users' push subscriptions and their muted conversations.
type Notifications interface {
	// AddPushSubscription stores sub. Adding an endpoint that is stored
	// already replaces its user, keys, SessionID and CreatedAt (the browser subscribed
	// again, or another account logged in on it) and returns nil.
	// ErrInvalid if Endpoint, UserID, P256dh or Auth is empty.
	AddPushSubscription(ctx context.Context, sub PushSubscription) error
	// PushSubscriptions returns userID's subscriptions, oldest first (an
	// empty list for a user without any).
	PushSubscriptions(ctx context.Context, userID string) ([]PushSubscription, error)
	// DeletePushSubscription removes the subscription with endpoint if it
	// is userID's; anything else (unknown, another user's) is nil and
	// changes nothing.
	DeletePushSubscription(ctx context.Context, userID, endpoint string) error
	// RemovePushSubscription removes the subscription with endpoint,
	// whoever's it is (the push service answered that it is gone); an
	// unknown endpoint is nil.
	RemovePushSubscription(ctx context.Context, endpoint string) error
	// SetMute mutes userID's conversation with peerID until until (kept
	// to the millisecond, UTC); a zero until unmutes. The conversation
	// need not exist yet. ErrInvalid if either id is empty or they are
	// the same user.
	SetMute(ctx context.Context, userID, peerID string, until time.Time) error
	// Mutes returns userID's mutes: peer id to the time the mute ends,
	// expired ones included (the caller compares with its clock). An
	// empty map for a user without any.
	Mutes(ctx context.Context, userID string) (map[string]time.Time, error)
	// MutedUntil returns when userID's mute of its conversation with
	// peerID ends, or the zero time if there is none.
	MutedUntil(ctx context.Context, userID, peerID string) (time.Time, error)
}
