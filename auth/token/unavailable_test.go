package token

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// Auth down: a valid token whose key could not be fetched is not an
// invalid token (the UI logs the user out on 401) but ErrKeysUnavailable,
// and once auth is back the key set refetches after a short backoff, not
// after minRefetch (an hour here, so waiting it out cannot pass).
func TestRemoteKeySetAuthDownIsUnavailableAndRecoversQuickly(t *testing.T) {
	a := mustKey(t)
	srv := newJWKSServer(t, a)
	srv.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	ks := NewRemoteKeySet(srv.URL, nil, time.Hour)
	v := NewVerifier(ks, "chatd", "chatd")
	tok, _, err := NewSigner(a, "chatd", "chatd", time.Minute).Sign("u", "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	for range 3 {
		_, err := v.Verify(ctx, tok)
		if !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("Verify with auth down = %v, want ErrKeysUnavailable", err)
		}
		if errors.Is(err, ErrInvalidToken) {
			t.Fatalf("Verify with auth down = %v: a valid token is not invalid", err)
		}
	}

	srv.set(func(s *jwksServer) { s.status = http.StatusOK })
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := v.Verify(ctx, tok)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("Verify while auth comes back = %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("tokens still refused 15 s after auth came back")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// With keys fetched, an unknown kid is an invalid token again, and
	// refetches stay limited to one per minRefetch.
	fetches := srv.fetches.Load()
	for range 5 {
		if _, err := ks.Key(ctx, "forged-kid"); !errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("Key(forged) with keys loaded = %v, want ErrUnknownKey only", err)
		}
	}
	if n := srv.fetches.Load() - fetches; n > 1 {
		t.Fatalf("%d refetches for unknown kids within minRefetch, want at most 1", n)
	}
}
