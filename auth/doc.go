// Package auth is chatd's auth role: accounts (argon2id passwords),
// sessions with rotating refresh tokens, EdDSA access tokens and their JWK
// Set, served under /auth by Service.
//
// The pure token side that gateway and chat import (Signer, Verifier,
// KeySet, SigningKey, cookie names) lives in auth/token, so that those roles
// depend on no store, broker or password code.
package auth
