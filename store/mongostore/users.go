package mongostore

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/store"
)

type userDoc struct {
	ID           string        `bson:"_id"`
	Username     string        `bson:"username"`
	DisplayName  string        `bson:"display_name"`
	DisplayFold  string        `bson:"display_fold"` // lower-cased, for prefix search
	PasswordHash string        `bson:"password_hash"`
	CreatedAt    bson.DateTime `bson:"created_at"`
	UsernameKey  string        `bson:"username_key"` // look-alike keys; absent on older documents
	DisplayKey   string        `bson:"display_key"`
	// SearchKeys are store.SearchKeys of the names (filled in by Open on
	// documents from before them).
	SearchKeys []string `bson:"search_keys"`
}

func (d userDoc) user() store.User {
	return store.User{
		ID:             d.ID,
		Username:       d.Username,
		DisplayName:    d.DisplayName,
		PasswordHash:   d.PasswordHash,
		CreatedAt:      fromDate(d.CreatedAt),
		UsernameKey:    d.UsernameKey,
		DisplayNameKey: d.DisplayKey,
	}
}

// CreateUser inserts u; ErrConflict if the username (or the id) is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.users.InsertOne(ctx, userDoc{
		ID:           u.ID,
		Username:     u.Username,
		DisplayName:  u.DisplayName,
		DisplayFold:  lowerPrefix(u.DisplayName),
		PasswordHash: u.PasswordHash,
		CreatedAt:    toDate(u.CreatedAt),
		UsernameKey:  u.UsernameKey,
		DisplayKey:   u.DisplayNameKey,
		SearchKeys:   store.SearchKeys(u.Username, u.DisplayName),
	})
	if isDuplicate(err) {
		return fmt.Errorf("mongostore: create user: username %q taken: %w", u.Username, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("mongostore: create user: %w", wrapCtx(ctx, err))
	}
	return nil
}

// SetPasswordHash replaces the user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, id, hash string) error {
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "password_hash", Value: hash}}}})
	if err != nil {
		return fmt.Errorf("mongostore: set password: %w", wrapCtx(ctx, err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("mongostore: set password: no user %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// DeleteUser turns the user into its tombstone (store.Users.DeleteUser).
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "username", Value: store.DeletedUsername(id)},
		{Key: "display_name", Value: store.DeletedDisplayName},
		{Key: "display_fold", Value: lowerPrefix(store.DeletedDisplayName)},
		{Key: "password_hash", Value: ""},
		{Key: "username_key", Value: ""},
		{Key: "display_key", Value: ""},
		{Key: "search_keys", Value: store.SearchKeys(store.DeletedUsername(id), store.DeletedDisplayName)},
	}}})
	if err != nil {
		return fmt.Errorf("mongostore: delete user: %w", wrapCtx(ctx, err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("mongostore: delete user: no user %q: %w", id, store.ErrNotFound)
	}
	if err := s.deletePushOf(ctx, id); err != nil {
		return fmt.Errorf("mongostore: delete user: %w", err)
	}
	return nil
}

// UserByID returns the user or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	var d userDoc
	if err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.User{}, fmt.Errorf("mongostore: user by id: %w", wrapCtx(ctx, notFound(err)))
	}
	return d.user(), nil
}

// UserByUsername returns the user with that username or ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (store.User, error) {
	var d userDoc
	if err := s.users.FindOne(ctx, bson.D{{Key: "username", Value: username}}).Decode(&d); err != nil {
		return store.User{}, fmt.Errorf("mongostore: user by username: %w", wrapCtx(ctx, notFound(err)))
	}
	return d.user(), nil
}

// UsersByIDs returns the users that exist among ids.
func (s *Store) UsersByIDs(ctx context.Context, ids []string) ([]store.User, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	users, err := s.findUsers(ctx, bson.D{{Key: "_id", Value: in(ids)}}, options.Find())
	if err != nil {
		return nil, fmt.Errorf("mongostore: users by ids: %w", err)
	}
	return users, nil
}

// UserByNameKey returns a user other than excludeID with one of keys as
// its username or display-name key, or ErrNotFound. Each half of the $or
// is served by its field's index.
func (s *Store) UserByNameKey(ctx context.Context, keys []string, excludeID string) (store.User, error) {
	keys = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == "" })
	if len(keys) == 0 {
		return store.User{}, fmt.Errorf("mongostore: user by name key: %w", store.ErrNotFound)
	}
	filter := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "username_key", Value: bson.D{{Key: "$in", Value: keys}}}},
		bson.D{{Key: "display_key", Value: bson.D{{Key: "$in", Value: keys}}}},
	}}}
	if excludeID != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$ne", Value: excludeID}}})
	}
	var d userDoc
	if err := s.users.FindOne(ctx, filter).Decode(&d); err != nil {
		return store.User{}, fmt.Errorf("mongostore: user by name key: %w", wrapCtx(ctx, notFound(err)))
	}
	return d.user(), nil
}

// SearchUsers returns at most limit users other than excludeID with a
// search key (store.SearchKeys: the username or the display name from the
// start of any word on) that starts with prefix, case-insensitively,
// ordered by username. The keys are matched with an anchored, quoted
// regular expression, which the search_keys index serves as a range.
func (s *Store) SearchUsers(ctx context.Context, prefix, excludeID string, limit int) ([]store.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	filter := bson.D{}
	if excludeID != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$ne", Value: excludeID}}})
	}
	if prefix != "" {
		re := bson.Regex{Pattern: "^" + regexp.QuoteMeta(lowerPrefix(prefix))}
		filter = append(filter, bson.E{Key: "search_keys", Value: re})
	}
	fo := options.Find().SetSort(bson.D{{Key: "username", Value: 1}}).SetLimit(int64(limit))
	users, err := s.findUsers(ctx, filter, fo)
	if err != nil {
		return nil, fmt.Errorf("mongostore: search users: %w", err)
	}
	return users, nil
}

func (s *Store) findUsers(ctx context.Context, filter bson.D, fo *options.FindOptionsBuilder) ([]store.User, error) {
	cur, err := s.users.Find(ctx, filter, fo)
	if err != nil {
		return nil, wrapCtx(ctx, err)
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	users := make([]store.User, len(docs))
	for i, d := range docs {
		users[i] = d.user()
	}
	return users, nil
}

// backfillSearchKeys sets the search keys of the users stored before them
// (Open; a no-op once every user has them).
func (s *Store) backfillSearchKeys(ctx context.Context) error {
	missing := bson.D{{Key: "search_keys", Value: bson.D{{Key: "$exists", Value: false}}}}
	cur, err := s.users.Find(ctx, missing, options.Find().SetProjection(bson.D{{Key: "username", Value: 1}, {Key: "display_name", Value: 1}}))
	if err != nil {
		return fmt.Errorf("backfill search keys: %w", wrapCtx(ctx, err))
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return fmt.Errorf("backfill search keys: %w", wrapCtx(ctx, err))
	}
	for _, d := range docs {
		_, err := s.users.UpdateOne(ctx, append(bson.D{{Key: "_id", Value: d.ID}}, missing...),
			bson.D{{Key: "$set", Value: bson.D{{Key: "search_keys", Value: store.SearchKeys(d.Username, d.DisplayName)}}}})
		if err != nil {
			return fmt.Errorf("backfill search keys: %w", wrapCtx(ctx, err))
		}
	}
	return nil
}
