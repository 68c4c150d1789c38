package auth

import (
	"errors"
	"net/http"
	"time"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
)

// Routes registers the /auth endpoints on mux.
func (s *Service) Routes(mux *http.ServeMux) {
	routes := []struct {
		method, path string
		h            func(http.ResponseWriter, *http.Request) *httpapi.Error
	}{
		{http.MethodPost, "/auth/signup", s.signup},
		{http.MethodPost, "/auth/login", s.login},
		{http.MethodPost, "/auth/refresh", s.refresh},
		{http.MethodPost, "/auth/logout", s.logout},
		{http.MethodPost, "/auth/token", s.token},
		{http.MethodGet, "/auth/me", s.me},
		{http.MethodGet, "/auth/jwks", s.serveJWKS},
		{http.MethodPost, "/auth/password", s.changePassword},
		{http.MethodGet, "/auth/sessions", s.listSessions},
		{http.MethodDelete, "/auth/sessions/{id}", s.deleteSession},
		{http.MethodDelete, "/auth/account", s.deleteAccount},
	}
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, handler(rt.h))
		allow := rt.method
		if rt.method == http.MethodGet {
			allow = "GET, HEAD"
		}
		mux.Handle(rt.path, methodNotAllowed(allow))
	}
}

func handler(h func(http.ResponseWriter, *http.Request) *httpapi.Error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := h(w, r); e != nil {
			httpapi.WriteError(w, e)
		}
	})
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "use %s", allow))
	})
}

var errForeignOrigin = httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "cross-origin request refused")

type userResponse struct {
	User httpapi.User `json:"user"`
}

// checkOrigin refuses a request whose Origin header names a foreign origin
// (login CSRF). A request without Origin (a non-browser client) passes.
func (s *Service) checkOrigin(r *http.Request) *httpapi.Error {
	if o := r.Header.Get("Origin"); o != "" && !httpapi.OriginAllowed(r, o, s.cfg.PublicOrigins) {
		s.security(r, "foreign_origin", "origin", o)
		return errForeignOrigin
	}
	return nil
}

func (s *Service) me(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	c, _, err := s.verifier.FromRequest(r)
	if err != nil {
		if !errors.Is(err, token.ErrNoToken) {
			s.security(r, "invalid_token")
		}
		return httpapi.ErrUnauthenticated
	}
	ctx := r.Context()
	sess, err := s.store.SessionByID(ctx, c.SessionID)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrUnauthenticated
	} else if err != nil {
		return httpapi.Fail(s.log, "load session", err)
	}
	if sess.Revoked() || sess.UserID != c.UserID {
		return httpapi.ErrUnauthenticated
	}
	u, err := s.store.UserByID(ctx, c.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrUnauthenticated
	} else if err != nil {
		return httpapi.Fail(s.log, "load user", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, userResponse{User: publicUser(u)})
	return nil
}

func (s *Service) serveJWKS(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(s.jwks)
	return nil
}

// setCookies sets the access cookie and, if refresh is not empty, the
// refresh cookie.
func (s *Service) setCookies(w http.ResponseWriter, access, refresh string) {
	http.SetCookie(w, &http.Cookie{
		Name: token.SessionCookieName(s.cfg.CookieSecure), Value: access, Path: "/",
		MaxAge:   int(s.cfg.AccessTTL / time.Second),
		HttpOnly: true, Secure: s.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
	})
	if refresh != "" {
		http.SetCookie(w, &http.Cookie{
			Name: token.RefreshCookie, Value: refresh, Path: "/auth",
			MaxAge:   int(s.cfg.RefreshTTL / time.Second),
			HttpOnly: true, Secure: s.cfg.CookieSecure, SameSite: http.SameSiteStrictMode,
		})
	}
}

// clearCookies tells the browser to drop both cookies (Max-Age=0, same
// Path), and with Secure cookies the unprefixed access cookie of earlier
// versions too.
func (s *Service) clearCookies(w http.ResponseWriter) {
	names := []string{token.SessionCookieName(s.cfg.CookieSecure)}
	if s.cfg.CookieSecure {
		names = append(names, token.SessionCookie)
	}
	for _, name := range names {
		http.SetCookie(w, &http.Cookie{
			Name: name, Path: "/", MaxAge: -1,
			HttpOnly: true, Secure: s.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
		})
	}
	http.SetCookie(w, &http.Cookie{
		Name: token.RefreshCookie, Path: "/auth", MaxAge: -1,
		HttpOnly: true, Secure: s.cfg.CookieSecure, SameSite: http.SameSiteStrictMode,
	})
}

// publicUser is api.md's User of u (never its password hash).
func publicUser(u store.User) httpapi.User { return httpapi.NewUser(u.ID, u.Username, u.DisplayName) }
