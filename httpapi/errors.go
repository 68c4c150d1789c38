package httpapi

import (
	"context"
	"errors"
	"log/slog"
)

// FromError is the one map from a Go error to what a client is shown, for
// every transport (a REST response through WriteError, a WebSocket `error`
// frame through its code and message):
//
//   - an *Error anywhere in err's chain, as it is;
//   - store.ErrNotFound: 404 not_found;
//   - store.ErrConflict: 409 conflict (a handler maps the conflicts that
//     have a code of their own, such as username_taken, before this);
//   - store.ErrInvalid: 400 invalid_request (handlers validate first, so
//     the store refusing a record is rare);
//   - token.ErrKeysUnavailable (a token that could not be checked because
//     auth's key set could not be fetched) and any error whose Kind is
//     "unavailable": 503 unavailable with Retry-After, never 401 (the UI
//     would log a user with a valid token out);
//   - anything else, context errors included (a backend failed, or was too
//     slow): 503 unavailable with Retry-After. The client never sees err
//     itself; the caller logs it (Fail does both).
//
// FromError(nil) is nil.
func FromError(err error) *Error {
	e, _ := classify(err)
	return e
}

// Fail returns FromError(err) and, when that hides err (the 503 of a
// backend failure), logs err as a failure of op on log: at Error, or at
// Debug when err is a cancellation (the client went away or the node is
// shutting down: nothing is wrong and nobody waits for the answer).
func Fail(log *slog.Logger, op string, err error) *Error {
	e, hidden := classify(err)
	if hidden {
		level := slog.LevelError
		if errors.Is(err, context.Canceled) {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "backend error", "op", op, "err", err)
	}
	return e
}

// classify maps err and reports whether the result hides it.
func classify(err error) (e *Error, hidden bool) {
	switch {
	case err == nil:
		return nil, false
	case errors.As(err, &e):
		return e, false
	}
	// The store's sentinels say their kind (store.Error.Kind); matching the
	// method keeps this package free of the store, so the gateway, which
	// maps only its own errors, does not depend on it.
	var k interface{ Kind() string }
	if errors.As(err, &k) {
		switch k.Kind() {
		case "not_found":
			return ErrNotFound, false
		case "conflict":
			return ErrConflict, false
		case "invalid":
			return ErrInvalid, false
		case "unavailable":
			return ErrUnavailable, true
		}
	}
	return ErrUnavailable, true
}
