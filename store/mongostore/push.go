package mongostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/store"
)

// pushDoc is one push subscription, keyed by its endpoint.
type pushDoc struct {
	Endpoint  string    `bson:"_id"`
	UserID    string    `bson:"user_id"`
	P256dh    string    `bson:"p256dh"`
	Auth      string    `bson:"auth"`
	SessionID string    `bson:"session_id"`
	CreatedAt time.Time `bson:"created_at"`
}

// muteDoc is one muted conversation of one member.
type muteDoc struct {
	ID     string    `bson:"_id"` // user_id + "/" + peer_id
	UserID string    `bson:"user_id"`
	PeerID string    `bson:"peer_id"`
	Until  time.Time `bson:"until"`
}

func (s *Store) pushSubs() *mongo.Collection { return s.db.Collection("push_subscriptions") }
func (s *Store) mutes() *mongo.Collection    { return s.db.Collection("mutes") }

// ensurePushIndexes creates the user_id indexes of both collections.
func (s *Store) ensurePushIndexes(ctx context.Context) error {
	for _, c := range []*mongo.Collection{s.pushSubs(), s.mutes()} {
		_, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys: bson.D{{Key: "user_id", Value: 1}}, Options: options.Index().SetName("user_id"),
		})
		if err != nil {
			return fmt.Errorf("create indexes on %s: %w", c.Name(), wrapCtx(ctx, err))
		}
	}
	return nil
}

// AddPushSubscription stores sub, replacing a subscription with its endpoint.
func (s *Store) AddPushSubscription(ctx context.Context, sub store.PushSubscription) error {
	if sub.Endpoint == "" || sub.UserID == "" || sub.P256dh == "" || sub.Auth == "" {
		return fmt.Errorf("mongostore: add push subscription: %w", store.ErrInvalid)
	}
	d := pushDoc{Endpoint: sub.Endpoint, UserID: sub.UserID, P256dh: sub.P256dh, Auth: sub.Auth, SessionID: sub.SessionID, CreatedAt: sub.CreatedAt.UTC().Truncate(time.Millisecond)}
	_, err := s.pushSubs().ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.Endpoint}}, d, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("mongostore: add push subscription: %w", wrapCtx(ctx, err))
	}
	return nil
}

// PushSubscriptions returns userID's subscriptions, oldest first.
func (s *Store) PushSubscriptions(ctx context.Context, userID string) ([]store.PushSubscription, error) {
	cur, err := s.pushSubs().Find(ctx, bson.D{{Key: "user_id", Value: userID}})
	if err != nil {
		return nil, fmt.Errorf("mongostore: push subscriptions: %w", wrapCtx(ctx, err))
	}
	var docs []pushDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongostore: push subscriptions: %w", wrapCtx(ctx, err))
	}
	slices.SortFunc(docs, func(a, b pushDoc) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Endpoint, b.Endpoint)
	})
	subs := make([]store.PushSubscription, 0, len(docs))
	for _, d := range docs {
		subs = append(subs, store.PushSubscription{Endpoint: d.Endpoint, UserID: d.UserID, P256dh: d.P256dh, Auth: d.Auth, SessionID: d.SessionID, CreatedAt: d.CreatedAt.UTC()})
	}
	return subs, nil
}

// DeletePushSubscription removes userID's subscription with endpoint.
func (s *Store) DeletePushSubscription(ctx context.Context, userID, endpoint string) error {
	_, err := s.pushSubs().DeleteOne(ctx, bson.D{{Key: "_id", Value: endpoint}, {Key: "user_id", Value: userID}})
	if err != nil {
		return fmt.Errorf("mongostore: delete push subscription: %w", wrapCtx(ctx, err))
	}
	return nil
}

// RemovePushSubscription removes the subscription with endpoint.
func (s *Store) RemovePushSubscription(ctx context.Context, endpoint string) error {
	if _, err := s.pushSubs().DeleteOne(ctx, bson.D{{Key: "_id", Value: endpoint}}); err != nil {
		return fmt.Errorf("mongostore: remove push subscription: %w", wrapCtx(ctx, err))
	}
	return nil
}

// SetMute mutes (or, with a zero until, unmutes) userID's conversation with peerID.
func (s *Store) SetMute(ctx context.Context, userID, peerID string, until time.Time) error {
	if userID == "" || peerID == "" || userID == peerID {
		return fmt.Errorf("mongostore: set mute: %w", store.ErrInvalid)
	}
	id := userID + "/" + peerID
	var err error
	if until.IsZero() {
		_, err = s.mutes().DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	} else {
		d := muteDoc{ID: id, UserID: userID, PeerID: peerID, Until: until.UTC().Truncate(time.Millisecond)}
		_, err = s.mutes().ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, d, options.Replace().SetUpsert(true))
	}
	if err != nil {
		return fmt.Errorf("mongostore: set mute: %w", wrapCtx(ctx, err))
	}
	return nil
}

// Mutes returns userID's mutes by peer.
func (s *Store) Mutes(ctx context.Context, userID string) (map[string]time.Time, error) {
	cur, err := s.mutes().Find(ctx, bson.D{{Key: "user_id", Value: userID}})
	if err != nil {
		return nil, fmt.Errorf("mongostore: mutes: %w", wrapCtx(ctx, err))
	}
	var docs []muteDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongostore: mutes: %w", wrapCtx(ctx, err))
	}
	m := make(map[string]time.Time, len(docs))
	for _, d := range docs {
		m[d.PeerID] = d.Until.UTC()
	}
	return m, nil
}

// MutedUntil returns the end of userID's mute of peerID, or zero.
func (s *Store) MutedUntil(ctx context.Context, userID, peerID string) (time.Time, error) {
	var d muteDoc
	err := s.mutes().FindOne(ctx, bson.D{{Key: "_id", Value: userID + "/" + peerID}}).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("mongostore: muted until: %w", wrapCtx(ctx, err))
	}
	return d.Until.UTC(), nil
}

// deletePushOf removes userID's subscriptions and mutes (account deletion).
func (s *Store) deletePushOf(ctx context.Context, userID string) error {
	for _, c := range []*mongo.Collection{s.pushSubs(), s.mutes()} {
		if _, err := c.DeleteMany(ctx, bson.D{{Key: "user_id", Value: userID}}); err != nil {
			return wrapCtx(ctx, err)
		}
	}
	return nil
}
