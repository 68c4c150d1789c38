package auth

import (
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/textpolicy"
)

// Input limits of api.md.
const (
	minUsername    = 3
	maxUsername    = 32
	maxPassword    = 256
	maxDisplayName = 64
)

var (
	errInvalidCredentials = httpapi.Errorf(http.StatusUnauthorized, httpapi.CodeInvalidCredentials, "wrong username or password")
	errUsernameTaken      = httpapi.Errorf(http.StatusConflict, httpapi.CodeUsernameTaken, "this username is taken")
)

type credentials struct {
	Username    string  `json:"username"`
	Password    string  `json:"password"`
	DisplayName *string `json:"display_name"`
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
	if e := checkNewPassword(req.Password, username); e != nil {
		return e
	}
	// Without a display name, the username as typed keeps its case ("Alice").
	display, e := normalizeDisplayName(req.DisplayName, req.Username)
	if e != nil {
		return e
	}
	// Valid requests count against the address's signups, a taken name
	// too (the answer tells whether a name exists); a backend failure is
	// given back.
	key := s.clientKey(r)
	if s.signups != nil {
		if ok, wait := s.signups.Allow(key, s.now()); !ok {
			s.security(r, "signup_rate_limited", "retry_after", wait.Round(time.Second).String())
			return httpapi.RateLimited(wait, "too many signups from this address, try again later")
		}
	}
	refund := func() {
		if s.signups != nil {
			s.signups.Refund(key)
		}
	}
	ctx := r.Context()
	// A taken name is refused before the costly hash; CreateUser still
	// settles a race.
	if _, err := s.store.UserByUsername(ctx, username); err == nil {
		return errUsernameTaken
	} else if !errors.Is(err, store.ErrNotFound) {
		refund()
		return httpapi.Fail(s.log, "look up user", err)
	}
	if e := s.checkLookalikeNames(ctx, username, display, ""); e != nil {
		if e.Status != http.StatusConflict { // a backend failure, not a look-alike
			refund()
		}
		return e
	}
	var hash string
	if err := s.withHashSlot(ctx, func() { hash = HashPassword(req.Password, s.cfg.Argon2) }); err != nil {
		refund()
		return httpapi.Fail(s.log, "hash password", err)
	}
	u := store.User{ID: store.NewID(), Username: username, DisplayName: display, PasswordHash: hash, CreatedAt: s.now().UTC(),
		UsernameKey: textpolicy.NameKey(username), DisplayNameKey: textpolicy.NameKey(display)}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errUsernameTaken
		}
		refund()
		return httpapi.Fail(s.log, "create user", err)
	}
	s.m.signups.Inc()
	s.log.Info("user signed up", "user_id", u.ID)
	if e := s.startBrowserSession(w, r, u); e != nil {
		return e
	}
	httpapi.WriteJSON(w, http.StatusCreated, userResponse{User: publicUser(u)})
	return nil
}

func (s *Service) login(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	u, e := s.authenticate(w, r)
	if e != nil {
		return e
	}
	if e := s.startBrowserSession(w, r, u); e != nil {
		return e
	}
	httpapi.WriteJSON(w, http.StatusOK, userResponse{User: publicUser(u)})
	return nil
}

type tokenResponse struct {
	Token     string       `json:"token"`
	ExpiresAt string       `json:"expires_at"`
	User      httpapi.User `json:"user"`
}

