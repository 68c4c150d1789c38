package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// jwksFetchTimeout bounds one JWKS fetch, whatever the client's timeout.
const jwksFetchTimeout = 10 * time.Second

// remoteKeysMaxAge is how long a fetched key set is used before a lookup
// triggers a background refetch (so that a key withdrawn from the JWKS stops
// being trusted). The lookup itself is answered from the cache.
const remoteKeysMaxAge = 10 * time.Minute

// maxJWKSSize bounds the JWKS document read.
const maxJWKSSize = 1 << 20

// After a failed fetch, the next one may start after a backoff that doubles
// from refetchBackoffMin to refetchBackoffMax (never more than minRefetch):
// while auth is down, tokens whose key is not cached get 503, and they must
// verify again soon after auth is back, not a whole minRefetch later.
const (
	refetchBackoffMin = 250 * time.Millisecond
	refetchBackoffMax = 5 * time.Second
)

// NewRemoteKeySet fetches the JWK Set at url (GET /auth/jwks of an auth
// replica), caches it, refetches once when asked for an unknown kid, at most
// once per minRefetch; client nil = a client with a 5 s timeout. Concurrent
// callers share one fetch. Only Ed25519 keys (kty OKP, crv Ed25519) are used.
// A key set older than 10 minutes is refetched in the background (also at
// most once per minRefetch); a failed fetch keeps the previous keys.
//
// A kid that is not cached while the latest fetch failed is an error that
// wraps both ErrUnknownKey and ErrKeysUnavailable (the key may exist; the
// set could not be loaded); after a failed fetch the next one is allowed
// after a short backoff (250 ms doubling to 5 s, at most minRefetch).
func NewRemoteKeySet(url string, client *http.Client, minRefetch time.Duration) KeySet {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &remoteKeySet{url: url, client: client, minRefetch: minRefetch, maxAge: remoteKeysMaxAge}
}

type remoteKeySet struct {
	url        string
	client     *http.Client
	minRefetch time.Duration
	maxAge     time.Duration

	mu          sync.Mutex
	keys        map[string]ed25519.PublicKey // replaced, never modified
	fetchedAt   time.Time                    // when keys were fetched
	lastAttempt time.Time                    // start of the latest fetch
	lastErr     error                        // outcome of the latest fetch
	failures    int                          // consecutive failed fetches
	inflight    chan struct{}                // closed when the running fetch ends; nil if none
}

var _ KeySet = (*remoteKeySet)(nil)

func (s *remoteKeySet) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	s.mu.Lock()
	if k, ok := s.keys[kid]; ok {
		if s.inflight == nil && time.Since(s.fetchedAt) > s.maxAge && time.Since(s.lastAttempt) >= s.minRefetch {
			s.startFetchLocked()
		}
		s.mu.Unlock()
		return k, nil
	}
	done := s.inflight
	if done == nil {
		if !s.lastAttempt.IsZero() && time.Since(s.lastAttempt) < s.retryAfterLocked() {
			err := s.lastErr
			s.mu.Unlock()
			if err != nil {
				return nil, keysUnavailable(err)
			}
			return nil, ErrUnknownKey
		}
		done = s.startFetchLocked()
	}
	s.mu.Unlock()

	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	k, ok := s.keys[kid]
	err := s.lastErr
	s.mu.Unlock()
	switch {
	case ok:
		return k, nil
	case err != nil:
		return nil, keysUnavailable(err)
	default:
		return nil, ErrUnknownKey
	}
}

// keysUnavailable is the error of a lookup that the failed fetch err left
// unanswered.
func keysUnavailable(err error) error {
	return fmt.Errorf("%w: %w: %w", ErrUnknownKey, ErrKeysUnavailable, err)
}

// retryAfterLocked is how long after the latest fetch started a lookup of
// an unknown kid may start another: minRefetch after a success, the
// backoff after failures.
func (s *remoteKeySet) retryAfterLocked() time.Duration {
	if s.lastErr == nil {
		return s.minRefetch
	}
	backoff := refetchBackoffMax
	if n := s.failures - 1; n < 5 { // 250 ms << 5 > 5 s
		backoff = min(refetchBackoffMin<<n, refetchBackoffMax)
	}
	return min(backoff, s.minRefetch)
}

// startFetchLocked starts a fetch and returns the channel closed when it
// ends. The fetch runs on its own goroutine, detached from any caller's
// context, so that a caller giving up does not fail the others waiting.
func (s *remoteKeySet) startFetchLocked() chan struct{} {
	done := make(chan struct{})
	s.inflight = done
	s.lastAttempt = time.Now()
	go s.fetch(done)
	return done
}

// fetch loads the key set and closes done.
func (s *remoteKeySet) fetch(done chan struct{}) {
	keys, err := s.load()
	s.mu.Lock()
	if err == nil {
		s.keys, s.fetchedAt = keys, time.Now()
		s.failures = 0
	} else {
		s.failures++
	}
	s.lastErr = err
	s.inflight = nil
	s.mu.Unlock()
	close(done)
}

func (s *remoteKeySet) load() (map[string]ed25519.PublicKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("token: fetch jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token: fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSSize))
		return nil, fmt.Errorf("token: fetch jwks: status %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("token: fetch jwks: %w", err)
	}
	if len(data) > maxJWKSSize {
		return nil, fmt.Errorf("token: fetch jwks: larger than %d bytes", maxJWKSSize)
	}
	return ParseJWKS(data)
}

// ParseJWKS returns the Ed25519 keys (kty OKP, crv Ed25519) of a JWK Set,
// by kid. Keys of other types, or meant for another use than "sig", are
// skipped; a malformed Ed25519 key is an error.
func ParseJWKS(data []byte) (map[string]ed25519.PublicKey, error) {
	var set jwkSet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("token: parse jwks: %w", err)
	}
	keys := make(map[string]ed25519.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "EdDSA") {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("token: parse jwks: key %q: bad x", k.Kid)
		}
		if k.Kid == "" {
			return nil, fmt.Errorf("token: parse jwks: key without kid")
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	return keys, nil
}
