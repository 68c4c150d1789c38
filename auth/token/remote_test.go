package token

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jwksServer serves the JWK Set of its current keys and counts fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	keys    []*SigningKey
	gate    chan struct{} // if non-nil, each fetch waits for it to close
	status  int
}

func newJWKSServer(t *testing.T, keys ...*SigningKey) *jwksServer {
	s := &jwksServer{keys: keys, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		gate, status := s.gate, s.status
		var set jwkSet
		for _, k := range s.keys {
			set.Keys = append(set.Keys, publicJWK(k.Public()))
		}
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		if status != http.StatusOK {
			http.Error(w, "down", status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(f func(s *jwksServer)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

func TestRemoteKeySetCachesAndRefetches(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	srv := newJWKSServer(t, a)
	ks := NewRemoteKeySet(srv.URL, nil, 0)
	ctx := context.Background()

	for range 3 {
		pub, err := ks.Key(ctx, a.ID)
		if err != nil || !pub.Equal(a.Public()) {
			t.Fatalf("Key(a): %v", err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d after three lookups of a cached key, want 1", n)
	}

	// A new key appears (rotation): an unknown kid triggers one refetch.
	srv.set(func(s *jwksServer) { s.keys = append(s.keys, b) })
	pub, err := ks.Key(ctx, b.ID)
	if err != nil || !pub.Equal(b.Public()) {
		t.Fatalf("Key(b) after rotation: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}

	// A kid that is nowhere: one refetch, then ErrUnknownKey.
	if _, err := ks.Key(ctx, "missing"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Key(missing) = %v, want ErrUnknownKey", err)
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("fetches = %d, want 3", n)
	}

	// Tokens of the remote key verify.
	v := NewVerifier(ks, "chatd", "chatd")
	tok, _, _ := NewSigner(b, "chatd", "chatd", time.Minute).Sign("u", "s", time.Now())
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("Verify with remote keys: %v", err)
	}
}

func TestRemoteKeySetRateLimitsRefetch(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	srv := newJWKSServer(t, a)
	ks := NewRemoteKeySet(srv.URL, srv.Client(), time.Hour)
	ctx := context.Background()

	if _, err := ks.Key(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	srv.set(func(s *jwksServer) { s.keys = append(s.keys, b) })
	// Within minRefetch of the last fetch, unknown kids are refused
	// without asking the server, however many tokens carry them.
	for range 20 {
		if _, err := ks.Key(ctx, "forged-kid"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Key(forged) = %v", err)
		}
	}
	if _, err := ks.Key(ctx, b.ID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Key(b) within minRefetch = %v, want ErrUnknownKey", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
	// Known keys still answer.
	if _, err := ks.Key(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
}

func TestRemoteKeySetConcurrentCallersShareOneFetch(t *testing.T) {
	a := mustKey(t)
	srv := newJWKSServer(t, a)
	gate := make(chan struct{})
	srv.set(func(s *jwksServer) { s.gate = gate })
	ks := NewRemoteKeySet(srv.URL, nil, 0)

	const n = 32
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := ks.Key(context.Background(), a.ID)
			errs <- err
		}()
	}
	// Wait (with a deadline) for the first fetch to reach the server, give
	// the others time to queue behind it, then let it answer.
	deadline := time.Now().Add(5 * time.Second)
	for srv.fetches.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no fetch reached the server")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Callers that arrived after the fetch ended found the key cached, so
	// exactly one fetch whatever the scheduling.
	if got := srv.fetches.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

func TestRemoteKeySetServerDown(t *testing.T) {
	a := mustKey(t)
	srv := newJWKSServer(t, a)
	srv.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	ks := NewRemoteKeySet(srv.URL, nil, 0)
	ctx := context.Background()
	_, err := ks.Key(ctx, a.ID)
	if err == nil || !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Key with server down = %v", err)
	}
	// It recovers with the server.
	srv.set(func(s *jwksServer) { s.status = http.StatusOK })
	if _, err := ks.Key(ctx, a.ID); err != nil {
		t.Fatalf("after recovery: %v", err)
	}

	// A caller whose context ends stops waiting.
	gate := make(chan struct{})
	defer close(gate)
	srv.set(func(s *jwksServer) { s.gate = gate })
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ks.Key(cctx, "other"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller = %v", err)
	}
}

func TestRemoteKeySetDropsWithdrawnKeys(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	srv := newJWKSServer(t, a)
	ks := NewRemoteKeySet(srv.URL, nil, 0).(*remoteKeySet)
	ks.maxAge = 0 // every lookup of a known key refreshes in the background
	ctx := context.Background()
	if _, err := ks.Key(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	srv.set(func(s *jwksServer) { s.keys = []*SigningKey{b} }) // a withdrawn
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := ks.Key(ctx, a.ID)
		if errors.Is(err, ErrUnknownKey) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a withdrawn key is still trusted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := ks.Key(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
}
