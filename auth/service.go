package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
)

// Input limits of api.md.
const (
	minUsername    = 3
	maxUsername    = 32
	minPassword    = 8
	maxPassword    = 256
	maxDisplayName = 64
)

// limiterKeys bounds the failed-login limiter's memory.
const limiterKeys = 65536

// revokeTimeout bounds a revocation (store and publish), which runs to its
// end even when the client goes away.
const revokeTimeout = 5 * time.Second

// Deps are the Service's collaborators.
type Deps struct {
	Store store.Store // required
	// Broker carries revocations to the chat nodes (pubsub.TopicRevocations).
	// Without it, revoked sessions are refused by chat's store check only and
	// their open WebSockets are not closed.
	Broker pubsub.Broker
	// Signer issues access tokens; nil = NewSigner(Keys, cfg.Issuer,
	// cfg.Audience, cfg.AccessTTL).
	Signer *Signer
	// Keys is the signing key, served at /auth/jwks and used to verify the
	// service's own tokens. Required unless Signer is set (then its key).
	Keys    *SigningKey
	Logger  *slog.Logger          // nil = discard
	Metrics prometheus.Registerer // nil = metrics not registered
}

// Service serves the /auth endpoints: accounts, passwords and sessions.
type Service struct {
	cfg      Config
	store    store.Store
	broker   pubsub.Broker
	signer   *Signer
	keys     *SigningKey
	verifier *Verifier
	log      *slog.Logger
	limiter  *failLimiter
	hashSem  chan struct{} // bounds concurrent argon2 runs (CPU and memory)
	dummy    string        // hash verified for unknown users, so they cost the same
	jwks     []byte
	now      func() time.Time
	m        metrics
}

type metrics struct {
	signups     prometheus.Counter
	logins      *prometheus.CounterVec // result: success, invalid_credentials, rate_limited, error
	refreshes   *prometheus.CounterVec // result: success, invalid, reused, error
	revocations *prometheus.CounterVec // reason: logout, reuse
}

// New returns a Service. It validates cfg.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Store == nil {
		return nil, errors.New("auth: no store")
	}
	if d.Keys == nil && d.Signer != nil {
		d.Keys = d.Signer.key
	}
	if d.Keys == nil {
		return nil, errors.New("auth: no signing key")
	}
	if d.Signer == nil {
		d.Signer = NewSigner(d.Keys, cfg.Issuer, cfg.Audience, cfg.AccessTTL)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:      cfg,
		store:    d.Store,
		broker:   d.Broker,
		signer:   d.Signer,
		keys:     d.Keys,
		verifier: NewVerifier(StaticKeySet(d.Keys.Public(), d.Signer.key.Public()), d.Signer.issuer, d.Signer.audience),
		log:      d.Logger,
		limiter:  newFailLimiter(cfg.MaxFailedLogins, cfg.FailedLoginWindow, limiterKeys),
		hashSem:  make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
		dummy:    HashPassword("dummy password, never matches", cfg.Argon2),
		jwks:     d.Keys.JWKS(),
		now:      time.Now,
	}
	if err := s.initMetrics(d.Metrics); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) initMetrics(reg prometheus.Registerer) error {
	s.m = metrics{
		signups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_auth_signups_total", Help: "Accounts created.",
		}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_auth_logins_total", Help: "Login and token requests by result.",
		}, []string{"result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_auth_refreshes_total", Help: "Refresh requests by result.",
		}, []string{"result"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_auth_revocations_total", Help: "Sessions revoked, by reason.",
		}, []string{"reason"}),
	}
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{s.m.signups, s.m.logins, s.m.refreshes, s.m.revocations} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("auth: register metrics: %w", err)
		}
	}
	return nil
}

// Verifier returns the verifier of the service's own access tokens.
func (s *Service) Verifier() *Verifier { return s.verifier }

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

var (
	errInvalidCredentials = httpapi.Errorf(http.StatusUnauthorized, httpapi.CodeInvalidCredentials, "wrong username or password")
	errForeignOrigin      = httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "cross-origin request refused")
)

// apiUser is api.md's User.
type apiUser struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

type userResponse struct {
	User apiUser `json:"user"`
}

func toAPIUser(u store.User) apiUser {
	return apiUser{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName}
}

