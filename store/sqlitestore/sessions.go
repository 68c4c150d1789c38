package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chatd/chatd/store"
)

// CreateSession inserts sess. ErrNotFound if its user does not exist,
// ErrConflict if its id is taken.
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	err := s.write(ctx, func(b *batch) error {
		_, err := b.exec(wInsertSession, sess.ID, sess.UserID, sess.RefreshHash, sess.PrevRefreshHash,
			millis(sess.CreatedAt), millis(sess.ExpiresAt), millis(sess.RevokedAt),
			sess.Generation, millis(sess.LastUsedAt), sess.UserAgent)
		switch {
		case isUniqueViolation(err):
			return fmt.Errorf("session id taken: %w", store.ErrConflict)
		case isForeignKeyViolation(err):
			return fmt.Errorf("no user %q: %w", sess.UserID, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: create session: %w", err)
	}
	return nil
}

// SessionByID returns the session or ErrNotFound.
func (s *Store) SessionByID(ctx context.Context, id string) (store.Session, error) {
	sess, err := scanSession(s.rstmts[rSessionByID].QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("sqlitestore: session by id: %w", wrapCtx(ctx, err))
	}
	return sess, nil
}

// SessionsByUser returns every session of userID (sessions_user index).
func (s *Store) SessionsByUser(ctx context.Context, userID string) ([]store.Session, error) {
	rows, err := s.rstmts[rSessionsByUser].QueryContext(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: sessions by user: %w", wrapCtx(ctx, err))
	}
	defer rows.Close()
	out := []store.Session{}
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: sessions by user: %w", wrapCtx(ctx, err))
		}
		out = append(out, sess)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: sessions by user: %w", wrapCtx(ctx, err))
	}
	return out, nil
}

func scanSession(row interface{ Scan(...any) error }) (store.Session, error) {
	var sess store.Session
	var created, expires, revoked, used int64
	err := row.Scan(&sess.ID, &sess.UserID, &sess.RefreshHash, &sess.PrevRefreshHash, &created, &expires, &revoked,
		&sess.Generation, &used, &sess.UserAgent)
	if err != nil {
		return store.Session{}, err
	}
	sess.CreatedAt, sess.ExpiresAt, sess.RevokedAt = fromMillis(created), fromMillis(expires), fromMillis(revoked)
	sess.LastUsedAt = fromMillis(used)
	return sess, nil
}

// RotateRefresh replaces the refresh hash r.OldHash by r.NewHash if it is
// still current and the session is not revoked: one conditional UPDATE, and
// a read to say why when it changed nothing (store.RunRotation).
func (s *Store) RotateRefresh(ctx context.Context, id string, r store.Rotation) error {
	err := s.write(ctx, func(b *batch) error {
		return store.RunRotation(func() (bool, error) {
			return b.execChanged(wRotateRefresh, r.NewHash, millis(r.ExpiresAt), r.Generation, millis(r.At), id, r.OldHash)
		}, func() (store.Session, error) {
			return sessionState(b, id)
		}, r.OldHash)
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: rotate refresh: %w", err)
	}
	return nil
}

// RevokeSession marks the session revoked at at, keeping an earlier
// revocation time (store.RunRevocation).
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	ms := millis(at)
	if ms == 0 {
		ms = time.Now().UnixMilli() // 0 would mean "not revoked"
	}
	err := s.write(ctx, func(b *batch) error {
		return store.RunRevocation(func() (bool, error) {
			return b.execChanged(wRevokeSession, ms, id)
		}, func() (store.Session, error) {
			return sessionState(b, id)
		})
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: revoke session: %w", err)
	}
	return nil
}

// sessionState reads, inside the batch, what a conditional session write
// depends on: the current refresh hash and the revocation time.
func sessionState(b *batch, id string) (store.Session, error) {
	sess := store.Session{ID: id}
	var revoked int64
	err := b.queryRow(wSessionState, id).Scan(&sess.RefreshHash, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Session{}, store.ErrNotFound
	}
	if err != nil {
		return store.Session{}, err
	}
	sess.RevokedAt = fromMillis(revoked)
	return sess, nil
}
