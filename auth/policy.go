package auth

import (
	"net/http"
	"unicode/utf8"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/textpolicy"
)

// checkNewPassword applies api.md 1.1's rule to a password being chosen
// (signup, password change) for the normalized username: 400 weak_password
// when it is over maxPassword characters or textpolicy refuses it (shorter
// than 10 characters, blank, containing the username, or common).
func checkNewPassword(password, username string) *httpapi.Error {
	if utf8.RuneCountInString(password) > maxPassword {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeWeakPassword, "a password has at most %d characters", maxPassword)
	}
	if err := textpolicy.CheckPassword(password, username); err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Code: httpapi.CodeWeakPassword, Message: err.Error()}
	}
	return nil
}
