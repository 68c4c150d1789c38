package gateway

import (
	"net/http"
	"strings"

	"github.com/chatd/chatd/auth/token"
)

// Edge verification costs an Ed25519 signature check (tens of µs) per
// request; token.Verifier remembers the tokens it verified (for at most
// token.VerifiedTTL, never past their exp, and not once the key set no
// longer holds their key). The chat replicas verify every request
// themselves and also check revocation.

// authenticate checks that r carries a valid access token, taken as
// token.Verifier.FromRequest takes it: from "Authorization: Bearer" if
// present, else from the session cookie. It returns nil, token.ErrNoToken,
// the verification error (wrapping token.ErrInvalidToken), or one wrapping
// token.ErrKeysUnavailable when auth's key set could not be fetched.
func (g *Gateway) authenticate(r *http.Request) error {
	tok := requestToken(r)
	if tok == "" {
		return token.ErrNoToken
	}
	_, err := g.verifier.Verify(r.Context(), tok) // answered from its cache for a token seen before
	return err
}

func requestToken(r *http.Request) string {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		if tok = strings.TrimSpace(tok); tok != "" {
			return tok
		}
	}
	return token.CookieToken(r)
}
