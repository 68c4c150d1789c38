package textpolicy

import "unicode"

// blankLookalikes are characters that are neither white space nor
// default-ignorable but still render as nothing, and so serve to fake an
// empty or a different name.
var blankLookalikes = map[rune]bool{
	0x2800: true, // BRAILLE PATTERN BLANK
	0x3164: true, // HANGUL FILLER (also default-ignorable)
	0x115F: true, // HANGUL CHOSEONG FILLER (also default-ignorable)
	0x1160: true, // HANGUL JUNGSEONG FILLER (also default-ignorable)
	0xFFA0: true, // HALFWIDTH HANGUL FILLER (also default-ignorable)
	0xFFFC: true, // OBJECT REPLACEMENT CHARACTER
}

// isDefaultIgnorable reports the derived property Default_Ignorable_Code_Point
// (DerivedCoreProperties.txt): Other_Default_Ignorable_Code_Point + Cf +
// Variation_Selector - White_Space - FFF9..FFFB - 13430..1343F -
// Prepended_Concatenation_Mark. These render as nothing when not supported.
func isDefaultIgnorable(r rune) bool {
	if !unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) &&
		!unicode.Is(unicode.Cf, r) && !unicode.Is(unicode.Variation_Selector, r) {
		return false
	}
	switch {
	case unicode.Is(unicode.White_Space, r),
		0xFFF9 <= r && r <= 0xFFFB,
		0x13430 <= r && r <= 0x1343F,
		unicode.Is(unicode.Prepended_Concatenation_Mark, r):
		return false
	}
	return true
}

// isInvisible reports whether r shows nothing by itself: white space,
// controls, format characters (Cf: U+200B, U+2060, U+FEFF, bidi controls,
// tags…), every other default-ignorable code point, and blank lookalikes
// such as U+2800 and the Hangul fillers.
func isInvisible(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
		isDefaultIgnorable(r) || blankLookalikes[r]
}

// IsBlank reports whether text has nothing visible: it is empty once white
// space, controls, format and other invisible characters are taken away.
// Such a message is refused as text_empty. Text is never rewritten: a
// message with one visible character is stored exactly as sent.
func IsBlank(text string) bool {
	for _, r := range text {
		if !isInvisible(r) {
			return false
		}
	}
	return true
}
