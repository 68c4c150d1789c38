package store

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSearchKeys bounds the keys of one user (SearchKeys): a name with
// more words is found by its first ones.
const MaxSearchKeys = 24

// SearchKeys returns the keys under which Users.SearchUsers finds a user:
// its username and its display name in lower case (strings.ToLower, the
// fold SearchUsers applies to its prefix), each from every start of a word
// on (a letter or digit at the start or after a character that is
// neither), distinct, at most MaxSearchKeys. "Bob Builder" gives
// "bob builder" and "builder", so that "Builder" finds it; "bob_b" gives
// "bob_b" and "b".
func SearchKeys(username, displayName string) []string {
	var keys []string
	add := func(k string) {
		for _, old := range keys {
			if old == k {
				return
			}
		}
		if len(keys) < MaxSearchKeys {
			keys = append(keys, k)
		}
	}
	for _, name := range []string{username, displayName} {
		name = strings.ToLower(name)
		if name == "" {
			continue
		}
		add(name) // the whole name, whatever its first character
		prevWord := false
		for i, r := range name {
			word := unicode.IsLetter(r) || unicode.IsDigit(r)
			if word && !prevWord && i > 0 {
				add(name[i:])
			}
			prevWord = word
			if r == utf8.RuneError {
				prevWord = false
			}
		}
	}
	return keys
}
