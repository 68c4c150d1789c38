package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "signing.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode = %o, want 600", mode)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mode := di.Mode().Perm(); mode != 0o700 {
		t.Errorf("key dir mode = %o, want 700", mode)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("key file is not PEM PKCS#8: %.40q", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only the key", len(entries))
	}

	// kid = base64url(SHA-256(pub)[:12]).
	sum := sha256.Sum256(k1.Public())
	if want := base64.RawURLEncoding.EncodeToString(sum[:12]); k1.ID != want {
		t.Errorf("kid = %q, want %q", k1.ID, want)
	}

	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID != k1.ID || !k2.Private.Equal(k1.Private) {
		t.Error("second load returned another key")
	}

	if _, err := LoadOrCreateKey(""); err == nil {
		t.Error("empty path accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	_ = os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := LoadOrCreateKey(bad); err == nil {
		t.Error("garbage key file accepted")
	}
}

func TestLoadOrCreateKeyConcurrentFirstStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = k.ID
		}()
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent first starts disagree: %v", ids)
		}
	}
}

func TestJWKS(t *testing.T) {
	k := mustKey(t)
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(k.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("keys = %v", set.Keys)
	}
	got := set.Keys[0]
	want := map[string]string{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.ID,
		"x": base64.RawURLEncoding.EncodeToString(k.Public())}
	for f, v := range want {
		if got[f] != v {
			t.Errorf("%s = %q, want %q", f, got[f], v)
		}
	}
	if _, ok := got["d"]; ok {
		t.Error("JWKS leaks the private key")
	}
	keys, err := ParseJWKS(k.JWKS())
	if err != nil || !keys[k.ID].Equal(k.Public()) {
		t.Errorf("ParseJWKS: %v %v", keys, err)
	}

	ks := k.KeySet()
	if pub, err := ks.Key(context.Background(), k.ID); err != nil || !pub.Equal(k.Public()) {
		t.Errorf("KeySet.Key: %v", err)
	}
	if _, err := ks.Key(context.Background(), "nope"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown kid: %v", err)
	}
}
