package textpolicy

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		name, password, username string
		want                     error
	}{
		{"digits, the issue's", "12345678", "alice", ErrPasswordTooShort},
		{"password, the issue's", "password", "alice", ErrPasswordTooShort},
		{"eight spaces, the issue's", "        ", "alice", ErrPasswordTooShort},
		{"nine characters", "Zq8#vLx2p", "alice", ErrPasswordTooShort},
		{"nine runes in more bytes", "ééééééééé", "alice", ErrPasswordTooShort},
		{"ten spaces", "          ", "alice", ErrPasswordBlank},
		{"invisible and spaces", "\u200b\u2060\ufeff\u3164\u2800     ", "alice", ErrPasswordBlank},
		{"the username", "alice.smith", "alice.smith", ErrPasswordHasUsername},
		{"the username in other case", "ALICE.SMITH", "alice.smith", ErrPasswordHasUsername},
		{"containing the username", "my-alice.smith-pw", "alice.smith", ErrPasswordHasUsername},
		{"common, ten digits", "1234567890", "alice", ErrPasswordCommon},
		{"common, keyboard row", "qwertyuiop", "alice", ErrPasswordCommon},
		{"common, case does not matter", "PassWord123", "alice", ErrPasswordCommon},
		{"common, surrounding spaces", "  iloveyou12 ", "alice", ErrPasswordCommon},
		{"ten runes in more bytes", "éééééééééé", "alice", nil},
		{"a passphrase", "correct horse battery staple", "alice", nil},
		{"random", "Zq8#vLx2p!", "alice", nil},
		{"no username given", "Zq8#vLx2p!", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CheckPassword(tc.password, tc.username); !errors.Is(got, tc.want) {
				t.Errorf("CheckPassword(%q, %q) = %v, want %v", tc.password, tc.username, got, tc.want)
			}
		})
	}
}

// TestCommonPasswordsFile checks the embedded list is what README.md and
// isCommonPassword's binary search take it to be.
func TestCommonPasswordsFile(t *testing.T) {
	list := commonPasswords()
	if len(list) != 100000 {
		t.Errorf("list has %d passwords, README.md says 100000", len(list))
	}
	for i, p := range list {
		if utf8.RuneCountInString(p) < MinPasswordRunes || p != strings.ToLower(p) || p != strings.TrimSpace(p) {
			t.Fatalf("line %d %q: want lower case, trimmed, at least %d characters", i+1, p, MinPasswordRunes)
		}
		if i > 0 && list[i-1] >= p {
			t.Fatalf("line %d %q: not sorted and unique after %q", i+1, p, list[i-1])
		}
	}
	// Every entry is found, the first and the last included.
	for _, p := range []string{list[0], list[len(list)/2], list[len(list)-1]} {
		if !isCommonPassword(p) {
			t.Errorf("isCommonPassword(%q) = false for a listed password", p)
		}
	}
}