type credentials struct {
	Username    string  `json:"username"`
	Password    string  `json:"password"`
	DisplayName *string `json:"display_name"`
}

// checkOrigin refuses a request whose Origin header names a foreign origin
// (login CSRF). A request without Origin (a non-browser client) passes.
func (s *Service) checkOrigin(r *http.Request) *httpapi.Error {
	if o := r.Header.Get("Origin"); o != "" && !httpapi.OriginAllowed(r, o, s.cfg.PublicOrigins) {
		return errForeignOrigin
	}
	return nil
}

func (s *Service) signup(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	if e := s.checkOrigin(r); e != nil {
		return e
	}
	var req credentials
	if e := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &req); e != nil {
		return e
	}
	username, ok := normalizeUsername(req.Username)
	if !ok {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidUsername,
			"a username has %d to %d characters among a-z, 0-9, '_', '.' and '-'", minUsername, maxUsername)
	}
	if n := utf8.RuneCountInString(req.Password); n < minPassword || n > maxPassword {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeWeakPassword,
			"a password has %d to %d characters", minPassword, maxPassword)
	}
	// Without a display name, the username as typed keeps its case ("Alice").
	display, e := normalizeDisplayName(req.DisplayName, req.Username)
	if e != nil {
		return e
	}
	ctx := r.Context()
	// A taken name is refused before the costly hash; CreateUser still
	// settles a race.
	if _, err := s.store.UserByUsername(ctx, username); err == nil {
		return errUsernameTaken
	} else if !errors.Is(err, store.ErrNotFound) {
		return s.unavailable("look up user", err)
	}
	var hash string
	if err := s.withHashSlot(ctx, func() { hash = HashPassword(req.Password, s.cfg.Argon2) }); err != nil {
		return s.unavailable("hash password", err)
	}
	u := store.User{ID: store.NewID(), Username: username, DisplayName: display, PasswordHash: hash, CreatedAt: s.now().UTC()}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errUsernameTaken
		}
		return s.unavailable("create user", err)
	}
	s.m.signups.Inc()
	s.log.Info("user signed up", "user_id", u.ID)
	if e := s.startBrowserSession(ctx, w, u); e != nil {
		return e
	}
	httpapi.WriteJSON(w, http.StatusCreated, userResponse{User: toAPIUser(u)})
	return nil
}

var errUsernameTaken = httpapi.Errorf(http.StatusConflict, httpapi.CodeUsernameTaken, "this username is taken")

func (s *Service) login(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	u, e := s.authenticate(w, r)
	if e != nil {
		return e
	}
	if e := s.startBrowserSession(r.Context(), w, u); e != nil {
		return e
	}
	httpapi.WriteJSON(w, http.StatusOK, userResponse{User: toAPIUser(u)})
	return nil
}

type tokenResponse struct {
	Token     string  `json:"token"`
	ExpiresAt string  `json:"expires_at"`
	User      apiUser `json:"user"`
}

// timeFormat is api.md's time format: RFC 3339 UTC with milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func (s *Service) token(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	u, e := s.authenticate(w, r)
	if e != nil {
		return e
	}
	now := s.now()
	// A bearer session has no refresh token: its hash is of a random value
	// nobody holds. It lasts as long as its access token.
	sess := store.Session{
		ID:          store.NewID(),
		UserID:      u.ID,
		RefreshHash: hashToken(randomSecret()),
		CreatedAt:   now.UTC(),
		ExpiresAt:   now.Add(s.cfg.AccessTTL).UTC(),
	}
	tok, exp, err := s.signer.Sign(u.ID, sess.ID, now)
	if err != nil {
		return s.internal("sign token", err)
	}
	if err := s.store.CreateSession(r.Context(), sess); err != nil {
		return s.unavailable("create session", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, tokenResponse{Token: tok, ExpiresAt: exp.UTC().Format(timeFormat), User: toAPIUser(u)})
	return nil
}

