package mongostore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// pruneChunk is how many sessions of each kind (expired, revoked) one step
// of PruneSessions deletes.
const pruneChunk = 500

// PruneSessions deletes the sessions that expired or were revoked before
// before, a chunk at a time: the session documents first, then their
// revocations and rotation claims. Deleting the session first matters: a
// revocation deleted before its session would make a revoked session
// active again if the step stopped in between. A step that stops after the
// sessions leaves revocations that the next call finds again (their time
// is before the cut-off), and claims of sessions that no longer exist,
// which nothing reads.
func (s *Store) PruneSessions(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		n, more, err := s.pruneStep(ctx, toDate(before))
		total += n
		if err != nil {
			return total, fmt.Errorf("mongostore: prune sessions: %w", wrapCtx(ctx, err))
		}
		if !more {
			return total, nil
		}
	}
}

// pruneStep deletes up to a chunk of expired and a chunk of revoked
// sessions; more reports whether a chunk was full.
func (s *Store) pruneStep(ctx context.Context, cutoff bson.DateTime) (deleted int64, more bool, err error) {
	expired, err := s.ids(ctx, s.sessions, bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: cutoff}}}})
	if err != nil {
		return 0, false, err
	}
	revoked, err := s.ids(ctx, s.revocations, bson.D{{Key: "revoked_at", Value: bson.D{{Key: "$lt", Value: cutoff}}}})
	if err != nil {
		return 0, false, err
	}
	ids := slices.Compact(slices.Sorted(slices.Values(slices.Concat(expired, revoked))))
	if len(ids) == 0 {
		return 0, false, nil
	}
	anyOf := in(ids)
	res, err := s.sessions.DeleteMany(ctx, bson.D{{Key: "_id", Value: anyOf}})
	if err != nil {
		return 0, false, err
	}
	if _, err := s.revocations.DeleteMany(ctx, bson.D{{Key: "_id", Value: anyOf}}); err != nil {
		return res.DeletedCount, false, err
	}
	if _, err := s.claims.DeleteMany(ctx, bson.D{{Key: "session_id", Value: anyOf}}); err != nil {
		return res.DeletedCount, false, err
	}
	return res.DeletedCount, len(expired) == pruneChunk || len(revoked) == pruneChunk, nil
}

// ids returns the _id of up to pruneChunk documents of coll matching filter.
func (s *Store) ids(ctx context.Context, coll *mongo.Collection, filter bson.D) ([]string, error) {
	cur, err := coll.Find(ctx, filter, options.Find().
		SetProjection(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(pruneChunk))
	if err != nil {
		return nil, err
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ID
	}
	return out, nil
}
