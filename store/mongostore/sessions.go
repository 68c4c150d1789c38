package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/store"
)

// sessionDoc is written by CreateSession and then only by the one rotation
// that holds the claim of its current hash. Revocation lives in its own
// document (revocationDoc) so that no update of the session can undo it.
type sessionDoc struct {
	ID              string        `bson:"_id"`
	UserID          string        `bson:"user_id"`
	RefreshHash     string        `bson:"refresh_hash"`
	PrevRefreshHash string        `bson:"prev_refresh_hash"`
	CreatedAt       bson.DateTime `bson:"created_at"`
	ExpiresAt       bson.DateTime `bson:"expires_at"`
	Generation      int64         `bson:"generation"`
	LastUsedAt      bson.DateTime `bson:"last_used_at"`
	UserAgent       string        `bson:"user_agent"`
}

// revocationDoc marks a session revoked; its _id is the session id, so the
// first revocation's time is the one kept.
type revocationDoc struct {
	ID        string        `bson:"_id"`
	RevokedAt bson.DateTime `bson:"revoked_at"`
}

// claimDoc is taken by the rotation that replaces a session's hash: its _id
// is session id + "/" + the hash being replaced, so one rotation wins.
type claimDoc struct {
	ID        string `bson:"_id"`
	SessionID string `bson:"session_id"`
}

func claimID(sessionID, hash string) string { return sessionID + "/" + hash }

// CreateSession inserts sess (ErrConflict if its id exists).
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	_, err := s.sessions.InsertOne(ctx, sessionDoc{
		ID:              sess.ID,
		UserID:          sess.UserID,
		RefreshHash:     sess.RefreshHash,
		PrevRefreshHash: sess.PrevRefreshHash,
		CreatedAt:       toDate(sess.CreatedAt),
		ExpiresAt:       toDate(sess.ExpiresAt),
		Generation:      sess.Generation,
		LastUsedAt:      toDate(sess.LastUsedAt),
		UserAgent:       sess.UserAgent,
	})
	if isDuplicate(err) {
		return fmt.Errorf("mongostore: create session: id exists: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("mongostore: create session: %w", wrapCtx(ctx, err))
	}
	if !sess.RevokedAt.IsZero() {
		if _, err := s.revoke(ctx, sess.ID, sess.RevokedAt); err != nil {
			return fmt.Errorf("mongostore: create session: %w", err)
		}
	}
	return nil
}

// SessionByID returns the session, revoked or not, or ErrNotFound.
func (s *Store) SessionByID(ctx context.Context, id string) (store.Session, error) {
	sess, err := s.sessionByID(ctx, id)
	if err != nil {
		return store.Session{}, fmt.Errorf("mongostore: session by id: %w", err)
	}
	return sess, nil
}

// sessionByID reads the session and its revocation.
func (s *Store) sessionByID(ctx context.Context, id string) (store.Session, error) {
	d, err := s.session(ctx, id)
	if err != nil {
		return store.Session{}, err
	}
	revokedAt, err := s.revokedAt(ctx, id)
	if err != nil {
		return store.Session{}, err
	}
	return d.session(revokedAt), nil
}

func (d sessionDoc) session(revokedAt time.Time) store.Session {
	return store.Session{
		ID:              d.ID,
		UserID:          d.UserID,
		RefreshHash:     d.RefreshHash,
		PrevRefreshHash: d.PrevRefreshHash,
		Generation:      d.Generation,
		CreatedAt:       fromDate(d.CreatedAt),
		ExpiresAt:       fromDate(d.ExpiresAt),
		RevokedAt:       revokedAt,
		LastUsedAt:      fromDate(d.LastUsedAt),
		UserAgent:       d.UserAgent,
	}
}

// SessionsByUser returns every session of userID (the user_id index), each
// with its revocation.
func (s *Store) SessionsByUser(ctx context.Context, userID string) ([]store.Session, error) {
	cur, err := s.sessions.Find(ctx, bson.D{{Key: "user_id", Value: userID}})
	if err != nil {
		return nil, fmt.Errorf("mongostore: sessions by user: %w", wrapCtx(ctx, err))
	}
	var docs []sessionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongostore: sessions by user: %w", wrapCtx(ctx, err))
	}
	out := make([]store.Session, 0, len(docs))
	if len(docs) == 0 {
		return out, nil
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	rcur, err := s.revocations.Find(ctx, bson.D{{Key: "_id", Value: in(ids)}})
	if err != nil {
		return nil, fmt.Errorf("mongostore: sessions by user: %w", wrapCtx(ctx, err))
	}
	var revs []revocationDoc
	if err := rcur.All(ctx, &revs); err != nil {
		return nil, fmt.Errorf("mongostore: sessions by user: %w", wrapCtx(ctx, err))
	}
	revoked := make(map[string]time.Time, len(revs))
	for _, r := range revs {
		revoked[r.ID] = fromDate(r.RevokedAt)
	}
	for _, d := range docs {
		out = append(out, d.session(revoked[d.ID]))
	}
	return out, nil
}

