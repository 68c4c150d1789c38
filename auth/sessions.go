package auth

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
)

// revokeTimeout bounds a revocation (store and publish), which runs to its
// end even when the client goes away.
const revokeTimeout = 5 * time.Second

// maxUserAgent bounds the stored User-Agent of a session.
const maxUserAgent = 256

// newSession is a session of u starting now, from r (its User-Agent), with
// refreshHash as its generation-0 token's hash.
func (s *Service) newSession(r *http.Request, u store.User, sid, refreshHash string, expires time.Time) store.Session {
	now := s.now().UTC()
	return store.Session{
		ID:          sid,
		UserID:      u.ID,
		RefreshHash: refreshHash,
		CreatedAt:   now,
		ExpiresAt:   expires.UTC(),
		LastUsedAt:  now,
		UserAgent:   userAgent(r),
	}
}

// userAgent is r's User-Agent as a session keeps it: valid UTF-8, at most
// maxUserAgent bytes.
func userAgent(r *http.Request) string {
	ua := strings.ToValidUTF8(r.UserAgent(), "")
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
		for !utf8.ValidString(ua) {
			ua = ua[:len(ua)-1]
		}
	}
	return ua
}

// sessionEnd is when a session created at created ends at the latest
// (auth.session_max_age).
func (s *Service) sessionEnd(created time.Time) time.Time { return created.Add(s.cfg.SessionMaxAge) }

