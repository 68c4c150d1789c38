package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chatd/chatd/store"
)

// Push subscriptions and mutes are rare writes through the writer with ad
// hoc statements, like blocks.

// AddPushSubscription stores sub, replacing a subscription with its endpoint.
func (s *Store) AddPushSubscription(ctx context.Context, sub store.PushSubscription) error {
	if sub.Endpoint == "" || sub.UserID == "" || sub.P256dh == "" || sub.Auth == "" {
		return fmt.Errorf("sqlitestore: add push subscription: %w", store.ErrInvalid)
	}
	err := s.write(ctx, func(b *batch) error {
		_, err := b.execSQL(`INSERT INTO push_subscriptions (endpoint, user_id, p256dh, auth, session_id, created_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, p256dh = excluded.p256dh,
			auth = excluded.auth, session_id = excluded.session_id, created_at = excluded.created_at`,
			sub.Endpoint, sub.UserID, sub.P256dh, sub.Auth, sub.SessionID, sub.CreatedAt.UnixMilli())
		return err
	})
	s.pushSubs.forgetAll() // the endpoint may have been another user's
	if err != nil {
		return fmt.Errorf("sqlitestore: add push subscription: %w", err)
	}
	return nil
}

// PushSubscriptions returns userID's subscriptions, oldest first, from
// memory after the first question (usercache.go): the push sender asks for
// every text message's recipient.
func (s *Store) PushSubscriptions(ctx context.Context, userID string) ([]store.PushSubscription, error) {
	subs, err := cached(&s.pushSubs, userID, func() ([]store.PushSubscription, error) {
		return s.readPushSubscriptions(ctx, userID)
	})
	if err != nil {
		return nil, err
	}
	return slices.Clone(subs), nil // the caller's to keep; empty, not nil
}

// KnownPushSubscriptions returns how many subscriptions userID has when
// the answer is in memory, without a read (push.Sender asks it for every
// message before it queues a push job).
func (s *Store) KnownPushSubscriptions(userID string) (n int, known bool) {
	subs, _, ok := s.pushSubs.lookup(userID)
	return len(subs), ok
}

func (s *Store) readPushSubscriptions(ctx context.Context, userID string) ([]store.PushSubscription, error) {
	rows, err := s.rstmts[rPushSubscriptions].QueryContext(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: push subscriptions: %w", wrapCtx(ctx, err))
	}
	defer rows.Close()
	subs := []store.PushSubscription{}
	for rows.Next() {
		sub := store.PushSubscription{UserID: userID}
		var created int64
		if err := rows.Scan(&sub.Endpoint, &sub.P256dh, &sub.Auth, &sub.SessionID, &created); err != nil {
			return nil, fmt.Errorf("sqlitestore: push subscriptions: %w", wrapCtx(ctx, err))
		}
		sub.CreatedAt = time.UnixMilli(created).UTC()
		subs = append(subs, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: push subscriptions: %w", wrapCtx(ctx, err))
	}
	return subs, nil
}

// DeletePushSubscription removes userID's subscription with endpoint.
func (s *Store) DeletePushSubscription(ctx context.Context, userID, endpoint string) error {
	err := s.write(ctx, func(b *batch) error {
		_, err := b.execSQL(`DELETE FROM push_subscriptions WHERE endpoint = ? AND user_id = ?`, endpoint, userID)
		return err
	})
	s.pushSubs.forget(userID)
	if err != nil {
		return fmt.Errorf("sqlitestore: delete push subscription: %w", err)
	}
	return nil
}

// RemovePushSubscription removes the subscription with endpoint.
func (s *Store) RemovePushSubscription(ctx context.Context, endpoint string) error {
	err := s.write(ctx, func(b *batch) error {
		_, err := b.execSQL(`DELETE FROM push_subscriptions WHERE endpoint = ?`, endpoint)
		return err
	})
	s.pushSubs.forgetAll() // whose it was is not known here
	if err != nil {
		return fmt.Errorf("sqlitestore: remove push subscription: %w", err)
	}
	return nil
}

// SetMute mutes (or, with a zero until, unmutes) userID's conversation with peerID.
func (s *Store) SetMute(ctx context.Context, userID, peerID string, until time.Time) error {
	if userID == "" || peerID == "" || userID == peerID {
		return fmt.Errorf("sqlitestore: set mute: %w", store.ErrInvalid)
	}
	err := s.write(ctx, func(b *batch) error {
		if until.IsZero() {
			_, err := b.execSQL(`DELETE FROM mutes WHERE user_id = ? AND peer_id = ?`, userID, peerID)
			return err
		}
		_, err := b.execSQL(`INSERT INTO mutes (user_id, peer_id, until) VALUES (?, ?, ?)
			ON CONFLICT (user_id, peer_id) DO UPDATE SET until = excluded.until`, userID, peerID, until.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: set mute: %w", err)
	}
	return nil
}

// Mutes returns userID's mutes by peer.
func (s *Store) Mutes(ctx context.Context, userID string) (map[string]time.Time, error) {
	rows, err := s.rstmts[rMutes].QueryContext(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: mutes: %w", wrapCtx(ctx, err))
	}
	defer rows.Close()
	m := map[string]time.Time{}
	for rows.Next() {
		var peer string
		var until int64
		if err := rows.Scan(&peer, &until); err != nil {
			return nil, fmt.Errorf("sqlitestore: mutes: %w", wrapCtx(ctx, err))
		}
		m[peer] = time.UnixMilli(until).UTC()
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: mutes: %w", wrapCtx(ctx, err))
	}
	return m, nil
}

// MutedUntil returns the end of userID's mute of peerID, or zero.
func (s *Store) MutedUntil(ctx context.Context, userID, peerID string) (time.Time, error) {
	var until int64
	err := s.rstmts[rMutedUntil].QueryRowContext(ctx, userID, peerID).Scan(&until)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("sqlitestore: muted until: %w", wrapCtx(ctx, err))
	}
	return time.UnixMilli(until).UTC(), nil
}
