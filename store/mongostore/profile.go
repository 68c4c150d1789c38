package mongostore

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/store"
)

// SetDisplayName replaces the user's display name, its search fold and
// keys, and its look-alike key.
func (s *Store) SetDisplayName(ctx context.Context, id, displayName, displayNameKey string) error {
	var d userDoc
	err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(bson.D{{Key: "username", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("mongostore: set display name: no user %q: %w", id, store.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("mongostore: set display name: %w", wrapCtx(ctx, err))
	}
	// The username changes only by DeleteUser, after which no display name
	// is set: the keys from d.Username are current.
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "display_name", Value: displayName},
		{Key: "display_fold", Value: lowerPrefix(displayName)},
		{Key: "display_key", Value: displayNameKey},
		{Key: "search_keys", Value: store.SearchKeys(d.Username, displayName)},
	}}})
	if err != nil {
		return fmt.Errorf("mongostore: set display name: %w", wrapCtx(ctx, err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("mongostore: set display name: no user %q: %w", id, store.ErrNotFound)
	}
	return nil
}
