package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Cookie names. With Secure cookies the access cookie carries the __Host-
// prefix (api.md 1.1: the browser then refuses it without Secure, with a
// Domain, or with another Path, so no sibling subdomain can plant one);
// servers accept either name.
const (
	SessionCookie       = "chatd_session"        // access JWT, without Secure
	SecureSessionCookie = "__Host-chatd_session" // access JWT, with Secure
	RefreshCookie       = "chatd_refresh"        // opaque refresh token, Path=/auth
)

// MaxTokenBytes bounds an access token: a longer bearer token or cookie
// value is refused before it is parsed (an EdDSA JWT of chatd is about 350
// bytes; a huge bogus one should cost nothing).
const MaxTokenBytes = 4096

var (
	// ErrInvalidToken: every verification failure wraps it.
	ErrInvalidToken = errors.New("token: invalid token")
	// ErrUnknownKey: a KeySet has no key with the asked kid.
	ErrUnknownKey = errors.New("token: unknown key id")
	// ErrNoToken: the request carries no access token. It wraps ErrInvalidToken.
	ErrNoToken = fmt.Errorf("%w: no access token", ErrInvalidToken)
	// ErrKeysUnavailable: the token could not be checked because the key
	// set could not be loaded (auth unreachable). It does not wrap
	// ErrInvalidToken: the token may well be valid, and the caller answers
	// 503 (its Kind is "unavailable", which httpapi maps so), not 401.
	ErrKeysUnavailable error = unavailableError("token: key set unavailable")
)

// unavailableError is a sentinel whose Kind tells httpapi's error map that
// a backend is unavailable, without this package importing httpapi.
type unavailableError string

func (e unavailableError) Error() string { return string(e) }

// Kind is "unavailable".
func (unavailableError) Kind() string { return "unavailable" }

// verifyLeeway tolerates clock skew between replicas when checking exp.
const verifyLeeway = 30 * time.Second

// Claims is what a verified access token says.
type Claims struct {
	UserID    string    // sub
	SessionID string    // sid
	TokenID   string    // jti
	ExpiresAt time.Time // exp
}

// tokenClaims is the JWT payload: the registered claims and sid.
type tokenClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid,omitempty"`
}

// Signer issues access tokens. Safe for concurrent use.
type Signer struct {
	key      *SigningKey
	issuer   string
	audience string
	ttl      time.Duration
}

// NewSigner returns a Signer of EdDSA access tokens valid for ttl.
func NewSigner(key *SigningKey, issuer, audience string, ttl time.Duration) *Signer {
	return &Signer{key: key, issuer: issuer, audience: audience, ttl: ttl}
}

// Key returns the signing key.
func (s *Signer) Key() *SigningKey { return s.key }

// Issuer returns the iss of the tokens s signs.
func (s *Signer) Issuer() string { return s.issuer }

// Audience returns the aud of the tokens s signs.
func (s *Signer) Audience() string { return s.audience }

// newTokenID returns a jti: 128 random bits in lower-case base32, the form
// of store.NewID (copied, so that this package imports no store).
func newTokenID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return tokenIDEncoding.EncodeToString(b[:])
}

var tokenIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Sign returns an EdDSA JWT with header kid, claims iss, aud, sub, sid, jti, iat, exp.
// expiresAt is exp (whole seconds).
func (s *Signer) Sign(userID, sessionID string, now time.Time) (token string, expiresAt time.Time, err error) {
	return s.SignUntil(userID, sessionID, now, time.Time{})
}

// SignUntil is Sign with exp at most notAfter (unless notAfter is zero):
// an access token never outlives its session.
func (s *Signer) SignUntil(userID, sessionID string, now, notAfter time.Time) (token string, expiresAt time.Time, err error) {
	if s == nil || s.key == nil {
		return "", time.Time{}, errors.New("token: sign: no signing key")
	}
	iat := now.UTC().Truncate(time.Second)
	expiresAt = now.Add(s.ttl).UTC().Truncate(time.Second)
	if !notAfter.IsZero() && notAfter.Before(expiresAt) {
		expiresAt = notAfter.UTC().Truncate(time.Second)
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{s.audience},
			ExpiresAt: jwt.NewNumericDate(expiresAt),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        newTokenID(),
		},
		SessionID: sessionID,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = s.key.ID
	token, err = t.SignedString(s.key.Private)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: sign: %w", err)
	}
	return token, expiresAt, nil
}

