package textpolicy

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// The reasons CheckDisplayName gives, fit to show to the user.
var (
	ErrNameControl   = errors.New("display_name must not contain control characters or invalid UTF-8")
	ErrNameInvisible = errors.New("display_name must not contain invisible, format, private-use or unassigned characters")
)

// CheckDisplayName returns nil when name (already trimmed of surrounding
// white space by the caller) shows only what it seems to: it refuses
// invalid UTF-8, controls and line or paragraph separators
// (ErrNameControl), and (ErrNameInvisible) every other character that shows
// nothing by itself, and so can hide or fake a difference between two
// names: white space other than U+0020, format characters (Cf: U+200B,
// U+200D, U+2060, U+FEFF, bidi controls, tags), default-ignorable code
// points (U+3164 and the other Hangul fillers), U+2800 BRAILLE PATTERN
// BLANK, private-use and unassigned code points. The one exception is an
// emoji presentation selector (U+FE0E, U+FE0F) right after a visible
// character, as in "❤️". An empty name passes; the caller decides what
// empty means. Whether the name looks like another user's is [NameKey]'s
// part.
func CheckDisplayName(name string) error {
	prevVisible := false
	for _, r := range name {
		switch {
		case unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) || r == utf8.RuneError: // invalid UTF-8 decodes as U+FFFD
			return ErrNameControl
		case r == ' ':
			prevVisible = false
			continue
		case (r == 0xFE0E || r == 0xFE0F) && prevVisible:
			prevVisible = false
			continue
		case isInvisible(r) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S):
			return ErrNameInvisible
		}
		prevVisible = true
	}
	return nil
}

// NameKey returns the key under which a username or display name is
// compared for looks: UTS #39's skeleton (NFD, default-ignorable code
// points removed, each character mapped to its confusables.txt prototype,
// NFD again) taken case-insensitively, by applying case folding and the
// skeleton twice. "alice", "Alice", "ALICE" and Cyrillic "аlice" have one
// key; so have "mallory" and "rnallory", "bob" and "B0B". A key is for
// comparison only, never for display.
func NameKey(name string) string {
	return skeleton(fold(skeleton(fold(name))))
}

// LookalikeKeys returns the keys to look up when name is about to be
// chosen: NameKey(name), and the key of the skeleton taken before any case
// folding, which keeps confusions that folding would lose (capital "I"
// looks like "l", so "aIice" looks like "alice" although it folds to
// "aiice"). A name is refused when one of these keys equals the NameKey of
// another user's username or display name.
func LookalikeKeys(name string) []string {
	k := NameKey(name)
	if k2 := skeleton(fold(skeleton(name))); k2 != k {
		return []string{k, k2}
	}
	return []string{k}
}

func fold(s string) string { return cases.Fold().String(s) }

// skeleton is UTS #39's skeleton (revision 28, Unicode 15.1).
func skeleton(s string) string {
	s = norm.NFD.String(s)
	s = strings.Map(func(r rune) rune {
		if isDefaultIgnorable(r) {
			return -1
		}
		return r
	}, s)
	return confusables.Skeleton(s) // NFD, map by confusables.txt, NFD
}
