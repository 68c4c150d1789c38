package auth

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
)

// The account endpoints of api.md 1.1 (docs/api.md, "Account endpoints"):
// password change, the session list and its revocations, account deletion.

var errWrongPassword = httpapi.Errorf(http.StatusForbidden, httpapi.CodeInvalidCredentials, "the password is wrong")

// caller authenticates an account request like /api: an access token
// (bearer or cookie) whose session is active, and, for a cookie-
// authenticated unsafe request, the same-origin rule.
func (s *Service) caller(r *http.Request) (token.Claims, store.Session, *httpapi.Error) {
	c, viaCookie, err := s.verifier.FromRequest(r)
	if err != nil {
		if !errors.Is(err, token.ErrNoToken) {
			s.security(r, "invalid_token")
		}
		return token.Claims{}, store.Session{}, httpapi.ErrUnauthenticated
	}
	if viaCookie && httpapi.IsUnsafe(r.Method) && !httpapi.SameOrigin(r, s.cfg.PublicOrigins) {
		s.security(r, "foreign_origin", "origin", r.Header.Get("Origin"))
		return token.Claims{}, store.Session{}, errForeignOrigin
	}
	sess, e := s.authorizedSession(r, c)
	return c, sess, e
}

// authorizedSession loads the session of c and refuses it (401) unless it is
// c's user's and active.
func (s *Service) authorizedSession(r *http.Request, c token.Claims) (store.Session, *httpapi.Error) {
	sess, err := s.store.SessionByID(r.Context(), c.SessionID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Session{}, httpapi.ErrUnauthenticated
	} else if err != nil {
		return store.Session{}, httpapi.Fail(s.log, "load session", err)
	}
	if sess.UserID != c.UserID || !s.active(sess, s.now()) {
		return store.Session{}, httpapi.ErrUnauthenticated
	}
	return sess, nil
}

// active reports whether sess is neither revoked nor ended (its refresh
// token's expiry, or session_max_age after its login).
func (s *Service) active(sess store.Session, now time.Time) bool {
	return !sess.Revoked() && now.Before(sess.ExpiresAt) && now.Before(s.sessionEnd(sess.CreatedAt))
}

// revokeAll revokes every active session of userID but except, announcing
// each (their sockets close with 4001).
func (s *Service) revokeAll(r *http.Request, userID, except, reason string) error {
	sessions, err := s.store.SessionsByUser(r.Context(), userID)
	if err != nil {
		return err
	}
	now := s.now()
	for _, sess := range sessions {
		if sess.ID == except || !s.active(sess, now) {
			continue
		}
		if err := s.revoke(r.Context(), sess.ID, reason); err != nil {
			return err
		}
	}
	return nil
}

type passwordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// changePassword: POST /auth/password.
func (s *Service) changePassword(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	c, _, e := s.caller(r)
	if e != nil {
		return e
	}
	var req passwordRequest
	if e := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &req); e != nil {
		return e
	}
	ctx := r.Context()
	u, err := s.store.UserByID(ctx, c.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrUnauthenticated
	} else if err != nil {
		return httpapi.Fail(s.log, "load user", err)
	}
	if e := checkNewPassword(req.NewPassword, u.Username); e != nil {
		return e
	}
	if _, e := s.verifyCredentials(r, u.Username, req.CurrentPassword, errWrongPassword); e != nil {
		return e
	}
	var hash string
	if err := s.withHashSlot(ctx, func() { hash = HashPassword(req.NewPassword, s.cfg.Argon2) }); err != nil {
		return httpapi.Fail(s.log, "hash password", err)
	}
	if err := s.store.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return httpapi.Fail(s.log, "set password", err)
	}
	if err := s.revokeAll(r, u.ID, c.SessionID, "password_change"); err != nil {
		return httpapi.Fail(s.log, "revoke sessions", err)
	}
	s.log.Info("password changed, other sessions revoked", "user_id", u.ID, "session_id", c.SessionID)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type sessionInfo struct {
	ID         string `json:"id"`
	CreatedAt  string `json:"created_at"`
	LastUsedAt string `json:"last_used_at"`
	UserAgent  string `json:"user_agent"`
	Current    bool   `json:"current"`
}