// Verifier checks access tokens against a KeySet. It is pure: it never
// touches the store, so it cannot know about revocation (callers that must
// refuse revoked sessions look the session up). It remembers the tokens it
// verified (see VerifiedTTL). Safe for concurrent use.
type Verifier struct {
	keys   KeySet
	parser *jwt.Parser
	cache  *verifiedCache
}

// NewVerifier returns a Verifier that accepts EdDSA tokens of issuer for
// audience signed by a key of keys.
func NewVerifier(keys KeySet, issuer, audience string) *Verifier {
	return &Verifier{
		keys: keys,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(audience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(verifyLeeway),
			jwt.WithStrictDecoding(),
		),
		cache: newVerifiedCache(maxVerifiedTokens),
	}
}

// Verify pins alg EdDSA, requires kid known to keys, checks exp (30 s of
// leeway), iss, aud, and that sub and sid are present. Every error wraps
// ErrInvalidToken (and ErrUnknownKey for an unknown kid), except that of a
// token whose key could not be looked up because the key set could not be
// loaded: that one wraps ErrKeysUnavailable instead (answer 503, not 401).
// A token verified before is answered from the cache while the key set
// still holds the key that verified it.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if token == "" {
		return Claims{}, ErrNoToken
	}
	if len(token) > MaxTokenBytes {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenBytes)
	}
	now := time.Now()
	if e, ok := v.cache.get(token, now); ok {
		if k, err := v.keys.Key(ctx, e.kid); err == nil && k.Equal(e.key) {
			return e.claims, nil
		}
		v.cache.drop() // the key set changed: trust nothing verified before
	}
	var tc tokenClaims
	var kid string
	var key ed25519.PublicKey
	_, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		if kid == "" {
			return nil, fmt.Errorf("%w: no kid", ErrUnknownKey)
		}
		k, err := v.keys.Key(ctx, kid)
		key = k
		return k, err
	})
	if err != nil {
		if errors.Is(err, ErrKeysUnavailable) {
			return Claims{}, fmt.Errorf("token: verify: %w", err)
		}
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if tc.Subject == "" || tc.SessionID == "" {
		return Claims{}, fmt.Errorf("%w: sub or sid missing", ErrInvalidToken)
	}
	c := Claims{
		UserID:    tc.Subject,
		SessionID: tc.SessionID,
		TokenID:   tc.ID,
		ExpiresAt: tc.ExpiresAt.Time,
	}
	until := now.Add(VerifiedTTL)
	if c.ExpiresAt.Before(until) {
		until = c.ExpiresAt
	}
	v.cache.add(token, verifiedToken{claims: c, kid: kid, key: key, until: until}, now)
	return c, nil
}

// FromRequest takes the token from "Authorization: Bearer" if present, else
// the chatd_session cookie; viaCookie reports which (cookie-authenticated
// unsafe requests need the same-origin check). Without either it returns
// ErrNoToken.
func (v *Verifier) FromRequest(r *http.Request) (c Claims, viaCookie bool, err error) {
	if tok, ok := BearerToken(r); ok {
		c, err = v.Verify(r.Context(), tok)
		return c, false, err
	}
	tok := CookieToken(r)
	if tok == "" {
		return Claims{}, false, ErrNoToken
	}
	c, err = v.Verify(r.Context(), tok)
	return c, true, err
}

// CookieToken returns the access token of the __Host-chatd_session cookie,
// else of the chatd_session cookie, else "".
func CookieToken(r *http.Request) string {
	for _, name := range []string{SecureSessionCookie, SessionCookie} {
		if ck, err := r.Cookie(name); err == nil && ck.Value != "" {
			return ck.Value
		}
	}
	return ""
}

// SessionCookieName is the access cookie's name: SecureSessionCookie when
// cookies are Secure, else SessionCookie.
func SessionCookieName(secure bool) string {
	if secure {
		return SecureSessionCookie
	}
	return SessionCookie
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
