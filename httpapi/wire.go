package httpapi

import "time"

// TimeLayout is api.md's time format: RFC 3339 UTC with milliseconds
// (2026-11-27T10:00:00.123Z). FormatTime applies it.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime returns t in api.md's time format.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// User is api.md's User object, as every role serves it.
type User struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

// NewUser returns the public form of an account (never its password hash):
// callers pass a store.User's fields, which this package does not import.
func NewUser(id, username, displayName string) User {
	return User{ID: id, Username: username, DisplayName: displayName}
}
