package textpolicy

import "testing"

func TestIsBlank(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       bool
	}{
		{"empty", "", true},
		{"spaces and newlines", " \n\t\r ", true},
		{"no-break and ideographic spaces", "\u00a0\u3000", true},
		{"zero width space U+200B", "\u200b", true},
		{"word joiner U+2060", "\u2060\u2060", true},
		{"byte order mark U+FEFF", "\ufeff", true},
		{"hangul filler U+3164", "\u3164", true},
		{"braille blank U+2800", "\u2800\u2800", true},
		{"halfwidth hangul filler U+FFA0", "\uffa0", true},
		{"bidi controls", "\u202e\u2066\u200f", true},
		{"variation selector alone", "\ufe0f", true},
		{"control characters", "\x00\x01\x7f", true},
		{"all of them", " \u200b\u2060\ufeff\u3164\u2800\n", true},
		{"a letter", "a", false},
		{"a letter among invisibles", "\u200b a \u2060", false},
		{"emoji", "👍", false},
		{"emoji ZWJ sequence", "👩\u200d💻", false},
		{"a dot", ".", false},
		{"CJK", "好", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsBlank(tc.text); got != tc.want {
				t.Errorf("IsBlank(%q) = %v, want %v", tc.text, got, tc.want)
			}
		})
	}
}

func TestIsDefaultIgnorable(t *testing.T) {
	// Samples from DerivedCoreProperties.txt, in and out.
	for r, want := range map[rune]bool{
		0x00AD: true, 0x034F: true, 0x115F: true, 0x1160: true, 0x180B: true, 0x200B: true,
		0x200D: true, 0x2060: true, 0x3164: true, 0xFE0F: true, 0xFEFF: true, 0xFFA0: true,
		0xE0001: true, 0xE0100: true,
		'a': false, ' ': false, 0x00A0: false, 0x0600: false, 0xFFF9: false, 0x2800: false,
	} {
		if got := isDefaultIgnorable(r); got != want {
			t.Errorf("isDefaultIgnorable(%U) = %v, want %v", r, got, want)
		}
	}
}
