package textpolicy

import (
	_ "embed"
	"errors"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// MinPasswordRunes is api.md 1.1's shortest acceptable password, in
// characters (runes), not bytes.
const MinPasswordRunes = 10

// The reasons CheckPassword gives. Their text is fit to show to the person
// who chose the password; auth answers each with 400 weak_password.
var (
	ErrPasswordTooShort    = errors.New("a password has at least 10 characters")
	ErrPasswordBlank       = errors.New("a password must not be only spaces or invisible characters")
	ErrPasswordHasUsername = errors.New("a password must not contain the username")
	ErrPasswordCommon      = errors.New("this password is on a list of common passwords; choose another")
)

// CheckPassword returns nil when password may protect the account named
// username (already normalized, as auth stores it), or one of the
// ErrPassword* reasons: shorter than MinPasswordRunes characters, nothing
// but white space or invisible characters, equal to or containing the
// username (case-insensitively), or on the embedded list of common
// passwords (case-insensitively, also with surrounding spaces trimmed).
// An upper bound on the length is the caller's (auth allows 256).
func CheckPassword(password, username string) error {
	switch {
	case utf8.RuneCountInString(password) < MinPasswordRunes:
		return ErrPasswordTooShort
	case IsBlank(password):
		return ErrPasswordBlank
	}
	lower := strings.ToLower(password)
	if u := strings.ToLower(username); u != "" && strings.Contains(lower, u) {
		return ErrPasswordHasUsername
	}
	if isCommonPassword(lower) || isCommonPassword(strings.TrimSpace(lower)) {
		return ErrPasswordCommon
	}
	return nil
}

// commonPasswordsFile is common-passwords.txt: one lower-case password a
// line, sorted by byte, unique, each at least MinPasswordRunes long (shorter
// ones are refused by length anyway). README.md says where it comes from.
//
//go:embed common-passwords.txt
var commonPasswordsFile string

var commonPasswords = sync.OnceValue(func() []string {
	return strings.Split(strings.TrimSuffix(commonPasswordsFile, "\n"), "\n")
})

// isCommonPassword reports whether lower (already lower case) is on the list.
func isCommonPassword(lower string) bool {
	list := commonPasswords()
	i := sort.SearchStrings(list, lower)
	return i < len(list) && list[i] == lower
}