// startBrowserSession creates a session for u and sets both cookies.
func (s *Service) startBrowserSession(w http.ResponseWriter, r *http.Request, u store.User) *httpapi.Error {
	now := s.now()
	sid := store.NewID()
	refresh := s.newRefreshToken(sid, 0)
	sess := s.newSession(r, u, sid, hashToken(refresh), minTime(now.Add(s.cfg.RefreshTTL), s.sessionEnd(now)))
	access, _, err := s.signer.SignUntil(u.ID, sid, now, s.sessionEnd(now))
	if err != nil {
		return s.internal("sign token", err)
	}
	if err := s.store.CreateSession(r.Context(), sess); err != nil {
		return httpapi.Fail(s.log, "create session", err)
	}
	s.setCookies(w, access, refresh)
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// refresh rotates the refresh token (docs/api.md, "Session lifetime,
// refresh rotation and its races"): the current token gets a new pair; the
// previous one within refresh_grace of its rotation gets 200 without
// cookies (a concurrent refresh: the winner's answer holds the new pair);
// the previous one later, or a genuine token of an older generation, is a
// reuse and revokes the session.
func (s *Service) refresh(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	if !httpapi.SameOrigin(r, s.cfg.PublicOrigins) {
		s.security(r, "foreign_origin", "origin", r.Header.Get("Origin"))
		return errForeignOrigin
	}
	fail := func(reason string) *httpapi.Error {
		s.m.refreshes.WithLabelValues("invalid").Inc()
		s.security(r, "refresh_invalid", "reason", reason)
		s.clearCookies(w)
		return httpapi.ErrUnauthenticated
	}
	ck, err := r.Cookie(token.RefreshCookie)
	if err != nil {
		s.m.refreshes.WithLabelValues("invalid").Inc()
		s.clearCookies(w)
		return httpapi.ErrUnauthenticated
	}
	refreshTok := ck.Value
	rt, ok := s.parseRefreshToken(refreshTok)
	if !ok {
		return fail("malformed")
	}
	sid := rt.sid
	ctx := r.Context()
	sess, err := s.store.SessionByID(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return fail("unknown_session")
	} else if err != nil {
		s.m.refreshes.WithLabelValues("error").Inc()
		return httpapi.Fail(s.log, "load session", err)
	}
	now := s.now()
	end := s.sessionEnd(sess.CreatedAt)
	if sess.Revoked() || !now.Before(sess.ExpiresAt) || !now.Before(end) {
		return fail("ended")
	}
	hash := hashToken(refreshTok)
	switch {
	case equalHash(hash, sess.RefreshHash):
	case sess.PrevRefreshHash != "" && equalHash(hash, sess.PrevRefreshHash):
		if s.withinGrace(sess, now) {
			return s.concurrentRefresh(w, r, sess)
		}
		return s.reused(w, r, sess, "previous token after the grace")
	case !rt.legacy && rt.gen < sess.Generation:
		// Genuine (its MAC holds) but rotated away long ago.
		return s.reused(w, r, sess, "token two or more rotations old")
	default:
		return fail("wrong_secret")
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return fail("unknown_user")
	} else if err != nil {
		s.m.refreshes.WithLabelValues("error").Inc()
		return httpapi.Fail(s.log, "load user", err)
	}
	access, _, err := s.signer.SignUntil(u.ID, sid, now, end)
	if err != nil {
		return s.internal("sign token", err)
	}
	gen := sess.Generation + 1
	next := s.newRefreshToken(sid, gen)
	err = s.store.RotateRefresh(ctx, sid, store.Rotation{OldHash: hash, NewHash: hashToken(next),
		Generation: gen, ExpiresAt: minTime(now.Add(s.cfg.RefreshTTL), end).UTC(), At: now.UTC()})
	switch {
	case errors.Is(err, store.ErrConflict):
		// Another request rotated this very token first: the race of two
		// tabs, if it was just now; otherwise (or if the session is gone
		// meanwhile) a reuse.
		cur, rerr := s.store.SessionByID(ctx, sid)
		if rerr == nil && !cur.Revoked() && equalHash(hash, cur.PrevRefreshHash) && s.withinGrace(cur, s.now()) {
			return s.concurrentRefresh(w, r, cur)
		}
		return s.reused(w, r, sess, "token rotated by a concurrent request")
	case errors.Is(err, store.ErrNotFound):
		return fail("unknown_session")
	case err != nil:
		s.m.refreshes.WithLabelValues("error").Inc()
		return httpapi.Fail(s.log, "rotate refresh token", err)
	}
	s.m.refreshes.WithLabelValues("success").Inc()
	s.setCookies(w, access, next)
	httpapi.WriteJSON(w, http.StatusOK, userResponse{User: publicUser(u)})
	return nil
}

// withinGrace reports whether sess was rotated less than refresh_grace ago
// (LastUsedAt is the time of its latest rotation).
func (s *Service) withinGrace(sess store.Session, now time.Time) bool {
	return sess.Generation > 0 && now.Sub(sess.LastUsedAt) < s.cfg.RefreshGrace
}

// concurrentRefresh answers the loser of the two-tab race: 200 with the
// user and no cookies, since the browser's jar already holds the pair the
// winner got. Nothing is issued, so a replay within the grace gains nothing.
func (s *Service) concurrentRefresh(w http.ResponseWriter, r *http.Request, sess store.Session) *httpapi.Error {
	u, err := s.store.UserByID(r.Context(), sess.UserID)
	if err != nil {
		return httpapi.Fail(s.log, "load user", err)
	}
	s.m.refreshes.WithLabelValues("concurrent").Inc()
	httpapi.WriteJSON(w, http.StatusOK, userResponse{User: publicUser(u)})
	return nil
}

// reused answers a replayed refresh token: the session is revoked as on
// logout, and the client gets 401 with its cookies cleared.
func (s *Service) reused(w http.ResponseWriter, r *http.Request, sess store.Session, why string) *httpapi.Error {
	s.m.refreshes.WithLabelValues("reused").Inc()
	s.security(r, "refresh_reused", "reason", why, "session_id", sess.ID, "user_id", sess.UserID)
	if err := s.revoke(r.Context(), sess.ID, "reuse"); err != nil {
		return httpapi.Fail(s.log, "revoke session", err)
	}
	s.clearCookies(w)
	return httpapi.ErrUnauthenticated
}

type logoutRequest struct {
	All bool `json:"all"`
}

// logout revokes the caller's session, or with {"all": true} every session
// of the caller's user (which needs a valid access token).
func (s *Service) logout(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	ctx := r.Context()
	var req logoutRequest
	if r.ContentLength > 0 || r.Header.Get("Content-Type") != "" {
		if e := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &req); e != nil {
			return e
		}
	}
	var sid, userID string
	if tok, ok := token.BearerToken(r); ok {
		if c, err := s.verifier.Verify(ctx, tok); err == nil {
			sid, userID = c.SessionID, c.UserID
		}
	}
	if sid == "" {
		access := token.CookieToken(r)
		refresh, _ := r.Cookie(token.RefreshCookie)
		if access != "" || refresh != nil {
			if !httpapi.SameOrigin(r, s.cfg.PublicOrigins) {
				return errForeignOrigin
			}
			if access != "" {
				if c, err := s.verifier.Verify(ctx, access); err == nil {
					sid, userID = c.SessionID, c.UserID
				}
			}
			if sid == "" && refresh != nil && !req.All {
				var e *httpapi.Error
				if sid, e = s.refreshSession(ctx, refresh.Value); e != nil {
					return e
				}
			}
		}
	}
	if req.All {
		if userID == "" {
			return httpapi.ErrUnauthenticated
		}
		if _, e := s.authorizedSession(r, token.Claims{UserID: userID, SessionID: sid}); e != nil {
			return e
		}
		if err := s.revokeAll(r, userID, "", "logout_all"); err != nil {
			return httpapi.Fail(s.log, "revoke sessions", err)
		}
		sid = ""
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
	rt, ok := s.parseRefreshToken(refreshTok)
	if !ok {
		return "", nil
	}
	sid := rt.sid
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

// Refresh tokens are "<session id>.<generation>.<secret>.<mac>": 32
// random bytes and HMAC-SHA-256(macKey, "<session id>.<generation>.<secret>"),
// both base64url. The MAC lets a token of an older generation be told
// genuine without storing it (reuse over the whole family), and keeps a
// forged one from revoking anyone's session. Tokens issued before the
// generation existed, "<session id>.<secret>", are still read (legacy).
const refreshSecretLen = 32

func randomSecret() string {
	b := make([]byte, refreshSecretLen)
	_, _ = rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// refreshMACKey derives the refresh-token MAC key from the signing key, so
// every auth replica (they share the key) checks every replica's tokens.
func refreshMACKey(k *token.SigningKey) []byte {
	key, _ := hkdf.Key(sha256.New, k.Private.Seed(), nil, "chatd refresh token mac v1", 32) // fails only for a bad length
	return key
}

func (s *Service) refreshMAC(body string) string {
	m := hmac.New(sha256.New, s.macKey)
	_, _ = m.Write([]byte(body)) // a hash.Hash never fails to write
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Service) newRefreshToken(sid string, gen int64) string {
	body := sid + "." + strconv.FormatInt(gen, 10) + "." + randomSecret()
	return body + "." + s.refreshMAC(body)
}

// refreshToken is a parsed refresh token.
type refreshToken struct {
	sid    string
	gen    int64
	legacy bool // "<sid>.<secret>", no generation or MAC
}

// parseRefreshToken parses tok and checks its MAC.
func (s *Service) parseRefreshToken(tok string) (refreshToken, bool) {
	if len(tok) > 512 {
		return refreshToken{}, false
	}
	parts := strings.Split(tok, ".")
	validID := func(sid string) bool { return sid != "" && len(sid) <= 64 }
	validSecret := func(secret string) bool {
		if base64.RawURLEncoding.DecodedLen(len(secret)) != refreshSecretLen {
			return false
		}
		_, err := base64.RawURLEncoding.DecodeString(secret)
		return err == nil
	}
	switch len(parts) {
	case 2:
		if !validID(parts[0]) || !validSecret(parts[1]) {
			return refreshToken{}, false
		}
		return refreshToken{sid: parts[0], legacy: true}, true
	case 4:
		gen, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || gen < 0 || !validID(parts[0]) || !validSecret(parts[2]) {
			return refreshToken{}, false
		}
		body := parts[0] + "." + parts[1] + "." + parts[2]
		if !hmac.Equal([]byte(s.refreshMAC(body)), []byte(parts[3])) {
			return refreshToken{}, false
		}
		return refreshToken{sid: parts[0], gen: gen}, true
	}
	return refreshToken{}, false
}

// hashToken is the stored form of a refresh token: hex SHA-256.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func equalHash(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
