package auth

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chatd/chatd/auth/token"
)

func signupBody(user, pass string, display *string) string {
	m := map[string]any{"username": user, "password": pass}
	if display != nil {
		m["display_name"] = *display
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Weak passwords are refused at signup with 400 weak_password, before any
// account exists (issue 9, point 9).
func TestSignupRefusesWeakPasswords(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct{ name, user, pass string }{
		{"digits", "carol", "12345678"},
		{"password", "carol", "password"},
		{"eight spaces", "carol", "        "},
		{"ten spaces", "carol", "          "},
		{"nine characters", "carol", "Zq8#vLx2p"},
		{"the username", "carol.smith", "carol.smith"},
		{"the username as typed", "Carol.Smith", "CAROL.SMITH"},
		{"containing the username", "carol.smith", "i-am-carol.smith!"},
		{"common", "carol", "1234567890"},
		{"common in capitals", "carol", "QWERTYUIOP"},
		{"too long", "carol", strings.Repeat("p", 257)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post("/auth/signup", signupBody(tc.user, tc.pass, nil), h.sameOrigin())
			if r.StatusCode != 400 || r.errCode() != "weak_password" {
				t.Fatalf("%d %s, want 400 weak_password", r.StatusCode, r.body)
			}
			if r.cookie(token.SessionCookie) != nil {
				t.Error("cookie set on a refused signup")
			}
		})
	}
	// None of them made an account: the name is still free.
	h.signup("carol", "Zq8#vLx2p!")
	h.signup("carol.smith", "correct horse battery staple")
}

// Display names with invisible or format characters are refused at signup
// (issue 9, point 7); visible Unicode passes.
func TestSignupRefusesInvisibleDisplayNames(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct{ name, display string }{
		{"zero width space U+200B", "ali\u200bce"},
		{"word joiner U+2060", "alice\u2060"},
		{"byte order mark U+FEFF", "\ufeffalice"},
		{"hangul filler U+3164", "\u3164"},
		{"braille blank U+2800", "\u2800\u2800"},
		{"zero width joiner U+200D", "al\u200dice"},
		{"soft hyphen U+00AD", "al\u00adice"},
		{"no-break space inside", "alice\u00a0smith"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post("/auth/signup", signupBody("mallory", "Zq8#vLx2p!", &tc.display), h.sameOrigin())
			if r.StatusCode != 400 || r.errCode() != "invalid_request" {
				t.Fatalf("%d %s, want 400 invalid_request", r.StatusCode, r.body)
			}
		})
	}
	display := "Zoë 🚀 Ångström"
	if u := h.post("/auth/signup", signupBody("zoe", "Zq8#vLx2p!", &display), h.sameOrigin()).user(); u.DisplayName != display {
		t.Errorf("display name %q stored as %q", display, u.DisplayName)
	}
}

// A name that looks like another user's is refused at signup: a display
// name whose confusable skeleton equals another user's username or display
// name (409 display_name_taken), and a username that looks like another's
// (409 username_taken) (issue 9, point 7).
func TestSignupRefusesLookalikeNames(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SignupLimit = 0 }) // 17 signups from one address
	const pass = "Zq8#vLx2p!"
	str := func(s string) *string { return &s }
	h.signup("alice", pass)
	h.signup("mallory", pass)
	if r := h.post("/auth/signup", signupBody("bob", pass, str("Bob Builder")), h.sameOrigin()); r.StatusCode != 201 {
		t.Fatalf("signup bob: %d %s", r.StatusCode, r.body)
	}
	for _, tc := range []struct {
		name, user string
		display    *string
		code       string
	}{
		{"cyrillic а, the issue's", "eve", str("\u0430lice"), "display_name_taken"},
		{"same name", "eve", str("alice"), "display_name_taken"},
		{"capitals", "eve", str("ALICE"), "display_name_taken"},
		{"capital I for l", "eve", str("aIice"), "display_name_taken"},
		{"digit 1 for l", "eve", str("a1ice"), "display_name_taken"},
		{"fullwidth", "eve", str("ａｌｉｃｅ"), "display_name_taken"},
		{"another's display name", "eve", str("B0b Builder"), "display_name_taken"},
		{"username as typed, by default the display name", "AIice", nil, "display_name_taken"},
		{"rn for m in the username", "rnallory", nil, "username_taken"},
		{"1 for l, with another display name", "mal1ory", str("Eve"), "username_taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post("/auth/signup", signupBody(tc.user, pass, tc.display), h.sameOrigin())
			if r.StatusCode != 409 || r.errCode() != tc.code {
				t.Fatalf("%d %s, want 409 %s", r.StatusCode, r.body, tc.code)
			}
			if r.cookie(token.SessionCookie) != nil {
				t.Error("cookie set on a refused signup")
			}
		})
	}
	// Names that only share letters pass.
	for _, tc := range []struct{ user, display string }{{"alicia", "Alicia"}, {"eve", "Alice Liddell"}, {"bobby", "Bobby B."}} {
		if r := h.post("/auth/signup", signupBody(tc.user, pass, &tc.display), h.sameOrigin()); r.StatusCode != 201 {
			t.Errorf("signup %s as %q: %d %s", tc.user, tc.display, r.StatusCode, r.body)
		}
	}
}
