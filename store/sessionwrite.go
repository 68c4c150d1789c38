package store

import (
	"errors"
	"fmt"
)

// The conditional session writes (Sessions.RotateRefresh and
// Sessions.RevokeSession) follow one sequence in every backend: try the
// write, which changes the session only when its precondition holds, and
// only when it changed nothing read the session to learn why. RunRotation
// and RunRevocation are that sequence; a backend supplies the two steps and
// wraps the error they return with its own prefix.
//
// apply performs the write and reports whether it changed the session; an
// error from it is returned as it is. current reads the session as it is
// now: ErrNotFound (possibly wrapped) when there is none.

// RunRotation runs a rotation of the session's refresh hash from oldHash.
// apply must change the session only if it is not revoked and its hash is
// oldHash, and at most once for one oldHash. It returns nil when apply
// changed the session, else ErrNotFound when there is no session, or
// ErrConflict when it is revoked or oldHash is not its hash (any longer).
func RunRotation(apply func() (bool, error), current func() (Session, error), oldHash string) error {
	changed, err := apply()
	if err != nil || changed {
		return err
	}
	sess, err := current()
	switch {
	case err != nil:
		return err
	case sess.Revoked():
		return fmt.Errorf("session revoked: %w", ErrConflict)
	case sess.RefreshHash != oldHash:
		return fmt.Errorf("refresh hash not current: %w", ErrConflict)
	default: // oldHash is still current: a concurrent rotation holds it
		return fmt.Errorf("concurrent rotation: %w", ErrConflict)
	}
}

// RunRevocation runs a revocation. apply must change the session only if it
// is not revoked yet, so that the first revocation's time is kept. It
// returns nil when apply changed the session or the session was revoked
// already, ErrNotFound when there is no session.
func RunRevocation(apply func() (bool, error), current func() (Session, error)) error {
	changed, err := apply()
	if err != nil || changed {
		return err
	}
	sess, err := current()
	switch {
	case err != nil:
		return err
	case sess.Revoked():
		return nil
	default:
		return errRevocationLost
	}
}

// errRevocationLost is what RunRevocation returns when apply changed
// nothing although the session exists and is not revoked: the backend broke
// apply's contract, and the caller should see a failure, not a success.
var errRevocationLost = errors.New("revocation changed nothing on an active session")