// authenticate checks the credentials of a login or token request, under
// the failed-login limiter. Unknown users and wrong passwords get the same
// answer after the same work.
func (s *Service) authenticate(w http.ResponseWriter, r *http.Request) (store.User, *httpapi.Error) {
	if e := s.checkOrigin(r); e != nil {
		return store.User{}, e
	}
	var req credentials
	if e := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &req); e != nil {
		return store.User{}, e
	}
	username, ok := normalizeUsername(req.Username)
	if !ok || req.Password == "" || utf8.RuneCountInString(req.Password) > maxPassword {
		// No such account can exist: nothing to hide or to limit.
		s.m.logins.WithLabelValues("invalid_credentials").Inc()
		return store.User{}, errInvalidCredentials
	}
	if ok, wait := s.limiter.begin(username, s.now()); !ok {
		s.m.logins.WithLabelValues("rate_limited").Inc()
		return store.User{}, &httpapi.Error{Status: http.StatusTooManyRequests, Code: httpapi.CodeRateLimited,
			Message: "too many failed logins, try again later", RetryAfter: max(wait, time.Second)}
	}
	ctx := r.Context()
	u, err := s.store.UserByUsername(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.limiter.undo(username)
		s.m.logins.WithLabelValues("error").Inc()
		return store.User{}, s.unavailable("look up user", err)
	}
	found := err == nil
	hash := s.dummy
	if found {
		hash = u.PasswordHash
	}
	var match bool
	var verr error
	if err := s.withHashSlot(ctx, func() { match, verr = VerifyPassword(req.Password, hash) }); err != nil {
		s.limiter.undo(username)
		s.m.logins.WithLabelValues("error").Inc()
		return store.User{}, s.unavailable("verify password", err)
	}
	if verr != nil && found {
		s.log.Error("stored password hash is malformed", "user_id", u.ID, "err", verr)
	}
	if !match || !found {
		s.m.logins.WithLabelValues("invalid_credentials").Inc()
		return store.User{}, errInvalidCredentials
	}
	s.limiter.succeed(username)
	s.m.logins.WithLabelValues("success").Inc()
	return u, nil
}

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
		return s.unavailable("create session", err)
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
	ck, err := r.Cookie(RefreshCookie)
	if err != nil {
		return fail()
	}
	token := ck.Value
	sid, ok := parseRefreshToken(token)
	if !ok {
		return fail()
	}
	ctx := r.Context()
	sess, err := s.store.SessionByID(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return fail()
	} else if err != nil {
		s.m.refreshes.WithLabelValues("error").Inc()
		return s.unavailable("load session", err)
	}
	now := s.now()
	if sess.Revoked() || !now.Before(sess.ExpiresAt) {
		return fail()
	}
	hash := hashToken(token)
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
		return s.unavailable("load user", err)
	}
	access, _, err := s.signer.Sign(u.ID, sid, now)
	if err != nil {
		return s.internal("sign token", err)
	}
	next := newRefreshToken(sid)
	err = s.store.RotateRefresh(ctx, sid, hash, hashToken(next), now.Add(s.cfg.RefreshTTL).UTC())
	switch {
	case errors.Is(err, store.ErrConflict):
		// Another request rotated this very token first: a reuse.
		return s.reused(w, r, sess)
	case errors.Is(err, store.ErrNotFound):
		return fail()
	case err != nil:
		s.m.refreshes.WithLabelValues("error").Inc()
		return s.unavailable("rotate refresh token", err)
	}
	s.m.refreshes.WithLabelValues("success").Inc()
	s.setCookies(w, access, next)
	httpapi.WriteJSON(w, http.StatusOK, userResponse{User: toAPIUser(u)})
	return nil
}

// reused answers a replayed refresh token: the session is revoked as on
// logout, and the client gets 401 with its cookies cleared.
func (s *Service) reused(w http.ResponseWriter, r *http.Request, sess store.Session) *httpapi.Error {
	s.m.refreshes.WithLabelValues("reused").Inc()
	s.log.Warn("refresh token reused, revoking the session", "session_id", sess.ID, "user_id", sess.UserID)
	if err := s.revoke(r.Context(), sess.ID, "reuse"); err != nil {
		return s.unavailable("revoke session", err)
	}
	s.clearCookies(w)
	return httpapi.ErrUnauthenticated
}

func (s *Service) logout(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	ctx := r.Context()
	var sid string
	if tok, ok := BearerToken(r); ok {
		if c, err := s.verifier.Verify(ctx, tok); err == nil {
			sid = c.SessionID
		}
	}
	if sid == "" {
		access, _ := r.Cookie(SessionCookie)
		refresh, _ := r.Cookie(RefreshCookie)
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
			return s.unavailable("revoke session", err)
		}
	}
	s.clearCookies(w)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// refreshSession returns the id of the session that token is the current
