package auth

import (
	"context"
	"errors"
	"net/http"
	"unicode/utf8"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
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

var errDisplayNameTaken = httpapi.Errorf(http.StatusConflict, httpapi.CodeDisplayNameTaken, "this display name looks like another user's name")
var errUsernameLookalike = httpapi.Errorf(http.StatusConflict, httpapi.CodeUsernameTaken, "this username looks like another user's name")

// checkLookalikeNames refuses a username or display name being chosen when
// it looks like another user's username or display name: when one of its
// textpolicy.LookalikeKeys is that user's stored key. A username gets 409
// username_taken, a display name 409 display_name_taken. selfID (empty at
// signup) is not compared against. Accounts stored before the keys existed
// are not compared against either.
func (s *Service) checkLookalikeNames(ctx context.Context, username, display, selfID string) *httpapi.Error {
	for _, c := range []struct {
		name string
		e    *httpapi.Error
	}{{username, errUsernameLookalike}, {display, errDisplayNameTaken}} {
		if c.name == "" {
			continue
		}
		_, err := s.store.UserByNameKey(ctx, textpolicy.LookalikeKeys(c.name), selfID)
		if err == nil {
			return c.e
		}
		if !errors.Is(err, store.ErrNotFound) {
			return httpapi.Fail(s.log, "look up names", err)
		}
	}
	return nil
}
