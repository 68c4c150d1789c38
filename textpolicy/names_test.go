package textpolicy

import (
	"errors"
	"slices"
	"testing"
)

func TestCheckDisplayName(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"plain", "Alice", nil},
		{"with a space", "Alice Smith", nil},
		{"accents", "Zoë Ångström", nil},
		{"other scripts", "Алиса 爱丽丝", nil},
		{"emoji", "Alice 🚀", nil},
		{"emoji with presentation selector", "Alice ❤️", nil},
		{"skin tone modifier", "👋🏽 Bob", nil},
		{"combining accent", "Zoe\u0308", nil},
		{"empty, the caller's to decide", "", nil},
		{"zero width space U+200B", "ali\u200bce", ErrNameInvisible},
		{"word joiner U+2060", "alice\u2060", ErrNameInvisible},
		{"byte order mark U+FEFF", "\ufeffalice", ErrNameInvisible},
		{"hangul filler U+3164", "\u3164", ErrNameInvisible},
		{"hangul choseong filler U+115F", "al\u115fice", ErrNameInvisible},
		{"hangul jungseong filler U+1160", "al\u1160ice", ErrNameInvisible},
		{"halfwidth hangul filler U+FFA0", "al\uffa0ice", ErrNameInvisible},
		{"braille blank U+2800", "alice\u2800", ErrNameInvisible},
		{"zero width joiner U+200D", "a\u200dlice", ErrNameInvisible},
		{"soft hyphen U+00AD", "al\u00adice", ErrNameInvisible},
		{"right-to-left override U+202E", "\u202eecila", ErrNameInvisible},
		{"isolate U+2066", "\u2066alice", ErrNameInvisible},
		{"tag character U+E0041", "alice\U000E0041", ErrNameInvisible},
		{"combining grapheme joiner U+034F", "al\u034fice", ErrNameInvisible},
		{"mongolian vowel separator U+180E", "al\u180eice", ErrNameInvisible},
		{"no-break space U+00A0", "alice\u00a0smith", ErrNameInvisible},
		{"ideographic space U+3000", "alice\u3000smith", ErrNameInvisible},
		{"lone presentation selector", "\ufe0f", ErrNameInvisible},
		{"private use U+E000", "alice\ue000", ErrNameInvisible},
		{"unassigned U+0378", "alice\u0378", ErrNameInvisible},
		{"tab", "alice\tsmith", ErrNameControl},
		{"newline", "alice\n", ErrNameControl},
		{"NUL", "alice\x00", ErrNameControl},
		{"line separator U+2028", "alice\u2028smith", ErrNameControl},
		{"invalid UTF-8", "alice\xff", ErrNameControl},
		{"replacement character", "alice\ufffd", ErrNameControl},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CheckDisplayName(tc.in); !errors.Is(got, tc.want) {
				t.Errorf("CheckDisplayName(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestNameKeyLookalikes(t *testing.T) {
	// Each of these looks like "alice" (or the other name given): one of
	// its LookalikeKeys is the other's NameKey.
	for _, tc := range []struct{ name, chosen, other string }{
		{"same", "alice", "alice"},
		{"capitalized", "Alice", "alice"},
		{"upper case", "ALICE", "alice"},
		{"cyrillic a U+0430, the issue's", "\u0430lice", "alice"},
		{"cyrillic capital A U+0410", "\u0410lice", "alice"},
		{"greek alpha", "\u03b1lice", "alice"},
		{"digit one for l", "a1ice", "alice"},
		{"capital I for l", "aIice", "alice"},
		{"fullwidth", "ａｌｉｃｅ", "alice"},
		{"mathematical bold", "𝐚𝐥𝐢𝐜𝐞", "alice"},
		{"invisible inside, were it let through", "al\u200bi\u2060ce\ufeff", "alice"},
		{"rn for m", "rnallory", "mallory"},
		{"zero for o", "B0B", "bob"},
		{"composed and decomposed", "Zoe\u0308", "Zoë"},
		{"the library's example", "𝔭𝒶ỿ𝕡𝕒ℓ", "paypal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if keys, want := LookalikeKeys(tc.chosen), NameKey(tc.other); !slices.Contains(keys, want) {
				t.Errorf("LookalikeKeys(%q) = %q, want one of them to be NameKey(%q) = %q", tc.chosen, keys, tc.other, want)
			}
		})
	}
	// These do not look alike.
	for _, tc := range []struct{ chosen, other string }{
		{"alice", "bob"},
		{"alicia", "alice"},
		{"alice2", "alice"},
		{"Zoe", "Zoë"},
	} {
		if keys, other := LookalikeKeys(tc.chosen), NameKey(tc.other); slices.Contains(keys, other) {
			t.Errorf("LookalikeKeys(%q) = %q contains NameKey(%q) = %q, but they differ", tc.chosen, keys, tc.other, other)
		}
	}
}

func TestNameKeyIsStable(t *testing.T) {
	// A stored key must not change when computed again from its own output
	// of the same name: NameKey is a function of the name alone.
	for _, s := range []string{"alice", "ALICE", "\u0430lice", "B0B", "rnallory", "Zoë"} {
		if a, b := NameKey(s), NameKey(s); a != b {
			t.Errorf("NameKey(%q) gave %q then %q", s, a, b)
		}
	}
}