// or previous refresh token of, or "" if there is none.
func (s *Service) refreshSession(ctx context.Context, token string) (string, *httpapi.Error) {
	sid, ok := parseRefreshToken(token)
	if !ok {
		return "", nil
	}
	sess, err := s.store.SessionByID(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", s.unavailable("load session", err)
	}
	hash := hashToken(token)
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

func (s *Service) me(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	c, _, err := s.verifier.FromRequest(r)
	if err != nil {
		return httpapi.ErrUnauthenticated
	}
	ctx := r.Context()
	sess, err := s.store.SessionByID(ctx, c.SessionID)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrUnauthenticated
	} else if err != nil {
		return s.unavailable("load session", err)
	}
	if sess.Revoked() || sess.UserID != c.UserID {
		return httpapi.ErrUnauthenticated
	}
	u, err := s.store.UserByID(ctx, c.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrUnauthenticated
	} else if err != nil {
		return s.unavailable("load user", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, userResponse{User: toAPIUser(u)})
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
		Name: SessionCookie, Value: access, Path: "/",
		MaxAge:   int(s.cfg.AccessTTL / time.Second),
		HttpOnly: true, Secure: s.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
	})
	if refresh != "" {
		http.SetCookie(w, &http.Cookie{
			Name: RefreshCookie, Value: refresh, Path: "/auth",
			MaxAge:   int(s.cfg.RefreshTTL / time.Second),
			HttpOnly: true, Secure: s.cfg.CookieSecure, SameSite: http.SameSiteStrictMode,
		})
	}
}

// clearCookies tells the browser to drop both cookies (Max-Age=0, same Path).
func (s *Service) clearCookies(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
	})
	http.SetCookie(w, &http.Cookie{
		Name: RefreshCookie, Path: "/auth", MaxAge: -1,
		HttpOnly: true, Secure: s.cfg.CookieSecure, SameSite: http.SameSiteStrictMode,
	})
}

// withHashSlot runs f (an argon2 computation) once fewer than cap(hashSem)
// others run, so that a burst of logins cannot exhaust memory.
func (s *Service) withHashSlot(ctx context.Context, f func()) error {
	select {
	case s.hashSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashSem }()
	f()
	return nil
}

// unavailable logs a backend failure and returns the 503 shown instead.
func (s *Service) unavailable(op string, err error) *httpapi.Error {
	if errors.Is(err, context.Canceled) {
		s.log.Debug("auth: "+op+": request canceled", "err", err)
	} else {
		s.log.Error("auth: "+op, "err", err)
	}
	return httpapi.ErrUnavailable
}

func (s *Service) internal(op string, err error) *httpapi.Error {
	s.log.Error("auth: "+op, "err", err)
	return httpapi.Errorf(http.StatusInternalServerError, httpapi.CodeInternal, "internal error")
}

// normalizeUsername folds ASCII letters to lower case and reports whether
// the result is a valid username. Non-ASCII letters are refused rather than
// folded, so that no two spellings look alike.
func normalizeUsername(s string) (string, bool) {
	if len(s) < minUsername || len(s) > maxUsername {
		return "", false
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return "", false
		}
	}
	return string(b), true
}

// normalizeDisplayName trims d; absent or blank means username (which has
// passed normalizeUsername up to case). It refuses
// more than 64 characters and control characters (bidi overrides and line
// separators included).
func normalizeDisplayName(d *string, username string) (string, *httpapi.Error) {
	if d == nil {
		return username, nil
	}
	name := strings.TrimSpace(*d)
	if name == "" {
		return username, nil
	}
	if utf8.RuneCountInString(name) > maxDisplayName {
		return "", httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "display_name has at most %d characters", maxDisplayName)
	}
	for _, r := range name {
		if r == utf8.RuneError || unicode.IsControl(r) || isBidiOrSeparator(r) {
			return "", httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "display_name must not contain control characters")
		}
	}
	return name, nil
}

func isBidiOrSeparator(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x2028 || r == 0x2029 || r == 0x200E || r == 0x200F
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
