package auth

import "github.com/chatd/chatd/store"

// Store is what the auth service keeps: accounts (signup, login, the user
// behind a session) and sessions (login, refresh rotation, logout). A
// store.Store is one; see the store package for each method's errors and
// guarantees.
type Store interface {
	store.Users
	store.Sessions
}
