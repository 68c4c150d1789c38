package mongostore

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/chatd/chatd/store"
)

// SetDisplayName replaces the user's display name, its search fold and its key.
func (s *Store) SetDisplayName(ctx context.Context, id, displayName, displayNameKey string) error {
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "display_name", Value: displayName},
		{Key: "display_fold", Value: lowerPrefix(displayName)},
		{Key: "display_key", Value: displayNameKey},
	}}})
	if err != nil {
		return fmt.Errorf("mongostore: set display name: %w", wrapCtx(ctx, err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("mongostore: set display name: no user %q: %w", id, store.ErrNotFound)
	}
	return nil
}
