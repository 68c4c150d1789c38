package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
)

// revokeTimeout bounds a revocation (store and publish), which runs to its
// end even when the client goes away.
const revokeTimeout = 5 * time.Second

// startBrowserSession creates a session for u and sets both cookies.
func (s *Service) startBrowserSession(ctx context.Context, w http.ResponseWriter, u store.User) *httpapi.Error {
	now := s.now()
	sid := store.NewID()
	refresh := newRefreshToken(sid)
	sess := store.Session{
		ID:          sid,
		UserID:      u.ID,
		RefreshHash: hashToken(refresh),
		CreatedAt:   now.UTC(),
		ExpiresAt:   now.Add(s.cfg.RefreshTTL).UTC(),
	}
	access, _, err := s.signer.Sign(u.ID, sid, now)
	if err != nil {
		return s.internal("sign token", err)
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return httpapi.Fail(s.log, "create session", err)
	}
	s.setCookies(w, access, refresh)
	return nil
}

func (s *Service) refresh(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	if !httpapi.SameOrigin(r, s.cfg.PublicOrigins) {
		return errForeignOrigin
	}
	fail := func() *httpapi.Error {
		s.m.refreshes.WithLabelValues("invalid").Inc()
		s.clearCookies(w)
		return httpapi.ErrUnauthenticated
	}
	ck, err := r.Cookie(token.RefreshCookie)
	if err != nil {
		return fail()
	}
	refreshTok := ck.Value
	sid, ok := parseRefreshToken(refreshTok)
	if !ok {
		return fail()
	}
	ctx := r.Context()
	sess, err := s.store.SessionByID(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return fail()
	} else if err != nil {
		s.m.refreshes.WithLabelValues("error").Inc()
		return httpapi.Fail(s.log, "load session", err)
	}
	now := s.now()
	if sess.Revoked() || !now.Before(sess.ExpiresAt) {
		return fail()
	}
	hash := hashToken(refreshTok)
	switch {
	case equalHash(hash, sess.RefreshHash):
	case sess.PrevRefreshHash != "" && equalHash(hash, sess.PrevRefreshHash):
		// A rotated token came back: someone holds a copy. End the session.
		return s.reused(w, r, sess)
	default:
		return fail()
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return fail()
	} else if err != nil {
		s.m.refreshes.WithLabelValues("error").Inc()
		return httpapi.Fail(s.log, "load user", err)
	}
	access, _, err := s.signer.Sign(u.ID, sid, now)
	if err != nil {
		return s.internal("sign token", err)
	}
	next := newRefreshToken(sid)
	err = s.store.RotateRefresh(ctx, sid, store.Rotation{OldHash: hash, NewHash: hashToken(next),
		Generation: sess.Generation + 1, ExpiresAt: now.Add(s.cfg.RefreshTTL).UTC(), At: now.UTC()})
	switch {
	case errors.Is(err, store.ErrConflict):
		// Another request rotated this very token first: a reuse.
		return s.reused(w, r, sess)
	case errors.Is(err, store.ErrNotFound):
		return fail()
	case err != nil:
		s.m.refreshes.WithLabelValues("error").Inc()
		return httpapi.Fail(s.log, "rotate refresh token", err)
	}
	s.m.refreshes.WithLabelValues("success").Inc()
	s.setCookies(w, access, next)
	httpapi.WriteJSON(w, http.StatusOK, userResponse{User: httpapi.NewUser(u.ID, u.Username, u.DisplayName)})
	return nil
}

// reused answers a replayed refresh token: the session is revoked as on
// logout, and the client gets 401 with its cookies cleared.
func (s *Service) reused(w http.ResponseWriter, r *http.Request, sess store.Session) *httpapi.Error {
	s.m.refreshes.WithLabelValues("reused").Inc()
	s.log.Warn("refresh token reused, revoking the session", "session_id", sess.ID, "user_id", sess.UserID)
	if err := s.revoke(r.Context(), sess.ID, "reuse"); err != nil {
		return httpapi.Fail(s.log, "revoke session", err)
	}
	s.clearCookies(w)
	return httpapi.ErrUnauthenticated
}

func (s *Service) logout(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	ctx := r.Context()
	var sid string
	if tok, ok := token.BearerToken(r); ok {
		if c, err := s.verifier.Verify(ctx, tok); err == nil {
			sid = c.SessionID
		}
	}
	if sid == "" {
		access, _ := r.Cookie(token.SessionCookie)
		refresh, _ := r.Cookie(token.RefreshCookie)
		if access != nil || refresh != nil {
			if !httpapi.SameOrigin(r, s.cfg.PublicOrigins) {
				return errForeignOrigin
			}
			if access != nil {
				if c, err := s.verifier.Verify(ctx, access.Value); err == nil {
					sid = c.SessionID
				}
			}
			if sid == "" && refresh != nil {
				var e *httpapi.Error
				if sid, e = s.refreshSession(ctx, refresh.Value); e != nil {
					return e
				}
			}
		}
	}
	if sid != "" {
		if err := s.revoke(ctx, sid, "logout"); err != nil {
			return httpapi.Fail(s.log, "revoke session", err)
		}
	}
	s.clearCookies(w)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// refreshSession returns the id of the session that token is the current
// or previous refresh token of, or "" if there is none.
func (s *Service) refreshSession(ctx context.Context, refreshTok string) (string, *httpapi.Error) {
	sid, ok := parseRefreshToken(refreshTok)
	if !ok {
		return "", nil
	}
	sess, err := s.store.SessionByID(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", httpapi.Fail(s.log, "load session", err)
	}
	hash := hashToken(refreshTok)
	if equalHash(hash, sess.RefreshHash) || (sess.PrevRefreshHash != "" && equalHash(hash, sess.PrevRefreshHash)) {
		return sid, nil
	}
	return "", nil
}

// revoke revokes session sid in the store and announces it on
// pubsub.TopicRevocations. It finishes even if ctx is canceled (the client
// went away), within revokeTimeout.
func (s *Service) revoke(ctx context.Context, sid, reason string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revokeTimeout)
	defer cancel()
	if err := s.store.RevokeSession(ctx, sid, s.now().UTC()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	s.m.revocations.WithLabelValues(reason).Inc()
	if s.broker != nil {
		if err := s.broker.Publish(ctx, pubsub.TopicRevocations, []byte(sid)); err != nil {
			// The store has it: chat refuses the token on its next check;
			// only the sockets stay open until they reconnect.
			s.log.Warn("publish revocation", "session_id", sid, "err", err)
		}
	}
	return nil
}

// Refresh tokens are "<session id>.<32 random bytes, base64url>".
const refreshSecretLen = 32

func randomSecret() string {
	b := make([]byte, refreshSecretLen)
	_, _ = rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func newRefreshToken(sid string) string { return sid + "." + randomSecret() }

// parseRefreshToken returns the session id of a well-formed refresh token.
func parseRefreshToken(tok string) (sid string, ok bool) {
	sid, secret, ok := strings.Cut(tok, ".")
	if !ok || sid == "" || len(sid) > 64 || base64.RawURLEncoding.DecodedLen(len(secret)) != refreshSecretLen {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", false
	}
	return sid, true
}

// hashToken is the stored form of a refresh token: hex SHA-256.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func equalHash(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
