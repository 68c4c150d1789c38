// Package textpolicy holds chatd's rules for the text people choose:
// passwords, display names and message text. Its functions are pure: they
// look at the text only, never at a store, so that auth and chat apply the
// same rules and tests can cover every rule with a table.
//
//   - [CheckPassword]: api.md's weak_password rule (at least 10 characters,
//     not blank, not containing the username, not in the embedded list of
//     100,000 common passwords; see README.md beside this file for its source).
//   - [CheckDisplayName]: no control, format, invisible or blank-looking
//     characters, and something visible.
//   - [NameKey] and [LookalikeKeys]: the confusable skeleton of UTS #39
//     (https://www.unicode.org/reports/tr39/#Confusable_Detection), case-folded,
//     so that a display name that looks like another user's name can be refused.
//     The confusables table is Unicode's confusables.txt (version 13.0.0) as
//     compiled into github.com/mtibben/confusables, the Go implementation of
//     the skeleton that the Go ecosystem uses; no package reachable here ships a
//     newer table. Unicode 15.1's change to the skeleton (default-ignorable
//     code points are removed first) is applied here.
//   - [IsBlank]: message text with nothing visible (api.md's text_empty).
package textpolicy
