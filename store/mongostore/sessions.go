package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

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
	})
	if isDuplicate(err) {
		return fmt.Errorf("mongostore: create session: id exists: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("mongostore: create session: %w", wrapCtx(ctx, err))
	}
	if !sess.RevokedAt.IsZero() {
		if err := s.revoke(ctx, sess.ID, sess.RevokedAt); err != nil {
			return fmt.Errorf("mongostore: create session: %w", err)
		}
	}
	return nil
}

// SessionByID returns the session, revoked or not, or ErrNotFound.
func (s *Store) SessionByID(ctx context.Context, id string) (store.Session, error) {
	d, err := s.session(ctx, id)
	if err != nil {
		return store.Session{}, fmt.Errorf("mongostore: session by id: %w", err)
	}
	revokedAt, err := s.revokedAt(ctx, id)
	if err != nil {
		return store.Session{}, fmt.Errorf("mongostore: session by id: %w", err)
	}
	return store.Session{
		ID:              d.ID,
		UserID:          d.UserID,
		RefreshHash:     d.RefreshHash,
		PrevRefreshHash: d.PrevRefreshHash,
		CreatedAt:       fromDate(d.CreatedAt),
		ExpiresAt:       fromDate(d.ExpiresAt),
		RevokedAt:       revokedAt,
	}, nil
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

// RotateRefresh replaces the session's hash oldHash by newHash. Of
// concurrent rotations from one hash, the one that inserts the claim of
// (session, oldHash) proceeds; the others get ErrConflict.
func (s *Store) RotateRefresh(ctx context.Context, id, oldHash, newHash string, expiresAt time.Time) error {
	if err := s.rotate(ctx, id, oldHash, newHash, expiresAt); err != nil {
		return fmt.Errorf("mongostore: rotate refresh: %w", err)
	}
	return nil
}

func (s *Store) rotate(ctx context.Context, id, oldHash, newHash string, expiresAt time.Time) error {
	d, err := s.session(ctx, id)
	if err != nil {
		return err
	}
	if d.RefreshHash != oldHash {
		return fmt.Errorf("refresh hash is not current: %w", store.ErrConflict)
	}
	if revoked, err := s.revokedAt(ctx, id); err != nil {
		return err
	} else if !revoked.IsZero() {
		return fmt.Errorf("session revoked: %w", store.ErrConflict)
	}
	_, err = s.claims.InsertOne(ctx, claimDoc{ID: claimID(id, oldHash), SessionID: id})
	if isDuplicate(err) {
		return fmt.Errorf("concurrent rotation: %w", store.ErrConflict)
	}
	if err != nil {
		return wrapCtx(ctx, err)
	}
	// Only the claim holder gets here for oldHash; the filter repeats the
	// check for MongoDB's sake (it is atomic there).
	res, err := s.sessions.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "refresh_hash", Value: oldHash}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "refresh_hash", Value: newHash},
			{Key: "prev_refresh_hash", Value: oldHash},
			{Key: "expires_at", Value: toDate(expiresAt)},
		}}})
	if err != nil {
		// Release the claim, or this hash could never be rotated again. If
		// the update did happen, the hash is no longer current and a later
		// claim of it fails at the update's filter.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
		defer cancel()
		_, _ = s.claims.DeleteOne(rctx, bson.D{{Key: "_id", Value: claimID(id, oldHash)}})
		return wrapCtx(ctx, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("refresh hash is not current: %w", store.ErrConflict)
	}
	// The claim of the hash replaced before this one is no longer needed:
	// that hash can never be current again. Best effort.
	if d.PrevRefreshHash != "" {
		_, _ = s.claims.DeleteOne(ctx, bson.D{{Key: "_id", Value: claimID(id, d.PrevRefreshHash)}})
	}
	return nil
}

// RevokeSession marks the session revoked at at; the first revocation's
// time is kept. ErrNotFound if there is no such session.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	if _, err := s.session(ctx, id); err != nil {
		return fmt.Errorf("mongostore: revoke session: %w", err)
	}
	if err := s.revoke(ctx, id, at); err != nil {
		return fmt.Errorf("mongostore: revoke session: %w", err)
	}
	return nil
}

func (s *Store) revoke(ctx context.Context, id string, at time.Time) error {
	_, err := s.revocations.InsertOne(ctx, revocationDoc{ID: id, RevokedAt: toDate(at)})
	if err != nil && !isDuplicate(err) {
		return wrapCtx(ctx, err)
	}
	return nil
}
