package push

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/chatd/chatd/internal/keyfile"
)

// Key is the VAPID key pair (RFC 8292): the application server's P-256
// key that signs the JWT of every push, and whose public half browsers
// subscribe with. Every chat replica must use the same one: a
// subscription made with one key is refused by the push service when a
// push is signed with another.
type Key struct {
	private    *ecdsa.PrivateKey
	public     string // uncompressed point, base64url without padding
	privateB64 string // the scalar, base64url, as webpush-go takes it
}

// PublicKey is the public key, base64url without padding (65 bytes).
func (k *Key) PublicKey() string { return k.public }

func newKey(priv *ecdsa.PrivateKey) (*Key, error) {
	if priv.Curve != elliptic.P256() {
		return nil, errors.New("push: the VAPID key must be on P-256 (prime256v1)")
	}
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("push: VAPID public key: %w", err)
	}
	d, err := priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("push: VAPID private key: %w", err)
	}
	return &Key{private: priv, public: base64.RawURLEncoding.EncodeToString(pub), privateB64: base64.RawURLEncoding.EncodeToString(d)}, nil
}

// GenerateKey returns a fresh key pair.
func GenerateKey() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("push: generate VAPID key: %w", err)
	}
	return newKey(priv)
}

// LoadKey reads a PEM file holding a P-256 private key, SEC1 ("EC PRIVATE
// KEY", what `openssl ecparam -name prime256v1 -genkey -noout` writes) or
// PKCS #8 ("PRIVATE KEY"); other blocks (EC PARAMETERS) are skipped.
func LoadKey(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("push: read VAPID key: %w", err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		switch {
		case b == nil:
			return nil, fmt.Errorf("push: %s holds no EC PRIVATE KEY or PRIVATE KEY PEM block", path)
		case b.Type == "EC PRIVATE KEY":
			priv, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("push: parse VAPID key %s: %w", path, err)
			}
			return newKey(priv)
		case b.Type == "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("push: parse VAPID key %s: %w", path, err)
			}
			priv, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("push: %s is not an EC key", path)
			}
			return newKey(priv)
		}
	}
}

// LoadOrCreateKey reads the key at path or, when the file does not exist,
// creates one there (mode 0600, never replacing a file another process
// created meanwhile).
func LoadOrCreateKey(path string) (*Key, error) {
	k, err := LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = GenerateKey(); err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(k.private)
	if err != nil {
		return nil, fmt.Errorf("push: encode VAPID key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := keyfile.Create(path, data); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadKey(path) // another process won the race
		}
		return nil, fmt.Errorf("push: install VAPID key: %w", err)
	}
	return k, nil
}
