package token

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// swapKeySet is a key set whose keys a test replaces.
type swapKeySet struct {
	mu   sync.Mutex
	keys map[string]ed25519.PublicKey
}

func (s *swapKeySet) set(keys ...*SigningKey) {
	m := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		m[k.ID] = k.Public()
	}
	s.mu.Lock()
	s.keys = m
	s.mu.Unlock()
}

func (s *swapKeySet) Key(_ context.Context, kid string) (ed25519.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

func TestVerifierCache(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	ks := &swapKeySet{}
	ks.set(a, b)
	v := NewVerifier(ks, "chatd", "chatd")
	ctx := context.Background()
	now := time.Now()
	tokA, _, _ := NewSigner(a, "chatd", "chatd", time.Hour).Sign("alice", "sa", now)
	tokB, _, _ := NewSigner(b, "chatd", "chatd", time.Hour).Sign("bob", "sb", now)
	for range 2 {
		for _, tc := range []struct{ tok, user, sid string }{{tokA, "alice", "sa"}, {tokB, "bob", "sb"}} {
			c, err := v.Verify(ctx, tc.tok)
			if err != nil || c.UserID != tc.user || c.SessionID != tc.sid {
				t.Fatalf("Verify = %+v, %v; want %s/%s", c, err, tc.user, tc.sid)
			}
		}
	}
	if n := v.cache.len(); n != 2 {
		t.Fatalf("%d cached tokens, want 2", n)
	}
	e, _ := v.cache.get(tokA, now)
	if e.until.After(time.Now().Add(VerifiedTTL)) {
		t.Errorf("cached until %v, past the TTL", e.until)
	}

	// Another payload under a cached token's signature is verified on its
	// own (and refused).
	other, _, _ := NewSigner(a, "chatd", "chatd", time.Hour).Sign("admin", "s2", now)
	parts, op := strings.Split(tokA, "."), strings.Split(other, ".")
	if _, err := v.Verify(ctx, op[0]+"."+op[1]+"."+parts[2]); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a spliced token: %v, want ErrInvalidToken", err)
	}

	// A key withdrawn from the key set: its cached token is refused at
	// once, and the cache is dropped entirely (b's token is verified anew).
	ks.set(b)
	if _, err := v.Verify(ctx, tokA); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a cached token of a withdrawn key: %v, want ErrUnknownKey", err)
	}
	if n := v.cache.len(); n != 0 {
		t.Errorf("%d tokens still cached after the key set changed", n)
	}
	if _, err := v.Verify(ctx, tokB); err != nil {
		t.Fatal(err)
	}
	if n := v.cache.len(); n != 1 {
		t.Errorf("%d cached tokens, want b's again", n)
	}

	// A kid whose key was replaced: the cached token no longer verifies.
	forged := &SigningKey{ID: b.ID, Private: mustKey(t).Private}
	ks.set(forged)
	if _, err := v.Verify(ctx, tokB); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a cached token whose kid now names another key: %v, want ErrInvalidToken", err)
	}
}

// The cache never holds a token past its exp, and stays within its bound.
func TestVerifiedCacheBounds(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := newVerifiedCache(16)
	c.add("tok-a", verifiedToken{until: now.Add(time.Minute)}, now)
	if _, ok := c.get("tok-a", now.Add(59*time.Second)); !ok {
		t.Error("a cached token is not valid before its time")
	}
	if _, ok := c.get("tok-a", now.Add(time.Minute)); ok {
		t.Error("a cached token is valid past its time")
	}
	c.add("tok-old", verifiedToken{until: now}, now)
	if _, ok := c.m["tok-old"]; ok {
		t.Error("an expired token was cached")
	}
	for i := range 100 {
		c.add("t"+strconv.Itoa(i), verifiedToken{until: now.Add(time.Hour)}, now)
		if c.len() > 16 {
			t.Fatalf("%d entries, bound 16", c.len())
		}
	}

	// A token about to expire is cached only until its exp.
	key := mustKey(t)
	v := NewVerifier(key.KeySet(), "chatd", "chatd")
	soon := time.Now().Add(5 * time.Second)
	tok, exp, _ := NewSigner(key, "chatd", "chatd", time.Hour).SignUntil("u", "s", time.Now(), soon)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if e, ok := v.cache.get(tok, time.Now()); !ok || e.until.After(exp) {
		t.Errorf("cached until %v (ok %v), past exp %v", e.until, ok, exp)
	}
}

// Through a remote key set: once the JWKS no longer lists a key and the
// set has been refetched, a token verified (and cached) with it is refused.
func TestVerifierCacheRemoteKeyWithdrawn(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	srv := newJWKSServer(t, a, b)
	ks := NewRemoteKeySet(srv.URL, nil, 0).(*remoteKeySet)
	ks.maxAge = 0 // every lookup of a known key refreshes in the background
	v := NewVerifier(ks, "chatd", "chatd")
	ctx := context.Background()
	tok, _, _ := NewSigner(a, "chatd", "chatd", time.Hour).Sign("alice", "sa", time.Now())
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	srv.set(func(s *jwksServer) { s.keys = []*SigningKey{b} })
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(ctx, tok)
		if errors.Is(err, ErrUnknownKey) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a token of a withdrawn key is still accepted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := v.cache.len(); n != 0 {
		t.Errorf("%d tokens cached after the key set dropped their key", n)
	}
}
