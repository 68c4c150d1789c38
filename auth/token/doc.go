// Package token is the pure side of chatd's access tokens: Claims, the
// Verifier and its KeySet (static or a remote JWKS), the signing key and
// Signer, the cookie names and bearer-token parsing.
//
// It imports nothing of chatd's (no store, broker or password code), so the
// gateway and chat roles, which only verify tokens, depend on it alone and
// not on package auth. It never touches the store: revocation reaches other
// roles as a session id published on pubsub.TopicRevocations and as the
// session's RevokedAt in the store, which callers check themselves.
package token