func (s *Service) token(w http.ResponseWriter, r *http.Request) *httpapi.Error {
	u, e := s.authenticate(w, r)
	if e != nil {
		return e
	}
	now := s.now()
	// A bearer session has no refresh token: its hash is of a random value
	// nobody holds. It lasts as long as its access token.
	sess := s.newSession(r, u, store.NewID(), hashToken(randomSecret()), now.Add(s.cfg.AccessTTL))
	tok, exp, err := s.signer.Sign(u.ID, sess.ID, now)
	if err != nil {
		return s.internal("sign token", err)
	}
	if err := s.store.CreateSession(r.Context(), sess); err != nil {
		return httpapi.Fail(s.log, "create session", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, tokenResponse{Token: tok, ExpiresAt: httpapi.FormatTime(exp), User: publicUser(u)})
	return nil
}

// authenticate checks the credentials of a login or token request, under
// the per-address attempt limit and the failed-login guard. Unknown users
// and wrong passwords get the same answer after the same work.
func (s *Service) authenticate(w http.ResponseWriter, r *http.Request) (store.User, *httpapi.Error) {
	if e := s.checkOrigin(r); e != nil {
		return store.User{}, e
	}
	var req credentials
	if e := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &req); e != nil {
		return store.User{}, e
	}
	if s.logins != nil {
		if ok, wait := s.logins.Allow(s.clientKey(r), s.now()); !ok {
			s.m.logins.WithLabelValues("rate_limited").Inc()
			s.security(r, "login_rate_limited", "limit", "address_rate", "retry_after", wait.Round(time.Second).String())
			return store.User{}, httpapi.RateLimited(wait, "too many login attempts from this address, try again later")
		}
	}
	username, ok := normalizeUsername(req.Username)
	if !ok || req.Password == "" || utf8.RuneCountInString(req.Password) > maxPassword {
		// No such account can exist: nothing to hide or to limit.
		s.m.logins.WithLabelValues("invalid_credentials").Inc()
		s.security(r, "login_failed", "reason", "malformed")
		return store.User{}, errInvalidCredentials
	}
	return s.verifyCredentials(r, username, req.Password, errInvalidCredentials)
}

// verifyCredentials checks password against the account username under the
// failed-login guard, and answers wrong (or 429) when it does not match.
// Login and token requests, the password change and the account deletion
// all pass here, so a stolen session cannot guess the password faster than
// a login could.
func (s *Service) verifyCredentials(r *http.Request, username, password string, wrong *httpapi.Error) (store.User, *httpapi.Error) {
	a, ok, wait, limit := s.guard.begin(username, s.clientKey(r), s.now())
	if !ok {
		s.m.logins.WithLabelValues("rate_limited").Inc()
		s.security(r, "login_rate_limited", "limit", limit, "username", username, "retry_after", wait.Round(time.Second).String())
		return store.User{}, httpapi.RateLimited(wait, "too many failed logins, try again later")
	}
	ctx := r.Context()
	u, err := s.store.UserByUsername(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.guard.undo(a)
		s.m.logins.WithLabelValues("error").Inc()
		return store.User{}, httpapi.Fail(s.log, "look up user", err)
	}
	found := err == nil
	hash := s.dummy
	if found {
		hash = u.PasswordHash
	}
	var match bool
	var verr error
	if err := s.withHashSlot(ctx, func() { match, verr = VerifyPassword(password, hash) }); err != nil {
		s.guard.undo(a)
		s.m.logins.WithLabelValues("error").Inc()
		return store.User{}, httpapi.Fail(s.log, "verify password", err)
	}
	if verr != nil && found && u.PasswordHash != "" {
		s.log.Error("stored password hash is malformed", "user_id", u.ID, "err", verr)
	}
	if !match || !found {
		s.m.logins.WithLabelValues("invalid_credentials").Inc()
		s.security(r, "login_failed", "reason", "invalid_credentials", "username", username)
		return store.User{}, wrong
	}
	s.guard.succeed(a)
	s.m.logins.WithLabelValues("success").Inc()
	return u, nil
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
// passed normalizeUsername up to case). It refuses more than 64 characters,
// and what textpolicy.CheckDisplayName refuses: controls, line separators,
// invalid UTF-8, and invisible or format characters (bidi controls, U+200B,
// U+2060, U+FEFF, Hangul fillers, U+2800…).
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
	if err := textpolicy.CheckDisplayName(name); err != nil {
		return "", &httpapi.Error{Status: http.StatusBadRequest, Code: httpapi.CodeInvalidRequest, Message: err.Error()}
	}
	return name, nil
}
