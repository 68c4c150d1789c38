// Package auth is chatd's auth role: accounts (argon2id passwords),
// sessions with rotating refresh tokens, EdDSA access tokens and their JWK
// Set, served under /auth by Service.
//
// It also holds the pure token side that gateway and chat import: Signer,
// Verifier, KeySet (static or remote JWKS) and SigningKey. Those never touch
// the store; revocation reaches other roles as a session id published on
// pubsub.TopicRevocations and as the session's RevokedAt in the store.
package auth