type sessionsResponse struct {
	Sessions []sessionInfo `json:"sessions"`
}

// listSessions: GET /auth/sessions, most recently used first.
func (s *Service) listSessions(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	c, _, e := s.caller(r)
	if e != nil {
		return e
	}
	all, err := s.store.SessionsByUser(r.Context(), c.UserID)
	if err != nil {
		return httpapi.Fail(s.log, "list sessions", err)
	}
	now := s.now()
	all = slices.DeleteFunc(all, func(sess store.Session) bool { return !s.active(sess, now) })
	slices.SortFunc(all, func(a, b store.Session) int {
		if c := b.LastUsedAt.Compare(a.LastUsedAt); c != 0 {
			return c
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})
	out := sessionsResponse{Sessions: make([]sessionInfo, 0, len(all))}
	for _, sess := range all {
		used := sess.LastUsedAt
		if used.IsZero() { // a session from before last_used_at was kept
			used = sess.CreatedAt
		}
		out.Sessions = append(out.Sessions, sessionInfo{
			ID: sess.ID, CreatedAt: httpapi.FormatTime(sess.CreatedAt), LastUsedAt: httpapi.FormatTime(used),
			UserAgent: sess.UserAgent, Current: sess.ID == c.SessionID,
		})
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// deleteSession: DELETE /auth/sessions/{id}.
func (s *Service) deleteSession(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	c, _, e := s.caller(r)
	if e != nil {
		return e
	}
	id := r.PathValue("id")
	sess, err := s.store.SessionByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrNotFound
	} else if err != nil {
		return httpapi.Fail(s.log, "load session", err)
	}
	// Another user's session is not found, exactly like an unknown one.
	if sess.UserID != c.UserID || !s.active(sess, s.now()) {
		return httpapi.ErrNotFound
	}
	if err := s.revoke(r.Context(), id, "session_revoked"); err != nil {
		return httpapi.Fail(s.log, "revoke session", err)
	}
	if id == c.SessionID {
		s.clearCookies(w)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type deleteAccountRequest struct {
	Password string `json:"password"`
}

// deleteAccount: DELETE /auth/account. The order keeps a retry able to
// finish after a failure: the other sessions, the messages, the uploads, the caller's
// own session, and the user last, so that until the account is gone its
// owner can always retry (with this session or, once it is revoked, after
// logging in again).
func (s *Service) deleteAccount(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	c, _, e := s.caller(r)
	if e != nil {
		return e
	}
	var req deleteAccountRequest
	if e := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &req); e != nil {
		return e
	}
	ctx := r.Context()
	u, err := s.store.UserByID(ctx, c.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrUnauthenticated
	} else if err != nil {
		return httpapi.Fail(s.log, "load user", err)
	}
	if _, e := s.verifyCredentials(r, u.Username, req.Password, errWrongPassword); e != nil {
		return e
	}
	if err := s.revokeAll(r, u.ID, c.SessionID, "account_deleted"); err != nil {
		return httpapi.Fail(s.log, "revoke sessions", err)
	}
	if _, err := s.store.EraseMessagesFrom(ctx, u.ID); err != nil {
		return httpapi.Fail(s.log, "erase messages", err)
	}
	if _, err := s.store.DeleteAttachmentsOf(ctx, u.ID); err != nil {
		return httpapi.Fail(s.log, "delete uploads", err)
	}
	if err := s.revoke(ctx, c.SessionID, "account_deleted"); err != nil {
		return httpapi.Fail(s.log, "revoke session", err)
	}
	if err := s.store.DeleteUser(ctx, u.ID); err != nil {
		return httpapi.Fail(s.log, "delete user", err)
	}
	s.log.Info("account deleted", "user_id", u.ID)
	s.clearCookies(w)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
