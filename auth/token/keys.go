package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/chatd/chatd/internal/keyfile"
)

// KeySet resolves Ed25519 verification keys by kid.
type KeySet interface {
	// Key returns the public key whose kid is kid, ErrUnknownKey when the set
	// has none, or another error when the set could not be loaded.
	Key(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// SigningKey is the Ed25519 key that signs access tokens. ID is the kid
// (derived from the public key: base64url of the first 12 bytes of its SHA-256).
type SigningKey struct {
	ID      string
	Private ed25519.PrivateKey
}

// NewSigningKey wraps priv, deriving its kid.
func NewSigningKey(priv ed25519.PrivateKey) *SigningKey {
	return &SigningKey{ID: KeyID(priv.Public().(ed25519.PublicKey)), Private: priv}
}

// GenerateKey returns a fresh random signing key (not stored anywhere).
func GenerateKey() (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token: generate key: %w", err)
	}
	return NewSigningKey(priv), nil
}

// KeyID is the kid of pub: base64url (no padding) of the first 12 bytes of
// its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

const pemType = "PRIVATE KEY"

// LoadOrCreateKey reads the PEM PKCS#8 Ed25519 key at path. If the file does
// not exist it generates a key and writes it there with mode 0600, creating
// the parent directory with mode 0700. Concurrent first starts agree on one
// key: the file appears atomically and the loser reads the winner's.
func LoadOrCreateKey(path string) (*SigningKey, error) {
	if path == "" {
		return nil, errors.New("token: signing key path is empty")
	}
	k, err := loadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k, err = GenerateKey()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("token: encode signing key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	if err := keyfile.Create(path, data); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path) // another process won the race
		}
		return nil, fmt.Errorf("token: install signing key: %w", err)
	}
	return k, nil
}

func loadKey(path string) (*SigningKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token: read signing key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("token: signing key %s: no PEM %q block", path, pemType)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token: signing key %s: %w", path, err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("token: signing key %s: %T is not an Ed25519 key", path, parsed)
	}
	return NewSigningKey(priv), nil
}

// Public returns the verification key.
func (k *SigningKey) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// KeySet returns a static set holding only this key.
func (k *SigningKey) KeySet() KeySet { return StaticKeySet(k.Public()) }

// JWKS returns the JWK Set JSON served at /auth/jwks.
func (k *SigningKey) JWKS() []byte {
	data, _ := json.Marshal(jwkSet{Keys: []jwk{publicJWK(k.Public())}}) // cannot fail
	return data
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
	Kid string `json:"kid"`
	X   string `json:"x"`
}

func publicJWK(pub ed25519.PublicKey) jwk {
	return jwk{Kty: "OKP", Crv: "Ed25519", Alg: "EdDSA", Use: "sig", Kid: KeyID(pub), X: base64.RawURLEncoding.EncodeToString(pub)}
}

// StaticKeySet returns a KeySet holding exactly keys, each under its
// derived kid.
func StaticKeySet(keys ...ed25519.PublicKey) KeySet {
	s := make(staticKeySet, len(keys))
	for _, k := range keys {
		s[KeyID(k)] = k
	}
	return s
}

type staticKeySet map[string]ed25519.PublicKey

var _ KeySet = staticKeySet(nil)

func (s staticKeySet) Key(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}