func (s *Store) session(ctx context.Context, id string) (sessionDoc, error) {
	var d sessionDoc
	if err := s.sessions.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return sessionDoc{}, wrapCtx(ctx, notFound(err))
	}
	return d, nil
}

// revokedAt returns when the session was revoked, zero if it is not.
func (s *Store) revokedAt(ctx context.Context, id string) (time.Time, error) {
	var r revocationDoc
	err := s.revocations.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, wrapCtx(ctx, err)
	}
	return fromDate(r.RevokedAt), nil
}

// RotateRefresh replaces the session's hash r.OldHash by r.NewHash: the
// conditional write (rotate), and a read to say why when it changed nothing
// (store.RunRotation).
func (s *Store) RotateRefresh(ctx context.Context, id string, r store.Rotation) error {
	err := store.RunRotation(func() (bool, error) {
		return s.rotate(ctx, id, r)
	}, func() (store.Session, error) {
		return s.sessionByID(ctx, id)
	}, r.OldHash)
	if err != nil {
		return fmt.Errorf("mongostore: rotate refresh: %w", err)
	}
	return nil
}

// rotate changes the session's hash from oldHash to newHash unless the
// session is revoked, and reports whether it did. Of concurrent rotations
// from one hash, the one that inserts the claim of (session, oldHash)
// proceeds; the others change nothing.
func (s *Store) rotate(ctx context.Context, id string, r store.Rotation) (bool, error) {
	oldHash := r.OldHash
	if revoked, err := s.revokedAt(ctx, id); err != nil {
		return false, err
	} else if !revoked.IsZero() {
		return false, nil
	}
	_, err := s.claims.InsertOne(ctx, claimDoc{ID: claimID(id, oldHash), SessionID: id})
	if isDuplicate(err) {
		return false, nil
	}
	if err != nil {
		return false, wrapCtx(ctx, err)
	}
	// Only the claim holder gets here for oldHash; the filter repeats the
	// check for MongoDB's sake (it is atomic there).
	var before sessionDoc
	err = s.sessions.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "refresh_hash", Value: oldHash}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "refresh_hash", Value: r.NewHash},
			{Key: "prev_refresh_hash", Value: oldHash},
			{Key: "expires_at", Value: toDate(r.ExpiresAt)},
			{Key: "generation", Value: r.Generation},
			{Key: "last_used_at", Value: toDate(r.At)},
		}}},
		options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&before)
	if err != nil {
		// Release the claim, or this hash could never be rotated again. When
		// nothing matched, oldHash is not current and never will be again (a
		// hash is never reissued); when the update failed but did happen,
		// the hash is no longer current either, and a later claim of it
		// changes nothing at this filter.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
		defer cancel()
		_, _ = s.claims.DeleteOne(rctx, bson.D{{Key: "_id", Value: claimID(id, oldHash)}})
		if errors.Is(err, mongo.ErrNoDocuments) {
			return false, nil
		}
		return false, wrapCtx(ctx, err)
	}
	// The claim of the hash replaced before this one is no longer needed:
	// that hash can never be current again. Best effort.
	if before.PrevRefreshHash != "" {
		_, _ = s.claims.DeleteOne(ctx, bson.D{{Key: "_id", Value: claimID(id, before.PrevRefreshHash)}})
	}
	return true, nil
}

// RevokeSession marks the session revoked at at; the first revocation's
// time is kept (store.RunRevocation). ErrNotFound if there is no such
// session.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	err := store.RunRevocation(func() (bool, error) {
		if _, err := s.session(ctx, id); errors.Is(err, store.ErrNotFound) {
			return false, nil // the read says so
		} else if err != nil {
			return false, err
		}
		return s.revoke(ctx, id, at)
	}, func() (store.Session, error) {
		return s.sessionByID(ctx, id)
	})
	if err != nil {
		return fmt.Errorf("mongostore: revoke session: %w", err)
	}
	return nil
}

// revoke inserts the session's revocation unless it has one, and reports
// whether it did.
func (s *Store) revoke(ctx context.Context, id string, at time.Time) (bool, error) {
	_, err := s.revocations.InsertOne(ctx, revocationDoc{ID: id, RevokedAt: toDate(at)})
	if isDuplicate(err) {
		return false, nil
	}
	if err != nil {
		return false, wrapCtx(ctx, err)
	}
	return true, nil
}
