package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func mustKey(t *testing.T) *SigningKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignVerify(t *testing.T) {
	key := mustKey(t)
	signer := NewSigner(key, "chatd", "chatd", time.Hour)
	v := NewVerifier(key.KeySet(), "chatd", "chatd")
	now := time.Now()
	tok, exp, err := signer.Sign("u1", "s1", now)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(time.Hour).Truncate(time.Second); !exp.Equal(want) {
		t.Errorf("expiresAt = %v, want %v", exp, want)
	}
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.UserID != "u1" || c.SessionID != "s1" || c.TokenID == "" || !c.ExpiresAt.Equal(exp) {
		t.Errorf("claims = %+v", c)
	}

	// Header and payload carry what api.md lists.
	parts := strings.Split(tok, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	for _, want := range []string{`"alg":"EdDSA"`, `"kid":"` + key.ID + `"`} {
		if !strings.Contains(string(hdr), want) {
			t.Errorf("header %s lacks %s", hdr, want)
		}
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	for _, claim := range []string{`"iss":"chatd"`, `"aud":`, `"sub":"u1"`, `"sid":"s1"`, `"jti":`, `"iat":`, `"exp":`} {
		if !strings.Contains(string(payload), claim) {
			t.Errorf("payload %s lacks %s", payload, claim)
		}
	}

	// A second token has another jti.
	tok2, _, _ := signer.Sign("u1", "s1", now)
	c2, err := v.Verify(context.Background(), tok2)
	if err != nil || c2.TokenID == c.TokenID {
		t.Errorf("second token: %v, jti %q vs %q", err, c2.TokenID, c.TokenID)
	}
}

// encodeSegment is a JWT segment of raw JSON.
func encodeSegment(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifierRejects(t *testing.T) {
	key := mustKey(t)
	other := mustKey(t)
	v := NewVerifier(key.KeySet(), "chatd", "chatd")
	now := time.Now()

	sign := func(k *SigningKey, iss, aud string, at time.Time, user, sid string) string {
		t.Helper()
		tok, _, err := NewSigner(k, iss, aud, time.Hour).Sign(user, sid, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": "chatd", "aud": "chatd", "sub": "u1", "sid": "s1", "jti": "j",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	edToken := func(kid string, priv ed25519.PrivateKey, c jwt.MapClaims) string {
		t.Helper()
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tk.Header["kid"] = kid
		s, err := tk.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Forged: signed by another key but claiming our kid.
	forged := edToken(key.ID, other.Private, claims(nil))

	// alg none, with our kid.
	noneTok := encodeSegment(`{"alg":"none","typ":"JWT","kid":"`+key.ID+`"}`) + "." +
		encodeSegment(`{"iss":"chatd","aud":"chatd","sub":"u1","sid":"s1","exp":`+itoa(now.Add(time.Hour).Unix())+`}`) + "."

	// HS256 keyed with the public key bytes (the classic algorithm confusion).
	hsTok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
	hsTok.Header["kid"] = key.ID
	hs, err := hsTok.SignedString([]byte(key.Public()))
	if err != nil {
		t.Fatal(err)
	}
	// Same with the JWK's x as the secret.
	hsTok2 := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
	hsTok2.Header["kid"] = key.ID
	hs2, _ := hsTok2.SignedString([]byte(base64.RawURLEncoding.EncodeToString(key.Public())))

	cases := []struct {
		name, token string
		is          error
	}{
		{"empty", "", ErrNoToken},
		{"garbage", "not.a.jwt", nil},
		{"forged signature", forged, nil},
		{"expired", sign(key, "chatd", "chatd", now.Add(-2*time.Hour), "u1", "s1"), nil},
		{"wrong audience", sign(key, "chatd", "other", now, "u1", "s1"), nil},
		{"wrong issuer", sign(key, "evil", "chatd", now, "u1", "s1"), nil},
		{"alg none", noneTok, nil},
		{"HS256 with public key as secret", hs, nil},
		{"HS256 with x as secret", hs2, nil},
		{"unknown kid", sign(other, "chatd", "chatd", now, "u1", "s1"), ErrUnknownKey},
		{"no kid", func() string {
			tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims(nil))
			s, _ := tk.SignedString(key.Private)
			return s
		}(), ErrUnknownKey},
		{"missing sid", edToken(key.ID, key.Private, claims(func(c jwt.MapClaims) { delete(c, "sid") })), nil},
		{"missing sub", edToken(key.ID, key.Private, claims(func(c jwt.MapClaims) { delete(c, "sub") })), nil},
		{"missing exp", edToken(key.ID, key.Private, claims(func(c jwt.MapClaims) { delete(c, "exp") })), nil},
		{"tampered payload", func() string {
			good := sign(key, "chatd", "chatd", now, "u1", "s1")
			p := strings.Split(good, ".")
			p[1] = encodeSegment(`{"iss":"chatd","aud":["chatd"],"sub":"admin","sid":"s1","exp":` + itoa(now.Add(time.Hour).Unix()) + `}`)
			return strings.Join(p, ".")
		}(), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.token)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("error %v does not wrap ErrInvalidToken", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
		})
	}

	// The same claims signed properly pass: the cases above fail for the
	// reason they name.
	if _, err := v.Verify(context.Background(), edToken(key.ID, key.Private, claims(nil))); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestFromRequest(t *testing.T) {
	key := mustKey(t)
	signer := NewSigner(key, "chatd", "chatd", time.Hour)
	v := NewVerifier(key.KeySet(), "chatd", "chatd")
	good, _, _ := signer.Sign("u1", "s1", time.Now())
	other, _, _ := signer.Sign("u2", "s2", time.Now())

	r := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	if _, _, err := v.FromRequest(r); !errors.Is(err, ErrNoToken) {
		t.Errorf("no token: %v", err)
	}

	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: good})
	c, viaCookie, err := v.FromRequest(r)
	if err != nil || !viaCookie || c.UserID != "u1" {
		t.Errorf("cookie: %+v %v %v", c, viaCookie, err)
	}

	// Bearer wins over the cookie.
	r.Header.Set("Authorization", "Bearer "+other)
	c, viaCookie, err = v.FromRequest(r)
	if err != nil || viaCookie || c.UserID != "u2" {
		t.Errorf("bearer: %+v %v %v", c, viaCookie, err)
	}
	r.Header.Set("Authorization", "bearer "+other)
	if c, _, err = v.FromRequest(r); err != nil || c.UserID != "u2" {
		t.Errorf("lower-case scheme: %+v %v", c, err)
	}

	// A bad bearer token is not rescued by a good cookie.
	r.Header.Set("Authorization", "Bearer x.y.z")
	if _, _, err = v.FromRequest(r); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("bad bearer: %v", err)
	}
	// Another scheme is ignored: the cookie is used.
	r.Header.Set("Authorization", "Basic dTpw")
	if c, viaCookie, err = v.FromRequest(r); err != nil || !viaCookie || c.UserID != "u1" {
		t.Errorf("basic + cookie: %+v %v %v", c, viaCookie, err)
	}
}

func BenchmarkSign(b *testing.B) {
	key, _ := GenerateKey()
	s := NewSigner(key, "chatd", "chatd", time.Hour)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Sign("user", "session", now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is a token seen for the first time (the cache emptied
// before each verification); BenchmarkVerifyCached one verified before.
func BenchmarkVerify(b *testing.B)       { benchVerify(b, false) }
func BenchmarkVerifyCached(b *testing.B) { benchVerify(b, true) }

func benchVerify(b *testing.B, cached bool) {
	key, _ := GenerateKey()
	tok, _, _ := NewSigner(key, "chatd", "chatd", time.Hour).Sign("user", "session", time.Now())
	v := NewVerifier(key.KeySet(), "chatd", "chatd")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if !cached {
			v.cache.drop()
		}
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// A huge bogus token is refused by its length, before any parsing; the
// access cookie is read under either name; SignUntil caps exp.
func TestTokenLimitsAndCookieNames(t *testing.T) {
	key := mustKey(t)
	signer := NewSigner(key, "chatd", "chatd", time.Hour)
	v := NewVerifier(StaticKeySet(key.Public()), "chatd", "chatd")
	huge := strings.Repeat("x", MaxTokenBytes+1)
	if _, err := v.Verify(context.Background(), huge); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("Verify(huge) = %v, want refused for its length", err)
	}
	now := time.Now()
	tok, exp, err := signer.SignUntil("u1", "s1", now, now.Add(10*time.Minute))
	if err != nil || exp.After(now.Add(10*time.Minute)) {
		t.Fatalf("SignUntil: exp %v (err %v), want at most 10 minutes on", exp, err)
	}
	for _, name := range []string{SecureSessionCookie, SessionCookie} {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: name, Value: tok})
		if c, viaCookie, err := v.FromRequest(r); err != nil || !viaCookie || c.SessionID != "s1" {
			t.Fatalf("FromRequest with cookie %s: %+v %v %v", name, c, viaCookie, err)
		}
	}
	if SessionCookieName(true) != "__Host-chatd_session" || SessionCookieName(false) != "chatd_session" {
		t.Fatal("cookie names")
	}
}
